/*-------------------------------------------------------------------------
 *
 * random.h
 *	  Deterministic random numbers for the demo data generators, free of
 *	  backend headers.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DEMO_RANDOM_H
#define DEMO_RANDOM_H

#include <stdbool.h>
#include <stdint.h>

/* deterministic random numbers (xoshiro256**, seeded through splitmix64) */
typedef struct DemoRandom
{
	uint64_t	s[4];
} DemoRandom;

extern void demo_random_seed(DemoRandom *r, uint64_t seed);
extern uint64_t demo_random_next(DemoRandom *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
extern uint64_t demo_random_below(DemoRandom *r, uint64_t n);
/* true with probability num / den */
extern bool demo_random_chance(DemoRandom *r, uint64_t num, uint64_t den);

#endif							/* DEMO_RANDOM_H */
