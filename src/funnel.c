/*-------------------------------------------------------------------------
 *
 * funnel.c
 *	  dogdb_window_funnel(window, [mode,] ts, VARIADIC steps boolean[]) and
 *	  dogdb_window_funnel_times(...): the highest funnel step a group of
 *	  events reached, and the times of that chain (funnel_core.h has the
 *	  definitions), as parallel aggregates.
 *
 * Design note: the state (internal) collects the events that match at
 * least one step as (ts, step mask) pairs; the final function sorts them
 * and runs the exact evaluator.  Events matching no step cost no memory.
 * Partial states combine by concatenation, so the result does not depend
 * on how rows were split between workers or in which order they came.
 *
 * Parallel plans: grouped by visitor, a visitor's rows are contiguous in
 * the visitor/time index, so nearly every group's partial state is
 * complete in one worker and the leader (which gathers, combines and
 * finishes every group alone) must do as little as possible per group.
 * The serialize function therefore runs the evaluator in the worker and
 * stores the level of the state's events next to them, compactly (the
 * step mask in as few bytes as the number of steps needs).  The
 * deserialize function checks every byte but decodes nothing: the state
 * points at the packed events.  A combine keeps one side's packed bytes
 * and level when the other side has no events, and decodes both only when
 * it really merges two non-empty states (the level is then recomputed by
 * the final function).  The final function of a state that was never
 * merged returns the stored level.  The serialized state is validated byte
 * by byte before use (lengths, flags, every time and mask, and a level
 * that the events' steps allow): any role can hand the deserialize
 * function any bytea through an aggregate of its own.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "libpq/pqformat.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "funnel.h"

PG_FUNCTION_INFO_V1(dogdb_window_funnel_transfn);
PG_FUNCTION_INFO_V1(dogdb_window_funnel_combinefn);
PG_FUNCTION_INFO_V1(dogdb_window_funnel_serialfn);
PG_FUNCTION_INFO_V1(dogdb_window_funnel_deserialfn);
PG_FUNCTION_INFO_V1(dogdb_window_funnel_finalfn);
PG_FUNCTION_INFO_V1(dogdb_window_funnel_times_finalfn);

#define FUNNEL_STATE_MAGIC 0x44464E32	/* "DFN2" */
/* magic, window, modes, nsteps, level, number of events */
#define FUNNEL_STATE_HEADER (4 + 8 + 4 + 4 + 4 + 8)

/*
 * The events of a state are events (decoded) plus npacked events still in
 * the serialized form at packed (checked; funnel_core.h describes it).
 * level >= 0 is the level of all of them when known (a deserialized state
 * not merged since), -1 when the final function must run the evaluator.
 */
typedef struct FunnelState
{
	int64		window;
	int32		modes;
	int32		nsteps;
	int32		level;
	FunnelEvents events;
	const char *packed;
	int64		npacked;
	text	   *mode_raw;		/* the mode argument as parsed (NULL: none) */
} FunnelState;

/* ---- the aggregate ---- */

static void
SettingsMismatch(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("window, mode and the number of steps must be the same for every row of a group"),
			 errhint("Pass constants, such as dogdb_window_funnel('1 day', occurred_at, a, b, c).")));
}

/*
 * transfn(state, window, ts, steps) or transfn(state, window, mode, ts,
 * steps): add the row's step mask if it matches a step.  NULL conditions
 * are false; a row with a NULL time is skipped.
 */
Datum
dogdb_window_funnel_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FunnelState *state = PG_ARGISNULL(0) ? NULL : (FunnelState *) PG_GETARG_POINTER(0);
	bool		has_mode = PG_NARGS() == 5;
	int			tsarg = has_mode ? 3 : 2;
	int			stepsarg = has_mode ? 4 : 3;
	int64		window;
	int			modes;
	ArrayType  *steps;
	int			nsteps;
	uint64		mask = 0;
	FunnelEvent e;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_window_funnel_transfn called in non-aggregate context");

	window = FunnelWindowArg(fcinfo, 1);
	/* the mode is parsed once per group, then compared byte for byte */
	if (!has_mode)
		modes = 0;
	else if (state != NULL && state->mode_raw != NULL && !PG_ARGISNULL(2) &&
			 VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(2)) == VARSIZE_ANY_EXHDR(state->mode_raw) &&
			 memcmp(VARDATA_ANY(PG_GETARG_TEXT_PP(2)), VARDATA_ANY(state->mode_raw),
					VARSIZE_ANY_EXHDR(state->mode_raw)) == 0)
		modes = state->modes;
	else
		modes = FunnelModeArg(fcinfo, 2);
	steps = PG_ARGISNULL(stepsarg) ? NULL : PG_GETARG_ARRAYTYPE_P(stepsarg);
	nsteps = steps ? ArrayGetNItems(ARR_NDIM(steps), ARR_DIMS(steps)) : 0;
	if (steps == NULL || ARR_NDIM(steps) > 1 || nsteps < 1 || nsteps > FUNNEL_MAX_STEPS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("steps must be 1 to %d boolean conditions, not %d", FUNNEL_MAX_STEPS, nsteps),
				 errhint("Pass one condition per step after the time, such as "
						 "dogdb_window_funnel('1 day', occurred_at, event_name = 'signup', event_name = 'paid').")));

	if (state == NULL)
	{
		state = MemoryContextAllocZero(aggcxt, sizeof(FunnelState));
		state->window = window;
		state->modes = modes;
		state->nsteps = nsteps;
		state->level = -1;
	}
	else if (state->window != window || state->modes != modes || state->nsteps != nsteps)
		SettingsMismatch();
	if (has_mode && state->mode_raw == NULL && !PG_ARGISNULL(2))
	{
		text	   *m = PG_GETARG_TEXT_PP(2);

		state->mode_raw = MemoryContextAlloc(aggcxt, VARSIZE_ANY(m));
		memcpy(state->mode_raw, m, VARSIZE_ANY(m));
	}

	if (PG_ARGISNULL(tsarg))
		PG_RETURN_POINTER(state);
	e.ts = PG_GETARG_TIMESTAMPTZ(tsarg);
	FunnelCheckFinite(e.ts, "ts");

	if (ARR_HASNULL(steps))
	{
		bool	   *nulls;
		Datum	   *values;
		int			n;

		deconstruct_array(steps, BOOLOID, 1, true, TYPALIGN_CHAR, &values, &nulls, &n);
		for (int i = 0; i < n; i++)
			if (!nulls[i] && DatumGetBool(values[i]))
				mask |= UINT64CONST(1) << i;
	}
	else
	{
		/* one dimension, no null bitmap: the booleans follow the header */
		bool	   *b = (bool *) ((char *) steps + ARR_OVERHEAD_NONULLS(1));

		for (int i = 0; i < nsteps; i++)
			if (b[i])
				mask |= UINT64CONST(1) << i;
	}
	if (mask != 0)
	{
		e.mask = mask;
		e.tag = 0;
		e.flags = 0;
		FunnelEventsAdd(aggcxt, &state->events, &e);
		state->level = -1;		/* (a window aggregate may have read it) */
	}
	PG_RETURN_POINTER(state);
}

/* decode the state's packed events (validated) into its event array */
static void
UnpackEvents(MemoryContext cxt, FunnelState *state)
{
	int64		need = state->events.n + state->npacked;

	if (state->npacked == 0)
		return;
	if (need > state->events.max)
	{
		if (state->events.ev == NULL)
			state->events.ev = MemoryContextAllocHuge(cxt, need * sizeof(FunnelEvent));
		else
			state->events.ev = repalloc_huge(state->events.ev, need * sizeof(FunnelEvent));
		state->events.max = need;
	}
	funnel_unpack_events((const unsigned char *) state->packed, state->npacked, state->nsteps,
						 state->events.ev + state->events.n);
	state->events.n = need;
	state->packed = NULL;
	state->npacked = 0;
}

static inline int64
StateEventCount(const FunnelState *state)
{
	return state->events.n + state->npacked;
}

/*
 * combinefn(s1, s2): the union of the events.  s2 may live in short-lived
 * memory (a deserialized state points into its bytea): whatever s1 keeps
 * of it is copied into the aggregate context.  Only a merge of two
 * non-empty states decodes events and forgets the level.
 */
Datum
dogdb_window_funnel_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	FunnelState *s1 = PG_ARGISNULL(0) ? NULL : (FunnelState *) PG_GETARG_POINTER(0);
	FunnelState *s2 = PG_ARGISNULL(1) ? NULL : (FunnelState *) PG_GETARG_POINTER(1);

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_window_funnel_combinefn called in non-aggregate context");
	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
	{
		s1 = MemoryContextAllocZero(aggcxt, sizeof(FunnelState));
		s1->window = s2->window;
		s1->modes = s2->modes;
		s1->nsteps = s2->nsteps;
		s1->level = 0;
	}
	else if (s1->window != s2->window || s1->modes != s2->modes || s1->nsteps != s2->nsteps)
		SettingsMismatch();
	if (StateEventCount(s2) == 0)
		PG_RETURN_POINTER(s1);
	if (StateEventCount(s1) == 0)
	{
		/* take s2's events as they are, and its level */
		s1->level = s2->level;
		FunnelEventsAppend(aggcxt, &s1->events, &s2->events);
		if (s2->npacked > 0)
		{
			size_t		bytes = (size_t) s2->npacked * (8 + funnel_mask_bytes(s2->nsteps));
			char	   *copy = MemoryContextAllocHuge(aggcxt, bytes);

			memcpy(copy, s2->packed, bytes);
			s1->packed = copy;
			s1->npacked = s2->npacked;
		}
		PG_RETURN_POINTER(s1);
	}
	/* a real merge: decode both sides, the final function evaluates */
	UnpackEvents(aggcxt, s1);
	FunnelEventsAppend(aggcxt, &s1->events, &s2->events);
	if (s2->npacked > 0)
	{
		FunnelState tmp = *s2;

		/* decode s2's packed events straight onto the end of s1's */
		tmp.events = s1->events;
		UnpackEvents(aggcxt, &tmp);
		s1->events = tmp.events;
	}
	s1->level = -1;
	PG_RETURN_POINTER(s1);
}

/* run the evaluator over the state's events (decoded and sorted in place) */
static FunnelRun *
RunState(FunctionCallInfo fcinfo, MemoryContext cxt, FunnelState *state, bool track)
{
	FunnelRun  *run = FunnelCachedRun(fcinfo, state->nsteps, state->window, state->modes, track);
	MemoryContext old;

	UnpackEvents(cxt, state);
	funnel_sort_events(state->events.ev, state->events.n);
	/* the evaluator's own allocations (rows of one timestamp) live with it */
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	for (int64 i = 0; i < state->events.n; i++)
	{
		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		funnel_run_feed(run, state->events.ev[i].ts, state->events.ev[i].mask, 0);
	}
	funnel_run_level(run);
	MemoryContextSwitchTo(old);
	return run;
}

/* the level of the state's events: the stored one, else evaluated */
static int
StateLevel(FunctionCallInfo fcinfo, MemoryContext cxt, FunnelState *state)
{
	if (state->level < 0)
	{
		if (StateEventCount(state) == 0)
			state->level = 0;
		else
			state->level = funnel_run_level(RunState(fcinfo, cxt, state, false));
	}
	return state->level;
}

/*
 * serialfn: header (with the level, computed here in the worker), then per
 * event the time (8 bytes) and the step mask (funnel_mask_bytes(nsteps) bytes).
 */
Datum
dogdb_window_funnel_serialfn(PG_FUNCTION_ARGS)
{
	FunnelState *state = (FunnelState *) PG_GETARG_POINTER(0);
	MemoryContext aggcxt;
	StringInfoData buf;
	size_t		bytes;
	int			level;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_window_funnel_serialfn called in non-aggregate context");
	level = StateLevel(fcinfo, aggcxt, state);
	UnpackEvents(aggcxt, state);
	pq_begintypsend(&buf);
	pq_sendint32(&buf, FUNNEL_STATE_MAGIC);
	pq_sendint64(&buf, state->window);
	pq_sendint32(&buf, state->modes);
	pq_sendint32(&buf, state->nsteps);
	pq_sendint32(&buf, level);
	pq_sendint64(&buf, state->events.n);
	bytes = (size_t) state->events.n * (8 + funnel_mask_bytes(state->nsteps));
	enlargeStringInfo(&buf, bytes);
	funnel_pack_events(state->events.ev, state->events.n, state->nsteps,
					   (unsigned char *) buf.data + buf.len);
	buf.len += bytes;
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

static void
BadState(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid window-funnel state"),
			 errdetail("%s", detail)));
}

/*
 * deserialfn: check every byte, decode nothing.  The state (in the
 * caller's short-lived memory, as the bytea) points at the packed events;
 * the combine function copies what it keeps.
 */
Datum
dogdb_window_funnel_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	FunnelState *state;
	StringInfoData buf;
	int64		n,
				npacked;
	uint64		unionmask;
	int			prefix;
	const char *detail;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "dogdb_window_funnel_deserialfn called in non-aggregate context");
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	if (buf.len < FUNNEL_STATE_HEADER)
		BadState("The state is shorter than its header.");
	if ((uint32) pq_getmsgint(&buf, 4) != FUNNEL_STATE_MAGIC)
		BadState("The state does not start with the window-funnel magic number.");
	state = palloc0(sizeof(FunnelState));
	state->window = pq_getmsgint64(&buf);
	state->modes = pq_getmsgint(&buf, 4);
	state->nsteps = pq_getmsgint(&buf, 4);
	state->level = pq_getmsgint(&buf, 4);
	n = pq_getmsgint64(&buf);
	if (state->window <= 0 || state->window > USECS_PER_DAY * (int64) FUNNEL_MAX_WINDOW_DAYS)
		BadState("The window is out of range.");
	if (state->modes < 0 || (state->modes & ~FUNNEL_ALL_MODES) != 0)
		BadState("The mode flags are unknown.");
	if (state->nsteps < 1 || state->nsteps > FUNNEL_MAX_STEPS)
		BadState("The number of steps is out of range.");
	detail = funnel_check_packed((const unsigned char *) buf.data + FUNNEL_STATE_HEADER,
								 buf.len - FUNNEL_STATE_HEADER, state->nsteps,
								 MIN_TIMESTAMP, END_TIMESTAMP - 1, &npacked, &unionmask);
	if (detail != NULL)
		BadState(detail);
	if (n != npacked)
		BadState("The number of events does not match the length of the state.");
	/* the level needs steps 1..level among the events */
	prefix = unionmask == PG_UINT64_MAX ? 64 : __builtin_ctzll(~unionmask);
	if (state->level < 0 || state->level > prefix)
		BadState("The level is out of range for the steps of the events.");
	state->packed = n > 0 ? buf.data + FUNNEL_STATE_HEADER : NULL;
	state->npacked = n;
	PG_RETURN_POINTER(state);
}

Datum
dogdb_window_funnel_finalfn(PG_FUNCTION_ARGS)
{
	FunnelState *state = PG_ARGISNULL(0) ? NULL : (FunnelState *) PG_GETARG_POINTER(0);
	MemoryContext aggcxt;

	if (state == NULL)
		PG_RETURN_INT32(0);
	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_window_funnel_finalfn called in non-aggregate context");
	PG_RETURN_INT32(StateLevel(fcinfo, aggcxt, state));
}

Datum
dogdb_window_funnel_times_finalfn(PG_FUNCTION_ARGS)
{
	FunnelState *state = PG_ARGISNULL(0) ? NULL : (FunnelState *) PG_GETARG_POINTER(0);
	FunnelRun  *run;
	int			level;
	const int64_t *times;
	Datum	   *d;
	MemoryContext aggcxt;

	if (state == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TIMESTAMPTZOID));
	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_window_funnel_times_finalfn called in non-aggregate context");
	run = RunState(fcinfo, aggcxt, state, true);
	level = funnel_run_level(run);
	times = funnel_run_times(run);
	d = palloc(sizeof(Datum) * (level + 1));
	for (int i = 0; i < level; i++)
		d[i] = TimestampTzGetDatum(times[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, level, TIMESTAMPTZOID, sizeof(TimestampTz),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
