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
 * The serialized state is validated byte by byte before use: any role can
 * call the deserialize function with any bytea.
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

#define FUNNEL_STATE_MAGIC 0x44464E31	/* "DFN1" */
#define FUNNEL_STATE_HEADER (4 + 8 + 4 + 4 + 8)
#define FUNNEL_STATE_EVENT (8 + 8)

typedef struct FunnelState
{
	int64		window;
	int32		modes;
	int32		nsteps;
	FunnelEvents events;
	text	   *mode_raw;		/* the mode argument as parsed (NULL: none) */
} FunnelState;

/* ---- shared argument checks (funnel.h) ---- */

int64
FunnelWindowArg(FunctionCallInfo fcinfo, int argno)
{
	Interval   *w;
	int64		usecs = 0;
	bool		valid = false;

	if (!PG_ARGISNULL(argno))
	{
		w = PG_GETARG_INTERVAL_P(argno);
		if (w->month == 0 && w->day >= 0 && w->day <= FUNNEL_MAX_WINDOW_DAYS &&
			w->time >= -USECS_PER_DAY * (int64) FUNNEL_MAX_WINDOW_DAYS &&
			w->time <= USECS_PER_DAY * (int64) FUNNEL_MAX_WINDOW_DAYS)
		{
			usecs = w->day * USECS_PER_DAY + w->time;
			valid = usecs > 0 && usecs <= USECS_PER_DAY * (int64) FUNNEL_MAX_WINDOW_DAYS;
		}
	}
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window must be an interval from 1 microsecond to %d days without months, not %s",
						FUNNEL_MAX_WINDOW_DAYS,
						PG_ARGISNULL(argno) ? "NULL" :
						DatumGetCString(DirectFunctionCall1(interval_out, PG_GETARG_DATUM(argno)))),
				 errhint("Write the window in days or smaller units, such as interval '1 day' or '30 days'.")));
	return usecs;
}

int
FunnelModeArg(FunctionCallInfo fcinfo, int argno)
{
	char	   *str;
	int			modes;

	if (PG_ARGISNULL(argno))
		return 0;
	str = text_to_cstring(PG_GETARG_TEXT_PP(argno));
	modes = strlen(str) > 200 ? -1 : funnel_parse_modes(str);
	if (modes < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mode must be NULL or a comma-separated list of %s, not \"%s\"",
						FUNNEL_MODE_NAMES, str),
				 errhint("For example 'strict_order,strict_once'; NULL or '' means no strict mode.")));
	pfree(str);
	return modes;
}

void
FunnelCheckFinite(TimestampTz ts, const char *argname)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be a finite timestamp, not %s", argname,
						TIMESTAMP_IS_NOBEGIN(ts) ? "-infinity" : "infinity"),
				 errhint("Filter out rows with infinite times, such as WHERE isfinite(occurred_at).")));
}

void
FunnelEventsAdd(MemoryContext cxt, FunnelEvents *events, const FunnelEvent *e)
{
	if (events->n == events->max)
	{
		int64		newmax = events->max ? events->max * 2 : 16;

		if (events->ev == NULL)
			events->ev = MemoryContextAllocHuge(cxt, newmax * sizeof(FunnelEvent));
		else
			events->ev = repalloc_huge(events->ev, newmax * sizeof(FunnelEvent));
		events->max = newmax;
	}
	events->ev[events->n++] = *e;
}

void
FunnelEventsAppend(MemoryContext cxt, FunnelEvents *dst, const FunnelEvents *src)
{
	int64		need = dst->n + src->n;

	if (src->n == 0)
		return;
	if (need > dst->max)
	{
		int64		newmax = Max(need, dst->max * 2);

		if (dst->ev == NULL)
			dst->ev = MemoryContextAllocHuge(cxt, newmax * sizeof(FunnelEvent));
		else
			dst->ev = repalloc_huge(dst->ev, newmax * sizeof(FunnelEvent));
		dst->max = newmax;
	}
	memcpy(dst->ev + dst->n, src->ev, src->n * sizeof(FunnelEvent));
	dst->n = need;
}

void *
FunnelPalloc(size_t size)
{
	return palloc(size);
}

void
FunnelPfree(void *ptr)
{
	pfree(ptr);
}

typedef struct CachedRun
{
	FunnelRun  *run;
	int			nsteps;
	int64		window;
	int			modes;
	bool		track;
} CachedRun;

FunnelRun *
FunnelCachedRun(FunctionCallInfo fcinfo, int nsteps, int64 window, int modes, bool track)
{
	CachedRun  *c = (CachedRun *) fcinfo->flinfo->fn_extra;
	MemoryContext old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);

	if (c == NULL)
	{
		c = palloc0(sizeof(CachedRun));
		fcinfo->flinfo->fn_extra = c;
	}
	if (c->run == NULL || c->nsteps != nsteps || c->window != window || c->modes != modes || c->track != track)
	{
		if (c->run)
			funnel_run_destroy(c->run);
		c->run = funnel_run_create(nsteps, window, modes, track, FunnelPalloc, FunnelPfree);
		c->nsteps = nsteps;
		c->window = window;
		c->modes = modes;
		c->track = track;
	}
	else
		funnel_run_reset(c->run);
	MemoryContextSwitchTo(old);
	return c->run;
}

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
	}
	PG_RETURN_POINTER(state);
}

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
	}
	else if (s1->window != s2->window || s1->modes != s2->modes || s1->nsteps != s2->nsteps)
		SettingsMismatch();
	FunnelEventsAppend(aggcxt, &s1->events, &s2->events);
	PG_RETURN_POINTER(s1);
}

Datum
dogdb_window_funnel_serialfn(PG_FUNCTION_ARGS)
{
	FunnelState *state = (FunnelState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "dogdb_window_funnel_serialfn called in non-aggregate context");
	pq_begintypsend(&buf);
	pq_sendint32(&buf, FUNNEL_STATE_MAGIC);
	pq_sendint64(&buf, state->window);
	pq_sendint32(&buf, state->modes);
	pq_sendint32(&buf, state->nsteps);
	pq_sendint64(&buf, state->events.n);
	for (int64 i = 0; i < state->events.n; i++)
	{
		pq_sendint64(&buf, state->events.ev[i].ts);
		pq_sendint64(&buf, (int64) state->events.ev[i].mask);
	}
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

Datum
dogdb_window_funnel_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	FunnelState *state;
	StringInfoData buf;
	int64		n;
	uint64		allowed;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_window_funnel_deserialfn called in non-aggregate context");
	buf.data = VARDATA_ANY(b);
	buf.len = VARSIZE_ANY_EXHDR(b);
	buf.maxlen = buf.len;
	buf.cursor = 0;
	if (buf.len < FUNNEL_STATE_HEADER)
		BadState("The state is shorter than its header.");
	if ((uint32) pq_getmsgint(&buf, 4) != FUNNEL_STATE_MAGIC)
		BadState("The state does not start with the window-funnel magic number.");
	state = MemoryContextAllocZero(aggcxt, sizeof(FunnelState));
	state->window = pq_getmsgint64(&buf);
	state->modes = pq_getmsgint(&buf, 4);
	state->nsteps = pq_getmsgint(&buf, 4);
	n = pq_getmsgint64(&buf);
	if (state->window <= 0 || state->window > USECS_PER_DAY * (int64) FUNNEL_MAX_WINDOW_DAYS)
		BadState("The window is out of range.");
	if (state->modes < 0 || (state->modes & ~FUNNEL_ALL_MODES) != 0)
		BadState("The mode flags are unknown.");
	if (state->nsteps < 1 || state->nsteps > FUNNEL_MAX_STEPS)
		BadState("The number of steps is out of range.");
	if (n < 0 || n != (int64) (buf.len - FUNNEL_STATE_HEADER) / FUNNEL_STATE_EVENT ||
		(buf.len - FUNNEL_STATE_HEADER) % FUNNEL_STATE_EVENT != 0)
		BadState("The number of events does not match the length of the state.");
	allowed = state->nsteps == 64 ? PG_UINT64_MAX : (UINT64CONST(1) << state->nsteps) - 1;
	if (n > 0)
	{
		state->events.ev = MemoryContextAllocHuge(aggcxt, n * sizeof(FunnelEvent));
		state->events.max = n;
	}
	for (int64 i = 0; i < n; i++)
	{
		FunnelEvent *e = &state->events.ev[i];

		e->ts = pq_getmsgint64(&buf);
		e->mask = (uint64) pq_getmsgint64(&buf);
		e->tag = 0;
		e->flags = 0;
		if (TIMESTAMP_NOT_FINITE(e->ts) || !IS_VALID_TIMESTAMP(e->ts))
			BadState("An event time is not a finite timestamp.");
		if (e->mask == 0 || (e->mask & ~allowed) != 0)
			BadState("An event matches no step or a step beyond the number of steps.");
	}
	state->events.n = n;
	PG_RETURN_POINTER(state);
}

/* run the evaluator over the state's events (sorted in place) */
static FunnelRun *
RunState(FunctionCallInfo fcinfo, FunnelState *state, bool track)
{
	FunnelRun  *run = FunnelCachedRun(fcinfo, state->nsteps, state->window, state->modes, track);
	MemoryContext old;

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

Datum
dogdb_window_funnel_finalfn(PG_FUNCTION_ARGS)
{
	FunnelState *state = PG_ARGISNULL(0) ? NULL : (FunnelState *) PG_GETARG_POINTER(0);
	FunnelRun  *run;
	int			level;

	if (state == NULL)
		PG_RETURN_INT32(0);
	run = RunState(fcinfo, state, false);
	level = funnel_run_level(run);
	PG_RETURN_INT32(level);
}

Datum
dogdb_window_funnel_times_finalfn(PG_FUNCTION_ARGS)
{
	FunnelState *state = PG_ARGISNULL(0) ? NULL : (FunnelState *) PG_GETARG_POINTER(0);
	FunnelRun  *run;
	int			level;
	const int64_t *times;
	Datum	   *d;

	if (state == NULL)
		PG_RETURN_ARRAYTYPE_P(construct_empty_array(TIMESTAMPTZOID));
	run = RunState(fcinfo, state, true);
	level = funnel_run_level(run);
	times = funnel_run_times(run);
	d = palloc(sizeof(Datum) * (level + 1));
	for (int i = 0; i < level; i++)
		d[i] = TimestampTzGetDatum(times[i]);
	PG_RETURN_ARRAYTYPE_P(construct_array(d, level, TIMESTAMPTZOID, sizeof(TimestampTz),
										  FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}
