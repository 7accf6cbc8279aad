/*-------------------------------------------------------------------------
 *
 * funnel.h
 *	  What the funnel files share: argument validation (window, mode,
 *	  times) and the growing event array of an aggregate state.
 *
 *	  funnel.c         dogdb_window_funnel and dogdb_window_funnel_times
 *	  funnel_shared.c  what this header declares for all of them
 *	  funnel_visit.c   dogdb_funnel_visit, the per-visitor aggregate behind
 *	                   dogdb_funnel_report and dogdb_funnel_trend
 *	  funnel_report.c  funnel_tally, the report's one ordered pass in C
 *	  funnel_path*.c   the funnel scan, a custom scan in place of
 *	                   GroupAggregate for dogdb_window_funnel (funnel_path.h)
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_FUNNEL_H
#define DOGDB_FUNNEL_H

#include "fmgr.h"
#include "utils/array.h"
#include "utils/timestamp.h"

#include "funnel_core.h"

/* the longest window: ten years of 24-hour days */
#define FUNNEL_MAX_WINDOW_DAYS 3650

/* the window argument in microseconds: 1 us .. 3650 days, no months; else 22023 */
extern int64 FunnelWindowArg(FunctionCallInfo fcinfo, int argno);
/* the mode argument's flags (NULL or '' is none); else 22023 */
extern int	FunnelModeArg(FunctionCallInfo fcinfo, int argno);
/* a finite timestamp, or 22023 naming argname */
extern void FunnelCheckFinite(TimestampTz ts, const char *argname);

/* events of an aggregate state, in the aggregate's memory context */
typedef struct FunnelEvents
{
	FunnelEvent *ev;
	int64		n;
	int64		max;
} FunnelEvents;

extern void FunnelEventsAdd(MemoryContext cxt, FunnelEvents *events, const FunnelEvent *e);
extern void FunnelEventsAppend(MemoryContext cxt, FunnelEvents *dst, const FunnelEvents *src);

/* the state of dogdb_funnel_visit (funnel_visit.c, funnel_visit_parallel.c) */
#define EVENT_EXCLUSION 1
#define MAX_EXCLUSIONS 64
#define MAX_NAME_LEN 1000

typedef struct VisitState
{
	int64		window;
	int			modes;
	int			nsteps;
	int			nexcl;
	int64		from;
	int64		to;
	char	  **names;			/* nsteps step names, then nexcl exclusions */
	int		   *lens;
	FunnelEvents events;
	char	  **segs;			/* distinct segments of step-1 events */
	int			nsegs;
	int			maxsegs;
	Datum		mode_datum;		/* the argument datums last checked */
	Datum		steps_datum;
	Datum		excl_datum;
	bool		has_account;
	int64		account_ts;
	int64		account_id;
} VisitState;

extern int32 FunnelSegmentIndex(MemoryContext aggcxt, VisitState *st, const char *s, int len);

/* one visitor's outcome (funnel_visit.c) */
typedef struct FunnelVisitResult
{
	int			level;
	const int64_t *times;		/* level of them, owned by the run */
	int			seg;			/* index in the state's segs, -1: none */
	bool		excluded;
	bool		has_entry;
	int64		last_entry;
} FunnelVisitResult;

/* add one event in [from, to + window] of the visitor to st */
extern void FunnelVisitAdd(MemoryContext aggcxt, VisitState *st, int64 ts, const char *evs, int evlen,
						   const char *paths, int pathlen, const char *seg, int seglen,
						   bool has_account, int64 account_id);
/* the report's and trend's argument checks (funnel_visit.c), SQL-callable */
extern Datum dogdb_funnel_check_arguments(PG_FUNCTION_ARGS);
/* evaluate st's events with run (reset here) */
extern void FunnelVisitEval(VisitState *st, FunnelRun *run, FunnelVisitResult *r);

/*
 * An evaluator for a final function, kept in fn_extra across the groups of
 * a query (reset, not rebuilt, per group); allocates in fn_mcxt.
 */
extern FunnelRun *FunnelCachedRun(FunctionCallInfo fcinfo, int nsteps, int64 window, int modes, bool track);

/* palloc/pfree for the core's evaluator */
extern void *FunnelPalloc(size_t size);
extern void FunnelPfree(void *ptr);

#endif							/* DOGDB_FUNNEL_H */
