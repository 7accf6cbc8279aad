/*-------------------------------------------------------------------------
 *
 * random.c
 *	  Deterministic random numbers for the demo data (see random.h).
 *
 *-------------------------------------------------------------------------
 */
#include "random.h"

/*
 * Random numbers: xoshiro256** (Blackman and Vigna, public domain), state
 * filled by splitmix64 from the seed.
 */
static uint64_t
Rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
demo_random_seed(DemoRandom *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
	{
		uint64_t	z = (seed += UINT64_C(0x9e3779b97f4a7c15));

		z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
		z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
		r->s[i] = z ^ (z >> 31);
	}
}

uint64_t
demo_random_next(DemoRandom *r)
{
	uint64_t	result = Rotl(r->s[1] * 5, 7) * 9;
	uint64_t	t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = Rotl(r->s[3], 45);
	return result;
}

uint64_t
demo_random_below(DemoRandom *r, uint64_t n)
{
	/* reject the top partial range so every value is equally likely */
	uint64_t	limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t	x;

	do
		x = demo_random_next(r);
	while (x >= limit);
	return x % n;
}

bool
demo_random_chance(DemoRandom *r, uint64_t num, uint64_t den)
{
	return demo_random_below(r, den) < num;
}
