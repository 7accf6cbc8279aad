/*
 * fuzz_funnel.c
 *	  libFuzzer harness for the window funnel core: the bytes give the
 *	  number of steps, the window, the modes and up to 12 events; the level
 *	  must equal the brute-force enumeration of every chain (a differential
 *	  fuzzer), and the reported times must form a chain of that level.  The
 *	  same bytes are also read as packed events (the serialized state's
 *	  events, checked by the deserializer): the check must never read past
 *	  them, and what it accepts must decode to valid events that pack back
 *	  to the same bytes.
 */
#include "funnel_bruteforce.h"

#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MIN_TS (-(INT64_C(1) << 62))
#define MAX_TS (INT64_C(1) << 62)

/* data[0] picks the number of steps, the rest is packed events */
static void
CheckPacked(const uint8_t *data, size_t size)
{
	int			nsteps = 1 + data[0] % 64;
	int64_t		n = -1;
	uint64_t	u = 0,
				allowed = nsteps == 64 ? UINT64_MAX : (UINT64_C(1) << nsteps) - 1,
				seen = 0;
	FunnelEvent *ev;
	unsigned char *again;

	/* an exact-size copy, so that ASan sees any read past the end */
	unsigned char *copy = malloc(size);

	memcpy(copy, data + 1, size - 1);
	if (funnel_check_packed(copy, size - 1, nsteps, MIN_TS, MAX_TS, &n, &u) != NULL)
	{
		free(copy);
		return;
	}
	if (n < 0 || (size_t) n * (8 + funnel_mask_bytes(nsteps)) != size - 1)
		abort();
	ev = malloc(sizeof(FunnelEvent) * (n + 1));
	again = malloc(size);
	funnel_unpack_events(copy, n, nsteps, ev);
	for (int64_t i = 0; i < n; i++)
	{
		if (ev[i].ts < MIN_TS || ev[i].ts > MAX_TS || ev[i].mask == 0 || (ev[i].mask & ~allowed) != 0)
			abort();
		seen |= ev[i].mask;
	}
	if (seen != u)
		abort();
	funnel_pack_events(ev, n, nsteps, again);
	if (memcmp(again, copy, size - 1) != 0)
		abort();
	free(again);
	free(ev);
	free(copy);
}

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

	if (size >= 1)
		CheckPacked(data, size);
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
