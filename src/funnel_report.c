/*-------------------------------------------------------------------------
 *
 * funnel_report.c
 *	  dogdb_internal.funnel_tally(steps, from_ts, to_ts, window, mode,
 *	  exclusions, breakdown): the counts of dogdb_funnel_report in one pass
 *	  of C over the web events, for the breakdowns taken from the events
 *	  (none, client, campaign, properties.<key>).
 *
 * Design note: one query reads the events in [from_ts, to_ts + window] in
 * (anonymous_id, occurred_at) order, which the visitor/time index gives
 * without a sort (an index-only scan when no breakdown column is read),
 * straight into a DestReceiver: no tuple is copied, no per-visitor row is
 * built.  A visitor's events are gathered in a VisitState (funnel_visit.c,
 * the very code of the dogdb_funnel_visit aggregate) in a memory context
 * reset per visitor, so memory is that of one visitor plus the tallies.
 * At each change of visitor the state is evaluated (FunnelVisitEval) and
 * added to its segment's tally: users per step, visitors in progress
 * (window open at the newest event of the table), closed drop-offs,
 * excluded visitors, and the seconds between consecutive steps of the
 * best chain, whose median and 90th percentile are computed exactly as
 * percentile_cont does.  The SQL of dogdb_funnel_report turns the tallies
 * into its rows; breakdowns by account (company_size, tier) keep the SQL
 * route over dogdb_funnel_visit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "common.h"
#include "funnel.h"

PG_FUNCTION_INFO_V1(dogdb_funnel_tally);

/* one segment's counts; arrays indexed by step 1..nsteps */
typedef struct Tally
{
	char	   *key;			/* hash key: the segment, NULL for none */
	int64	   *reached;
	int64	   *open_here;
	int64	   *dropped;
	int64		excluded;
	double	  **gaps;			/* seconds from the previous step */
	int64	   *ngaps;
	int64	   *maxgaps;
	int64		order;			/* first seen */
} Tally;

typedef struct TallyScan
{
	DestReceiver pub;
	VisitState *st;				/* the current visitor (visitcxt) */
	VisitState	proto;			/* the settings */
	MemoryContext visitcxt;
	MemoryContext tallycxt;
	FunnelRun  *run;
	char	   *visitor;		/* the current visitor id (visitcxt) */
	int			visitor_len;
	bool		have_visitor;
	bool		by_segment;		/* breakdown not NULL */
	int64		horizon;		/* newest event of the table */
	HTAB	   *tallies;
	int64		ntallies;
	int64		rows;
} TallyScan;

/* hash and compare segments by value (NULL is a key too) */
static uint32
SegHash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return s == NULL ? 0x5eed : hash_bytes((const unsigned char *) s, strlen(s));
}

static int
SegMatch(const void *key1, const void *key2, Size keysize)
{
	const char *a = *(char *const *) key1;
	const char *b = *(char *const *) key2;

	if (a == NULL || b == NULL)
		return a == b ? 0 : 1;
	return strcmp(a, b);
}

static Tally *
GetTally(TallyScan *ts, const char *seg)
{
	bool		found;
	Tally	   *t = hash_search(ts->tallies, &seg, HASH_ENTER, &found);
	int			n = ts->proto.nsteps + 2;

	if (!found)
	{
		MemoryContext old = MemoryContextSwitchTo(ts->tallycxt);

		t->key = seg ? pstrdup(seg) : NULL;
		t->reached = palloc0(sizeof(int64) * n);
		t->open_here = palloc0(sizeof(int64) * n);
		t->dropped = palloc0(sizeof(int64) * n);
		t->excluded = 0;
		t->gaps = palloc0(sizeof(double *) * n);
		t->ngaps = palloc0(sizeof(int64) * n);
		t->maxgaps = palloc0(sizeof(int64) * n);
		t->order = ts->ntallies++;
		MemoryContextSwitchTo(old);
	}
	return t;
}

static void
AddGap(TallyScan *ts, Tally *t, int k, double secs)
{
	if (t->ngaps[k] == t->maxgaps[k])
	{
		int64		newmax = t->maxgaps[k] ? t->maxgaps[k] * 2 : 64;

		if ((Size) newmax * sizeof(double) > MaxAllocHugeSize)
			elog(ERROR, "too many funnel visitors");
		t->gaps[k] = t->gaps[k] ?
			repalloc_huge(t->gaps[k], sizeof(double) * newmax) :
			MemoryContextAllocHuge(ts->tallycxt, sizeof(double) * newmax);
		t->maxgaps[k] = newmax;
	}
	t->gaps[k][t->ngaps[k]++] = secs;
}

/* evaluate the current visitor and add them to their segment's tally */
static void
FinishVisitor(TallyScan *ts)
{
	FunnelVisitResult r;
	VisitState *st = ts->st;
	Tally	   *t;
	bool		still_open;
	int			n = st->nsteps;

	if (st->events.n > 0)
	{
		/* the run keeps what it grows to across visitors */
		MemoryContext old = MemoryContextSwitchTo(ts->tallycxt);

		FunnelVisitEval(st, ts->run, &r);
		MemoryContextSwitchTo(old);
		if (r.level >= 1)
		{
			const char *seg = NULL;

			if (ts->by_segment)
				seg = r.seg >= 0 ? st->segs[r.seg] : "(none)";
			t = GetTally(ts, seg);
			still_open = r.level < n && r.last_entry + st->window > ts->horizon;
			if (r.excluded)
				t->excluded++;
			else
			{
				for (int k = 1; k <= r.level; k++)
					t->reached[k]++;
				if (still_open)
					t->open_here[r.level]++;
				else if (r.level < n)
					t->dropped[r.level + 1]++;
				for (int k = 2; k <= r.level; k++)
					AddGap(ts, t, k, (double) (r.times[k - 1] - r.times[k - 2]) / 1000000.0);
			}
		}
	}
	MemoryContextReset(ts->visitcxt);
	ts->st = NULL;
	ts->have_visitor = false;
}

static void
StartVisitor(TallyScan *ts, const char *id, int len)
{
	MemoryContext old = MemoryContextSwitchTo(ts->visitcxt);

	ts->st = palloc(sizeof(VisitState));
	memcpy(ts->st, &ts->proto, sizeof(VisitState));
	ts->visitor = palloc(len + 1);
	memcpy(ts->visitor, id, len);
	ts->visitor_len = len;
	ts->have_visitor = true;
	MemoryContextSwitchTo(old);
}

/* one event: (anonymous_id, occurred_at, event_name, page_path, segment) */
static bool
TallyReceive(TupleTableSlot *slot, DestReceiver *self)
{
	TallyScan  *ts = (TallyScan *) self;
	text	   *id;
	text	   *ev = NULL,
			   *path = NULL,
			   *seg = NULL;
	int64		t;
	MemoryContext old;

	if ((++ts->rows & 0x3FFF) == 0)
		CHECK_FOR_INTERRUPTS();
	slot_getallattrs(slot);
	if (slot->tts_isnull[0] || slot->tts_isnull[1])
		return true;
	id = DatumGetTextPP(slot->tts_values[0]);
	if (ts->have_visitor &&
		((int) VARSIZE_ANY_EXHDR(id) != ts->visitor_len ||
		 memcmp(VARDATA_ANY(id), ts->visitor, ts->visitor_len) != 0))
		FinishVisitor(ts);
	if (!ts->have_visitor)
		StartVisitor(ts, VARDATA_ANY(id), VARSIZE_ANY_EXHDR(id));

	t = DatumGetTimestampTz(slot->tts_values[1]);
	FunnelCheckFinite(t, "ts");
	if (t < ts->proto.from || t - ts->proto.window > ts->proto.to)
		return true;
	if (!slot->tts_isnull[2])
		ev = DatumGetTextPP(slot->tts_values[2]);
	if (!slot->tts_isnull[3])
		path = DatumGetTextPP(slot->tts_values[3]);
	if (!slot->tts_isnull[4])
		seg = DatumGetTextPP(slot->tts_values[4]);
	/* what adding allocates lives as long as the visitor */
	old = MemoryContextSwitchTo(ts->visitcxt);
	FunnelVisitAdd(ts->visitcxt, ts->st, t,
				   ev ? VARDATA_ANY(ev) : NULL, ev ? VARSIZE_ANY_EXHDR(ev) : 0,
				   path ? VARDATA_ANY(path) : NULL, path ? VARSIZE_ANY_EXHDR(path) : 0,
				   seg ? VARDATA_ANY(seg) : NULL, seg ? VARSIZE_ANY_EXHDR(seg) : 0,
				   false, 0);
	MemoryContextSwitchTo(old);
	return true;
}

static void
TallyStartup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	if (typeinfo->natts != 5)
		elog(ERROR, "unexpected funnel scan columns");
}

static void
TallyShutdown(DestReceiver *self)
{
}

static void
TallyDestroy(DestReceiver *self)
{
}

static int
CompareDouble(const void *a, const void *b)
{
	double		x = *(const double *) a;
	double		y = *(const double *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* percentile_cont(p) of n sorted values, as PostgreSQL computes it */
static double
PercentileCont(const double *v, int64 n, double p)
{
	double		pos = p * (n - 1);
	int64		first = (int64) floor(pos);
	int64		second = (int64) ceil(pos);

	if (second > first)
		return v[first] + (v[second] - v[first]) * (pos - first);
	return v[first];
}

static int
CompareTallyOrder(const void *a, const void *b)
{
	const Tally *x = *(Tally *const *) a;
	const Tally *y = *(Tally *const *) b;

	return x->order < y->order ? -1 : x->order > y->order ? 1 : 0;
}

/* a text[] argument's elements as names (validated by the caller) */
static int
ArgNames(FunctionCallInfo fcinfo, int argno, char **names, int *lens)
{
	Datum	   *values;
	bool	   *nulls;
	int			n;

	if (PG_ARGISNULL(argno))
		return 0;
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(argno), TEXTOID, -1, false, TYPALIGN_INT, &values, &nulls, &n);
	for (int i = 0; i < n; i++)
	{
		lens[i] = VARSIZE_ANY_EXHDR(DatumGetPointer(values[i]));
		names[i] = pnstrdup(VARDATA_ANY(DatumGetPointer(values[i])), lens[i]);
	}
	return n;
}

/*
 * funnel_tally(steps, from_ts, to_ts, window, mode, exclusions, breakdown)
 * -> (segment, step_no, reached, open_here, dropped, median_s, p90_s):
 * per segment seen, steps 1..N, then step 0 with the excluded visitors
 * (reached) when exclusions are given and some were excluded.
 */
Datum
dogdb_funnel_tally(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TallyScan	ts;
	HASHCTL		ctl;
	char	   *breakdown = NULL;
	const char *segexpr;
	char	   *query;
	Oid			argtypes[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, TEXTOID};
	Datum		args[3];
	int			nargs = 2;
	int			nestlevel;
	int			nsteps;
	Tally	  **order;
	HASH_SEQ_STATUS seq;
	Tally	   *t;
	int64		i;

	/* every argument, as the report checks them */
	dogdb_funnel_check_arguments(fcinfo);
	if (!PG_ARGISNULL(6))
		breakdown = text_to_cstring(PG_GETARG_TEXT_PP(6));
	if (breakdown && (strcmp(breakdown, "company_size") == 0 || strcmp(breakdown, "tier") == 0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("breakdown %s is taken from accounts, not from the events", breakdown),
				 errhint("dogdb_funnel_report computes it through dogdb_funnel_visit.")));

	memset(&ts, 0, sizeof(ts));
	ts.pub.receiveSlot = TallyReceive;
	ts.pub.rStartup = TallyStartup;
	ts.pub.rShutdown = TallyShutdown;
	ts.pub.rDestroy = TallyDestroy;
	ts.pub.mydest = DestNone;
	ts.tallycxt = AllocSetContextCreate(CurrentMemoryContext, "funnel tallies", ALLOCSET_DEFAULT_SIZES);
	ts.visitcxt = AllocSetContextCreate(CurrentMemoryContext, "funnel visitor", ALLOCSET_DEFAULT_SIZES);
	ts.by_segment = breakdown != NULL;

	/* the settings every visitor's state starts from (names in tallycxt) */
	{
		MemoryContext old = MemoryContextSwitchTo(ts.tallycxt);

		ts.proto.names = palloc(sizeof(char *) * (FUNNEL_MAX_STEPS + MAX_EXCLUSIONS));
		ts.proto.lens = palloc(sizeof(int) * (FUNNEL_MAX_STEPS + MAX_EXCLUSIONS));
		nsteps = ArgNames(fcinfo, 0, ts.proto.names, ts.proto.lens);
		ts.proto.nsteps = nsteps;
		ts.proto.nexcl = ArgNames(fcinfo, 5, ts.proto.names + nsteps, ts.proto.lens + nsteps);
		ts.proto.window = FunnelWindowArg(fcinfo, 3);
		ts.proto.modes = FunnelModeArg(fcinfo, 4);
		ts.proto.from = PG_GETARG_TIMESTAMPTZ(1);
		ts.proto.to = PG_GETARG_TIMESTAMPTZ(2);
		ts.run = funnel_run_create(nsteps, ts.proto.window, ts.proto.modes, true, FunnelPalloc, FunnelPfree);
		MemoryContextSwitchTo(old);
	}

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(Tally);
	ctl.hash = SegHash;
	ctl.match = SegMatch;
	ctl.hcxt = ts.tallycxt;
	ts.tallies = hash_create("funnel segments", 64, &ctl,
							 HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);

	if (breakdown == NULL)
		segexpr = "NULL::pg_catalog.text";
	else if (strcmp(breakdown, "client") == 0)
		segexpr = "e.client";
	else if (strcmp(breakdown, "campaign") == 0)
		segexpr = "e.campaign";
	else
	{
		/* properties.<key>, checked above */
		segexpr = "e.properties OPERATOR(pg_catalog.->>) $3";
		args[2] = CStringGetTextDatum(breakdown + strlen("properties."));
		nargs = 3;
	}
	args[0] = PG_GETARG_DATUM(1);
	args[1] = TimestampTzGetDatum(PG_GETARG_TIMESTAMPTZ(2) + ts.proto.window);
	/* in visitor order: the visitor/time index, no sort */
	query = psprintf("SELECT e.anonymous_id, e.occurred_at, e.event_name, e.page_path, %s"
					 "  FROM dogdb.web_events e"
					 " WHERE e.occurred_at OPERATOR(pg_catalog.>=) $1 AND e.occurred_at OPERATOR(pg_catalog.<=) $2"
					 " ORDER BY e.anonymous_id, e.occurred_at", segexpr);

	nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();
	{
		SPIExecuteOptions opts;
		ParamListInfo params = makeParamList(nargs);
		int			rc;
		bool		isnull;

		/* the newest event of the table: windows open after it are in progress */
		DogdbSpiExecute("SELECT max(occurred_at) FROM dogdb.web_events", true, 1, SPI_OK_SELECT);
		ts.horizon = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (isnull)
			ts.horizon = DT_NOBEGIN;

		for (int a = 0; a < nargs; a++)
		{
			params->params[a].value = args[a];
			params->params[a].isnull = false;
			params->params[a].pflags = PARAM_FLAG_CONST;
			params->params[a].ptype = argtypes[a];
		}
		memset(&opts, 0, sizeof(opts));
		opts.params = params;
		opts.read_only = true;
		opts.dest = (DestReceiver *) &ts;
		rc = SPI_execute_extended(query, &opts);
		/* SPI says "utility" for a SELECT whose rows went to a receiver of ours */
		DogdbSpiCheck(rc == SPI_OK_UTILITY ? SPI_OK_SELECT : rc, SPI_OK_SELECT, query);
		if (ts.have_visitor)
			FinishVisitor(&ts);
	}
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);

	/* the rows, segments in the order first seen (the report sorts them) */
	SetSingleFuncCall(fcinfo, 0);
	order = palloc(sizeof(Tally *) * Max(ts.ntallies, 1));
	i = 0;
	hash_seq_init(&seq, ts.tallies);
	while ((t = hash_seq_search(&seq)) != NULL)
		order[i++] = t;
	qsort(order, ts.ntallies, sizeof(Tally *), CompareTallyOrder);
	for (i = 0; i < ts.ntallies; i++)
	{
		Datum		values[7];
		bool		nulls[7] = {false, false, false, false, false, false, false};

		t = order[i];
		values[0] = t->key ? CStringGetTextDatum(t->key) : (Datum) 0;
		nulls[0] = t->key == NULL;
		for (int k = 1; k <= nsteps; k++)
		{
			values[1] = Int32GetDatum(k);
			values[2] = Int64GetDatum(t->reached[k]);
			values[3] = Int64GetDatum(t->open_here[k]);
			values[4] = Int64GetDatum(t->dropped[k]);
			nulls[4] = k == 1;
			nulls[5] = nulls[6] = t->ngaps[k] == 0;
			if (t->ngaps[k] > 0)
			{
				qsort(t->gaps[k], t->ngaps[k], sizeof(double), CompareDouble);
				values[5] = Float8GetDatum(PercentileCont(t->gaps[k], t->ngaps[k], 0.5));
				values[6] = Float8GetDatum(PercentileCont(t->gaps[k], t->ngaps[k], 0.9));
			}
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		if (ts.proto.nexcl > 0 && t->excluded > 0)
		{
			bool		xnulls[7] = {nulls[0], false, false, true, true, true, true};

			values[1] = Int32GetDatum(0);
			values[2] = Int64GetDatum(t->excluded);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, xnulls);
		}
	}
	MemoryContextDelete(ts.visitcxt);
	MemoryContextDelete(ts.tallycxt);
	PG_RETURN_NULL();
}
