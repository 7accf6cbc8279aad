/*-------------------------------------------------------------------------
 *
 * funnel_visit.c
 *	  dogdb_funnel_visit(...): one visitor's funnel for dogdb_funnel_report
 *	  and dogdb_funnel_trend, as an aggregate over the visitor's events, and
 *	  dogdb_funnel_check_arguments(), the validation those functions share.
 *
 * Step k matches an event whose event_name is steps[k], or a page view
 * (event_name 'page_view') whose page_path is steps[k]; exclusions match
 * the same way.  Only events in [from_ts, to_ts + window] count, and only
 * step-1 events before to_ts start a chain (visitors enter inside the
 * range and may finish after it).
 *
 * The result (type dogdb.funnel_visit) is the level, the best chain's
 * times, the segment of its step-1 event (the first touch: the smallest
 * value among simultaneous step-1 events; NULL sorts last), whether an
 * exclusion event falls in [time of step 1, time of the last step reached],
 * the last entry (for censoring) and the visitor's account (the one on
 * the latest event that has one).
 *
 * Design note: segments of step-1 events are kept once per distinct value
 * in a small dictionary; an event carries its index as the core's tag,
 * renumbered by sort order before the run so that the smallest tag is the
 * smallest value.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "funnel.h"

PG_FUNCTION_INFO_V1(dogdb_funnel_visit_transfn);
PG_FUNCTION_INFO_V1(dogdb_funnel_visit_finalfn);
PG_FUNCTION_INFO_V1(dogdb_funnel_check_arguments);



/* a text[] of 1..max non-empty names, or 22023 */
static void
NamesArg(FunctionCallInfo fcinfo, int argno, const char *argname, int min, int max,
		 Datum **values, int *n)
{
	ArrayType  *a;
	bool	   *nulls;
	bool		valid;

	*n = 0;
	*values = NULL;
	if (PG_ARGISNULL(argno))
		valid = min == 0;
	else
	{
		a = PG_GETARG_ARRAYTYPE_P(argno);
		valid = ARR_NDIM(a) <= 1 && ArrayGetNItems(ARR_NDIM(a), ARR_DIMS(a)) <= max;
		if (valid)
		{
			deconstruct_array(a, TEXTOID, -1, false, TYPALIGN_INT, values, &nulls, n);
			valid = *n >= min;
			for (int i = 0; i < *n && valid; i++)
				valid = !nulls[i] && VARSIZE_ANY_EXHDR(DatumGetPointer((*values)[i])) > 0 &&
					VARSIZE_ANY_EXHDR(DatumGetPointer((*values)[i])) <= MAX_NAME_LEN;
		}
	}
	if (!valid)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be %s%d to %d event names or page paths, none NULL or empty",
						argname, min == 0 ? "NULL or " : "", Max(min, 1), max),
				 errhint("For example ARRAY['/', '/signup', 'account_created']: an event name, or the path of a page view.")));
}

static void
RangeArgs(FunctionCallInfo fcinfo, int fromarg, int toarg)
{
	if (PG_ARGISNULL(fromarg) || PG_ARGISNULL(toarg) ||
		TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(fromarg)) ||
		TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(toarg)) ||
		PG_GETARG_TIMESTAMPTZ(fromarg) >= PG_GETARG_TIMESTAMPTZ(toarg))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_ts and to_ts must be finite timestamps with from_ts < to_ts"),
				 errhint("Visitors enter when they do step 1 in [from_ts, to_ts), such as '2024-01-01' to '2024-02-01'.")));
}

/*
 * dogdb_funnel_check_arguments(steps, from_ts, to_ts, window, mode,
 * exclusions, breakdown, period): every argument of the report and the
 * trend, checked before any row is read.  period NULL means not used.
 */
Datum
dogdb_funnel_check_arguments(PG_FUNCTION_ARGS)
{
	Datum	   *values;
	int			n;
	int64		window;

	NamesArg(fcinfo, 0, "steps", 1, FUNNEL_MAX_STEPS, &values, &n);
	RangeArgs(fcinfo, 1, 2);
	window = FunnelWindowArg(fcinfo, 3);
	FunnelModeArg(fcinfo, 4);
	NamesArg(fcinfo, 5, "exclusions", 0, MAX_EXCLUSIONS, &values, &n);
	if (!PG_ARGISNULL(6))
	{
		char	   *b = text_to_cstring(PG_GETARG_TEXT_PP(6));

		if (!(strcmp(b, "client") == 0 || strcmp(b, "campaign") == 0 ||
			  strcmp(b, "company_size") == 0 || strcmp(b, "tier") == 0 ||
			  (strncmp(b, "properties.", 11) == 0 && strlen(b) > 11 && strlen(b) <= 200)))
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("breakdown must be NULL, client, campaign, company_size, tier or properties.<key>, not \"%s\"",
							strlen(b) > 200 ? "(a long string)" : b),
					 errhint("The segment is the value on the visitor's step-1 event (company_size and tier: the visitor's account).")));
	}
	if (PG_NARGS() > 7 && !PG_ARGISNULL(7))
	{
		char	   *p = text_to_cstring(PG_GETARG_TEXT_PP(7));

		if (strcmp(p, "day") != 0 && strcmp(p, "week") != 0 && strcmp(p, "month") != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("period must be day, week or month, not \"%s\"", strlen(p) > 200 ? "(a long string)" : p),
					 errhint("Periods are UTC calendar days, ISO weeks (from Monday) or months.")));
	}
	else if (PG_NARGS() > 7)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("period must be day, week or month, not NULL"),
				 errhint("Periods are UTC calendar days, ISO weeks (from Monday) or months.")));
	/* the range plus the window must stay a valid timestamp */
	if (!IS_VALID_TIMESTAMP(PG_GETARG_TIMESTAMPTZ(2) + window))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("to_ts plus window must be a valid timestamp"),
				 errhint("Use an earlier to_ts or a shorter window.")));
	PG_RETURN_VOID();
}

/* does the event (name, path) match name i of the state? */
static inline bool
Matches(VisitState *st, int i, const char *ev, int evlen, const char *path, int pathlen, bool is_view)
{
	int			len = st->lens[i];

	if (ev && evlen == len && memcmp(ev, st->names[i], len) == 0)
		return true;
	return is_view && path && pathlen == len && memcmp(path, st->names[i], len) == 0;
}

/*
 * The step and exclusion names of a query, parsed once and shared by the
 * states of all its groups (fn_extra, in fn_mcxt); the raw argument bytes
 * are the key.
 */
typedef struct NamesCache
{
	bytea	   *steps_raw;
	bytea	   *excl_raw;		/* NULL when exclusions is NULL */
	int			nsteps;
	int			nexcl;
	char	  **names;
	int		   *lens;
} NamesCache;

static bool
SameRaw(bytea *cached, FunctionCallInfo fcinfo, int argno)
{
	struct varlena *v;

	if (PG_ARGISNULL(argno))
		return cached == NULL;
	if (cached == NULL)
		return false;
	v = (struct varlena *) PG_DETOAST_DATUM_PACKED(PG_GETARG_DATUM(argno));
	return VARSIZE_ANY(v) == VARSIZE_ANY(cached) && memcmp(v, cached, VARSIZE_ANY(v)) == 0;
}

static NamesCache *
GetNames(FunctionCallInfo fcinfo)
{
	NamesCache *c = (NamesCache *) fcinfo->flinfo->fn_extra;
	Datum	   *steps,
			   *excl;
	int			nsteps,
				nexcl;
	MemoryContext old;

	if (c != NULL && SameRaw(c->steps_raw, fcinfo, 3) && SameRaw(c->excl_raw, fcinfo, 4))
		return c;
	NamesArg(fcinfo, 3, "steps", 1, FUNNEL_MAX_STEPS, &steps, &nsteps);
	NamesArg(fcinfo, 4, "exclusions", 0, MAX_EXCLUSIONS, &excl, &nexcl);
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	c = palloc0(sizeof(NamesCache));
	c->steps_raw = (bytea *) PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(3));
	c->excl_raw = PG_ARGISNULL(4) ? NULL : (bytea *) PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(4));
	c->nsteps = nsteps;
	c->nexcl = nexcl;
	c->names = palloc(sizeof(char *) * (nsteps + nexcl));
	c->lens = palloc(sizeof(int) * (nsteps + nexcl));
	for (int i = 0; i < nsteps + nexcl; i++)
	{
		Datum		d = i < nsteps ? steps[i] : excl[i - nsteps];

		c->lens[i] = VARSIZE_ANY_EXHDR(DatumGetPointer(d));
		c->names[i] = pnstrdup(VARDATA_ANY(DatumGetPointer(d)), c->lens[i]);
	}
	MemoryContextSwitchTo(old);
	fcinfo->flinfo->fn_extra = c;
	return c;
}

static VisitState *
NewState(FunctionCallInfo fcinfo, MemoryContext aggcxt)
{
	VisitState *st;
	NamesCache *names = GetNames(fcinfo);

	RangeArgs(fcinfo, 5, 6);
	st = MemoryContextAllocZero(aggcxt, sizeof(VisitState));
	st->window = FunnelWindowArg(fcinfo, 1);
	st->modes = FunnelModeArg(fcinfo, 2);
	st->nsteps = names->nsteps;
	st->nexcl = names->nexcl;
	st->mode_datum = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	st->steps_datum = PG_GETARG_DATUM(3);
	st->excl_datum = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
	st->from = PG_GETARG_TIMESTAMPTZ(5);
	st->to = PG_GETARG_TIMESTAMPTZ(6);
	/* shared, read-only: the query's names outlive its states */
	st->names = names->names;
	st->lens = names->lens;
	return st;
}

/* the step names, exclusions, window, mode and range of a later row are the first row's */
static void
CheckSameSettings(FunctionCallInfo fcinfo, VisitState *st)
{
	Datum	   *values;
	int			n;
	bool		same;

	/* the arrays are compared unless they are the very datums seen last (constants) */
	same = FunnelWindowArg(fcinfo, 1) == st->window &&
		((PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2)) == st->mode_datum ||
		 FunnelModeArg(fcinfo, 2) == st->modes) &&
		!PG_ARGISNULL(5) && !PG_ARGISNULL(6) &&
		PG_GETARG_TIMESTAMPTZ(5) == st->from && PG_GETARG_TIMESTAMPTZ(6) == st->to;
	if (same && (PG_ARGISNULL(3) || PG_GETARG_DATUM(3) != st->steps_datum ||
				 (PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4)) != st->excl_datum))
	{
		NamesArg(fcinfo, 3, "steps", 1, FUNNEL_MAX_STEPS, &values, &n);
		same = n == st->nsteps;
		for (int i = 0; i < n && same; i++)
			same = (int) VARSIZE_ANY_EXHDR(DatumGetPointer(values[i])) == st->lens[i] &&
				memcmp(VARDATA_ANY(DatumGetPointer(values[i])), st->names[i], st->lens[i]) == 0;
		NamesArg(fcinfo, 4, "exclusions", 0, MAX_EXCLUSIONS, &values, &n);
		same = same && n == st->nexcl;
		for (int i = 0; i < n && same; i++)
			same = (int) VARSIZE_ANY_EXHDR(DatumGetPointer(values[i])) == st->lens[st->nsteps + i] &&
				memcmp(VARDATA_ANY(DatumGetPointer(values[i])), st->names[st->nsteps + i],
					   st->lens[st->nsteps + i]) == 0;
		if (same)
		{
			st->steps_datum = PG_GETARG_DATUM(3);
			st->excl_datum = PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4);
		}
	}
	if (!same)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("window, mode, steps, exclusions, from_ts and to_ts must be the same for every row of a group"),
				 errhint("Pass constants.")));
}

/* the dictionary index of a step-1 event's segment (s NULL: no segment) */
int32
FunnelSegmentIndex(MemoryContext aggcxt, VisitState *st, const char *s, int len)
{
	/* newest first: a visitor's events mostly share one value */
	for (int i = st->nsegs - 1; i >= 0; i--)
	{
		if (st->segs[i] == NULL ? s == NULL :
			(s != NULL && (int) strlen(st->segs[i]) == len && memcmp(st->segs[i], s, len) == 0))
			return i;
	}
	if (st->nsegs == st->maxsegs)
	{
		int			newmax = st->maxsegs ? st->maxsegs * 2 : 4;

		st->segs = st->segs ? repalloc(st->segs, sizeof(char *) * newmax) :
			MemoryContextAlloc(aggcxt, sizeof(char *) * newmax);
		st->maxsegs = newmax;
	}
	st->segs[st->nsegs] = s ? MemoryContextStrdup(aggcxt, pnstrdup(s, len)) : NULL;
	return st->nsegs++;
}

/*
 * Add one event of the visitor (ts finite and in [from, to + window]):
 * its step and exclusion matches, the segment of a step-1 event (seg NULL:
 * none) and the account.
 */
void
FunnelVisitAdd(MemoryContext aggcxt, VisitState *st, int64 ts, const char *evs, int evlen,
			   const char *paths, int pathlen, const char *seg, int seglen,
			   bool has_account, int64 account_id)
{
	FunnelEvent e;
	bool		is_view = evs && evlen == 9 && memcmp(evs, "page_view", 9) == 0;

	e.ts = ts;
	e.mask = 0;
	e.tag = 0;
	e.flags = 0;
	for (int i = 0; i < st->nsteps; i++)
		if (Matches(st, i, evs, evlen, paths, pathlen, is_view))
			e.mask |= UINT64CONST(1) << i;
	for (int i = 0; i < st->nexcl; i++)
		if (Matches(st, st->nsteps + i, evs, evlen, paths, pathlen, is_view))
			e.flags = EVENT_EXCLUSION;
	/* step 1 starts a chain only inside the range */
	if (e.ts >= st->to)
		e.mask &= ~UINT64CONST(1);
	/* a value with a NUL byte cannot come from text; strlen() is safe */
	if (e.mask & 1)
		e.tag = FunnelSegmentIndex(aggcxt, st, seg, seglen);
	if (e.mask != 0 || e.flags != 0)
		FunnelEventsAdd(aggcxt, &st->events, &e);

	if (has_account &&
		(!st->has_account || e.ts > st->account_ts ||
		 (e.ts == st->account_ts && account_id < st->account_id)))
	{
		st->has_account = true;
		st->account_ts = e.ts;
		st->account_id = account_id;
	}
}

/*
 * transfn(state, window, mode, steps, exclusions, from_ts, to_ts, ts,
 * event_name, page_path, segment, account_id)
 */
Datum
dogdb_funnel_visit_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	VisitState *st;
	int64		ts;
	text	   *ev = NULL,
			   *path = NULL,
			   *seg;
	const char *evs = NULL,
			   *paths = NULL;
	int			evlen = 0,
				pathlen = 0;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_funnel_visit_transfn called in non-aggregate context");
	if (PG_ARGISNULL(0))
		st = NewState(fcinfo, aggcxt);
	else
	{
		st = (VisitState *) PG_GETARG_POINTER(0);
		CheckSameSettings(fcinfo, st);
	}
	if (PG_ARGISNULL(7))
		PG_RETURN_POINTER(st);
	ts = PG_GETARG_TIMESTAMPTZ(7);
	FunnelCheckFinite(ts, "ts");
	if (ts < st->from || ts - st->window > st->to)
		PG_RETURN_POINTER(st);

	if (!PG_ARGISNULL(8))
	{
		ev = PG_GETARG_TEXT_PP(8);
		evs = VARDATA_ANY(ev);
		evlen = VARSIZE_ANY_EXHDR(ev);
	}
	if (!PG_ARGISNULL(9))
	{
		path = PG_GETARG_TEXT_PP(9);
		paths = VARDATA_ANY(path);
		pathlen = VARSIZE_ANY_EXHDR(path);
	}
	seg = PG_ARGISNULL(10) ? NULL : PG_GETARG_TEXT_PP(10);
	FunnelVisitAdd(aggcxt, st, ts, evs, evlen, paths, pathlen,
				   seg ? VARDATA_ANY(seg) : NULL, seg ? VARSIZE_ANY_EXHDR(seg) : 0,
				   !PG_ARGISNULL(11), PG_ARGISNULL(11) ? 0 : PG_GETARG_INT64(11));
	PG_RETURN_POINTER(st);
}


static int
CompareSegs(const void *a, const void *b)
{
	const char *x = *(const char *const *) a;
	const char *y = *(const char *const *) b;

	if (x == NULL || y == NULL)
		return (x == NULL) - (y == NULL);
	return strcmp(x, y);
}

/*
 * Evaluate a visitor's events with run (reset first): the level, the best
 * chain's times (valid until the run is reset), the index in st->segs of
 * its segment (-1: none), whether an exclusion falls inside the chain and
 * the last entry.  Sorts st's events in place.
 */
void
FunnelVisitEval(VisitState *st, FunnelRun *run, FunnelVisitResult *r)
{
	r->level = 0;
	r->times = NULL;
	r->seg = -1;
	r->excluded = false;
	r->has_entry = false;
	r->last_entry = 0;

	/* segment tags renumbered by value order (NULL last) */
	if (st->nsegs > 1)
	{
		char	  **sorted = palloc(sizeof(char *) * st->nsegs);
		int32	   *rank = palloc(sizeof(int32) * st->nsegs);

		memcpy(sorted, st->segs, sizeof(char *) * st->nsegs);
		qsort(sorted, st->nsegs, sizeof(char *), CompareSegs);
		for (int i = 0; i < st->nsegs; i++)
			for (int j = 0; j < st->nsegs; j++)
				if (sorted[j] == st->segs[i])
					rank[i] = j;
		for (int64 i = 0; i < st->events.n; i++)
			if (st->events.ev[i].mask & 1)
				st->events.ev[i].tag = rank[st->events.ev[i].tag];
		memcpy(st->segs, sorted, sizeof(char *) * st->nsegs);
		pfree(sorted);
		pfree(rank);
	}

	funnel_sort_events(st->events.ev, st->events.n);
	funnel_run_reset(run);
	for (int64 i = 0; i < st->events.n; i++)
	{
		FunnelEvent *e = &st->events.ev[i];

		if ((i & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		funnel_run_feed(run, e->ts, e->mask, e->tag);
		if (e->mask & 1)
		{
			r->last_entry = e->ts;
			r->has_entry = true;
		}
	}
	r->level = funnel_run_level(run);
	if (r->level > 0)
	{
		const int64_t *times = funnel_run_times(run);

		r->times = times;
		for (int64 i = 0; i < st->events.n && !r->excluded; i++)
			r->excluded = (st->events.ev[i].flags & EVENT_EXCLUSION) &&
				st->events.ev[i].ts >= times[0] && st->events.ev[i].ts <= times[r->level - 1];
		if (st->nsegs > 0 && st->segs[funnel_run_tag(run)] != NULL)
			r->seg = funnel_run_tag(run);
	}
}

Datum
dogdb_funnel_visit_finalfn(PG_FUNCTION_ARGS)
{
	VisitState *st = PG_ARGISNULL(0) ? NULL : (VisitState *) PG_GETARG_POINTER(0);
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};
	FunnelRun  *run;
	int			level = 0;
	int64		last_entry = 0;
	bool		has_entry = false;
	bool		excluded = false;
	const int64_t *times = NULL;
	Datum	   *d;
	MemoryContext old;
	FunnelVisitResult r;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (st == NULL)
		PG_RETURN_NULL();

	run = FunnelCachedRun(fcinfo, st->nsteps, st->window, st->modes, true);
	old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
	FunnelVisitEval(st, run, &r);
	MemoryContextSwitchTo(old);
	level = r.level;
	times = r.times;
	excluded = r.excluded;
	last_entry = r.last_entry;
	has_entry = r.has_entry;

	values[0] = Int32GetDatum(level);
	d = palloc(sizeof(Datum) * (level + 1));
	for (int i = 0; i < level; i++)
		d[i] = TimestampTzGetDatum(times[i]);
	values[1] = PointerGetDatum(construct_array(d, level, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (r.seg >= 0)
		values[2] = CStringGetTextDatum(st->segs[r.seg]);
	else
		nulls[2] = true;
	values[3] = BoolGetDatum(excluded);
	values[4] = TimestampTzGetDatum(last_entry);
	nulls[4] = !has_entry;
	values[5] = Int64GetDatum(st->account_id);
	nulls[5] = !st->has_account;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
