/*-------------------------------------------------------------------------
 *
 * kpi.h
 *	  The KPI engine behind dogdb_refresh_kpis(): brings
 *	  dogdb_internal.kpi_facts up to date, which the materialized views dogdb.kpi_retention, kpi_usage
 *	  and kpi_revenue publish.
 *
 * Design note.  The facts are, per month, company size and tier (plan_id):
 * active accounts, churned accounts, sessions and revenue.  Everything but
 * revenue follows from one matrix of session counts per account and month;
 * revenue follows from the subscriptions and prices (the invoice rules,
 * proration.c).
 *
 * The horizon.  Months are integers (calendar.h); the engine knows the
 * months KPI_MIN_MONTH..KPI_MAX_MONTH (2000-01 through 2199-12), which the
 * CHECK constraints on dogdb.accounts.created_at and dogdb.sessions.created_at
 * enforce when rows are written.  The month array is that fixed range, a
 * month's counts allocated only when it is touched, so no allocation grows
 * with the distance between data points.  Should a row outside the horizon
 * exist anyway (the constraints dropped), an account is refused with an
 * error naming it, and a session or queued delta outside it is ignored by
 * both the full and the incremental path, so neither stalls.
 *
 * What the facts cover: active accounts and sessions in every month with
 * sessions; churn (the first month without a session, from the account's
 * first month) and revenue in the months [first month of any account,
 * current month].  Those two months are stored (kpi_coverage), so an
 * incremental refresh knows which months are new.
 *
 * The stored state (dogdb_internal) is small rows keyed by block of
 * accounts, block = account_id >> KPI_BLOCK_SHIFT, slot = the low bits, so
 * that a change rewrites the rows of the blocks it touches, never a value
 * holding every account: kpi_month_activity has per (month, block) each
 * slot's session count and tier (plan_id) that month; kpi_churn_state per
 * block each slot's first month, churn month and company size;
 * kpi_coverage the months the last refresh covered.  Rows are fixed-size
 * (2 kB for most month rows, 5 kB) and stored PLAIN: one heap tuple, no
 * TOAST.
 *
 * What changed is read from plain tables (kpi_session_deltas,
 * kpi_dirty_accounts, kpi_dirty_months), filled on a single node by the
 * statement triggers; a path without triggers (Citus) can fill the same
 * tables, and the engine does not care who did.  Not yet proportional: a
 * subscription change marks the months from its valid_from on, so its
 * refresh reloads every account and subscription and recomputes those
 * months (a per-account path would need each account's old revenue).
 *
 * dogdb_refresh_kpis() (kpi_top.c, in C) runs the engine, then brings the
 * views up to date: in place from the facts the engine noted as changed
 * (kpi_publish.c), or by REFRESH ... CONCURRENTLY after a rebuild.
 *
 * A refresh takes one of three paths (kpi_refresh.c):
 * - nothing queued and the same current month: return after heap scans of
 *   the queue tables and the coverage row, before any SPI statement (no
 *   view is touched);
 * - only session deltas (kpi_delta.c): read the (month, block) rows and the
 *   account blocks the deltas touch, apply each account's old and new
 *   contribution to its cells (active, sessions; churn where its churn
 *   month moves) as differences to kpi_facts, and rewrite those rows.
 *   The tier of every slot is stored per month, so no subscription is
 *   read;
 * - anything else (accounts, subscriptions, prices, a new month, a full
 *   rebuild): load accounts, plans and subscriptions, read back the months
 *   that must be recomputed, recompute their facts (kpi_facts.c) and
 *   rewrite those months' rows (kpi_matrix.c).  A full rebuild counts the
 *   sessions with one heap scan split between the leader and a parallel
 *   worker, the heap's blocks handed out in chunks while the leader loads
 *   the subscriptions (kpi_scan.c, kpi_parallel.c).
 *
 * One snapshot serves the whole refresh (kpi_refresh.c): it is the active
 * snapshot for every read, and the marks and deltas consumed are deleted
 * under it, so a change committed meanwhile is neither lost nor counted
 * twice; it waits for the next refresh.  Refreshes serialize on an
 * EXCLUSIVE lock on dogdb_internal.kpi_month_activity (readers are not
 * blocked).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_KPI_H
#define DOGDB_KPI_H

#include "access/relscan.h"
#include "datatype/timestamp.h"
#include "executor/spi.h"
#include "storage/block.h"
#include "utils/snapshot.h"

#include "billing.h"

/* the horizon: months since 2000-01, 2000-01 through 2199-12 */
#define KPI_MIN_MONTH 0
#define KPI_MAX_MONTH (200 * 12 - 1)
#define KPI_NMONTHS (KPI_MAX_MONTH - KPI_MIN_MONTH + 1)

/* the stored state's blocks of accounts */
#define KPI_BLOCK_SHIFT 10
#define KPI_BLOCK_SLOTS (1 << KPI_BLOCK_SHIFT)
#define KpiBlockOf(id) ((id) >> KPI_BLOCK_SHIFT)
#define KpiSlotOf(id) ((int) ((id) & (KPI_BLOCK_SLOTS - 1)))
#define KPI_NO_PLAN PG_INT16_MIN	/* stored tier of an account without a plan */
#define KPI_NO_ACCOUNT PG_INT16_MIN /* stored first month of an empty slot */

/* company sizes: index into kpi_size_names */
#define KPI_NSIZES 3
extern const char *const kpi_size_names[KPI_NSIZES];

/* churn months of accounts */
#define CHURN_NONE (-1)			/* no month without a session so far */
#define CHURN_UNKNOWN (-2)		/* to be computed from the first month */

typedef struct KpiAccount
{
	int64		id;
	int32		first_month;
	int32		size;			/* index into kpi_size_names */
	int32		span0;			/* its subscriptions: spans[span0 .. span0 + nspans) */
	int32		nspans;
} KpiAccount;

/* one month of the horizon */
typedef struct KpiMonth
{
	int32	   *counts;			/* session counts per account, NULL until touched */
	bool		stored;			/* it has a row in dogdb_internal.kpi_month_activity */
	bool		loaded;			/* that row has been read into counts */
	bool		activity_changed;	/* rewrite that row */
	bool		revenue_dirty;	/* recompute its revenue and tiers */
	bool		facts_dirty;	/* recompute its facts (its counts are loaded) */
	int16	   *tiers;			/* per account, its tier, if kept (a full rebuild) */
} KpiMonth;

typedef struct KpiCell
{
	int64		active;
	int64		churned;
	int64		sessions;
	int64		revenue;
} KpiCell;

/* a fact that changed: (month, size, plan_id, KPI_NO_PLAN for none), its old and new values */
typedef struct KpiFactChange
{
	int32		month;
	int			size;
	int16		plan_id;
	KpiCell		old;
	KpiCell		new;
} KpiFactChange;

typedef struct KpiState
{
	Snapshot	snapshot;		/* every read of the refresh */
	MemoryContext cxt;			/* the refresh's: matrix, cells */
	MemoryContext tmpcxt;		/* reset per iteration of the load/store loops */
	int32		current_month;

	KpiAccount *accounts;		/* sorted by id */
	int			naccounts;
	int32	   *dense;			/* id - min_id -> account index, or -1 */
	int64		min_id;
	int64		dense_len;

	BillingPlan *plans;			/* sorted by plan_id; tier nplans = no plan */
	int			nplans;
	ProrationSpan *spans;		/* by account, then first_day */
	bool		subscriptions_loaded;	/* spans are loaded */
	struct KpiParallelCount *parallel_count;	/* a count started early (KpiCountStart) */

	KpiMonth	months[KPI_NMONTHS];	/* month m at months[m - KPI_MIN_MONTH] */
	int32		first_month;	/* churn and revenue: [first_month, current_month] */
	int32	   *churn;			/* per account: churn month, CHURN_NONE or CHURN_UNKNOWN */
	bool		churn_changed;	/* rewrite the churn state */

	int32		cell0;			/* cells cover months [cell0, cell1] */
	int32		cell1;
	KpiCell    *cells;			/* by month, size, tier */
	KpiCell    *old_cells;		/* the same, as dogdb_internal.kpi_facts has them */
	bool		facts_dropped;	/* facts of gone plans or months were deleted */
	bool		keep_tiers;		/* KpiComputeFacts keeps the tiers of the dirty months */

	/* the facts that changed, for the views (kpi_publish.c) */
	MemoryContext pubcxt;		/* NULL: not noted */
	KpiFactChange *pub;
	int			npub;
	int			pubcap;
	bool		pub_unknown;	/* changes not noted (a rebuild): refresh the views */
} KpiState;

static inline KpiMonth *
KpiMonthOf(KpiState *ks, int32 month)
{
	Assert(month >= KPI_MIN_MONTH && month <= KPI_MAX_MONTH);
	return &ks->months[month - KPI_MIN_MONTH];
}

/* the count of (account, month); 0 for months not touched */
static inline int32
KpiCountOf(KpiState *ks, int32 account, int32 month)
{
	KpiMonth   *km = KpiMonthOf(ks, month);

	return km->counts == NULL ? 0 : km->counts[account];
}

/* the first day of each month of the horizon and the one after (KpiInitMonthDays) */
extern int64 kpi_month_days[KPI_NMONTHS + 1];
extern void KpiInitMonthDays(void);

/* cal_month_first_day() of a month in [KPI_MIN_MONTH, KPI_MAX_MONTH + 1], by table */
static inline int64
KpiMonthFirstDay(int32 month)
{
	Assert(month >= KPI_MIN_MONTH && month <= KPI_MAX_MONTH + 1);
	return kpi_month_days[month - KPI_MIN_MONTH];
}

static inline bool
KpiInHorizon(int32 month)
{
	return month >= KPI_MIN_MONTH && month <= KPI_MAX_MONTH;
}

/* a tier as kpi_month_activity stores it: its plan_id, KPI_NO_PLAN for none */
static inline int16
KpiStoredTier(KpiState *ks, int tier)
{
	return tier == ks->nplans ? KPI_NO_PLAN : (int16) ks->plans[tier].plan.plan_id;
}

/* kpi_scan.c: the source tables, read with the refresh's snapshot */
extern void KpiLoadAccounts(KpiState *ks);
extern int32 KpiAccountIndex(KpiState *ks, int64 id);
extern void KpiLoadSubscriptions(KpiState *ks);
extern void KpiCountSessions(KpiState *ks);

/*
 * kpi_count.c: where the session count puts a session.  Its account's
 * index is index_of(arg, id) if set, else id - min_id mapped through map
 * (none: the offset itself); -1 or out of range: no such account.  Its
 * month's row is row_of(arg, month), indexed by that index, asked once
 * per month; a NULL row sends the session to elsewhere(arg, month, index).
 */
typedef struct KpiCounter
{
	AttrNumber	account_att;
	AttrNumber	created_att;
	int64		min_id;
	int64		dense_len;
	const int32 *map;
	int32		(*index_of) (void *arg, int64 id);
	int32	   *(*row_of) (void *arg, int32 month);
	void		(*elsewhere) (void *arg, int32 month, int64 index);
	void	   *arg;
	uint64		outside;		/* sessions outside the horizon */
	int32	   *rows[KPI_NMONTHS];	/* row_of() of each month, once known */
} KpiCounter;

extern int32 KpiHorizonMonth(TimestampTz ts);
extern void KpiLeaderCounter(KpiState *ks, Relation rel, KpiCounter *kc);
extern void KpiCountRow(KpiCounter *kc, int64 id, TimestampTz ts);
extern void KpiCountBlocks(TableScanDesc scan, BlockNumber start, BlockNumber end, KpiCounter *kc);

/* kpi_matrix.c: the session matrix and its stored form */
extern int32 *KpiMonthRow(KpiState *ks, int32 month);
extern void KpiAddCount(KpiState *ks, int32 account, int32 month, int64 count);
extern bool KpiMonthHasSessions(KpiState *ks, int32 month);
extern void KpiListStoredMonths(KpiState *ks);
extern void KpiLoadStoredMonths(KpiState *ks);
extern void KpiForEachRow(const char *query, int nargs, Oid *argtypes, Datum *args,
						  void (*fn) (void *arg, HeapTuple tup, TupleDesc desc), void *arg);
extern void KpiStoreMonths(KpiState *ks, bool full);
extern bool KpiLoadChurnState(KpiState *ks, int32 *first_month, int32 *last_month);
extern void KpiStoreChurnState(KpiState *ks, bool full);
extern void KpiStoreCoverage(KpiState *ks);
extern Datum KpiMonthDate(int32 month);
extern bytea *KpiNewBytea(Size n);
extern char *KpiStoredBytes(Datum d, Size n, const char *what);
extern bytea *KpiEncodeCounts(const int32 *counts);
extern bytea *KpiEncodeTiers(const int16 *tiers);
extern bool KpiDecodeCounts(Datum d, int32 *counts);
extern bool KpiDecodeTiers(Datum d, int16 *tiers);
extern bytea *KpiSlotsCopy(Datum d, bool tiers);
extern int32 KpiSlotGet(const bytea *b, int slot, bool tiers);
extern bytea *KpiCountsSet(bytea *b, int slot, int32 value);
extern int32 KpiDateMonth(Datum d);

/* kpi_facts.c: the facts */
extern void KpiKeepFacts(KpiState *ks);
extern void KpiComputeFacts(KpiState *ks, int32 m0);
extern void KpiFactsRange(KpiState *ks, int32 m0, int32 begin, int32 end);
/* accounts in tiles of this many (kpi_facts.c) */
#define KPI_FACTS_TILE 512
extern void KpiStoreFacts(KpiState *ks, bool *changed);
extern int	KpiTierAt(KpiState *ks, KpiAccount *a, int32 month);

/* kpi_publish.c: a relation's one index if it is a plain unique key on its first nkeys columns */
extern Relation KpiOpenKeyIndex(Relation rel, int nkeys);
extern bool KpiTableAsMade(Relation rel);

/* kpi_delta.c: the refresh of session deltas alone; false: take the full path */
extern bool KpiApplySessionDeltas(KpiState *ks, int ndeltas, const int32 *months, const int64 *accounts,
								  const int64 *counts, bool *changed, int *months_done);

/* kpi_parallel.c: the full count split with a parallel worker; false: not done */
extern void KpiCountStart(KpiState *ks);
extern bool KpiCountSessionsParallel(KpiState *ks, uint64 *outside);

/* kpi_facts_parallel.c: the facts of a full rebuild split with a parallel worker */
extern struct ParallelContext *KpiFactsLaunch(KpiState *ks, int32 m0, int32 *split);
extern void KpiFactsFinish(KpiState *ks, struct ParallelContext *pcxt, int32 split);

/* kpi_refresh.c: the engine's entry point; false if the tables are Citus tables */
typedef struct KpiUpdateResult
{
	int32		months;			/* months recomputed */
	bool		rebuilt;		/* a full rebuild */
	bool		changed[3];		/* the facts of retention, usage, revenue changed */
	bool		published[3];	/* that view was brought up to date in place (publish) */
} KpiUpdateResult;
extern bool KpiUpdateFacts(bool full, bool publish, KpiUpdateResult *res);

/* kpi_publish.c: the views changed in place by the facts that changed */
extern void KpiNoteFactChange(KpiState *ks, int32 month, int size, int16 plan_id, const KpiCell *old,
							  const KpiCell *new);
extern void KpiPublishFacts(KpiState *ks, const bool *changed, bool *published);

/* what the triggers recorded since the last refresh */
typedef struct KpiChanges
{
	bool		full;			/* a full rebuild was asked for */
	int32	   *ranges;			/* months [ranges[2i], ranges[2i + 1]] to recompute */
	int			nranges;
	int64	   *accounts;		/* accounts to recompute */
	int			naccounts;
	int32	   *delta_month;	/* session count changes */
	int64	   *delta_account;
	int64	   *delta_count;
	int			ndeltas;
} KpiChanges;

/* kpi_queue.c: the step that takes the queues */
extern void KpiConsumeChanges(KpiState *ks, KpiChanges *ch);

/* kpi_top.c: the checks of the path with nothing to do, without SPI */
extern bool KpiNothingQueued(KpiState *ks);
extern bool KpiLoadCoverage(KpiState *ks, int32 *first_month, int32 *last_month);
extern bool KpiTableHasRows(Oid relid, Snapshot snapshot);

/* kpi_refresh.c: the engine's statements (prepared once), a query under the refresh's snapshot */
extern uint64 KpiQuery(KpiState *ks, const char *query, int nargs, Oid *argtypes, Datum *args,
					   bool read_only, int expected);
extern uint64 KpiExecute(const char *query, int nargs, Oid *argtypes, Datum *args, const char *nulls,
						 int expected);

#endif							/* DOGDB_KPI_H */
