/*-------------------------------------------------------------------------
 *
 * churn.h
 *	  dogdb_account_churn's one-pass reader: the accounts and their
 *	  bitmaps (churn_scan.c), and the scan of the sessions, serial or with
 *	  parallel workers (churn_parallel.c), whose parallel heap scan the
 *	  grouped scan of dogdb_active_months() shares (churn_path.c: planner
 *	  side, churn_path_exec.c: executor side).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_CHURN_H
#define DOGDB_CHURN_H

#include "access/parallel.h"
#include "access/relscan.h"
#include "nodes/plannodes.h"
#include "port/atomics.h"
#include "utils/relcache.h"
#include "utils/snapshot.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "month_bitmap.h"

typedef struct ChurnAccount
{
	int64		id;
	int32		first;			/* UTC month of created_at */
	int32		last;			/* last month with a session, or INT32_MIN */
} ChurnAccount;

typedef struct ChurnScan
{
	ChurnAccount *accounts;
	int64		naccounts;
	int64		min_id;
	int64		max_id;
	int32	   *dense;			/* id - min_id -> position, or NULL */
	int64	   *sorted_ids;		/* when not dense: ids sorted ... */
	int32	   *sorted_pos;		/* ... and their positions */
	int32		w0;				/* month of bit 0 */
	int32		asof;			/* last month counted */
	int			nwords;			/* 64-bit words per account */
	uint64	   *bits;
} ChurnScan;

/* the position of account id, or -1 */
static inline int64
ChurnAccountPosition(const ChurnScan *cs, int64 id)
{
	int64		lo = 0,
				hi = cs->naccounts;

	if (cs->dense != NULL)
	{
		uint64		off = (uint64) id - (uint64) cs->min_id;

		return off <= (uint64) cs->max_id - (uint64) cs->min_id ? cs->dense[off] : -1;
	}
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (cs->sorted_ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < cs->naccounts && cs->sorted_ids[lo] == id ? cs->sorted_pos[lo] : -1;
}

/* the UTC month of the previous session time, and its bounds */
typedef struct ChurnMonthCache
{
	TimestampTz lo;				/* [lo, hi): the times of month */
	TimestampTz hi;
	int32		month;
} ChurnMonthCache;

#define CHURN_MONTH_CACHE_INIT {1, 0, 0}

/*
 * The UTC month of a session time, through the cache; false if the
 * aggregate would reject it (infinite, or outside the years 0001-9999).
 */
static inline bool
ChurnMonthOf(ChurnMonthCache *mc, TimestampTz ts)
{
	if (ts >= mc->lo && ts < mc->hi)
		return true;
	if (TIMESTAMP_NOT_FINITE(ts))
		return false;
	mc->month = cal_month_of_timestamp(ts);
	if (mc->month < MONTH_BITMAP_MIN_MONTH || mc->month > MONTH_BITMAP_MAX_MONTH)
		return false;
	mc->lo = (TimestampTz) cal_month_first_day(mc->month) * USECS_PER_DAY;
	mc->hi = (TimestampTz) cal_month_first_day(mc->month + 1) * USECS_PER_DAY;
	return true;
}

/* the attribute number of a column of relid; an internal error if missing */
extern AttrNumber ChurnColumnNumber(Oid relid, const char *column);

/*
 * Every session of dogdb.sessions under the snapshot into cs's bitmaps and
 * its accounts' last months; false if a session is one the SQL route must
 * handle, or the table is not a heap.
 */
extern bool ChurnScanSessions(ChurnScan *cs, Snapshot snapshot);

/* the most memory a one-pass reader's per-key state may take */
extern Size ChurnMemoryLimit(void);

/*
 * A parallel heap scan with workers of our own (churn_parallel.c): the
 * leader creates the context with a shared area of the caller's (which it
 * fills before ChurnParallelLaunch), scans its part through cp->scan like
 * each worker, waits for the workers, reads the area, then ends.
 */
typedef struct ChurnParallel
{
	ParallelContext *pcxt;
	void	   *area;			/* the caller's bytes in shared memory */
	Relation	rel;
	TableScanDesc scan;			/* the leader's part, once launched */
} ChurnParallel;

/* workers to ask for to scan rel: none for small tables or without parallelism */
extern int	ChurnWorkers(Relation rel);
/* enter parallel mode and create the context; false (nothing to end) without shared memory */
extern bool ChurnParallelBegin(ChurnParallel *cp, Relation rel, Snapshot snapshot,
							   const char *worker_function, int nworkers, Size area_size);
extern void ChurnParallelLaunch(ChurnParallel *cp);
/* end the leader's scan and wait for every worker */
extern void ChurnParallelWait(ChurnParallel *cp);
/* destroy the context and leave parallel mode */
extern void ChurnParallelEnd(ChurnParallel *cp);
/* in a worker: the caller's area, the relation and the worker's part of the scan */
extern void *ChurnParallelWorkerBegin(shm_toc *toc, Relation *rel, TableScanDesc *scan);
extern void ChurnParallelWorkerEnd(Relation rel, TableScanDesc scan);

/*
 * The grouped scan's per-key month bitmaps (churn_groups.c), in memory of
 * their own within a bound: one participant's pass over its share of the
 * heap, the records a worker sends the leader, and each key's bitmap.
 */
typedef struct ChurnGroups ChurnGroups;

/* one chunk of 64 months of a key, as a worker sends it */
typedef struct ChurnRecord
{
	int64		key;
	int32		chunk;			/* months from MONTH_BITMAP_MIN_MONTH + 64 * chunk; -1: none */
	int32		isnull;			/* the NULL key */
	uint64		bits;
} ChurnRecord;

/* a position in the groups, from zeros */
typedef struct ChurnGroupsCursor
{
	int			phase;
	uint64		pos;
} ChurnGroupsCursor;

extern ChurnGroups *ChurnGroupsCreate(MemoryContext cxt, Size limit);
/* the rows of the scan into g; false to give up (an unusual time, the memory bound, *abandon set) */
extern bool ChurnGroupsScan(ChurnGroups *g, Relation rel, TableScanDesc scan, AttrNumber key_att,
							AttrNumber time_att, Oid key_type, pg_atomic_uint32 *abandon);
/* another participant's records into g; false at the memory bound */
extern bool ChurnGroupsMerge(ChurnGroups *g, const ChurnRecord *records, int n);
/* the next record of g; false at the end */
extern bool ChurnGroupsNextRecord(ChurnGroups *g, ChurnGroupsCursor *c, ChurnRecord *r);
/* the next key and its bitmap (palloc'd; NULL if only NULL times); false at the end */
extern bool ChurnGroupsNext(ChurnGroups *g, ChurnGroupsCursor *c, int64 *key, bool *isnull, bytea **bitmap);

/* the grouped scan: its setting and planner hook (churn_path.c) */
extern void ChurnPathInit(void);
/* its executor state, CreateCustomScanState of its plan (churn_path_exec.c) */
extern Node *ChurnPathCreateState(CustomScan *cscan);

/* positions in the grouped scan's custom_private and custom_scan_tlist */
#define CHURN_PATH_KEY_ATTNO	0	/* custom_private: attribute number of the key */
#define CHURN_PATH_TIME_ATTNO	1	/* custom_private: attribute number of the time */
#define CHURN_PATH_NWORKERS		2	/* custom_private: workers planned */

#endif							/* DOGDB_CHURN_H */
