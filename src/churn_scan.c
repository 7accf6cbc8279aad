/*-------------------------------------------------------------------------
 *
 * churn_scan.c
 *	  dogdb_account_churn(as_of): per account, first month, last active
 *	  month and churn month, read in one pass over the sessions without a
 *	  GROUP BY.
 *
 * Design note: grouped by account, dogdb_active_months() costs about what
 * count(*) does in the same plan: the scan and the hash aggregation are
 * more than 95% of the time (perf), so no aggregate can beat the plain-SQL
 * bit_or() route by much.  This reader needs no hash aggregation: it loads
 * the accounts first (their ids are usually compact, so an id indexes a
 * dense array; otherwise a sorted array is searched), then sets one bit
 * per session in a fixed-size bitmap per account, over the months from the
 * earliest first month through the month of as_of (one 64-bit word for
 * up to 64 months, more words past that: there is no month limit).  The
 * heap scans run under the query's snapshot; the sessions' scan uses
 * parallel workers when the table is large enough (churn_parallel.c).
 *
 * The scan is a fast path for the usual case.  Whenever it cannot give
 * exactly what the SQL definition gives -- the caller lacks table-level
 * SELECT or row-level security applies, the tables are partitioned,
 * inherited, foreign or distributed (Citus), the bitmaps would not fit in
 * the hash-memory limit, or the data hold something the SQL route rejects
 * or treats specially (NULLs, infinite or out-of-range times, an as_of
 * outside 0001..9999) -- it runs the SQL definition itself, the grouped
 * dogdb_active_months() aggregate and its readers, through SPI: the same
 * rows, the same errors, the same privilege checks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"

#include "calendar.h"
#include "churn.h"
#include "common.h"
#include "month_bitmap.h"

PG_FUNCTION_INFO_V1(dogdb_account_churn);



/* whether the fast path may read rel directly, as the SQL route would */
static bool
DirectScanAllowed(Oid relid)
{
	char		relkind = get_rel_relkind(relid);

	if (relkind != RELKIND_RELATION || has_subclass(relid))
		return false;
	if (pg_namespace_aclcheck(get_rel_namespace(relid), GetUserId(), ACL_USAGE) != ACLCHECK_OK)
		return false;
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return false;
	if (check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	return true;
}

/* the column's attribute number, or an internal error */
AttrNumber
ChurnColumnNumber(Oid relid, const char *column)
{
	AttrNumber	attnum = get_attnum(relid, column);

	if (attnum == InvalidAttrNumber)
		elog(ERROR, "column \"%s\" of %s is missing", column, get_rel_name(relid));
	return attnum;
}

static int
CompareIdPos(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return (x > y) - (x < y);
}

/* load every account; false if one is not of the usual kind */
static bool
LoadAccounts(ChurnScan *cs, Snapshot snapshot)
{
	Oid			relid = DogdbRelationId("accounts");
	Relation	rel = table_open(relid, AccessShareLock);
	AttrNumber	id_att = ChurnColumnNumber(relid, "account_id");
	AttrNumber	ts_att = ChurnColumnNumber(relid, "created_at");
	AttrNumber	maxatt = Max(id_att, ts_att);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	int64		cap = 1024;
	bool		ok = true;

	cs->accounts = palloc(sizeof(ChurnAccount) * cap);
	cs->naccounts = 0;
	cs->min_id = PG_INT64_MAX;
	cs->max_id = PG_INT64_MIN;
	cs->w0 = PG_INT32_MAX;
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		ChurnAccount *a;
		TimestampTz created;

		slot_getsomeattrs(slot, maxatt);
		if (slot->tts_isnull[id_att - 1] || slot->tts_isnull[ts_att - 1])
		{
			ok = false;
			break;
		}
		created = DatumGetTimestampTz(slot->tts_values[ts_att - 1]);
		if (TIMESTAMP_NOT_FINITE(created))
		{
			ok = false;
			break;
		}
		if (cs->naccounts == cap)
		{
			cap *= 2;
			cs->accounts = repalloc_huge(cs->accounts, sizeof(ChurnAccount) * cap);
		}
		a = &cs->accounts[cs->naccounts++];
		a->id = DatumGetInt64(slot->tts_values[id_att - 1]);
		a->first = cal_month_of_timestamp(created);
		a->last = PG_INT32_MIN;
		if (a->first < MONTH_BITMAP_MIN_MONTH || a->first > MONTH_BITMAP_MAX_MONTH)
		{
			ok = false;
			break;
		}
		cs->min_id = Min(cs->min_id, a->id);
		cs->max_id = Max(cs->max_id, a->id);
		cs->w0 = Min(cs->w0, a->first);
		if ((cs->naccounts & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
	return ok;
}

/* the id index and the bitmaps; false if they would not fit */
static bool
BuildIndex(ChurnScan *cs)
{
	Size		limit = ChurnMemoryLimit();
	uint64		range = (uint64) cs->max_id - (uint64) cs->min_id + 1;
	int64		span = (int64) cs->asof - cs->w0 + 1;
	Size		bytes;

	cs->nwords = span > 0 ? (int) ((span + 63) / 64) : 0;
	bytes = (Size) cs->naccounts * cs->nwords * sizeof(uint64);
	if (cs->nwords > 0 && bytes / cs->nwords / sizeof(uint64) != (Size) cs->naccounts)
		return false;
	if (bytes > limit)
		return false;
	cs->bits = palloc_extended(Max(bytes, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	cs->dense = NULL;
	if (range != 0 && range <= (uint64) cs->naccounts * 8 + 1024)
	{
		cs->dense = palloc_extended(sizeof(int32) * range, MCXT_ALLOC_HUGE);
		memset(cs->dense, -1, sizeof(int32) * range);
		for (int64 i = 0; i < cs->naccounts; i++)
			cs->dense[cs->accounts[i].id - cs->min_id] = (int32) i;
	}
	else
	{
		/* pairs (id, position) sorted by id, then split into two arrays */
		int64	   *pairs = palloc_extended(sizeof(int64) * 2 * cs->naccounts, MCXT_ALLOC_HUGE);

		for (int64 i = 0; i < cs->naccounts; i++)
		{
			pairs[2 * i] = cs->accounts[i].id;
			pairs[2 * i + 1] = i;
		}
		qsort(pairs, cs->naccounts, 2 * sizeof(int64), CompareIdPos);
		cs->sorted_ids = palloc_extended(sizeof(int64) * cs->naccounts, MCXT_ALLOC_HUGE);
		cs->sorted_pos = palloc_extended(sizeof(int32) * cs->naccounts, MCXT_ALLOC_HUGE);
		for (int64 i = 0; i < cs->naccounts; i++)
		{
			cs->sorted_ids[i] = pairs[2 * i];
			cs->sorted_pos[i] = (int32) pairs[2 * i + 1];
		}
		pfree(pairs);
	}
	return true;
}

/* the first month from a->first through as_of without a session, or -1 */
static bool
ChurnMonth(const ChurnScan *cs, int64 pos, int32 *churn)
{
	const ChurnAccount *a = &cs->accounts[pos];
	const uint64 *words = cs->bits + pos * cs->nwords;
	int32		bit = a->first - cs->w0;
	int32		nbits = cs->asof - cs->w0 + 1;

	while (bit < nbits)
	{
		/* the bits from bit on in its word, inverted: set = no session */
		uint64		free = ~words[bit / 64] >> (bit % 64);

		if (free != 0)
		{
			int32		m = bit + pg_rightmost_one_pos64(free);

			if (m >= nbits)
				return false;
			*churn = cs->w0 + m;
			return true;
		}
		bit = (bit / 64 + 1) * 64;
	}
	return false;
}

static Datum
MonthDate(int32 month)
{
	return DateADTGetDatum((DateADT) cal_month_first_day(month));
}

/* the fast path into the tuplestore; false if the SQL route must answer */
static bool
FastChurn(DateADT as_of, Tuplestorestate *store, TupleDesc desc)
{
	Oid			accounts = DogdbRelationId("accounts");
	Oid			sessions = DogdbRelationId("sessions");
	Snapshot	snapshot = GetActiveSnapshot();
	MemoryContext work,
				old;
	ChurnScan	cs = {0};
	bool		ok;

	if (DATE_NOT_FINITE(as_of))
		return false;
	cs.asof = cal_month_of_day(as_of);
	if (cs.asof < MONTH_BITMAP_MIN_MONTH || cs.asof > MONTH_BITMAP_MAX_MONTH)
		return false;
	if (DogdbIsDistributed(accounts) || DogdbIsDistributed(sessions) ||
		!DirectScanAllowed(accounts) || !DirectScanAllowed(sessions))
		return false;

	work = AllocSetContextCreate(CurrentMemoryContext, "dogdb_account_churn", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(work);
	ok = LoadAccounts(&cs, snapshot);
	if (ok && cs.naccounts > 0)
		ok = cs.naccounts <= PG_INT32_MAX && BuildIndex(&cs) && ChurnScanSessions(&cs, snapshot);
	MemoryContextSwitchTo(old);
	if (ok)
	{
		for (int64 i = 0; i < cs.naccounts; i++)
		{
			const ChurnAccount *a = &cs.accounts[i];
			Datum		values[4];
			bool		nulls[4] = {false, false, false, false};
			int32		churn;

			values[0] = Int64GetDatum(a->id);
			values[1] = MonthDate(a->first);
			if (a->last != PG_INT32_MIN)
				values[2] = MonthDate(a->last);
			else
				nulls[2] = true;
			if (ChurnMonth(&cs, i, &churn))
				values[3] = MonthDate(churn);
			else
				nulls[3] = true;
			tuplestore_putvalues(store, desc, values, nulls);
		}
	}
	MemoryContextDelete(work);
	return ok;
}

/* the SQL definition (README): the aggregate grouped by account, and its readers */
static void
SqlChurn(FunctionCallInfo fcinfo, DateADT as_of, Tuplestorestate *store, TupleDesc desc)
{
	const char *schema = quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid)));
	Oid			argtypes[1] = {DATEOID};
	Datum		values[1] = {DateADTGetDatum(as_of)};
	StringInfoData q;
	uint64		n;

	initStringInfo(&q);
	appendStringInfo(&q,
					 "SELECT a.account_id, f.first_month,"
					 "       %s.dogdb_last_active_month(m.active),"
					 "       %s.dogdb_first_inactive_month(m.active, f.first_month, $1)"
					 "  FROM dogdb.accounts a"
					 " CROSS JOIN LATERAL (SELECT date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date AS first_month) f"
					 "  LEFT JOIN (SELECT s.account_id, %s.dogdb_active_months(s.created_at) AS active"
					 "               FROM dogdb.sessions s"
					 "              WHERE s.created_at < ((date_trunc('month', $1::timestamp) + interval '1 month') AT TIME ZONE 'UTC')"
					 "              GROUP BY s.account_id) m ON m.account_id = a.account_id",
					 schema, schema, schema);
	DogdbSpiConnect();
	n = DogdbSpiExecuteWithArgs(q.data, 1, argtypes, values, NULL, true, 0, SPI_OK_SELECT);
	for (uint64 i = 0; i < n; i++)
	{
		Datum		row[4];
		bool		nulls[4];

		heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, row, nulls);
		tuplestore_putvalues(store, desc, row, nulls);
	}
	DogdbSpiFinish();
}

/* dogdb_account_churn(as_of date) */
Datum
dogdb_account_churn(PG_FUNCTION_ARGS)
{
	DateADT		as_of = PG_GETARG_DATEADT(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int			level;

	SetSingleFuncCall(fcinfo, 0);
	level = DogdbPinSearchPath();
	if (!FastChurn(as_of, rsinfo->setResult, rsinfo->setDesc))
		SqlChurn(fcinfo, as_of, rsinfo->setResult, rsinfo->setDesc);
	DogdbRestoreSearchPath(level);
	return (Datum) 0;
}
