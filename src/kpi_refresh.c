/*-------------------------------------------------------------------------
 *
 * kpi_refresh.c
 *	  dogdb_internal.kpi_update_facts(), the KPI engine's entry point (design note in
 *	  kpi.h): a list of named steps over the scans (kpi_scan.c), the matrix
 *	  (kpi_matrix.c) and the facts (kpi_facts.c).  Also dogdb.check_month(),
 *	  the one month validator for SQL callers.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "portability/instr_time.h"
#include "storage/lmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "citus.h"
#include "common.h"
#include "kpi.h"

PG_FUNCTION_INFO_V1(dogdb_kpi_update_facts);
PG_FUNCTION_INFO_V1(dogdb_check_month);

/*
 * DEBUG1: how long the steps of a refresh took (SET client_min_messages =
 * debug1), and the CPU time of this process in them
 */
static instr_time step_start;
static double step_cpu_start;

static double
ProcessCpuMs(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) != 0)
		return 0;
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1000000.0;
}

static void
StepStart(void)
{
	if (!message_level_is_interesting(DEBUG1))
		return;
	INSTR_TIME_SET_CURRENT(step_start);
	step_cpu_start = ProcessCpuMs();
}

static void
StepDone(const char *step)
{
	instr_time	now;

	if (message_level_is_interesting(DEBUG1))
	{
		INSTR_TIME_SET_CURRENT(now);
		INSTR_TIME_SUBTRACT(now, step_start);
		ereport(DEBUG1, (errmsg_internal("KPI refresh: %s took %.1f ms (%.1f ms CPU here)", step,
										 INSTR_TIME_GET_MILLISEC(now), ProcessCpuMs() - step_cpu_start)));
	}
	StepStart();
}

/*
 * The engine's statements, prepared once per backend (SPI_keepplan; the
 * plan cache replans them when the tables change): a refresh that costs
 * the change must not spend it on parsing and planning.  Keyed by the
 * address of the query, always a string literal.
 */
#define KPI_MAX_PLANS 48
static struct
{
	const char *query;
	SPIPlanPtr	plan;
}			kpi_plans[KPI_MAX_PLANS];
static int	kpi_nplans;

static SPIPlanPtr
KpiPlan(const char *query, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan;

	for (int i = 0; i < kpi_nplans; i++)
		if (kpi_plans[i].query == query)
			return kpi_plans[i].plan;
	plan = DogdbSpiPrepare(query, nargs, argtypes);
	if (kpi_nplans == KPI_MAX_PLANS)
		elog(ERROR, "too many KPI engine statements");
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	kpi_plans[kpi_nplans].query = query;
	kpi_plans[kpi_nplans].plan = plan;
	kpi_nplans++;
	return plan;
}

/* run a statement under the refresh's snapshot; returns SPI_processed */
uint64
KpiQuery(KpiState *ks, const char *query, int nargs, Oid *argtypes, Datum *args,
		 bool read_only, int expected)
{
	SPIPlanPtr	plan = KpiPlan(query, nargs, argtypes);

	DogdbSpiCheck(SPI_execute_snapshot(plan, args, NULL, ks->snapshot, InvalidSnapshot, read_only, false, 0),
				  expected, query);
	return SPI_processed;
}

/* run a statement that writes (the current snapshot); returns SPI_processed */
uint64
KpiExecute(const char *query, int nargs, Oid *argtypes, Datum *args, const char *nulls, int expected)
{
	DogdbSpiCheck(SPI_execute_plan(KpiPlan(query, nargs, argtypes), args, nulls, false, 0), expected, query);
	return SPI_processed;
}

static int32
ClampMonth(int64 month)
{
	return (int32) Max(KPI_MIN_MONTH, Min(month, KPI_MAX_MONTH));
}

/*
 * step: accounts, plans, subscriptions (a full rebuild loads them while a
 * parallel worker counts sessions, KpiCountSessions); every churn month
 * unknown
 */
static void
LoadSources(KpiState *ks, bool full)
{
	KpiLoadAccounts(ks);
	ks->plans = LoadBillingPlans(CurrentMemoryContext, false, &ks->nplans);
	for (int p = 0; p < ks->nplans; p++)
		if (ks->plans[p].plan.plan_id == KPI_NO_PLAN)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("plan_id %d is reserved by the KPI engine", KPI_NO_PLAN),
					 errdetail("The KPI engine stores an account without a plan as plan_id %d.", KPI_NO_PLAN),
					 errhint("Give the plan another plan_id.")));
	if (!full)
		KpiLoadSubscriptions(ks);
	ks->first_month = ks->current_month;
	for (int a = 0; a < ks->naccounts; a++)
		ks->first_month = Min(ks->first_month, ks->accounts[a].first_month);
	ks->churn = palloc(sizeof(int32) * Max(ks->naccounts, 1));
	for (int a = 0; a < ks->naccounts; a++)
		ks->churn[a] = CHURN_UNKNOWN;
}

/* mark months [from, to] (clamped to the horizon) for recomputing */
static void
MarkRevenueDirty(KpiState *ks, int64 from, int64 to)
{
	for (int64 m = Max(from, KPI_MIN_MONTH); m <= Min(to, KPI_MAX_MONTH); m++)
		KpiMonthOf(ks, (int32) m)->revenue_dirty = true;
}

/* step (full rebuild): count every session; returns m0, the first month whose churn may change */
static int32
RebuildMatrix(KpiState *ks)
{
	KpiCountSessions(ks);
	for (int32 m = KPI_MIN_MONTH; m <= KPI_MAX_MONTH; m++)
		KpiMonthOf(ks, m)->activity_changed = KpiMonthOf(ks, m)->counts != NULL;
	MarkRevenueDirty(ks, KPI_MIN_MONTH, KPI_MAX_MONTH);
	return KPI_MIN_MONTH;
}

/*
 * step (incremental): mark what the changes reach, read back those months'
 * counts and add the deltas; returns m0, the first month whose churn may
 * change.  [old_first, old_last] are the months the last refresh covered.
 */
static int32
UpdateMatrix(KpiState *ks, KpiChanges *ch, int32 old_first, int32 old_last)
{
	int32		m0 = KPI_MAX_MONTH + 1;
	bool		account_gone = false;
	uint64		outside = 0;

	/* revenue and tiers: the marked months, and those the covered range gains or loses */
	for (int r = 0; r < ch->nranges; r++)
		MarkRevenueDirty(ks, ch->ranges[2 * r], ch->ranges[2 * r + 1]);
	MarkRevenueDirty(ks, Min(old_first, ks->first_month), Max(old_first, ks->first_month) - 1);
	MarkRevenueDirty(ks, Min(old_last, ks->current_month) + 1, Max(old_last, ks->current_month));
	if (ks->current_month > old_last)
		m0 = old_last + 1;

	/* churn: accounts changed, and stored churn months that cannot be right */
	for (int i = 0; i < ch->naccounts; i++)
	{
		int32		a = KpiAccountIndex(ks, ch->accounts[i]);

		if (a >= 0)
			ks->churn[a] = CHURN_UNKNOWN;
		else
			account_gone = true;
	}
	for (int a = 0; a < ks->naccounts; a++)
	{
		int32		c = ks->churn[a];

		if (c != CHURN_UNKNOWN && c != CHURN_NONE &&
			(c < ks->accounts[a].first_month || c > old_last))
			ks->churn[a] = CHURN_UNKNOWN;
		if (ks->churn[a] == CHURN_UNKNOWN)
			m0 = Min(m0, ks->accounts[a].first_month);
	}

	/* counts: the months from m0 on and the marked ones, then the deltas */
	for (int i = 0; i < ch->ndeltas; i++)
	{
		if (KpiInHorizon(ch->delta_month[i]))
			m0 = Min(m0, ch->delta_month[i]);
		else
			outside++;
	}
	for (int32 m = KPI_MIN_MONTH; m <= KPI_MAX_MONTH; m++)
	{
		KpiMonth   *km = KpiMonthOf(ks, m);

		km->facts_dirty = (m >= m0 || km->revenue_dirty);
		/* the stored tiers of a month whose revenue changes may change */
		km->activity_changed = km->revenue_dirty &&
			(km->stored || (m >= ks->first_month && m <= ks->current_month));
	}
	if (account_gone || ch->naccounts > 0)
	{
		/*
		 * read every month back, so that the gone accounts' counts are
		 * dropped, and a changed account's sessions in months before its
		 * first month (not marked) move to its new segment
		 */
		for (int32 m = KPI_MIN_MONTH; m <= KPI_MAX_MONTH; m++)
			KpiMonthOf(ks, m)->facts_dirty |= KpiMonthOf(ks, m)->stored;
	}
	KpiLoadStoredMonths(ks);
	for (int i = 0; i < ch->ndeltas; i++)
	{
		int32		a = KpiAccountIndex(ks, ch->delta_account[i]);

		if (a < 0 || !KpiInHorizon(ch->delta_month[i]))
			continue;
		KpiAddCount(ks, a, ch->delta_month[i], ch->delta_count[i]);
		KpiMonthOf(ks, ch->delta_month[i])->activity_changed = true;
	}
	if (outside > 0)
		ereport(WARNING,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%llu session changes outside the KPI horizon were ignored", (unsigned long long) outside),
				 errdetail("KPIs cover the UTC months from 2000-01 through 2199-12."),
				 errhint("Restore the constraint sessions_created_at_kpi_horizon on dogdb.sessions.")));
	return m0;
}

/* step: the months the facts cover; every month of a full rebuild is dirty */
static void
SetCells(KpiState *ks, bool full, int32 old_last)
{
	Size		ncells;

	ks->cell0 = ks->first_month;
	ks->cell1 = Max(ks->current_month, old_last);
	for (int32 m = KPI_MIN_MONTH; m <= KPI_MAX_MONTH; m++)
		if (KpiMonthHasSessions(ks, m))
		{
			ks->cell0 = Min(ks->cell0, m);
			ks->cell1 = Max(ks->cell1, m);
		}
	if (full)
		for (int32 m = ks->cell0; m <= ks->cell1; m++)
			KpiMonthOf(ks, m)->facts_dirty = true;
	ncells = (Size) (ks->cell1 - ks->cell0 + 1) * KPI_NSIZES * (ks->nplans + 1);
	ks->cells = palloc_extended(sizeof(KpiCell) * ncells, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	ks->old_cells = palloc_extended(sizeof(KpiCell) * ncells, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
}

/*
 * Bring dogdb_internal.kpi_facts up to date (incrementally unless full);
 * false if the source tables are Citus tables (the caller takes the Citus
 * route, citus.c).  With nothing queued it returns before any SPI.
 */
bool
KpiUpdateFacts(bool full, bool publish, KpiUpdateResult *res)
{
	int			nestlevel;
	KpiState   *ks;
	KpiChanges	ch = {0};
	bool		done = false;
	int32		old_first = 0;
	int32		old_last = 0;
	int32		m0;

	memset(res, 0, sizeof(*res));
	/* the engine scans local heaps: on Citus the facts come from one query (citus.c) */
	nestlevel = DogdbPinSearchPath();
	if (DogdbAnyDistributed((const char *const[]) {"sessions", "accounts", "subscriptions", "plan_prices", NULL}))
	{
		DogdbRestoreSearchPath(nestlevel);
		return false;
	}
	ks = palloc0(sizeof(KpiState));
	ch.full = full;
	KpiInitMonthDays();
	ks->cxt = CurrentMemoryContext;
	ks->pubcxt = publish ? ks->cxt : NULL;

	/*
	 * One refresh at a time; readers of the views are not blocked.  The lock
	 * is on the extension object, not on a table of it: any self-conflicting
	 * table lock conflicts with autovacuum, which a refresh would then wait
	 * for until the deadlock check cancels it.
	 */
	LockDatabaseObject(ExtensionRelationId, get_extension_oid("dogdb_analytics", false), 0, ExclusiveLock);
	ks->snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ks->current_month = ClampMonth(cal_month_of_timestamp(GetCurrentTransactionStartTimestamp()));
	StepStart();

	/* nothing queued, the same month: done without SPI or a plan */
	if (!full && KpiNothingQueued(ks))
	{
		StepDone("nothing to do");
		UnregisterSnapshot(ks->snapshot);
		DogdbRestoreSearchPath(nestlevel);
		pfree(ks);
		return true;
	}

	/* the engine's statements are short or one-off: compiling them costs more */
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	ks->tmpcxt = AllocSetContextCreate(CurrentMemoryContext, "KPI refresh per month", ALLOCSET_DEFAULT_SIZES);
	DogdbSpiConnect();
	PushActiveSnapshot(ks->snapshot);

	KpiConsumeChanges(ks, &ch);
	StepDone("consuming the changes");
	if (!ch.full && ch.nranges == 0 && ch.naccounts == 0 &&
		KpiLoadCoverage(ks, &old_first, &old_last) && old_last == ks->current_month)
	{
		/* the same month: nothing to do, or session deltas alone */
		if (ch.ndeltas == 0)
			done = true;
		else
			done = KpiApplySessionDeltas(ks, ch.ndeltas, ch.delta_month, ch.delta_account, ch.delta_count,
										 res->changed, &res->months);
		StepDone(ch.ndeltas == 0 ? "nothing to do" : done ? "the session deltas" : "the session deltas (given up)");
	}
	if (!done)
	{
		/* a full rebuild: the parallel count starts now, while the accounts load */
		if (ch.full)
			KpiCountStart(ks);
		LoadSources(ks, ch.full);
		StepDone(ch.full ? "loading accounts" : "loading accounts and subscriptions");
		if (!ch.full)
			ch.full = !KpiLoadChurnState(ks, &old_first, &old_last);
		if (ch.full)
			old_last = ks->current_month;
		if (!ch.full)
			KpiListStoredMonths(ks);
		StepDone("reading the state");
		m0 = ch.full ? RebuildMatrix(ks) : UpdateMatrix(ks, &ch, old_first, old_last);
		StepDone("counting");
		SetCells(ks, ch.full, old_last);
		ks->keep_tiers = ch.full;
		if (ch.full)
			DogdbSpiExecute("DELETE FROM dogdb_internal.kpi_facts", false, 0, SPI_OK_DELETE);
		else
			KpiKeepFacts(ks);
		KpiComputeFacts(ks, m0);
		StepDone("computing the facts");
		KpiStoreMonths(ks, ch.full);
		StepDone("storing the months");
		/* sizes and first months change only with the accounts marked */
		if (ch.full || ks->churn_changed || ch.naccounts > 0)
			KpiStoreChurnState(ks, ch.full);
		if (ch.full || old_first != ks->first_month || old_last != ks->current_month)
			KpiStoreCoverage(ks);
		StepDone("storing churn and coverage");
		KpiStoreFacts(ks, res->changed);
		StepDone("storing the facts");
		for (int32 m = ks->cell0; m <= ks->cell1; m++)
			res->months += KpiMonthOf(ks, m)->facts_dirty;
	}
	res->rebuilt = ch.full;
	ks->pub_unknown |= ch.full;
	if (publish)
	{
		KpiPublishFacts(ks, res->changed, res->published);
		StepDone("publishing the facts");
	}

	PopActiveSnapshot();
	UnregisterSnapshot(ks->snapshot);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);
	return true;
}

/*
 * dogdb_internal.kpi_update_facts(full_rebuild boolean) -> (months integer, rebuilt boolean,
 *		retention_changed boolean, usage_changed boolean, revenue_changed boolean)
 */
Datum
dogdb_kpi_update_facts(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	KpiUpdateResult res;
	Datum		result[5];
	bool		rnulls[5] = {false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!KpiUpdateFacts(PG_GETARG_BOOL(0), false, &res))
		return DogdbKpiUpdateFactsOnCitus(desc, PG_GETARG_BOOL(0));
	result[0] = Int32GetDatum(res.months);
	result[1] = BoolGetDatum(res.rebuilt);
	result[2] = BoolGetDatum(res.changed[0]);
	result[3] = BoolGetDatum(res.changed[1]);
	result[4] = BoolGetDatum(res.changed[2]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), result, rnulls)));
}

/*
 * dogdb.check_month(month date, argname text) -> void: the one month
 * validator (DogdbCheckMonth) for SQL callers, so that both give one message
 */
Datum
dogdb_check_month(PG_FUNCTION_ARGS)
{
	char	   *argname = PG_ARGISNULL(1) ? "month" : text_to_cstring(PG_GETARG_TEXT_PP(1));

	DogdbCheckMonth(PG_ARGISNULL(0) ? 0 : PG_GETARG_DATEADT(0), PG_ARGISNULL(0), argname);
	PG_RETURN_VOID();
}
