/*-------------------------------------------------------------------------
 *
 * funnel_core.h
 *	  The exact window funnel, free of backend headers: the highest step
 *	  (0..N, N <= 64) any chain of events reaches, and that chain's times.
 *
 * Definitions (the README's "Funnels" section says the same in prose):
 *
 * - An event is (ts, mask): bit k-1 of mask set when the event matches step
 *   k.  Events matching no step are ignored.  An event matching several
 *   steps is one occurrence per step, all at its ts.
 * - Occurrences are ordered by key (ts, step); occurrences with the same
 *   key are simultaneous (none is "between" the others), so the input
 *   order never matters.
 * - A chain is occurrences o_1..o_k of steps 1..k with increasing keys and
 *   ts(o_k) - ts(o_1) <= window (inclusive).  The result is the largest k
 *   over ALL chains (not a greedy scan).
 * - FUNNEL_STRICT_ORDER: no occurrence of a step other than j and j+1
 *   strictly between o_j and o_{j+1}.
 * - FUNNEL_STRICT_DEDUP: no occurrence of step j or j+1 strictly between
 *   o_j and o_{j+1} (a repeat of the last matched step ends the chain; so
 *   does a step-(j+1) occurrence the chain could not use).
 * - FUNNEL_STRICT_INCREASE: ts(o_{j+1}) > ts(o_j).
 * - FUNNEL_STRICT_ONCE: the occurrences of a chain come from distinct
 *   events (one event fills at most one step).
 *
 * Algorithm: events are processed one timestamp at a time; for each level
 * the state keeps the latest start among the chains still alive at that
 * level (all alive chains of a level face the same future, and a later
 * start leaves more of the window).  Within one timestamp a chain may
 * climb several steps; under strict_once that is a bipartite matching of
 * steps to distinct events.  O(events * N) time, O(N^2) memory besides the
 * events of one timestamp.
 *
 *-------------------------------------------------------------------------
 */
#ifndef FUNNEL_CORE_H
#define FUNNEL_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FUNNEL_MAX_STEPS 64

#define FUNNEL_STRICT_ORDER		0x01
#define FUNNEL_STRICT_DEDUP		0x02
#define FUNNEL_STRICT_INCREASE	0x04
#define FUNNEL_STRICT_ONCE		0x08
#define FUNNEL_ALL_MODES		0x0F

/* the allowed mode names, for messages */
#define FUNNEL_MODE_NAMES "strict_order, strict_deduplication, strict_increase, strict_once"

/*
 * tag: the caller's label of the event (e.g. the rank of its segment); a
 * chain carries the tag of its step-1 event, the smallest one among
 * simultaneous step-1 events.
 */
typedef struct FunnelEvent
{
	int64_t		ts;
	uint64_t	mask;
	int32_t		tag;
	int32_t		flags;			/* the caller's; ignored here */
} FunnelEvent;

/*
 * The streaming evaluator: feed events in non-decreasing ts order.  Memory:
 * the per-level state plus the events of the current timestamp.
 */
typedef struct FunnelRun FunnelRun;

typedef void *(*FunnelAlloc) (size_t size);
typedef void (*FunnelFree) (void *ptr);

/* track_times: also keep each level's chain times (for funnel_run_times) */
extern FunnelRun *funnel_run_create(int nsteps, int64_t window, int modes, bool track_times,
									FunnelAlloc alloc, FunnelFree dealloc);
extern void funnel_run_reset(FunnelRun *run);
/* returns false if ts is before the previous event's (nothing is done) */
extern bool funnel_run_feed(FunnelRun *run, int64_t ts, uint64_t mask, int32_t tag);
/* the highest level reached so far (processes the pending timestamp) */
extern int	funnel_run_level(FunnelRun *run);
/* times of the best chain (funnel_run_level() of them); valid until reset */
extern const int64_t *funnel_run_times(FunnelRun *run);
/* the tag of the best chain's step-1 event (0 at level 0) */
extern int32_t funnel_run_tag(FunnelRun *run);
extern void funnel_run_destroy(FunnelRun *run);

/* sort events by (ts, mask, tag) in place */
extern void funnel_sort_events(FunnelEvent *events, size_t n);

/*
 * Packed events (the serialized form of an aggregate state's events): per
 * event the time in 8 bytes, then the step mask in funnel_mask_bytes(nsteps)
 * bytes, both big-endian.  Tags and flags are not kept.
 */
extern int	funnel_mask_bytes(int nsteps);
/* write n events at out (n * (8 + funnel_mask_bytes(nsteps)) bytes) */
extern void funnel_pack_events(const FunnelEvent *ev, int64_t n, int nsteps, unsigned char *out);
/*
 * check len bytes of packed events for nsteps steps: a whole number of
 * events, each with a time in [min_ts, max_ts] and a mask of at least one
 * step and none beyond nsteps.  Returns NULL and sets *n and *unionmask
 * (the steps present) when valid, else what is wrong (a sentence).
 */
extern const char *funnel_check_packed(const unsigned char *p, size_t len, int nsteps,
									   int64_t min_ts, int64_t max_ts, int64_t *n, uint64_t *unionmask);
/* decode n checked packed events (tag and flags 0) */
extern void funnel_unpack_events(const unsigned char *p, int64_t n, int nsteps, FunnelEvent *out);

/* parse a comma-separated mode list; -1 if a name is unknown */
extern int	funnel_parse_modes(const char *text);

#endif							/* FUNNEL_CORE_H */
