/*-------------------------------------------------------------------------
 *
 * kpi.c
 *	  The KPI engine behind dogdb_refresh_kpis(): brings dogdb.kpi_facts up
 *	  to date, which the materialized views dogdb.kpi_retention, kpi_usage
 *	  and kpi_revenue publish.
 *
 * Design note.  The facts are, per month, company size and tier: active
 * accounts, churned accounts, sessions and revenue.  Everything but
 * revenue follows from one matrix of session counts per account and
 * month; revenue follows from the subscriptions and prices (the invoice
 * rules, proration.c).
 *
 * The matrix is kept between refreshes in dogdb.kpi_month_activity, one
 * row per month (the accounts with sessions and their counts).  A full
 * rebuild fills it with one sequential scan of dogdb.sessions: dense
 * per-account counters, integer month bucketing, no executor.  An
 * incremental refresh reads it back and adds the per-account deltas that
 * the statement triggers on dogdb.sessions recorded since the last
 * refresh, then rewrites only the months that changed.  Churn (the first
 * month without a session, from the account's first month) and the
 * active/session counts are recomputed from the matrix every time, which
 * is cheap; revenue only for the months the other triggers marked (a
 * subscription, price, plan or account changed) and for new months.
 *
 * One snapshot serves the whole computation: the deltas and marks it
 * consumes are deleted under the snapshot the sessions and subscriptions
 * are read with, so a change committed meanwhile is neither lost nor
 * counted twice; it waits for the next refresh.  Refreshes serialize on
 * an EXCLUSIVE lock on dogdb.kpi_month_activity (readers are not blocked).
 *
 * The matrix is kept by month (KpiMonth), a month's counts allocated only
 * when that month is loaded.  All scratch state lives in KpiState, nothing
 * survives the call.  Account ids map to positions through a dense array when
 * the ids are compact (the usual case), else through binary search.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "portability/instr_time.h"

#include "billing.h"
#include "calendar.h"
#include "proration.h"

PG_FUNCTION_INFO_V1(dogdb_kpi_update_facts);

static instr_time step_start;
#define STEP(name) do { instr_time now_; INSTR_TIME_SET_CURRENT(now_); INSTR_TIME_SUBTRACT(now_, step_start); \
	elog(DEBUG1, "kpi step %s: %.1f ms", name, INSTR_TIME_GET_MILLISEC(now_)); INSTR_TIME_SET_CURRENT(step_start); } while (0)

#define NSIZES 3
static const char *const size_names[NSIZES] = {"small", "large", "unknown"};

typedef struct KpiAccount
{
	int64		id;
	int32		first_month;
	int32		size;			/* index into size_names */
	int32		span0;			/* its subscriptions: spans[span0 .. span0 + nspans) */
	int32		nspans;
} KpiAccount;

typedef struct KpiSpan
{
	int32		account;		/* index into accounts */
	ProrationSpan span;
} KpiSpan;

/* one month of the horizon */
typedef struct KpiMonth
{
	int32	   *counts;			/* session counts per account, NULL until loaded */
	bool		stored;			/* it has a row in dogdb.kpi_month_activity */
	bool		activity_changed;	/* rewrite that row */
	bool		revenue_dirty;	/* recompute its revenue */
	bool		facts_dirty;	/* recompute its facts (its counts are loaded) */
} KpiMonth;

/* session counts waiting for the horizon to cover their month */
typedef struct MonthCount
{
	int32		account;
	int32		month;
	int64		count;
} MonthCount;

typedef struct KpiCell
{
	int64		active;
	int64		churned;
	int64		sessions;
	int64		revenue;
} KpiCell;

typedef struct KpiState
{
	Snapshot	snapshot;
	int32		current_month;

	KpiAccount *accounts;		/* sorted by id */
	int			naccounts;
	int			accounts_cap;
	int32	   *dense;			/* id - min_id -> account index, or -1 */
	int64		min_id;
	int64		dense_len;

	BillingPlan *plans;
	int			nplans;
	ProrationSpan *spans;		/* by account, then first_day */
	KpiSpan    *loaded;			/* subscriptions as scanned, before sorting */
	int			nloaded;
	int			loaded_cap;

	int32		h0;				/* horizon: months [h0, h1] */
	int32		h1;
	int32		nmonths;
	KpiMonth   *months;			/* nmonths, from h0 */
	MonthCount *pending;		/* counts outside the horizon, for FlushPending */
	int			npending;
	int			pending_cap;
	int64		scan_lo;		/* full scan: [scan_lo, scan_hi) are the */
	int64		scan_hi;		/* timestamps of scan_month */
	int32		scan_month;
	int32	   *churn;			/* per account: churn month, CHURN_NONE or CHURN_UNKNOWN */
	KpiCell    *cells;			/* nmonths x NSIZES x (nplans + 1) */
	KpiCell    *old_cells;		/* the same, as dogdb.kpi_facts had them */
	bool		churn_changed;	/* some account's churn month changed */
} KpiState;

#define CHURN_NONE (-1)
#define CHURN_UNKNOWN (-2)

/*
 * Table scans with the refresh's snapshot
 */
typedef void (*KpiRowFn) (KpiState *ks, Datum *values, bool *nulls);

static void
ScanTable(KpiState *ks, const char *relname, const char *const *columns, int ncolumns, KpiRowFn fn)
{
	Oid			relid = get_relname_relid(relname, get_namespace_oid("dogdb", false));
	Relation	rel = table_open(relid, AccessShareLock);
	AttrNumber	attnums[8];
	AttrNumber	maxatt = 0;
	Datum		values[8];
	bool		nulls[8];
	TableScanDesc scan;
	TupleTableSlot *slot;
	uint64		n = 0;

	Assert(ncolumns <= lengthof(attnums));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, relname);
	for (int i = 0; i < ncolumns; i++)
	{
		attnums[i] = get_attnum(relid, columns[i]);
		if (attnums[i] == InvalidAttrNumber)
			elog(ERROR, "column \"%s\" of dogdb.%s is missing", columns[i], relname);
		maxatt = Max(maxatt, attnums[i]);
	}
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, ks->snapshot, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		slot_getsomeattrs(slot, maxatt);
		for (int i = 0; i < ncolumns; i++)
		{
			values[i] = slot->tts_values[attnums[i] - 1];
			nulls[i] = slot->tts_isnull[attnums[i] - 1];
		}
		fn(ks, values, nulls);
		if ((++n & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
}

/* the month of a timestamp; infinite ones are refused */
static int32
MonthOfTimestamp(TimestampTz ts, const char *what)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be finite", what)));
	return cal_month_of_timestamp(ts);
}

static Datum
MonthDate(int32 month)
{
	return DateADTGetDatum((DateADT) cal_month_first_day(month));
}

/*
 * Accounts
 */
static void
AddAccount(KpiState *ks, Datum *values, bool *nulls)
{
	KpiAccount *a;

	if (ks->naccounts == ks->accounts_cap)
	{
		ks->accounts_cap *= 2;
		ks->accounts = repalloc_huge(ks->accounts, sizeof(KpiAccount) * ks->accounts_cap);
	}
	a = &ks->accounts[ks->naccounts++];
	a->id = DatumGetInt64(values[0]);
	a->size = 2;
	if (!nulls[1])
	{
		text	   *size = DatumGetTextPP(values[1]);

		for (int i = 0; i < 2; i++)
			if (VARSIZE_ANY_EXHDR(size) == strlen(size_names[i]) &&
				memcmp(VARDATA_ANY(size), size_names[i], strlen(size_names[i])) == 0)
				a->size = i;
	}
	a->first_month = MonthOfTimestamp(DatumGetTimestampTz(values[2]), "account creation time");
	a->span0 = 0;
	a->nspans = 0;
}

static int
CompareAccountId(const void *a, const void *b)
{
	int64		x = ((const KpiAccount *) a)->id;
	int64		y = ((const KpiAccount *) b)->id;

	return (x > y) - (x < y);
}

static void
LoadAccounts(KpiState *ks)
{
	static const char *const columns[] = {"account_id", "company_size", "created_at"};

	ks->accounts_cap = 1024;
	ks->accounts = palloc(sizeof(KpiAccount) * ks->accounts_cap);
	ks->naccounts = 0;
	ScanTable(ks, "accounts", columns, lengthof(columns), AddAccount);
	qsort(ks->accounts, ks->naccounts, sizeof(KpiAccount), CompareAccountId);

	/* dense map when the ids are compact */
	ks->dense = NULL;
	if (ks->naccounts > 0)
	{
		int64		range = ks->accounts[ks->naccounts - 1].id - ks->accounts[0].id + 1;

		if (range > 0 && range <= (int64) ks->naccounts * 8 + 1024)
		{
			ks->min_id = ks->accounts[0].id;
			ks->dense_len = range;
			ks->dense = palloc_extended(sizeof(int32) * range, MCXT_ALLOC_HUGE);
			memset(ks->dense, -1, sizeof(int32) * range);
			for (int i = 0; i < ks->naccounts; i++)
				ks->dense[ks->accounts[i].id - ks->min_id] = i;
		}
	}
}

/* the matrix row of an account, or -1 if it does not exist */
static inline int32
AccountIndex(KpiState *ks, int64 id)
{
	int			lo = 0,
				hi = ks->naccounts;

	if (ks->dense != NULL)
	{
		uint64		off = (uint64) (id - ks->min_id);

		return off < (uint64) ks->dense_len ? ks->dense[off] : -1;
	}
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ks->accounts[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < ks->naccounts && ks->accounts[lo].id == id) ? lo : -1;
}

/*
 * Subscriptions
 */
static void
AddSubscription(KpiState *ks, Datum *values, bool *nulls)
{
	int32		account = AccountIndex(ks, DatumGetInt64(values[0]));
	KpiSpan    *s;

	if (account < 0)
		return;
	if (ks->nloaded == ks->loaded_cap)
	{
		ks->loaded_cap *= 2;
		ks->loaded = repalloc_huge(ks->loaded, sizeof(KpiSpan) * ks->loaded_cap);
	}
	s = &ks->loaded[ks->nloaded++];
	s->account = account;
	s->span = SubscriptionSpan(ks->plans, ks->nplans, DatumGetInt16(values[1]),
							   DatumGetTimestampTz(values[2]), nulls[3], DatumGetTimestampTz(values[3]));
}

static int
CompareSpan(const void *a, const void *b)
{
	const KpiSpan *x = a;
	const KpiSpan *y = b;

	if (x->account != y->account)
		return (x->account > y->account) - (x->account < y->account);
	return (x->span.first_day > y->span.first_day) - (x->span.first_day < y->span.first_day);
}

static void
LoadSubscriptions(KpiState *ks)
{
	static const char *const columns[] = {"account_id", "plan_id", "valid_from", "valid_to"};

	ks->loaded_cap = 1024;
	ks->nloaded = 0;
	ks->loaded = palloc(sizeof(KpiSpan) * ks->loaded_cap);
	ScanTable(ks, "subscriptions", columns, lengthof(columns), AddSubscription);
	qsort(ks->loaded, ks->nloaded, sizeof(KpiSpan), CompareSpan);
	ks->spans = palloc(sizeof(ProrationSpan) * Max(ks->nloaded, 1));
	for (int i = 0; i < ks->nloaded; i++)
	{
		KpiAccount *a = &ks->accounts[ks->loaded[i].account];

		if (a->nspans == 0)
			a->span0 = i;
		a->nspans++;
		ks->spans[i] = ks->loaded[i].span;
	}
	pfree(ks->loaded);
	ks->loaded = NULL;
}

/*
 * Session counts
 */
static void
AddPending(KpiState *ks, int32 account, int32 month, int64 count)
{
	if (ks->npending == ks->pending_cap)
	{
		ks->pending_cap = Max(1024, ks->pending_cap * 2);
		ks->pending = ks->pending == NULL ? palloc(sizeof(MonthCount) * ks->pending_cap) :
			repalloc_huge(ks->pending, sizeof(MonthCount) * ks->pending_cap);
	}
	ks->pending[ks->npending].account = account;
	ks->pending[ks->npending].month = month;
	ks->pending[ks->npending].count = count;
	ks->npending++;
}

/* the session counts of month m (from h0), allocated when first needed */
static inline int32 *
MonthRow(KpiState *ks, int32 m)
{
	if (ks->months[m].counts == NULL)
		ks->months[m].counts = palloc_extended(sizeof(int32) * Max(ks->naccounts, 1),
											   MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	return ks->months[m].counts;
}

/* the count of (account, month m from h0); 0 for months not loaded */
static inline int32
CountOf(KpiState *ks, int32 account, int32 m)
{
	return ks->months[m].counts == NULL ? 0 : ks->months[m].counts[account];
}

/* add count to (account, month); months outside the horizon wait in pending */
static inline void
AddCount(KpiState *ks, int32 account, int32 month, int64 count)
{
	int32	   *cell;
	int64		sum;

	if (month < ks->h0 || month > ks->h1)
	{
		AddPending(ks, account, month, count);
		return;
	}
	cell = &MonthRow(ks, month - ks->h0)[account];
	sum = (int64) *cell + count;
	*cell = (int32) Max(0, Min(sum, PG_INT32_MAX));
}

/* the months [h0, h1], nothing loaded or marked yet */
static void
SetHorizon(KpiState *ks, int32 h0, int32 h1)
{
	ks->h0 = h0;
	ks->h1 = h1;
	ks->nmonths = h1 - h0 + 1;
	ks->months = palloc0(sizeof(KpiMonth) * ks->nmonths);
}

/* widen the horizon to cover [h0, h1]; months it adds need everything */
static void
WidenHorizon(KpiState *ks, int32 h0, int32 h1)
{
	int32		old_h0 = ks->h0;
	int32		old_n = ks->nmonths;
	KpiMonth   *old = ks->months;

	if (h0 >= ks->h0 && h1 <= ks->h1)
		return;
	SetHorizon(ks, Min(h0, ks->h0), Max(h1, ks->h1));
	for (int m = 0; m < ks->nmonths; m++)
		ks->months[m].activity_changed = ks->months[m].revenue_dirty = ks->months[m].facts_dirty = true;
	memcpy(&ks->months[old_h0 - ks->h0], old, sizeof(KpiMonth) * old_n);
	pfree(old);
}

/* widen the horizon to the pending counts' months and add them */
static void
FlushPending(KpiState *ks)
{
	int32		lo = ks->h0,
				hi = ks->h1;
	int			n = ks->npending;

	for (int i = 0; i < n; i++)
	{
		lo = Min(lo, ks->pending[i].month);
		hi = Max(hi, ks->pending[i].month);
	}
	WidenHorizon(ks, lo, hi);
	ks->npending = 0;
	for (int i = 0; i < n; i++)
	{
		AddCount(ks, ks->pending[i].account, ks->pending[i].month, ks->pending[i].count);
		ks->months[ks->pending[i].month - ks->h0].activity_changed = true;
	}
}

/* the full scan's hot loop: one session */
static void
CountSession(KpiState *ks, Datum *values, bool *nulls)
{
	int32		account = AccountIndex(ks, DatumGetInt64(values[0]));
	TimestampTz ts = DatumGetTimestampTz(values[1]);

	if (account < 0)
		return;
	if (ts < ks->scan_lo || ts >= ks->scan_hi)
	{
		ks->scan_month = MonthOfTimestamp(ts, "session time");
		ks->scan_lo = cal_month_first_day(ks->scan_month) * USECS_PER_DAY;
		ks->scan_hi = cal_month_first_day(ks->scan_month + 1) * USECS_PER_DAY;
	}
	if (ks->scan_month >= ks->h0 && ks->scan_month <= ks->h1)
	{
		int32	   *cell = &MonthRow(ks, ks->scan_month - ks->h0)[account];

		if (*cell < PG_INT32_MAX)
			(*cell)++;
	}
	else
		AddPending(ks, account, ks->scan_month, 1);
}

/*
 * The stored state: pairs of bytea arrays, sorted int8 account ids and an
 * int4 value for each (a month's session counts, or churn months)
 */

/* the number of pairs, after checking that the two arrays agree */
static Size
PairCount(bytea *ids, bytea *values, const char *what)
{
	Size		n = VARSIZE_ANY_EXHDR(ids) / sizeof(int64);

	if (VARSIZE_ANY_EXHDR(ids) % sizeof(int64) != 0 || VARSIZE_ANY_EXHDR(values) != n * sizeof(int32))
		elog(ERROR, "%s is corrupt; run dogdb_refresh_kpis(true)", what);
	return n;
}

/* pair i: its account position (-1 if the account is gone) and value */
static int32
PairAt(KpiState *ks, bytea *ids, bytea *values, Size i, int32 *value)
{
	int64		id;

	memcpy(&id, VARDATA_ANY(ids) + i * sizeof(int64), sizeof(int64));
	memcpy(value, VARDATA_ANY(values) + i * sizeof(int32), sizeof(int32));
	return AccountIndex(ks, id);
}

/* every account's value (values NULL: all 0), without the zeros if asked */
static void
MakePairs(KpiState *ks, const int32 *values, bool skip_zero, bytea **ids, bytea **out)
{
	Size		n = 0;

	for (int a = 0; a < ks->naccounts; a++)
		n += !(skip_zero && (values == NULL || values[a] == 0));
	*ids = palloc(VARHDRSZ + n * sizeof(int64));
	*out = palloc(VARHDRSZ + n * sizeof(int32));
	SET_VARSIZE(*ids, VARHDRSZ + n * sizeof(int64));
	SET_VARSIZE(*out, VARHDRSZ + n * sizeof(int32));
	n = 0;
	for (int a = 0; a < ks->naccounts; a++)
	{
		int32		v = values == NULL ? 0 : values[a];

		if (skip_zero && v == 0)
			continue;
		memcpy(VARDATA(*ids) + n * sizeof(int64), &ks->accounts[a].id, sizeof(int64));
		memcpy(VARDATA(*out) + n * sizeof(int32), &v, sizeof(int32));
		n++;
	}
}

static void
LoadStoredMonth(KpiState *ks, int32 month, bytea *ids, bytea *counts)
{
	Size		n = PairCount(ids, counts, "dogdb.kpi_month_activity");

	for (Size i = 0; i < n; i++)
	{
		int32		c;
		int32		account = PairAt(ks, ids, counts, i, &c);

		if (account >= 0)
			AddCount(ks, account, month, c);
	}
}

static void
StoreMonth(KpiState *ks, int32 m, SPIPlanPtr del, SPIPlanPtr ins)
{
	bytea	   *ids;
	bytea	   *counts;
	Datum		args[3];

	MakePairs(ks, ks->months[m].counts, true, &ids, &counts);
	args[0] = MonthDate(ks->h0 + m);
	args[1] = PointerGetDatum(ids);
	args[2] = PointerGetDatum(counts);
	SPI_execute_plan(del, args, NULL, false, 0);
	SPI_execute_plan(ins, args, NULL, false, 0);
	pfree(ids);
	pfree(counts);
}

/*
 * Churn state: every account's churn month, one row
 */
static void
LoadChurnState(KpiState *ks, bytea *ids, bytea *months)
{
	Size		n = PairCount(ids, months, "dogdb.kpi_churn_state");

	for (Size i = 0; i < n; i++)
	{
		int32		c;
		int32		account = PairAt(ks, ids, months, i, &c);

		if (account >= 0)
			ks->churn[account] = c;
	}
}

static void
StoreChurnState(KpiState *ks)
{
	Oid			argtypes[2] = {BYTEAOID, BYTEAOID};
	Datum		args[2];
	bytea	   *ids;
	bytea	   *months;

	MakePairs(ks, ks->churn, false, &ids, &months);
	args[0] = PointerGetDatum(ids);
	args[1] = PointerGetDatum(months);
	SPI_execute("DELETE FROM dogdb.kpi_churn_state", false, 0);
	SPI_execute_with_args("INSERT INTO dogdb.kpi_churn_state (account_ids, churn_months) VALUES ($1, $2)",
						  2, argtypes, args, NULL, false, 0);
}

/*
 * Facts
 */
/* the position of (month, size, tier) in cells and old_cells */
static inline Size
CellIndex(KpiState *ks, int32 m, int size, int tier)
{
	return ((Size) m * NSIZES + size) * (ks->nplans + 1) + tier;
}

static inline KpiCell *
Cell(KpiState *ks, int32 m, int size, int tier)
{
	return &ks->cells[CellIndex(ks, m, size, tier)];
}

/*
 * The tier of an account in month m (index into plans; nplans = none): the
 * plan in force on the first day; without one, the plan it had before;
 * without one, the first plan it starts that month.
 */
static int
TierAt(KpiState *ks, KpiAccount *a, int32 m)
{
	ProrationSpan *spans = &ks->spans[a->span0];
	int64		d = cal_month_first_day(ks->h0 + m);
	int64		next = cal_month_first_day(ks->h0 + m + 1);
	const ProrationPlan *plan = NULL;
	int			k = 0;

	while (k < a->nspans && spans[k].end_day <= d)
		k++;
	if (k < a->nspans && spans[k].first_day <= d)
		plan = spans[k].plan;
	else if (k > 0)
		plan = spans[k - 1].plan;
	else if (k < a->nspans && spans[k].first_day < next)
		plan = spans[k].plan;
	if (plan == NULL)
		return ks->nplans;
	return (int) (FindBillingPlan(ks->plans, ks->nplans, plan->plan_id) - ks->plans);
}

/*
 * The facts as dogdb.kpi_facts has them (old_cells), and those of the
 * months not recomputed (or their revenue) carried over into cells
 */
static void
KeepFacts(KpiState *ks)
{
	SPITupleTable *tt;

	SPI_execute("SELECT month, company_size, tier, active_accounts, churned_accounts, sessions, revenue_cents"
				" FROM dogdb.kpi_facts", false, 0);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int32		m = cal_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull))) - ks->h0;
		char	   *size = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		char	   *tier = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
		int			si = 0,
					ti = ks->nplans;
		KpiCell		row;
		KpiCell    *c;
		KpiCell    *o;

		if (m < 0 || m >= ks->nmonths)
			continue;
		while (si < NSIZES - 1 && strcmp(size_names[si], size) != 0)
			si++;
		for (int p = 0; p < ks->nplans; p++)
			if (strcmp(ks->plans[p].name, tier) == 0)
				ti = p;
		row.active = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
		row.churned = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
		row.sessions = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 6, &isnull));
		row.revenue = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 7, &isnull));
		o = &ks->old_cells[CellIndex(ks, m, si, ti)];
		o->active += row.active;
		o->churned += row.churned;
		o->sessions += row.sessions;
		o->revenue += row.revenue;
		if (ks->months[m].revenue_dirty)
			continue;
		c = Cell(ks, m, si, ti);
		c->revenue += row.revenue;
		if (!ks->months[m].facts_dirty)
		{
			c->active += row.active;
			c->churned += row.churned;
			c->sessions += row.sessions;
		}
	}
	SPI_freetuptable(tt);
}

/*
 * Churn months from month m0 on (earlier ones are known and unchanged),
 * then the facts of the dirty months.
 */
static void
ComputeFacts(KpiState *ks, int32 m0)
{
	ProrationResult r;
	int32		churn_to = Min(ks->current_month, ks->h1) - ks->h0;
	int32	   *dirty = palloc(sizeof(int32) * ks->nmonths);
	int			ndirty = 0;

	for (int32 m = 0; m < ks->nmonths; m++)
		if (ks->months[m].facts_dirty)
			dirty[ndirty++] = m;

	for (int ai = 0; ai < ks->naccounts; ai++)
	{
		KpiAccount *a = &ks->accounts[ai];
		int32		first = a->first_month - ks->h0;
		int32	   *churn = &ks->churn[ai];

		/* churn: the first month without a session, from the first month on */
		if (*churn == CHURN_UNKNOWN || *churn == CHURN_NONE || *churn - ks->h0 >= m0)
		{
			int32		from = *churn == CHURN_UNKNOWN ? first : Max(first, m0);
			int32		was = *churn;

			*churn = CHURN_NONE;
			for (int32 m = Max(from, 0); m <= churn_to; m++)
				if (CountOf(ks, ai, m) == 0)
				{
					*churn = ks->h0 + m;
					break;
				}
			ks->churn_changed |= (*churn != was);
		}
		if (*churn != CHURN_NONE && ks->months[*churn - ks->h0].facts_dirty)
			Cell(ks, *churn - ks->h0, a->size, TierAt(ks, a, *churn - ks->h0))->churned++;

		for (int k = 0; k < ndirty; k++)
		{
			int32		m = dirty[k];

			if (CountOf(ks, ai, m) > 0)
			{
				KpiCell    *c = Cell(ks, m, a->size, TierAt(ks, a, m));

				c->active++;
				c->sessions += CountOf(ks, ai, m);
			}
			if (ks->months[m].revenue_dirty && a->nspans > 0)
			{
				int64		start = cal_month_first_day(ks->h0 + m);
				ProrationStatus st = prorate_account(start, cal_month_first_day(ks->h0 + m + 1),
													 &ks->spans[a->span0], a->nspans, &r);
				KpiCell    *c;

				if (st != PRORATION_OK)
					ReportProrationError(st, &r, ks->plans, ks->nplans, a->id, (DateADT) start);
				if (r.total_cents == 0)
					continue;
				c = Cell(ks, m, a->size, TierAt(ks, a, m));
				if (__builtin_add_overflow(c->revenue, r.total_cents, &c->revenue))
					ereport(ERROR,
							(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
							 errmsg("revenue out of range for type bigint")));
			}
		}
		if ((ai & 0xFFF) == 0)
			CHECK_FOR_INTERRUPTS();
	}
}

/*
 * Write the cells that differ from dogdb.kpi_facts; *changed says which
 * KPIs (retention, usage, revenue) changed
 */
static void
StoreFacts(KpiState *ks, bool *changed)
{
	Oid			argtypes[7] = {DATEOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID};
	SPIPlanPtr	upsert = SPI_prepare("INSERT INTO dogdb.kpi_facts AS f (month, company_size, tier, active_accounts,"
									 " churned_accounts, sessions, revenue_cents) VALUES ($1, $2, $3, $4, $5, $6, $7)"
									 " ON CONFLICT (month, company_size, tier) DO UPDATE SET"
									 " active_accounts = $4, churned_accounts = $5, sessions = $6, revenue_cents = $7",
									 7, argtypes);
	SPIPlanPtr	del = SPI_prepare("DELETE FROM dogdb.kpi_facts WHERE month = $1 AND company_size = $2 AND tier = $3",
								  3, argtypes);

	changed[0] = changed[1] = changed[2] = false;
	for (int32 m = 0; m < ks->nmonths; m++)
		for (int s = 0; s < NSIZES; s++)
			for (int t = 0; t <= ks->nplans; t++)
			{
				Size		i = CellIndex(ks, m, s, t);
				KpiCell    *c = &ks->cells[i];
				KpiCell    *o = &ks->old_cells[i];
				Datum		args[7];

				if (memcmp(c, o, sizeof(KpiCell)) == 0)
					continue;
				changed[0] |= (c->active != o->active || c->churned != o->churned);
				changed[1] |= (c->active != o->active || c->sessions != o->sessions);
				changed[2] |= (c->revenue != o->revenue);
				args[0] = MonthDate(ks->h0 + m);
				args[1] = CStringGetTextDatum(size_names[s]);
				args[2] = CStringGetTextDatum(t < ks->nplans ? ks->plans[t].name : "none");
				args[3] = Int64GetDatum(c->active);
				args[4] = Int64GetDatum(c->churned);
				args[5] = Int64GetDatum(c->sessions);
				args[6] = Int64GetDatum(c->revenue);
				if (c->active == 0 && c->churned == 0 && c->sessions == 0 && c->revenue == 0)
					SPI_execute_plan(del, args, NULL, false, 0);
				else
					SPI_execute_plan(upsert, args, NULL, false, 0);
			}
}

/* run a prepared statement under the refresh's snapshot */
static void
ExecuteWithSnapshot(KpiState *ks, const char *query, int nargs, Oid *argtypes, Datum *args, bool read_only)
{
	SPIPlanPtr	plan = SPI_prepare(query, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_execute_snapshot(plan, args, NULL, ks->snapshot, InvalidSnapshot, read_only, false, 0);
}

/*
 * dogdb.kpi_update_facts(full_rebuild boolean) -> (months integer, rebuilt boolean,
 *		retention_changed boolean, usage_changed boolean, revenue_changed boolean)
 */
Datum
dogdb_kpi_update_facts(PG_FUNCTION_ARGS)
{
	bool		full = PG_GETARG_BOOL(0);
	KpiState	ks = {0};
	TupleDesc	desc;
	Datum		result[5];
	bool		rnulls[5] = {false, false, false, false, false};
	bool		changed[3];
	SPITupleTable *tt;
	int32		lo,
				hi;
	int32		m0;
	int			months_done = 0;
	uint64		nstored;
	int32	   *stored_months;
	int32	   *ranges;
	int			nranges;
	bytea	   *churn_ids = NULL;
	bytea	   *churn_months = NULL;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	INSTR_TIME_SET_CURRENT(step_start);
	SPI_connect();
	/* one refresh at a time; readers of the views are not blocked */
	SPI_execute("LOCK TABLE dogdb.kpi_month_activity IN EXCLUSIVE MODE", false, 0);
	ks.snapshot = RegisterSnapshot(GetTransactionSnapshot());
	ks.current_month = cal_month_of_timestamp(GetCurrentTransactionStartTimestamp());

	/* consume the marks (under our snapshot) */
	ExecuteWithSnapshot(&ks, "DELETE FROM dogdb.kpi_dirty_months RETURNING from_month, to_month, full_rebuild",
						0, NULL, NULL, false);
	tt = SPI_tuptable;
	nranges = 0;
	ranges = palloc(sizeof(int32) * 2 * Max(SPI_processed, 1));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		bool		open;
		DateADT		from = DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		Datum		to = SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &open);

		full |= DatumGetBool(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		ranges[2 * nranges] = DATE_NOT_FINITE(from) ? PG_INT32_MIN : cal_month_of_day(from);
		ranges[2 * nranges + 1] = open || DATE_NOT_FINITE(DatumGetDateADT(to)) ? PG_INT32_MAX :
			cal_month_of_day(DatumGetDateADT(to));
		nranges++;
	}

	/* the stored months and churn state; none means a full rebuild */
	ExecuteWithSnapshot(&ks, "SELECT month FROM dogdb.kpi_month_activity ORDER BY month", 0, NULL, NULL, true);
	tt = SPI_tuptable;
	nstored = SPI_processed;
	stored_months = palloc(sizeof(int32) * Max(nstored, 1));
	for (uint64 i = 0; i < nstored; i++)
	{
		bool		isnull;

		stored_months[i] = cal_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)));
	}
	ExecuteWithSnapshot(&ks, "SELECT account_ids, churn_months FROM dogdb.kpi_churn_state", 0, NULL, NULL, true);
	if (SPI_processed == 1)
	{
		bool		isnull;

		churn_ids = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		churn_months = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	}
	full |= (nstored == 0 || churn_ids == NULL);
	STEP("marks+state");

	LoadAccounts(&ks);
	ks.plans = LoadBillingPlans(CurrentMemoryContext, false, &ks.nplans);
	LoadSubscriptions(&ks);
	STEP("accounts+subscriptions");

	/* horizon: from the earliest account's first month to this month */
	lo = hi = ks.current_month;
	for (int i = 0; i < ks.naccounts; i++)
		lo = Min(lo, ks.accounts[i].first_month);
	if (!full)
	{
		lo = Min(lo, stored_months[0]);
		hi = Max(hi, stored_months[nstored - 1]);
	}
	SetHorizon(&ks, lo, hi);
	ks.churn = palloc(sizeof(int32) * Max(ks.naccounts, 1));
	for (int a = 0; a < ks.naccounts; a++)
		ks.churn[a] = CHURN_UNKNOWN;

	if (full)
	{
		static const char *const columns[] = {"account_id", "created_at"};

		/* the deltas are in the sessions our snapshot sees */
		ExecuteWithSnapshot(&ks, "DELETE FROM dogdb.kpi_session_deltas", 0, NULL, NULL, false);
		ScanTable(&ks, "sessions", columns, lengthof(columns), CountSession);
		FlushPending(&ks);
		for (int m = 0; m < ks.nmonths; m++)
			ks.months[m].activity_changed = ks.months[m].revenue_dirty = ks.months[m].facts_dirty = true;
		m0 = 0;
	}
	else
	{
		int32	   *deltas_m;
		int32	   *deltas_a;
		int64	   *deltas_n;
		uint64		ndeltas;
		ArrayBuildState *load = NULL;
		Oid			argtype = DATEARRAYOID;
		Datum		arg;

		LoadChurnState(&ks, churn_ids, churn_months);
		for (uint64 i = 0; i < nstored; i++)
			ks.months[stored_months[i] - ks.h0].stored = true;
		for (int r = 0; r < nranges; r++)
			for (int m = 0; m < ks.nmonths; m++)
				if (ks.h0 + m >= ranges[2 * r] && ks.h0 + m <= ranges[2 * r + 1])
					ks.months[m].revenue_dirty = true;

		/* the session deltas, and the months they reach */
		ExecuteWithSnapshot(&ks, "DELETE FROM dogdb.kpi_session_deltas RETURNING month, account_id, sessions",
							0, NULL, NULL, false);
		tt = SPI_tuptable;
		ndeltas = SPI_processed;
		deltas_m = palloc(sizeof(int32) * Max(ndeltas, 1));
		deltas_a = palloc(sizeof(int32) * Max(ndeltas, 1));
		deltas_n = palloc(sizeof(int64) * Max(ndeltas, 1));
		lo = ks.h0;
		hi = ks.h1;
		for (uint64 i = 0; i < ndeltas; i++)
		{
			bool		isnull;

			deltas_m[i] = cal_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)));
			deltas_a[i] = AccountIndex(&ks, DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)));
			deltas_n[i] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
			lo = Min(lo, deltas_m[i]);
			hi = Max(hi, deltas_m[i]);
		}
		WidenHorizon(&ks, lo, hi);

		/* from which month on churn may have changed */
		m0 = ks.nmonths;
		for (int m = 0; m < ks.nmonths; m++)
			if (!ks.months[m].stored)
			{
				ks.months[m].activity_changed = ks.months[m].revenue_dirty = true;
				m0 = Min(m0, m);
			}
		for (uint64 i = 0; i < ndeltas; i++)
			if (deltas_a[i] >= 0)
				m0 = Min(m0, deltas_m[i] - ks.h0);
		for (int a = 0; a < ks.naccounts; a++)
			if (ks.churn[a] == CHURN_UNKNOWN)
				m0 = Min(m0, Max(ks.accounts[a].first_month - ks.h0, 0));
		for (int m = 0; m < ks.nmonths; m++)
			ks.months[m].facts_dirty = (m >= m0 || ks.months[m].revenue_dirty);

		/* the stored counts of those months, then the deltas */
		for (int m = 0; m < ks.nmonths; m++)
			if (ks.months[m].facts_dirty && ks.months[m].stored)
				load = accumArrayResult(load, MonthDate(ks.h0 + m), false, DATEOID, CurrentMemoryContext);
		if (load != NULL)
		{
			arg = makeArrayResult(load, CurrentMemoryContext);
			ExecuteWithSnapshot(&ks, "SELECT month, account_ids, session_counts FROM dogdb.kpi_month_activity"
								" WHERE month = ANY ($1)", 1, &argtype, &arg, true);
			tt = SPI_tuptable;
			for (uint64 i = 0; i < SPI_processed; i++)
			{
				bool		isnull;
				int32		month = cal_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)));

				LoadStoredMonth(&ks, month,
								DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)),
								DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull)));
			}
		}
		for (uint64 i = 0; i < ndeltas; i++)
			if (deltas_a[i] >= 0)
			{
				AddCount(&ks, deltas_a[i], deltas_m[i], deltas_n[i]);
				ks.months[deltas_m[i] - ks.h0].activity_changed = true;
			}
	}
	STEP("counts");

	/* store the months whose counts changed */
	{
		Oid			argtypes[3] = {DATEOID, BYTEAOID, BYTEAOID};
		SPIPlanPtr	del = SPI_prepare("DELETE FROM dogdb.kpi_month_activity WHERE month = $1", 1, argtypes);
		SPIPlanPtr	ins = SPI_prepare("INSERT INTO dogdb.kpi_month_activity (month, account_ids, session_counts)"
									  " VALUES ($1, $2, $3)", 3, argtypes);

		if (full)
			SPI_execute("DELETE FROM dogdb.kpi_month_activity", false, 0);
		for (int m = 0; m < ks.nmonths; m++)
		{
			if (ks.months[m].activity_changed)
				StoreMonth(&ks, m, del, ins);
			months_done += ks.months[m].facts_dirty;
		}
	}
	STEP("store months");

	ks.cells = palloc0(sizeof(KpiCell) * ks.nmonths * NSIZES * (ks.nplans + 1));
	ks.old_cells = palloc0(sizeof(KpiCell) * ks.nmonths * NSIZES * (ks.nplans + 1));
	if (full)
		SPI_execute("DELETE FROM dogdb.kpi_facts", false, 0);
	else
		KeepFacts(&ks);
	ComputeFacts(&ks, m0);
	STEP("compute facts");
	if (full || ks.churn_changed)
		StoreChurnState(&ks);
	StoreFacts(&ks, changed);
	STEP("store facts");

	UnregisterSnapshot(ks.snapshot);
	SPI_finish();

	result[0] = Int32GetDatum(months_done);
	result[1] = BoolGetDatum(full);
	result[2] = BoolGetDatum(changed[0]);
	result[3] = BoolGetDatum(changed[1]);
	result[4] = BoolGetDatum(changed[2]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), result, rnulls)));
}
