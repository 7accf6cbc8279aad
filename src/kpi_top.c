/*-------------------------------------------------------------------------
 *
 * kpi_top.c
 *	  dogdb_refresh_kpis(), the KPI refresh users call (kpi.h): the engine
 *	  (kpi_refresh.c), the materialized views whose facts changed, the
 *	  support model's step, and the refresh log.
 *
 * Design note.  Most refreshes have little or nothing to do, and many run
 * in a fresh connection (a scheduler's), so what they cost is mostly
 * fixed: loading PL/pgSQL, compiling and planning statements, building
 * catalog cache entries.  So the path with nothing queued takes no SPI
 * statement but the log's: the engine checks its queues and coverage with
 * heap scans (KpiNothingQueued), the support step (PL/pgSQL) runs only
 * when dogdb_internal.support_changes has a row (or on a rebuild, or on
 * Citus, where it always rebuilds), and a view is refreshed only when its
 * facts changed.  The log is written by one INSERT ... ON CONFLICT whose
 * values are computed here (a statement with few catalog lookups to plan),
 * and the result read by a SELECT of the log.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

PG_FUNCTION_INFO_V1(dogdb_refresh_kpis);

/* does the table have a row visible to the snapshot? (one heap page read if it has) */
bool
KpiTableHasRows(Oid relid, Snapshot snapshot)
{
	Relation	rel = table_open(relid, AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	bool		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);

	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return found;
}

/* the month of a date column of the slot; KPI_MIN_MONTH - 1 if NULL or infinite */
static int32
SlotMonth(TupleTableSlot *slot, Relation rel, const char *column)
{
	AttrNumber	att = get_attnum(RelationGetRelid(rel), column);
	bool		isnull;
	Datum		d;

	if (att == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of %s is missing", column, RelationGetRelationName(rel));
	d = slot_getattr(slot, att, &isnull);
	return isnull ? KPI_MIN_MONTH - 1 : KpiDateMonth(d);
}

/*
 * The months the last refresh covered (dogdb_internal.kpi_coverage, under
 * the refresh's snapshot); false if it has not exactly one row, or its
 * months are outside the horizon
 */
bool
KpiLoadCoverage(KpiState *ks, int32 *first_month, int32 *last_month)
{
	Relation	rel = table_open(DogdbInternalRelationId("kpi_coverage"), AccessShareLock);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, ks->snapshot, 0, NULL);
	bool		ok = false;

	if (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		*first_month = SlotMonth(slot, rel, "first_month");
		*last_month = SlotMonth(slot, rel, "last_month");
		ok = KpiInHorizon(*first_month) && KpiInHorizon(*last_month) &&
			!table_scan_getnextslot(scan, ForwardScanDirection, slot);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return ok;
}

/*
 * Nothing queued for the engine, and the last refresh covered the current
 * month (so no month is new): the facts are up to date.  Reads under the
 * refresh's snapshot what ConsumeChanges and KpiLoadCoverage would.
 */
bool
KpiNothingQueued(KpiState *ks)
{
	static const char *const queues[] = {"kpi_dirty_months", "kpi_dirty_accounts", "kpi_session_deltas"};
	int32		first_month;
	int32		last_month;

	for (int i = 0; i < (int) lengthof(queues); i++)
		if (KpiTableHasRows(DogdbInternalRelationId(queues[i]), ks->snapshot))
			return false;
	return KpiLoadCoverage(ks, &first_month, &last_month) && last_month == ks->current_month;
}

/* the engine through its SQL function (the Citus route, citus.c) */
static void
UpdateFactsBySql(bool rebuild, KpiUpdateResult *res)
{
	Oid			argtype = BOOLOID;
	Datum		arg = BoolGetDatum(rebuild);
	bool		isnull;

	DogdbSpiExecuteWithArgs("SELECT months, rebuilt, retention_changed, usage_changed, revenue_changed"
							" FROM dogdb_internal.kpi_update_facts($1)",
							1, &argtype, &arg, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "dogdb_internal.kpi_update_facts returned " UINT64_FORMAT " rows", SPI_processed);
	res->months = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	res->rebuilt = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	for (int i = 0; i < 3; i++)
		res->changed[i] = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3 + i, &isnull));
}

/* does the support model's step have anything to do? */
static bool
SupportStepNeeded(bool rebuild)
{
	if (rebuild)
		return true;
	/* distributed on Citus, the sources have no triggers: the step rebuilds every time */
	if (DogdbIsDistributed(DogdbRelationId("interactions")))
		return true;
	return KpiTableHasRows(DogdbInternalRelationId("support_changes"), GetTransactionSnapshot());
}

/*
 * dogdb_refresh_kpis(rebuild boolean) -> TABLE (kpi text, refreshed_at
 * timestamptz, full_rebuild boolean, duration_ms numeric): runs as the
 * extension's owner (SECURITY DEFINER, search_path pinned by its SET clause)
 */
/* a log row in the order of ORDER BY kpi */
typedef struct LogRow
{
	Datum		values[4];
	bool		nulls[4];
	Oid			collation;
} LogRow;

static int
CompareLogRows(const void *a, const void *b)
{
	const LogRow *x = a;
	const LogRow *y = b;

	if (x->nulls[0] || y->nulls[0])
		return (int) x->nulls[0] - (int) y->nulls[0];
	return DatumGetInt32(DirectFunctionCall2Coll(bttextcmp, x->collation, x->values[0], y->values[0]));
}

/*
 * The log rows (kpi, at, rebuilt, duration) written by the key of
 * dogdb.kpi_refresh_log, then every row of it returned in the order of its
 * key, in place of an upsert and a query: only when the table is as made
 * (KpiTableAsMade, its primary key its only index, its four columns of
 * their types); false otherwise, nothing done
 */
static bool
LogByKey(ReturnSetInfo *rsinfo, const char *const *kpis, int nkpis, const Datum *values, const bool *zero)
{
	static const Oid types[] = {TEXTOID, TIMESTAMPTZOID, BOOLOID, NUMERICOID};
	Relation	rel = table_open(DogdbRelationId("kpi_refresh_log"), RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	Relation	idx = NULL;
	bool		ok;
	IndexInfo  *info;
	TupleTableSlot *slot;
	Snapshot	snap;
	IndexScanDesc iscan;
	TableScanDesc scan;
	HeapTuple	tup;
	LogRow	   *rows;
	int			nrows = 0;
	int			cap = 8;

	ok = KpiTableAsMade(rel) && desc->natts == lengthof(types);
	for (int c = 0; ok && c < desc->natts; c++)
		ok = !TupleDescAttr(desc, c)->attisdropped && TupleDescAttr(desc, c)->atttypid == types[c];
	if (ok && (idx = KpiOpenKeyIndex(rel, 1)) != NULL && !idx->rd_index->indisprimary)
	{
		index_close(idx, RowExclusiveLock);
		idx = NULL;
	}
	if (idx == NULL)
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	info = BuildIndexInfo(idx);
	slot = table_slot_create(rel, NULL);
	snap = RegisterSnapshot(GetLatestSnapshot());
	iscan = index_beginscan(rel, idx, snap, 1, 0);
	for (int k = 0; k < nkpis; k++)
	{
		Datum		row[4];
		bool		nulls[4] = {false};
		ScanKeyData skey;
		bool		found;
		ItemPointerData tid;
		HeapTuple	newtup;

		row[0] = CStringGetTextDatum(kpis[k]);
		row[1] = values[0];
		row[2] = zero[k] ? BoolGetDatum(false) : values[1];
		row[3] = zero[k] ? DirectFunctionCall3(numeric_in, CStringGetDatum("0.0"), ObjectIdGetDatum(InvalidOid),
											   Int32GetDatum(-1)) : values[2];
		ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid, idx->rd_indcollation[0],
							   F_TEXTEQ, row[0]);
		index_rescan(iscan, &skey, 1, NULL, 0);
		found = index_getnext_slot(iscan, ForwardScanDirection, slot);
		if (found)
			tid = slot->tts_tid;
		newtup = heap_form_tuple(desc, row, nulls);
		if (found)
			simple_heap_update(rel, &tid, newtup);
		else
			simple_heap_insert(rel, newtup);
		if (!HeapTupleIsHeapOnly(newtup))
			index_insert(idx, row, nulls, &newtup->t_self, rel, UNIQUE_CHECK_YES, false, info);
		heap_freetuple(newtup);
	}
	index_endscan(iscan);
	UnregisterSnapshot(snap);
	CommandCounterIncrement();

	/* every row, by kpi */
	rows = palloc(sizeof(LogRow) * cap);
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(rel, snap, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		if (nrows == cap)
		{
			cap *= 2;
			rows = repalloc(rows, sizeof(LogRow) * cap);
		}
		heap_deform_tuple(heap_copytuple(tup), desc, rows[nrows].values, rows[nrows].nulls);
		rows[nrows].collation = TupleDescAttr(desc, 0)->attcollation;
		nrows++;
		CHECK_FOR_INTERRUPTS();
	}
	table_endscan(scan);
	UnregisterSnapshot(snap);
	qsort(rows, nrows, sizeof(LogRow), CompareLogRows);
	for (int i = 0; i < nrows; i++)
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, rows[i].values, rows[i].nulls);
	ExecDropSingleTupleTableSlot(slot);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return true;
}

Datum
dogdb_refresh_kpis(PG_FUNCTION_ARGS)
{
	static const char *const views[3] = {
		"REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_retention",
		"REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_usage",
		"REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_revenue"};
	bool		rebuild = PG_GETARG_BOOL(0);
	TimestampTz t0 = GetCurrentTimestamp();
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			nestlevel;
	KpiUpdateResult res;
	bool		support;
	Oid			argtypes[3] = {TIMESTAMPTZOID, BOOLOID, NUMERICOID};
	Datum		args[3];
	char		duration[32];
	long		secs;
	int			usecs;

	SetSingleFuncCall(fcinfo, 0);
	nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();
	if (!KpiUpdateFacts(rebuild, true, &res))
		UpdateFactsBySql(rebuild, &res);
	/* a view whose facts did not change, or that the engine changed in place, is up to date */
	for (int i = 0; i < 3; i++)
		if ((res.changed[i] && !res.published[i]) || rebuild)
			DogdbSpiExecute(views[i], false, 0, SPI_OK_UTILITY);

	/* the support model, a step of its own (it logs itself) */
	support = SupportStepNeeded(rebuild);
	if (support)
	{
		Oid			argtype = BOOLOID;
		Datum		arg = BoolGetDatum(rebuild);

		DogdbSpiExecuteWithArgs("SELECT dogdb_internal.support_refresh($1)", 1, &argtype, &arg, NULL,
								false, 0, SPI_OK_SELECT);
	}

	/*
	 * The log: the three KPIs (and the support step if it had nothing to do),
	 * then every row.  Values computed here, so that the statements are
	 * cheap to plan in a fresh connection.
	 */
	TimestampDifference(t0, GetCurrentTimestamp(), &secs, &usecs);
	snprintf(duration, sizeof(duration), "%.1f", secs * 1000.0 + usecs / 1000.0);
	args[0] = TimestampTzGetDatum(GetCurrentTimestamp());
	args[1] = BoolGetDatum(res.rebuilt);
	args[2] = DirectFunctionCall3(numeric_in, CStringGetDatum(duration), ObjectIdGetDatum(InvalidOid),
								  Int32GetDatum(-1));
	if (LogByKey(rsinfo, (const char *const[]) {"retention", "revenue", "usage", "support"}, support ? 3 : 4,
				 args, (const bool[]) {false, false, false, true}))
	{
		DogdbSpiFinish();
		DogdbRestoreSearchPath(nestlevel);
		return (Datum) 0;
	}
	DogdbSpiExecuteWithArgs(support ?
							"INSERT INTO dogdb.kpi_refresh_log AS l (kpi, refreshed_at, full_rebuild, duration_ms)"
							" VALUES ('retention', $1, $2, $3), ('revenue', $1, $2, $3), ('usage', $1, $2, $3)"
							" ON CONFLICT ON CONSTRAINT kpi_refresh_log_pkey DO UPDATE"
							" SET refreshed_at = excluded.refreshed_at, full_rebuild = excluded.full_rebuild,"
							"  duration_ms = excluded.duration_ms" :
							"INSERT INTO dogdb.kpi_refresh_log AS l (kpi, refreshed_at, full_rebuild, duration_ms)"
							" VALUES ('retention', $1, $2, $3), ('revenue', $1, $2, $3), ('support', $1, false, 0.0),"
							"  ('usage', $1, $2, $3)"
							" ON CONFLICT ON CONSTRAINT kpi_refresh_log_pkey DO UPDATE"
							" SET refreshed_at = excluded.refreshed_at, full_rebuild = excluded.full_rebuild,"
							"  duration_ms = excluded.duration_ms",
							3, argtypes, args, NULL, false, 0, SPI_OK_INSERT);
	DogdbSpiExecute("SELECT kpi, refreshed_at, full_rebuild, duration_ms FROM dogdb.kpi_refresh_log ORDER BY kpi",
					false, 0, SPI_OK_SELECT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		Datum		values[4];
		bool		nulls[4];

		for (int c = 0; c < 4; c++)
			values[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);
	return (Datum) 0;
}
