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

/* the account of a worker offset, or -1 */
static inline int32
AccountOfOffset(KpiState *ks, KpiParallelShared *sh, int64 off, bool same_index)
{
	return same_index ? ks->dense[off] : KpiAccountIndex(ks, sh->min_id + off);
}

/*
 * add the worker's counts to the leader's matrix (its offsets are the
 * leader's dense index unless the count started before the accounts were
 * loaded and they turned out otherwise)
 */
static void
MergeShared(KpiState *ks, KpiParallelShared *sh)
{
	bool		same_index = ks->dense != NULL && ks->min_id == sh->min_id && ks->dense_len == sh->dense_len;

	ereport(DEBUG1, (errmsg_internal("KPI refresh: %d sessions outside the worker's months, offsets mapped %s",
									 sh->noverflow, same_index ? "by index" : "by search")));

	for (int32 m = 0; m < sh->nmonths; m++)
	{
		const int32 *src = &sh->counts[(Size) m * sh->dense_len];
		int32	   *dst = NULL;

		for (int64 off = 0; off < sh->dense_len; off++)
		{
			int32		a;

			if (src[off] == 0 || (a = AccountOfOffset(ks, sh, off, same_index)) < 0)
				continue;
			if (dst == NULL)
				dst = KpiMonthRow(ks, sh->month0 + m);
			dst[a] = (int32) Min((int64) dst[a] + src[off], PG_INT32_MAX);
		}
		CHECK_FOR_INTERRUPTS();
	}
	for (int32 i = 0; i < sh->noverflow; i++)
	{
		int32		a = AccountOfOffset(ks, sh, sh->overflow[i].offset, same_index);

		if (a >= 0)
			KpiAddCount(ks, a, sh->overflow[i].month, 1);
	}
}

/* a parallel count under way (started by KpiCountSessionsParallel or KpiCountStart) */
typedef struct KpiParallelCount
{
	ParallelContext *pcxt;
	KpiParallelShared *sh;
	Relation	rel;
} KpiParallelCount;

/*
 * Start the worker on offsets account_id - min_id in [0, dense_len) and
 * the months [month0, month0 + nmonths); NULL if not started
 */
static KpiParallelCount *
Launch(KpiState *ks, int64 min_id, int64 dense_len, int32 month0, int32 nmonths)
{
	Oid			relid = DogdbRelationId("sessions");
	Relation	rel;
	BlockNumber nblocks;
	Size		size;
	ParallelContext *pcxt;
	KpiParallelShared *sh;
	KpiParallelCount *pc;

	if (max_parallel_workers_per_gather < 1 || dense_len <= 0 || nmonths <= 0 ||
		(Size) nmonths * (Size) dense_len * sizeof(int32) > KPI_PARALLEL_MAX_BYTES)
		return NULL;
	size = offsetof(KpiParallelShared, counts) + sizeof(int32) * (Size) nmonths * (Size) dense_len;
	rel = table_open(relid, AccessShareLock);
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "sessions");
	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		table_close(rel, AccessShareLock);
		return NULL;
	}
	nblocks = RelationGetNumberOfBlocks(rel);
	if (nblocks < 1024 && (force_parallel_mode == FORCE_PARALLEL_OFF || nblocks == 0))
	{
		table_close(rel, AccessShareLock);
		return NULL;			/* not worth a worker */
	}

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
		return NULL;
	}
	sh = shm_toc_allocate(pcxt->toc, size);
	memset(sh, 0, offsetof(KpiParallelShared, counts));
	sh->relid = relid;
	sh->account_att = get_attnum(relid, "account_id");
	sh->created_att = get_attnum(relid, "created_at");
	sh->nblocks = nblocks;
	sh->chunk = Max(KPI_MIN_CHUNK, (nblocks + KPI_MAX_CHUNKS - 1) / KPI_MAX_CHUNKS);
	pg_atomic_init_u32(&sh->next_chunk, 0);
	sh->min_id = min_id;
	sh->dense_len = dense_len;
	sh->month0 = month0;
	sh->nmonths = nmonths;
	shm_toc_insert(pcxt->toc, KPI_PARALLEL_KEY, sh);
	LaunchParallelWorkers(pcxt);
	if (pcxt->nworkers_launched == 0)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		table_close(rel, AccessShareLock);
		return NULL;
	}
	pc = palloc(sizeof(KpiParallelCount));
	pc->pcxt = pcxt;
	pc->sh = sh;
	pc->rel = rel;
	return pc;
}

/*
 * A full rebuild: start the worker before the accounts are loaded, so
 * that it counts while the leader loads them.  The offsets come from the
 * accounts' smallest and largest ids (their primary key), the months from
 * the first one of the last refresh (a session before it goes to the
 * worker's overflow list).  Nothing is started without a last refresh or
 * with ids far from compact.
 */
void
KpiCountStart(KpiState *ks)
{
	int32		first_month;
	int32		last_month;
	SPITupleTable *tt;
	bool		null_min,
				null_max,
				null_n;
	int64		min_id,
				max_id;
	float4		reltuples;

	ks->parallel_count = NULL;
	if (!KpiLoadCoverage(ks, &first_month, &last_month) || first_month > ks->current_month)
		return;
	DogdbSpiExecute("SELECT min(account_id), max(account_id),"
					" (SELECT reltuples FROM pg_catalog.pg_class WHERE oid = 'dogdb.accounts'::pg_catalog.regclass)"
					" FROM dogdb.accounts", true, 0, SPI_OK_SELECT);
	tt = SPI_tuptable;
	min_id = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &null_min));
	max_id = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 2, &null_max));
	reltuples = DatumGetFloat4(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &null_n));
	SPI_freetuptable(tt);
	/* the leader's own test of compact ids (KpiLoadAccounts), on the estimated count */
	if (null_min || null_max || null_n || max_id - min_id + 1 <= 0 ||
		max_id - min_id + 1 > (int64) Max(reltuples, 0) * 8 + 1024)
		return;
	ks->parallel_count = Launch(ks, min_id, max_id - min_id + 1, first_month, ks->current_month - first_month + 1);
	if (ks->parallel_count != NULL)
		ereport(DEBUG1, (errmsg_internal("KPI refresh: the count started before the accounts were loaded")));
}

/*
 * Count every session with one parallel worker (started here, or by
 * KpiCountStart); false if the count was not done (the caller counts
 * serially)
 */
bool
KpiCountSessionsParallel(KpiState *ks, uint64 *outside)
{
	KpiParallelCount *pc = ks->parallel_count;
	KpiParallelShared *sh;
	BlockNumber nblocks;
	BlockNumber chunk;
	uint32		c;
	KpiCounter	kc;
	TableScanDesc scan;

	ks->parallel_count = NULL;
	if (pc == NULL)
	{
		int32		month0 = ks->current_month;

		if (ks->dense == NULL || ks->naccounts == 0)
			return false;
		for (int a = 0; a < ks->naccounts; a++)
			month0 = Min(month0, ks->accounts[a].first_month);
		pc = Launch(ks, ks->min_id, ks->dense_len, month0, ks->current_month - month0 + 1);
		if (pc == NULL)
			return false;
	}
	sh = pc->sh;
	nblocks = sh->nblocks;
	chunk = sh->chunk;

	/* the leader's serial work first, then chunks until none is left */
	if (!ks->subscriptions_loaded)
		KpiLoadSubscriptions(ks);
	KpiLeaderCounter(ks, pc->rel, &kc);
	scan = table_beginscan_strat(pc->rel, ks->snapshot, 0, NULL, true, false);
	/* force_parallel_mode (tests): the worker counts every chunk */
	while (force_parallel_mode == FORCE_PARALLEL_OFF &&
		   (c = pg_atomic_fetch_add_u32(&sh->next_chunk, 1)) * chunk < nblocks)
		KpiCountBlocks(scan, c * chunk, Min((c + 1) * chunk, nblocks), &kc);
	WaitForParallelWorkersToFinish(pc->pcxt);
	ereport(DEBUG1, (errmsg_internal("KPI refresh: %d of %u chunks of %u blocks counted in a parallel worker",
									 CountWorkerChunks(sh), (nblocks + chunk - 1) / chunk, chunk)));
	if (sh->overflowed)
	{
		ereport(DEBUG1, (errmsg_internal("KPI refresh: over %d sessions outside the worker's months: its blocks counted again",
										 KPI_OVERFLOW_MAX)));
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
	DestroyParallelContext(pc->pcxt);
	ExitParallelMode();
	table_close(pc->rel, AccessShareLock);
	pfree(pc);
	return true;
}
