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
 * The matrix is kept by month, a month's counts allocated only when that
 * month is loaded.  Account ids map to positions through a dense array when
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
#include "kpi_core.h"
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
	int32	   *dense;			/* id - min_id -> account index, or -1 */
	int64		min_id;
	int64		dense_len;

	BillingPlan *plans;
	int			nplans;
	ProrationSpan *spans;		/* by account, then first_day */

	int32		h0;				/* horizon: months [h0, h1] */
	int32		h1;
	int32		nmonths;
	int32	  **counts;			/* per month, NULL or per account session counts */
	bool	   *activity_changed;	/* per month: rewrite its state row */
	bool	   *revenue_dirty;	/* per month: recompute revenue */
	bool	   *facts_dirty;	/* per month: recompute its facts (counts loaded) */
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
	return kpi_month_of_timestamp(ts);
}

static Datum
MonthDate(int32 month)
{
	return DateADTGetDatum((DateADT) kpi_month_first_day(month));
}

/*
 * Accounts
 */
static int	accounts_cap;

static void
AddAccount(KpiState *ks, Datum *values, bool *nulls)
{
	KpiAccount *a;

	if (ks->naccounts == accounts_cap)
	{
		accounts_cap *= 2;
		ks->accounts = repalloc_huge(ks->accounts, sizeof(KpiAccount) * accounts_cap);
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

	accounts_cap = 1024;
	ks->accounts = palloc(sizeof(KpiAccount) * accounts_cap);
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
static KpiSpan *loaded_spans;
static int	nloaded_spans;
static int	loaded_spans_cap;

static void
AddSubscription(KpiState *ks, Datum *values, bool *nulls)
{
	int32		account = AccountIndex(ks, DatumGetInt64(values[0]));
	KpiSpan    *s;

	if (account < 0)
		return;
	if (nloaded_spans == loaded_spans_cap)
	{
		loaded_spans_cap *= 2;
		loaded_spans = repalloc_huge(loaded_spans, sizeof(KpiSpan) * loaded_spans_cap);
	}
	s = &loaded_spans[nloaded_spans++];
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

	loaded_spans_cap = 1024;
	nloaded_spans = 0;
	loaded_spans = palloc(sizeof(KpiSpan) * loaded_spans_cap);
	ScanTable(ks, "subscriptions", columns, lengthof(columns), AddSubscription);
	qsort(loaded_spans, nloaded_spans, sizeof(KpiSpan), CompareSpan);
	ks->spans = palloc(sizeof(ProrationSpan) * Max(nloaded_spans, 1));
	for (int i = 0; i < nloaded_spans; i++)
	{
		KpiAccount *a = &ks->accounts[loaded_spans[i].account];

		if (a->nspans == 0)
			a->span0 = i;
		a->nspans++;
		ks->spans[i] = loaded_spans[i].span;
	}
	pfree(loaded_spans);
}

/*
 * Session counts
 */
typedef struct MonthCount
{
	int32		account;
	int32		month;
	int64		count;
} MonthCount;

/* counts that arrive before the matrix exists, or outside its months */
static MonthCount *pending;
static int	npending;
static int	pending_cap;

static void
AddPending(int32 account, int32 month, int64 count)
{
	if (npending == pending_cap)
	{
		pending_cap = Max(1024, pending_cap * 2);
		pending = pending == NULL ? palloc(sizeof(MonthCount) * pending_cap) :
			repalloc_huge(pending, sizeof(MonthCount) * pending_cap);
	}
	pending[npending].account = account;
	pending[npending].month = month;
	pending[npending].count = count;
	npending++;
}

static void
AllocateMatrix(KpiState *ks)
{
	ks->counts = palloc0(sizeof(int32 *) * ks->nmonths);
	ks->activity_changed = palloc0(sizeof(bool) * ks->nmonths);
	ks->revenue_dirty = palloc0(sizeof(bool) * ks->nmonths);
	ks->facts_dirty = palloc0(sizeof(bool) * ks->nmonths);
}

/* the session counts of month m (from h0), allocated when first needed */
static inline int32 *
MonthRow(KpiState *ks, int32 m)
{
	if (ks->counts[m] == NULL)
		ks->counts[m] = palloc_extended(sizeof(int32) * Max(ks->naccounts, 1),
										MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	return ks->counts[m];
}

/* the count of (account, month m from h0); 0 for months not loaded */
static inline int32
CountOf(KpiState *ks, int32 account, int32 m)
{
	return ks->counts[m] == NULL ? 0 : ks->counts[m][account];
}

/* add count to (account, month); months outside the horizon wait in pending */
static inline void
AddCount(KpiState *ks, int32 account, int32 month, int64 count)
{
	int32	   *cell;
	int64		sum;

	if (month < ks->h0 || month > ks->h1)
	{
		AddPending(account, month, count);
		return;
	}
	cell = &MonthRow(ks, month - ks->h0)[account];
	sum = (int64) *cell + count;
	*cell = (int32) Max(0, Min(sum, PG_INT32_MAX));
}

/* widen the horizon to [h0, h1] (copying the matrix), then add pending counts */
static void
WidenHorizon(KpiState *ks, int32 h0, int32 h1)
{
	if (h0 < ks->h0 || h1 > ks->h1)
	{
		int32		old_h0 = ks->h0;
		int32		old_n = ks->nmonths;
		int32	  **old_counts = ks->counts;
		bool	   *old_changed = ks->activity_changed;
		bool	   *old_dirty = ks->revenue_dirty;
		bool	   *old_facts = ks->facts_dirty;

		ks->h0 = Min(h0, ks->h0);
		ks->h1 = Max(h1, ks->h1);
		ks->nmonths = ks->h1 - ks->h0 + 1;
		AllocateMatrix(ks);
		for (int m = 0; m < old_n; m++)
		{
			ks->counts[m + old_h0 - ks->h0] = old_counts[m];
			ks->activity_changed[m + old_h0 - ks->h0] = old_changed[m];
			ks->revenue_dirty[m + old_h0 - ks->h0] = old_dirty[m];
			ks->facts_dirty[m + old_h0 - ks->h0] = old_facts[m];
		}
		/* new months need everything */
		for (int m = 0; m < ks->nmonths; m++)
			if (m < old_h0 - ks->h0 || m >= old_h0 - ks->h0 + old_n)
				ks->activity_changed[m] = ks->revenue_dirty[m] = ks->facts_dirty[m] = true;
		pfree(old_counts);
		pfree(old_changed);
		pfree(old_dirty);
		pfree(old_facts);
	}
}

static void
FlushPending(KpiState *ks)
{
	int32		lo = ks->h0,
				hi = ks->h1;
	int			n = npending;

	for (int i = 0; i < n; i++)
	{
		lo = Min(lo, pending[i].month);
		hi = Max(hi, pending[i].month);
	}
	WidenHorizon(ks, lo, hi);
	npending = 0;
	for (int i = 0; i < n; i++)
	{
		AddCount(ks, pending[i].account, pending[i].month, pending[i].count);
		ks->activity_changed[pending[i].month - ks->h0] = true;
	}
}

/* the full scan's hot loop: one session */
static int64 scan_lo,
			scan_hi;			/* [lo, hi): timestamps of scan_month */
static int32 scan_month;

static void
CountSession(KpiState *ks, Datum *values, bool *nulls)
{
	int32		account = AccountIndex(ks, DatumGetInt64(values[0]));
	TimestampTz ts = DatumGetTimestampTz(values[1]);

	if (account < 0)
		return;
	if (ts < scan_lo || ts >= scan_hi)
	{
		scan_month = MonthOfTimestamp(ts, "session time");
		scan_lo = kpi_month_first_day(scan_month) * USECS_PER_DAY;
		scan_hi = kpi_month_first_day(scan_month + 1) * USECS_PER_DAY;
	}
	if (scan_month >= ks->h0 && scan_month <= ks->h1)
	{
		int32	   *cell = &MonthRow(ks, scan_month - ks->h0)[account];

		if (*cell < PG_INT32_MAX)
			(*cell)++;
	}
	else
		AddPending(account, scan_month, 1);
}

/*
 * Reading and writing the stored matrix
 */
static void
LoadStoredMonth(KpiState *ks, int32 month, bytea *ids, bytea *counts)
{
	Size		n = (VARSIZE_ANY_EXHDR(ids)) / sizeof(int64);
	const char *idp = VARDATA_ANY(ids);
	const char *cp = VARDATA_ANY(counts);

	if (VARSIZE_ANY_EXHDR(ids) % sizeof(int64) != 0 || VARSIZE_ANY_EXHDR(counts) != n * sizeof(int32))
		elog(ERROR, "dogdb.kpi_month_activity row for %s is corrupt; run dogdb_refresh_kpis(true)",
			 DatumGetCString(DirectFunctionCall1(date_out, MonthDate(month))));
	for (Size i = 0; i < n; i++)
	{
		int64		id;
		int32		c;
		int32		account;

		memcpy(&id, idp + i * sizeof(int64), sizeof(int64));
		memcpy(&c, cp + i * sizeof(int32), sizeof(int32));
		account = AccountIndex(ks, id);
		if (account >= 0)
			AddCount(ks, account, month, c);
	}
}

static void
StoreMonth(KpiState *ks, int32 m, SPIPlanPtr del, SPIPlanPtr ins)
{
	Size		n = 0;
	bytea	   *ids;
	bytea	   *counts;
	Datum		args[3];

	for (int a = 0; a < ks->naccounts; a++)
		n += CountOf(ks, a, m) > 0;
	ids = palloc(VARHDRSZ + n * sizeof(int64));
	counts = palloc(VARHDRSZ + n * sizeof(int32));
	SET_VARSIZE(ids, VARHDRSZ + n * sizeof(int64));
	SET_VARSIZE(counts, VARHDRSZ + n * sizeof(int32));
	n = 0;
	for (int a = 0; a < ks->naccounts; a++)
	{
		int32		c = CountOf(ks, a, m);

		if (c > 0)
		{
			memcpy(VARDATA(ids) + n * sizeof(int64), &ks->accounts[a].id, sizeof(int64));
			memcpy(VARDATA(counts) + n * sizeof(int32), &c, sizeof(int32));
			n++;
		}
	}
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
	Size		n = VARSIZE_ANY_EXHDR(ids) / sizeof(int64);

	if (VARSIZE_ANY_EXHDR(ids) % sizeof(int64) != 0 || VARSIZE_ANY_EXHDR(months) != n * sizeof(int32))
		elog(ERROR, "dogdb.kpi_churn_state is corrupt; run dogdb_refresh_kpis(true)");
	for (Size i = 0; i < n; i++)
	{
		int64		id;
		int32		c;
		int32		account;

		memcpy(&id, VARDATA_ANY(ids) + i * sizeof(int64), sizeof(int64));
		memcpy(&c, VARDATA_ANY(months) + i * sizeof(int32), sizeof(int32));
		account = AccountIndex(ks, id);
		if (account >= 0)
			ks->churn[account] = c;
	}
}

static void
StoreChurnState(KpiState *ks)
{
	bytea	   *ids = palloc(VARHDRSZ + (Size) ks->naccounts * sizeof(int64));
	bytea	   *months = palloc(VARHDRSZ + (Size) ks->naccounts * sizeof(int32));
	Oid			argtypes[2] = {BYTEAOID, BYTEAOID};
	Datum		args[2];

	SET_VARSIZE(ids, VARHDRSZ + (Size) ks->naccounts * sizeof(int64));
	SET_VARSIZE(months, VARHDRSZ + (Size) ks->naccounts * sizeof(int32));
	for (int a = 0; a < ks->naccounts; a++)
	{
		memcpy(VARDATA(ids) + (Size) a * sizeof(int64), &ks->accounts[a].id, sizeof(int64));
		memcpy(VARDATA(months) + (Size) a * sizeof(int32), &ks->churn[a], sizeof(int32));
	}
	args[0] = PointerGetDatum(ids);
	args[1] = PointerGetDatum(months);
	SPI_execute("DELETE FROM dogdb.kpi_churn_state", false, 0);
	SPI_execute_with_args("INSERT INTO dogdb.kpi_churn_state (account_ids, churn_months) VALUES ($1, $2)",
						  2, argtypes, args, NULL, false, 0);
}

/*
 * Facts
 */
static inline KpiCell *
Cell(KpiState *ks, int32 m, int size, int tier)
{
	return &ks->cells[((Size) m * NSIZES + size) * (ks->nplans + 1) + tier];
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
	int64		d = kpi_month_first_day(ks->h0 + m);
	int64		next = kpi_month_first_day(ks->h0 + m + 1);
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
		int32		m = kpi_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull))) - ks->h0;
		char	   *size = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
		char	   *tier = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
		int			si = 0,
					ti = ks->nplans;
		KpiCell    *c;
		KpiCell    *o;

		if (m < 0 || m >= ks->nmonths)
			continue;
		while (si < NSIZES - 1 && strcmp(size_names[si], size) != 0)
			si++;
		for (int p = 0; p < ks->nplans; p++)
			if (strcmp(ks->plans[p].name, tier) == 0)
				ti = p;
		o = &ks->old_cells[((Size) m * NSIZES + si) * (ks->nplans + 1) + ti];
		o->active += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
		o->churned += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
		o->sessions += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 6, &isnull));
		o->revenue += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 7, &isnull));
		if (ks->revenue_dirty[m])
			continue;
		c = Cell(ks, m, si, ti);
		c->revenue += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 7, &isnull));
		if (!ks->facts_dirty[m])
		{
			c->active += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull));
			c->churned += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 5, &isnull));
			c->sessions += DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 6, &isnull));
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
		if (ks->facts_dirty[m])
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
		if (*churn != CHURN_NONE && ks->facts_dirty[*churn - ks->h0])
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
			if (ks->revenue_dirty[m] && a->nspans > 0)
			{
				int64		start = kpi_month_first_day(ks->h0 + m);
				ProrationStatus st = prorate_account(start, kpi_month_first_day(ks->h0 + m + 1),
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
				Size		i = ((Size) m * NSIZES + s) * (ks->nplans + 1) + t;
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
	ks.current_month = kpi_month_of_timestamp(GetCurrentTransactionStartTimestamp());

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
		ranges[2 * nranges] = DATE_NOT_FINITE(from) ? PG_INT32_MIN : kpi_month_of_day(from);
		ranges[2 * nranges + 1] = open || DATE_NOT_FINITE(DatumGetDateADT(to)) ? PG_INT32_MAX :
			kpi_month_of_day(DatumGetDateADT(to));
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

		stored_months[i] = kpi_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)));
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
	ks.h0 = lo;
	ks.h1 = hi;
	ks.nmonths = hi - lo + 1;
	AllocateMatrix(&ks);
	pending = NULL;				/* the last call's memory is gone */
	npending = pending_cap = 0;
	ks.churn = palloc(sizeof(int32) * Max(ks.naccounts, 1));
	for (int a = 0; a < ks.naccounts; a++)
		ks.churn[a] = CHURN_UNKNOWN;

	if (full)
	{
		static const char *const columns[] = {"account_id", "created_at"};

		/* the deltas are in the sessions our snapshot sees */
		ExecuteWithSnapshot(&ks, "DELETE FROM dogdb.kpi_session_deltas", 0, NULL, NULL, false);
		scan_lo = scan_hi = 0;
		ScanTable(&ks, "sessions", columns, lengthof(columns), CountSession);
		FlushPending(&ks);
		for (int m = 0; m < ks.nmonths; m++)
			ks.activity_changed[m] = ks.revenue_dirty[m] = ks.facts_dirty[m] = true;
		m0 = 0;
	}
	else
	{
		bool	   *had_row = palloc0(sizeof(bool) * ks.nmonths);
		int32	   *deltas_m;
		int32	   *deltas_a;
		int64	   *deltas_n;
		uint64		ndeltas;
		ArrayBuildState *load = NULL;
		Oid			argtype = DATEARRAYOID;
		Datum		arg;

		LoadChurnState(&ks, churn_ids, churn_months);
		for (uint64 i = 0; i < nstored; i++)
			had_row[stored_months[i] - ks.h0] = true;
		for (int r = 0; r < nranges; r++)
			for (int m = 0; m < ks.nmonths; m++)
				if (ks.h0 + m >= ranges[2 * r] && ks.h0 + m <= ranges[2 * r + 1])
					ks.revenue_dirty[m] = true;

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

			deltas_m[i] = kpi_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)));
			deltas_a[i] = AccountIndex(&ks, DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)));
			deltas_n[i] = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
			lo = Min(lo, deltas_m[i]);
			hi = Max(hi, deltas_m[i]);
		}
		{
			int32		old_h0 = ks.h0;
			int32		old_n = ks.nmonths;
			bool	   *old_had = had_row;

			WidenHorizon(&ks, lo, hi);
			had_row = palloc0(sizeof(bool) * ks.nmonths);
			for (int m = 0; m < old_n; m++)
				had_row[m + old_h0 - ks.h0] = old_had[m];
		}

		/* from which month on churn may have changed */
		m0 = ks.nmonths;
		for (int m = 0; m < ks.nmonths; m++)
			if (!had_row[m])
			{
				ks.activity_changed[m] = ks.revenue_dirty[m] = true;
				m0 = Min(m0, m);
			}
		for (uint64 i = 0; i < ndeltas; i++)
			if (deltas_a[i] >= 0)
				m0 = Min(m0, deltas_m[i] - ks.h0);
		for (int a = 0; a < ks.naccounts; a++)
			if (ks.churn[a] == CHURN_UNKNOWN)
				m0 = Min(m0, Max(ks.accounts[a].first_month - ks.h0, 0));
		for (int m = 0; m < ks.nmonths; m++)
			ks.facts_dirty[m] = (m >= m0 || ks.revenue_dirty[m]);

		/* the stored counts of those months, then the deltas */
		for (int m = 0; m < ks.nmonths; m++)
			if (ks.facts_dirty[m] && had_row[m])
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
				int32		month = kpi_month_of_day(DatumGetDateADT(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull)));

				LoadStoredMonth(&ks, month,
								DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull)),
								DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull)));
			}
		}
		for (uint64 i = 0; i < ndeltas; i++)
			if (deltas_a[i] >= 0)
			{
				AddCount(&ks, deltas_a[i], deltas_m[i], deltas_n[i]);
				ks.activity_changed[deltas_m[i] - ks.h0] = true;
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
			if (ks.activity_changed[m])
				StoreMonth(&ks, m, del, ins);
			months_done += ks.facts_dirty[m];
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
