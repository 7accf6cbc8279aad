/*-------------------------------------------------------------------------
 *
 * kpi_scan.c
 *	  The KPI engine's reads of the source tables (kpi.h): accounts and
 *	  their index, subscriptions, and the full scan of the sessions, all
 *	  with heap scans under the refresh's snapshot, without the executor.
 *
 * Account ids map to positions through a dense array when the ids are
 * compact (the usual case), else through binary search.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

const char *const kpi_size_names[KPI_NSIZES] = {"small", "large", "unknown"};

int64		kpi_month_days[KPI_NMONTHS + 1];

/* fill kpi_month_days once per backend */
void
KpiInitMonthDays(void)
{
	if (kpi_month_days[1] != 0)
		return;
	for (int32 m = KPI_MIN_MONTH; m <= KPI_MAX_MONTH + 1; m++)
		kpi_month_days[m - KPI_MIN_MONTH] = cal_month_first_day(m);
}

typedef void (*KpiRowFn) (KpiState *ks, void *arg, Datum *values, bool *nulls);

/* every row of dogdb.<relname>, the given columns, under the snapshot */
static void
ScanTable(KpiState *ks, const char *relname, const char *const *columns, int ncolumns,
		  KpiRowFn fn, void *arg)
{
	Oid			relid = DogdbRelationId(relname);
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
			elog(ERROR, "column \"%s\" of %s.%s is missing", columns[i], DOGDB_SCHEMA, relname);
		maxatt = Max(maxatt, attnums[i]);
	}
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, ks->snapshot, 0, NULL);
	if (rel->rd_rel->relam == HEAP_TABLE_AM_OID)
	{
		/*
		 * a heap: its tuples read in place, without a slot; one pass over
		 * the attributes when a column follows one of variable width
		 */
		TupleDesc	desc = RelationGetDescr(rel);
		HeapTuple	tuple;
		bool		deform = false;
		Datum	   *all = NULL;
		bool	   *allnulls = NULL;

		for (int i = 0; i < ncolumns; i++)
			deform |= TupleDescAttr(desc, attnums[i] - 1)->attcacheoff < 0 && attnums[i] > 1;
		if (deform)
		{
			all = palloc(sizeof(Datum) * desc->natts);
			allnulls = palloc(sizeof(bool) * desc->natts);
		}
		while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			if (deform)
				heap_deform_tuple(tuple, desc, all, allnulls);
			for (int i = 0; i < ncolumns; i++)
			{
				if (deform)
				{
					values[i] = all[attnums[i] - 1];
					nulls[i] = allnulls[attnums[i] - 1];
				}
				else
					values[i] = DogdbHeapGetAttr(tuple, attnums[i], desc, &nulls[i]);
			}
			fn(ks, arg, values, nulls);
			if ((++n & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
	}
	else
		while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
		{
			slot_getsomeattrs(slot, maxatt);
			for (int i = 0; i < ncolumns; i++)
			{
				values[i] = slot->tts_values[attnums[i] - 1];
				nulls[i] = slot->tts_isnull[attnums[i] - 1];
			}
			fn(ks, arg, values, nulls);
			if ((++n & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
		}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, AccessShareLock);
}


/*
 * Accounts
 */
typedef struct AccountLoad
{
	int			cap;
} AccountLoad;

static void
AddAccount(KpiState *ks, void *arg, Datum *values, bool *nulls)
{
	AccountLoad *load = arg;
	KpiAccount *a;
	TimestampTz created = DatumGetTimestampTz(values[2]);

	if (ks->naccounts == load->cap)
	{
		load->cap *= 2;
		ks->accounts = repalloc_huge(ks->accounts, sizeof(KpiAccount) * load->cap);
	}
	a = &ks->accounts[ks->naccounts++];
	a->id = DatumGetInt64(values[0]);
	a->size = 2;
	if (!nulls[1])
	{
		text	   *size = DatumGetTextPP(values[1]);

		for (int i = 0; i < 2; i++)
			if (VARSIZE_ANY_EXHDR(size) == strlen(kpi_size_names[i]) &&
				memcmp(VARDATA_ANY(size), kpi_size_names[i], strlen(kpi_size_names[i])) == 0)
				a->size = i;
	}
	a->first_month = KpiHorizonMonth(created);
	if (!KpiInHorizon(a->first_month))
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("account %lld was created outside the KPI horizon: %s",
						(long long) a->id, timestamptz_to_str(created)),
				 errdetail("KPIs cover the UTC months from 2000-01 through 2199-12."),
				 errhint("Correct the account's created_at, and restore the constraint "
						 "accounts_created_at_kpi_horizon on dogdb.accounts.")));
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

/* every account, sorted by id, and the dense index when ids are compact */
void
KpiLoadAccounts(KpiState *ks)
{
	static const char *const columns[] = {"account_id", "company_size", "created_at"};
	AccountLoad load = {1024};

	ks->accounts = palloc(sizeof(KpiAccount) * load.cap);
	ks->naccounts = 0;
	ScanTable(ks, "accounts", columns, lengthof(columns), AddAccount, &load);
	qsort(ks->accounts, ks->naccounts, sizeof(KpiAccount), CompareAccountId);

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
int32
KpiAccountIndex(KpiState *ks, int64 id)
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
 * Subscriptions: each account's spans, sorted by first day
 */
typedef struct KpiSpan
{
	int32		account;		/* index into accounts */
	ProrationSpan span;
} KpiSpan;

typedef struct SpanLoad
{
	KpiSpan    *spans;
	int			n;
	int			cap;
} SpanLoad;

static void
AddSubscription(KpiState *ks, void *arg, Datum *values, bool *nulls)
{
	SpanLoad   *load = arg;
	int32		account = KpiAccountIndex(ks, DatumGetInt64(values[0]));
	KpiSpan    *s;

	if (account < 0)
		return;
	if (load->n == load->cap)
	{
		load->cap *= 2;
		load->spans = repalloc_huge(load->spans, sizeof(KpiSpan) * load->cap);
	}
	s = &load->spans[load->n++];
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

/* every subscription of a known account into ks->spans (plans loaded) */
void
KpiLoadSubscriptions(KpiState *ks)
{
	static const char *const columns[] = {"account_id", "plan_id", "valid_from", "valid_to"};
	SpanLoad	load = {NULL, 0, 1024};

	load.spans = palloc(sizeof(KpiSpan) * load.cap);
	ScanTable(ks, "subscriptions", columns, lengthof(columns), AddSubscription, &load);
	qsort(load.spans, load.n, sizeof(KpiSpan), CompareSpan);
	ks->spans = palloc_extended(sizeof(ProrationSpan) * Max(load.n, 1), MCXT_ALLOC_HUGE);
	ks->subscriptions_loaded = true;
	for (int i = 0; i < load.n; i++)
	{
		KpiAccount *a = &ks->accounts[load.spans[i].account];

		if (a->nspans == 0)
			a->span0 = i;
		a->nspans++;
		ks->spans[i] = load.spans[i].span;
	}
	pfree(load.spans);
}

/*
 * Sessions: the serial full count (kpi_count.c has the loop)
 */
static int32
LeaderIndexOf(void *arg, int64 id)
{
	return KpiAccountIndex((KpiState *) arg, id);
}

static int32 *
LeaderRowOf(void *arg, int32 month)
{
	return KpiMonthRow((KpiState *) arg, month);
}

/* the leader's counter: straight into the matrix (indexed by account) */
void
KpiLeaderCounter(KpiState *ks, Relation rel, KpiCounter *kc)
{
	memset(kc, 0, sizeof(*kc));
	kc->account_att = get_attnum(RelationGetRelid(rel), "account_id");
	kc->created_att = get_attnum(RelationGetRelid(rel), "created_at");
	if (kc->account_att == InvalidAttrNumber || kc->created_att == InvalidAttrNumber)
		elog(ERROR, "column account_id or created_at of %s.sessions is missing", DOGDB_SCHEMA);
	if (ks->dense != NULL)
	{
		kc->min_id = ks->min_id;
		kc->dense_len = ks->dense_len;
		/* ids without holes: the offset is the index */
		kc->map = ks->dense_len == ks->naccounts ? NULL : ks->dense;
	}
	else
		kc->index_of = LeaderIndexOf;
	kc->row_of = LeaderRowOf;
	kc->arg = ks;
}

static void
CountSession(KpiState *ks, void *arg, Datum *values, bool *nulls)
{
	if (!nulls[0] && !nulls[1])
		KpiCountRow((KpiCounter *) arg, DatumGetInt64(values[0]), DatumGetTimestampTz(values[1]));
}

/* count every session of dogdb.sessions into the matrix; load the subscriptions if not yet */
void
KpiCountSessions(KpiState *ks)
{
	uint64		outside;

	if (!KpiCountSessionsParallel(ks, &outside))
	{
		Relation	rel = table_open(DogdbRelationId("sessions"), AccessShareLock);
		KpiCounter	kc;

		if (!ks->subscriptions_loaded)
			KpiLoadSubscriptions(ks);
		KpiLeaderCounter(ks, rel, &kc);
		if (rel->rd_rel->relam == HEAP_TABLE_AM_OID)
		{
			TableScanDesc scan;

			if (pg_class_aclcheck(RelationGetRelid(rel), GetUserId(), ACL_SELECT) != ACLCHECK_OK)
				aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "sessions");
			scan = table_beginscan_strat(rel, ks->snapshot, 0, NULL, true, false);
			KpiCountBlocks(scan, 0, ((HeapScanDesc) scan)->rs_nblocks, &kc);
			table_endscan(scan);
		}
		else
		{
			static const char *const columns[] = {"account_id", "created_at"};

			ScanTable(ks, "sessions", columns, lengthof(columns), CountSession, &kc);
		}
		table_close(rel, AccessShareLock);
		outside = kc.outside;
	}
	if (outside > 0)
		ereport(WARNING,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("%llu sessions outside the KPI horizon were ignored", (unsigned long long) outside),
				 errdetail("KPIs cover the UTC months from 2000-01 through 2199-12."),
				 errhint("Restore the constraint sessions_created_at_kpi_horizon on dogdb.sessions.")));
}
