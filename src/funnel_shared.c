/*-------------------------------------------------------------------------
 *
 * funnel_shared.c
 *	  What the funnel files share (declared in funnel.h): the checks of the
 *	  window, mode and time arguments, the growing event array of an
 *	  aggregate state, and the evaluator cached across a query's groups.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/memutils.h"

#include "funnel.h"

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

