/*
 * unit_funnel.c
 *	  Unit tests of the exact window funnel (funnel_core.c), outside the
 *	  server: hand-worked sequences for every mode, then random sequences
 *	  against a brute-force enumeration of all chains (the definition in
 *	  funnel_core.h, read literally), in every combination of modes and in
 *	  shuffled input orders.
 */
#include "funnel_core.h"
#include "random.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

#define A 1
#define B 2
#define C 4
#define D 8

/*
 * level of events (sorted copy); the times of the best chain into times,
 * the best chain's tag into tag, each unless NULL
 */
static int
Run(int nsteps, int64_t window, int modes, const FunnelEvent *ev, int n, bool track,
	int64_t *times, int32_t *tag)
{
	FunnelEvent *copy = malloc(sizeof(FunnelEvent) * (n ? n : 1));
	FunnelRun  *run = funnel_run_create(nsteps, window, modes, track, malloc, free);
	int			level;

	memcpy(copy, ev, sizeof(FunnelEvent) * n);
	funnel_sort_events(copy, n);
	for (int i = 0; i < n; i++)
		funnel_run_feed(run, copy[i].ts, copy[i].mask, copy[i].tag);
	level = funnel_run_level(run);
	if (times)
		memcpy(times, funnel_run_times(run), sizeof(int64_t) * level);
	if (tag)
		*tag = funnel_run_tag(run);
	funnel_run_destroy(run);
	free(copy);
	return level;
}

static int
Level(int nsteps, int64_t window, int modes, const FunnelEvent *ev, int n, int64_t *times)
{
	return Run(nsteps, window, modes, ev, n, times != NULL, times, NULL);
}

/* level and best tag of events (sorted copy), with or without times */
static int
LevelTag(int nsteps, int64_t window, int modes, const FunnelEvent *ev, int n, bool track, int32_t *tag)
{
	return Run(nsteps, window, modes, ev, n, track, NULL, tag);
}

#define LEVEL(nsteps, window, modes, ...) \
	Level(nsteps, window, modes, (FunnelEvent[]){__VA_ARGS__}, \
		  sizeof((FunnelEvent[]){__VA_ARGS__}) / sizeof(FunnelEvent), NULL)

#include "funnel_bruteforce.h"

int
main(void)
{
	int64_t		t[64];
	FunnelEvent many[64];
	DemoRandom	r;
	int			mismatches = 0,
				shuffled_diff = 0,
				cases = 0;

	/* window */
	ok(LEVEL(3, 10, 0, {0, A}, {5, B}, {10, C}) == 3, "window edge is inclusive: C at start + window counts");
	ok(LEVEL(3, 10, 0, {0, A}, {5, B}, {11, C}) == 2, "C one unit past the window does not count");
	ok(LEVEL(3, 10, 0, {0, A}, {5, A}, {12, B}, {14, C}) == 3,
	   "a later start rescues the chain (first-A greedy says 1)");
	ok(LEVEL(3, 10, 0, {0, A}, {5, B}, {6, A}, {7, B}, {15, C}) == 3,
	   "maximum over all chains: A(6) B(7) C(15), not the first A's chain");
	Level(3, 10, 0, (FunnelEvent[]){{0, A}, {5, A}, {12, B}, {14, C}}, 4, t);
	ok(t[0] == 5 && t[1] == 12 && t[2] == 14, "times of the best chain: 5, 12, 14");
	{
		FunnelRun  *run = funnel_run_create(2, 10, 0, true, malloc, free);

		funnel_run_feed(run, 0, A, 1);
		funnel_run_feed(run, 4, A, 7);
		funnel_run_feed(run, 4, A | B, 5);
		funnel_run_feed(run, 9, B, 0);
		ok(funnel_run_level(run) == 2 && funnel_run_tag(run) == 5,
		   "the chain carries its step-1 event's tag, the smallest among simultaneous ones");
		funnel_run_destroy(run);
	}
	ok(LEVEL(3, 10, 0, {0, C}, {1, B}) == 0, "no step 1: level 0");
	ok(LEVEL(3, 10, 0, {5, B}, {1, A}, {3, C}) == 2, "steps out of order: C before B does not count");

	/* equal timestamps: ordered by step number */
	ok(LEVEL(3, 10, 0, {0, B}, {0, A}) == 2 && LEVEL(3, 10, 0, {0, A}, {0, B}) == 2,
	   "equal timestamps: A then B whatever the input order");
	ok(LEVEL(3, 10, FUNNEL_STRICT_INCREASE, {0, A}, {0, B}) == 1, "strict_increase: equal times do not chain");
	ok(LEVEL(3, 10, FUNNEL_STRICT_INCREASE, {0, A}, {1, B}) == 2, "strict_increase: later time chains");
	ok(LEVEL(3, 10, FUNNEL_STRICT_INCREASE, {1, A}, {2, A}, {2, B}, {3, C}) == 3 &&
	   LEVEL(3, 10, FUNNEL_STRICT_INCREASE, {2, B}, {3, C}, {2, A}, {1, A}) == 3,
	   "strict_increase, repeated sub-chain at equal times (ClickHouse 52844): A(1) B(2) C(3) survives A(2)");
	Level(3, 10, FUNNEL_STRICT_INCREASE, (FunnelEvent[]){{1, A}, {2, A}, {2, B}, {3, C}}, 4, t);
	ok(t[0] == 1 && t[1] == 2 && t[2] == 3, "its times: 1, 2, 3");

	/* one row matching several steps */
	ok(LEVEL(3, 10, 0, {0, A | B}) == 2, "a row matching steps 1 and 2 fills both");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ONCE, {0, A | B}) == 1, "strict_once: it fills one");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ONCE, {0, A | B}, {0, A | B}) == 2, "strict_once: two such rows fill two");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ONCE, {0, A | C}, {0, B}) == 2,
	   "strict_once: A|C and B at one time: A, B, then C would reuse a row");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ONCE, {0, A | C}, {0, A | B}, {0, C}) == 3,
	   "strict_once: rows matched to steps (A|C->A, A|B->B, C->C)");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ONCE, {0, A}, {1, A | B}, {2, B | C}) == 3, "strict_once over time: A, B, C");

	/* strict_deduplication */
	ok(LEVEL(3, 10, FUNNEL_STRICT_DEDUP, {0, A}, {1, B}, {2, B}, {3, C}) == 2, "dedup: A B B C is 2");
	ok(LEVEL(3, 10, FUNNEL_STRICT_DEDUP, {0, A}, {1, B}, {2, C}, {3, B}) == 3,
	   "dedup: A B C B is 3 (a repeat after the last step does not lower the level)");
	ok(LEVEL(3, 10, FUNNEL_STRICT_DEDUP, {0, A}, {1, A}, {2, B}) == 2, "dedup: A A B is 2 (restart at the second A)");
	ok(LEVEL(3, 10, FUNNEL_STRICT_DEDUP, {0, A}, {1, B}, {1, B}, {3, C}) == 3,
	   "dedup: two B at one time are simultaneous, not a repeat");
	ok(LEVEL(3, 10, 0, {0, A}, {1, B}, {2, B}, {3, C}) == 3, "without dedup A B B C is 3");

	/* strict_order */
	ok(LEVEL(4, 10, FUNNEL_STRICT_ORDER, {0, A}, {1, B}, {2, D}, {3, C}) == 2, "order: A B D C stops at 2");
	ok(LEVEL(4, 10, 0, {0, A}, {1, B}, {2, D}, {3, C}) == 3, "without order A B D C is 3");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ORDER, {0, A}, {1, B}, {2, B}, {3, C}) == 3, "order: a repeated B is no other step");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ORDER, {0, A}, {1, B}, {2, A}, {3, C}) == 2, "order: A between B and C breaks it");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ORDER, {0, A}, {1, A}, {2, B}, {3, C}) == 3, "order: A A B C is 3 (start at the second A)");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ORDER | FUNNEL_STRICT_DEDUP, {0, A}, {1, B}, {2, B}, {3, C}) == 2,
	   "order + dedup: A B B C is 2");
	ok(LEVEL(3, 10, FUNNEL_STRICT_ORDER | FUNNEL_STRICT_INCREASE, {0, A}, {0, B}, {1, B}, {2, C}) == 3,
	   "order + increase: A(0) B(0) B(1) C(2) is 3 through B(1)");
	ok(LEVEL(3, 10, FUNNEL_STRICT_DEDUP | FUNNEL_STRICT_INCREASE, {0, A}, {0, B}, {1, B}, {2, C}) == 1,
	   "dedup + increase: B(0) cannot chain and kills A's chain");

	/* more than 32 steps, up to 64 */
	for (int i = 0; i < 64; i++)
		many[i] = (FunnelEvent) {63 - i, UINT64_C(1) << (63 - i)};
	ok(Level(40, 100, 0, many, 64, NULL) == 40, "40 steps: 40");
	ok(Level(64, 100, 0, many, 64, NULL) == 64, "64 steps: 64");
	ok(Level(64, 62, 0, many, 64, NULL) == 63, "64 steps, window 62: 63");
	many[0].mask = UINT64_MAX;
	ok(Level(64, 100, FUNNEL_STRICT_ONCE, many, 1, NULL) == 1 && Level(64, 100, 0, many, 1, NULL) == 64,
	   "one row matching all 64 steps: 64, or 1 under strict_once");

	/* mode names */
	ok(funnel_parse_modes("strict_order, strict_once") == (FUNNEL_STRICT_ORDER | FUNNEL_STRICT_ONCE) &&
	   funnel_parse_modes("") == 0 && funnel_parse_modes("strict_deduplication,strict_increase") ==
	   (FUNNEL_STRICT_DEDUP | FUNNEL_STRICT_INCREASE), "mode lists parse");
	ok(funnel_parse_modes("strict") == -1 && funnel_parse_modes("strict_order,") == -1 &&
	   funnel_parse_modes(",") == -1 && funnel_parse_modes("Strict_order") == -1, "unknown modes are refused");

	/* random sequences against the brute force, every mode combination, shuffled */
	demo_random_seed(&r, 42);
	for (int iter = 0; iter < 6000; iter++)
	{
		FunnelEvent ev[9];
		int			n = 1 + (int) demo_random_below(&r, 9);
		int			nsteps = 1 + (int) demo_random_below(&r, 4);
		int64_t		window = 1 + (int64_t) demo_random_below(&r, 6);

		for (int i = 0; i < n; i++)
		{
			ev[i].ts = (int64_t) demo_random_below(&r, 6);
			ev[i].tag = ev[i].flags = 0;
			ev[i].mask = demo_random_below(&r, 4) == 0 ?
				demo_random_below(&r, (UINT64_C(1) << nsteps)) :
				UINT64_C(1) << demo_random_below(&r, nsteps);
		}
		for (int modes = 0; modes <= FUNNEL_ALL_MODES; modes++)
		{
			int			expect = BruteForce(nsteps, window, modes, ev, n);
			int			got = Level(nsteps, window, modes, ev, n, t);

			cases++;
			if (got != expect)
			{
				if (mismatches++ < 5)
				{
					printf("# mismatch: steps %d window %lld modes %d: got %d expected %d:", nsteps,
						   (long long) window, modes, got, expect);
					for (int i = 0; i < n; i++)
						printf(" %lld:%llu", (long long) ev[i].ts, (unsigned long long) ev[i].mask);
					printf("\n");
				}
			}
			/* the reported times form a valid chain of that level */
			for (int k = 1; k < got; k++)
				if (t[k] < t[k - 1] || t[k] - t[0] > window)
					mismatches++;
			/* shuffled input: same level */
			for (int i = n - 1; i > 0; i--)
			{
				int			j = (int) demo_random_below(&r, i + 1);
				FunnelEvent tmp = ev[i];

				ev[i] = ev[j];
				ev[j] = tmp;
			}
			if (Level(nsteps, window, modes, ev, n, NULL) != got)
				shuffled_diff++;
		}
	}
	/*
	 * without modes or times the evaluator takes a shorter path: the same
	 * level and step-1 tag as the general path (times tracked), on random
	 * tagged sequences of up to 64 steps
	 */
	{
		int			plain_diff = 0;

		for (int iter = 0; iter < 4000; iter++)
		{
			FunnelEvent ev[24];
			int			n = 1 + (int) demo_random_below(&r, 24);
			int			nsteps = 1 + (int) demo_random_below(&r, iter % 2 ? 64 : 6);
			int64_t		window = 1 + (int64_t) demo_random_below(&r, 8);
			int32_t		tag1,
						tag2;

			for (int i = 0; i < n; i++)
			{
				ev[i].ts = (int64_t) demo_random_below(&r, 10);
				ev[i].tag = (int32_t) demo_random_below(&r, 5);
				ev[i].flags = 0;
				ev[i].mask = demo_random_below(&r, 3) == 0 ?
					demo_random_next(&r) : UINT64_C(1) << demo_random_below(&r, nsteps);
			}
			if (LevelTag(nsteps, window, 0, ev, n, false, &tag1) != LevelTag(nsteps, window, 0, ev, n, true, &tag2) ||
				tag1 != tag2)
				plain_diff++;
		}
		ok(plain_diff == 0, "no mode, no times: the short path gives the general path's level and tag");
	}

	printf("# %d random cases\n", cases);
	ok(mismatches == 0, "random sequences: the level equals the brute force in every mode combination");
	ok(shuffled_diff == 0, "random sequences: shuffled input gives the same level");

	return done_testing();
}
