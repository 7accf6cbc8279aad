/*
 * fuzz_funnel.c
 *	  libFuzzer harness for the window funnel core: the bytes give the
 *	  number of steps, the window, the modes and up to 12 events; the level
 *	  must equal the brute-force enumeration of every chain (a differential
 *	  fuzzer), and the reported times must form a chain of that level.
 */
#include "funnel_bruteforce.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FunnelEvent ev[12];
	int			n = 0;
	int			nsteps,
				modes,
				level;
	int64_t		window;
	FunnelRun  *run;
	const int64_t *times;

	if (size < 3)
		return 0;
	nsteps = 1 + data[0] % 5;
	window = 1 + data[1] % 8;
	modes = data[2] & FUNNEL_ALL_MODES;
	for (size_t i = 3; i + 1 < size && n < 12; i += 2)
	{
		ev[n].ts = data[i] % 10;
		ev[n].mask = data[i + 1] & ((1u << nsteps) - 1);
		ev[n].tag = data[i] >> 4;
		ev[n].flags = 0;
		n++;
	}
	run = funnel_run_create(nsteps, window, modes, true, malloc, free);
	funnel_sort_events(ev, n);
	for (int i = 0; i < n; i++)
		funnel_run_feed(run, ev[i].ts, ev[i].mask, ev[i].tag);
	level = funnel_run_level(run);
	times = funnel_run_times(run);
	if (level != BruteForce(nsteps, window, modes, ev, n))
		abort();
	for (int k = 1; k < level; k++)
		if (times[k] < times[k - 1] || times[k] - times[0] > window)
			abort();
	funnel_run_destroy(run);
	return 0;
}
