/*-------------------------------------------------------------------------
 *
 * kpi_parallel.c
 *	  The KPI engine's full count of the sessions on two cores (kpi.h): a
 *	  parallel worker counts chunks of dogdb.sessions' heap blocks into
 *	  shared memory while the leader counts the others into its own
 *	  matrix; the leader then adds the worker's counts.
 *
 * Design note.  The worker counts into a dense matrix in the parallel
 * context's shared memory, indexed by month within a window and by
 * account_id - min_id (the leader's dense index, kpi_scan.c), so it needs
 * neither the account list nor the leader's memory.  The window is the
 * months from the first account's month to the current one, where nearly
 * every session falls; a session outside it goes to a short overflow list,
 * and if that fills the leader discards the worker's counts and counts its
 * half itself.  Both scans run under the refresh's snapshot (the worker
 * restores the leader's active snapshot), over block ranges fixed after
 * the snapshot was taken: every row it can see is in a block below that.
 * Both run the loop of kpi_count.c, each with one scan for all its chunks.
 * The chunks are handed out by an atomic counter, so that the two finish
 * together whatever else the leader does or the machine runs.
 * Without a worker (none free, ids not compact, a window too large, not a
 * heap, under 1024 blocks), the caller counts serially.  Under
 * force_parallel_mode, as for the planner, the worker is started whatever
 * the size and counts every chunk itself (tests).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "port/atomics.h"
#include "access/parallel.h"
#include "access/relscan.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

#define KPI_PARALLEL_KEY 0x6B706901
#define KPI_OVERFLOW_MAX 65536
#define KPI_MAX_CHUNKS 512		/* chunks of at least KPI_MIN_CHUNK blocks */
#define KPI_MIN_CHUNK 1024
/* the shared matrix no larger than this (1M accounts x 24 months: 96 MB) */
#define KPI_PARALLEL_MAX_BYTES ((Size) 1024 * 1024 * 1024)

typedef struct KpiOverflow
{
	int32		month;
	int64		offset;			/* account_id - min_id */
} KpiOverflow;

typedef struct KpiParallelShared
{
	Oid			relid;
	AttrNumber	account_att;
	AttrNumber	created_att;
	BlockNumber nblocks;		/* the heap's blocks, in chunks of chunk blocks */
	BlockNumber chunk;
	pg_atomic_uint32 next_chunk;	/* the next chunk to count */
	bool		worker_chunk[KPI_MAX_CHUNKS];	/* counted by the worker */
	int64		min_id;
	int64		dense_len;
	int32		month0;			/* the window: months [month0, month0 + nmonths) */
	int32		nmonths;
	/* written by the worker */
	bool		overflowed;
	int32		noverflow;
	uint64		outside;		/* sessions outside the horizon */
	KpiOverflow overflow[KPI_OVERFLOW_MAX];
	int32		counts[FLEXIBLE_ARRAY_MEMBER];	/* [month - month0][account_id - min_id] */
} KpiParallelShared;

PGDLLEXPORT void KpiParallelScanMain(dsm_segment *seg, shm_toc *toc);

static int32 *
WorkerRowOf(void *arg, int32 month)
{
	KpiParallelShared *sh = arg;

	if (month < sh->month0 || month >= sh->month0 + sh->nmonths)
		return NULL;
	return &sh->counts[(Size) (month - sh->month0) * sh->dense_len];
}

/* a session outside the window: to the overflow list while it has room */
static void
WorkerElsewhere(void *arg, int32 month, int64 offset)
{
	KpiParallelShared *sh = arg;

	if (sh->noverflow < KPI_OVERFLOW_MAX)
	{
		sh->overflow[sh->noverflow].month = month;
		sh->overflow[sh->noverflow].offset = offset;
		sh->noverflow++;
	}
	else
		sh->overflowed = true;
}

/* the worker: count its chunks into the shared matrix */
void
KpiParallelScanMain(dsm_segment *seg, shm_toc *toc)
{
	KpiParallelShared *sh = shm_toc_lookup(toc, KPI_PARALLEL_KEY, false);
	Relation	rel = table_open(sh->relid, AccessShareLock);
	TableScanDesc scan = table_beginscan_strat(rel, GetActiveSnapshot(), 0, NULL, true, false);
	KpiCounter	kc = {0};
	uint32		c;

	KpiInitMonthDays();
	kc.account_att = sh->account_att;
	kc.created_att = sh->created_att;
	kc.min_id = sh->min_id;
	kc.dense_len = sh->dense_len;
	kc.row_of = WorkerRowOf;
	kc.elsewhere = WorkerElsewhere;
	kc.arg = sh;
	memset(sh->counts, 0, sizeof(int32) * sh->nmonths * sh->dense_len);
	while ((c = pg_atomic_fetch_add_u32(&sh->next_chunk, 1)) * sh->chunk < sh->nblocks)
	{
		sh->worker_chunk[c] = true;
		KpiCountBlocks(scan, c * sh->chunk, Min((c + 1) * sh->chunk, sh->nblocks), &kc);
	}
	sh->outside = kc.outside;
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

static int
CountWorkerChunks(KpiParallelShared *sh)
{
	int			n = 0;

	for (int c = 0; c < KPI_MAX_CHUNKS; c++)
		n += sh->worker_chunk[c];
	return n;
}

/* add the worker's counts to the leader's matrix */
static void
MergeShared(KpiState *ks, KpiParallelShared *sh)
{
	for (int32 m = 0; m < sh->nmonths; m++)
	{
		const int32 *src = &sh->counts[(Size) m * sh->dense_len];
		int32	   *dst = NULL;

		for (int64 off = 0; off < sh->dense_len; off++)
		{
			int32		a;

			if (src[off] == 0 || (a = ks->dense[off]) < 0)
				continue;
			if (dst == NULL)
				dst = KpiMonthRow(ks, sh->month0 + m);
			dst[a] = (int32) Min((int64) dst[a] + src[off], PG_INT32_MAX);
		}
		CHECK_FOR_INTERRUPTS();
	}
	for (int32 i = 0; i < sh->noverflow; i++)
	{
		int32		a = ks->dense[sh->overflow[i].offset];

		if (a >= 0)
			KpiAddCount(ks, a, sh->overflow[i].month, 1);
	}
}

/*
 * Count every session with one parallel worker; false if the count was
 * not done (the caller counts serially)
 */
bool
KpiCountSessionsParallel(KpiState *ks, uint64 *outside)
{
	Oid			relid = DogdbRelationId("sessions");
	Relation	rel;
	BlockNumber nblocks;
	BlockNumber chunk;
	uint32		c;
	int32		month0;
	int32		nmonths;
	Size		size;
	ParallelContext *pcxt;
	KpiParallelShared *sh;
	KpiCounter	kc;
	TableScanDesc scan;

	if (ks->dense == NULL || ks->naccounts == 0 || max_parallel_workers_per_gather < 1)
		return false;
	month0 = ks->current_month;
	for (int a = 0; a < ks->naccounts; a++)
		month0 = Min(month0, ks->accounts[a].first_month);
	nmonths = ks->current_month - month0 + 1;
	size = offsetof(KpiParallelShared, counts) + sizeof(int32) * (Size) nmonths * (Size) ks->dense_len;
	if ((Size) nmonths * (Size) ks->dense_len * sizeof(int32) > KPI_PARALLEL_MAX_BYTES)
		return false;

	rel = table_open(relid, AccessShareLock);
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "sessions");
	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	nblocks = RelationGetNumberOfBlocks(rel);
	if (nblocks < 1024 && (force_parallel_mode == FORCE_PARALLEL_OFF || nblocks == 0))
	{
		table_close(rel, AccessShareLock);
		return false;			/* not worth a worker */
	}
	chunk = Max(KPI_MIN_CHUNK, (nblocks + KPI_MAX_CHUNKS - 1) / KPI_MAX_CHUNKS);

	EnterParallelMode();
	pcxt = CreateParallelContext("dogdb_analytics", "KpiParallelScanMain", 1);
	shm_toc_estimate_chunk(&pcxt->estimator, size);
	shm_toc_estimate_keys(&pcxt->estimator, 1);
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		table_close(rel, AccessShareLock);
		return false;
	}
	sh = shm_toc_allocate(pcxt->toc, size);
	memset(sh, 0, offsetof(KpiParallelShared, counts));
	sh->relid = relid;
	sh->account_att = get_attnum(relid, "account_id");
	sh->created_att = get_attnum(relid, "created_at");
	sh->nblocks = nblocks;
	sh->chunk = chunk;
	pg_atomic_init_u32(&sh->next_chunk, 0);
	sh->min_id = ks->min_id;
	sh->dense_len = ks->dense_len;
	sh->month0 = month0;
	sh->nmonths = nmonths;
	shm_toc_insert(pcxt->toc, KPI_PARALLEL_KEY, sh);
	LaunchParallelWorkers(pcxt);

	if (pcxt->nworkers_launched == 0)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		table_close(rel, AccessShareLock);
		return false;
	}
	/* the leader's serial work first, then chunks until none is left */
	KpiLoadSubscriptions(ks);
	KpiLeaderCounter(ks, rel, &kc);
	scan = table_beginscan_strat(rel, ks->snapshot, 0, NULL, true, false);
	/* force_parallel_mode (tests): the worker counts every chunk */
	while (force_parallel_mode == FORCE_PARALLEL_OFF &&
		   (c = pg_atomic_fetch_add_u32(&sh->next_chunk, 1)) * chunk < nblocks)
		KpiCountBlocks(scan, c * chunk, Min((c + 1) * chunk, nblocks), &kc);
	WaitForParallelWorkersToFinish(pcxt);
	ereport(DEBUG1, (errmsg_internal("KPI refresh: %d of %u chunks of %u blocks counted in a parallel worker",
									 CountWorkerChunks(sh), (nblocks + chunk - 1) / chunk, chunk)));
	if (sh->overflowed)
	{
		for (c = 0; c * chunk < nblocks; c++)
			if (sh->worker_chunk[c])
				KpiCountBlocks(scan, c * chunk, Min((c + 1) * chunk, nblocks), &kc);
	}
	else
	{
		MergeShared(ks, sh);
		kc.outside += sh->outside;
	}
	table_endscan(scan);
	*outside = kc.outside;
	DestroyParallelContext(pcxt);
	ExitParallelMode();
	table_close(rel, AccessShareLock);
	return true;
}
