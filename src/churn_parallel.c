/*-------------------------------------------------------------------------
 *
 * churn_parallel.c
 *	  The scan of the sessions for dogdb_account_churn (churn.h): serial
 *	  for small tables, else with parallel workers; and the parallel heap
 *	  scan itself (ChurnParallel*), which the grouped scan of
 *	  dogdb_active_months() uses too (churn_path_exec.c).
 *
 * A parallel context, as PostgreSQL's own parallel index builds use one:
 * the leader copies the account index into dynamic shared memory, each
 * worker sets bits in arrays of its own there while the leader scans into
 * its own, all through one parallel heap scan under the query's snapshot
 * (workers see what the leader's transaction wrote); the leader ORs the
 * workers' bitmaps into its own at the end.  A worker that meets a session
 * the SQL route must handle says so in a flag the leader reads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/parallel.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_am_d.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/paths.h"
#include "port/atomics.h"
#include "storage/bufmgr.h"
#include "storage/shm_toc.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "churn.h"
#include "common.h"
#include "month_bitmap.h"

PGDLLEXPORT void dogdb_churn_scan_worker(dsm_segment *seg, shm_toc *toc);

/* the key of the shared chunk in a parallel context's table of contents */
#define CHURN_PARALLEL_KEY UINT64CONST(0xD06DB0C4A2000001)

/*
 * The one chunk of dynamic shared memory of a ChurnParallel: this header,
 * the caller's area, then the parallel scan descriptor.
 */
typedef struct ChurnParallelShared
{
	Oid			relid;
	Size		area_off;
	Size		pscan_off;
} ChurnParallelShared;

/*
 * dogdb_account_churn's area: this header, then the id index (dense, or
 * sorted ids and their positions), then per worker its bitmaps and last
 * months.  Offsets are from the header.
 */
typedef struct ChurnShared
{
	int64		naccounts;
	int64		min_id;
	int64		max_id;
	bool		dense;
	int32		w0;
	int32		asof;
	int			nwords;
	pg_atomic_uint32 unusual;	/* a worker met data the SQL route must handle */
	Size		index_off;		/* dense map, or sorted ids then positions */
	Size		worker_off;		/* worker i's bits at worker_off + i * worker_size */
	Size		worker_size;	/* bits, then last months */
} ChurnShared;

#define SHARED_AT(sh, off) ((char *) (sh) + (off))

/* smallest budget for per-key state, whatever work_mem says */
#define CHURN_MIN_MEMORY ((Size) 64 * 1024 * 1024)

Size
ChurnMemoryLimit(void)
{
	return Max((Size) (work_mem * 1024.0 * hash_mem_multiplier), CHURN_MIN_MEMORY);
}

/* workers to ask for: none for small tables or when parallelism is off */
int
ChurnWorkers(Relation rel)
{
	BlockNumber blocks = RelationGetNumberOfBlocks(rel);

	if (IsInParallelMode() || !IsUnderPostmaster || max_parallel_workers_per_gather <= 0 ||
		blocks < (BlockNumber) Max(min_parallel_table_scan_size, 1) * 8)
		return 0;
	return Min(max_parallel_workers_per_gather, 8);
}

bool
ChurnParallelBegin(ChurnParallel *cp, Relation rel, Snapshot snapshot,
				   const char *worker_function, int nworkers, Size area_size)
{
	Size		pscan_off = MAXALIGN(sizeof(ChurnParallelShared)) + MAXALIGN(area_size);
	Size		total = pscan_off + table_parallelscan_estimate(rel, snapshot);
	ChurnParallelShared *sh;

	EnterParallelMode();
	cp->pcxt = CreateParallelContext("dogdb_analytics", worker_function, nworkers);
	shm_toc_estimate_chunk(&cp->pcxt->estimator, total);
	shm_toc_estimate_keys(&cp->pcxt->estimator, 1);
	InitializeParallelDSM(cp->pcxt);
	if (cp->pcxt->seg == NULL)
	{
		ChurnParallelEnd(cp);
		return false;
	}
	sh = shm_toc_allocate(cp->pcxt->toc, total);
	sh->relid = RelationGetRelid(rel);
	sh->area_off = MAXALIGN(sizeof(ChurnParallelShared));
	sh->pscan_off = pscan_off;
	table_parallelscan_initialize(rel, (ParallelTableScanDesc) SHARED_AT(sh, pscan_off), snapshot);
	shm_toc_insert(cp->pcxt->toc, CHURN_PARALLEL_KEY, sh);
	cp->area = SHARED_AT(sh, sh->area_off);
	cp->rel = rel;
	cp->scan = NULL;
	return true;
}

/* start the workers and the leader's part of the scan */
void
ChurnParallelLaunch(ChurnParallel *cp)
{
	ChurnParallelShared *sh = shm_toc_lookup(cp->pcxt->toc, CHURN_PARALLEL_KEY, false);

	LaunchParallelWorkers(cp->pcxt);
	cp->scan = table_beginscan_parallel(cp->rel, (ParallelTableScanDesc) SHARED_AT(sh, sh->pscan_off));
}

void
ChurnParallelWait(ChurnParallel *cp)
{
	if (cp->scan != NULL)
		table_endscan(cp->scan);
	cp->scan = NULL;
	WaitForParallelWorkersToFinish(cp->pcxt);
}

void
ChurnParallelEnd(ChurnParallel *cp)
{
	DestroyParallelContext(cp->pcxt);
	cp->pcxt = NULL;
	ExitParallelMode();
}

void *
ChurnParallelWorkerBegin(shm_toc *toc, Relation *rel, TableScanDesc *scan)
{
	ChurnParallelShared *sh = shm_toc_lookup(toc, CHURN_PARALLEL_KEY, false);

	*rel = table_open(sh->relid, AccessShareLock);
	*scan = table_beginscan_parallel(*rel, (ParallelTableScanDesc) SHARED_AT(sh, sh->pscan_off));
	return SHARED_AT(sh, sh->area_off);
}

void
ChurnParallelWorkerEnd(Relation rel, TableScanDesc scan)
{
	table_endscan(scan);
	table_close(rel, AccessShareLock);
}

/*
 * Set the month of every session the scan returns in bits and last (one
 * participant's arrays); false if a session is not of the usual kind.
 */
static bool
ScanPart(const ChurnScan *cs, Relation rel, TableScanDesc scan, uint64 *bits, int32 *last)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	id_att = ChurnColumnNumber(RelationGetRelid(rel), "account_id");
	AttrNumber	ts_att = ChurnColumnNumber(RelationGetRelid(rel), "created_at");
	/* sessions from the month after as_of's on are not counted */
	TimestampTz bound = (TimestampTz) cal_month_first_day(cs->asof + 1) * USECS_PER_DAY;
	ChurnMonthCache mc = CHURN_MONTH_CACHE_INIT;
	uint64		n = 0;
	HeapTuple	tuple;

	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		TimestampTz ts;
		Datum		d;
		bool		isnull;
		int64		pos;
		int32		month;

		if ((++n & 0xFFFF) == 0)
			CHECK_FOR_INTERRUPTS();
		d = heap_getattr(tuple, ts_att, desc, &isnull);
		if (isnull)
			continue;			/* the SQL route drops them too */
		ts = DatumGetTimestampTz(d);
		if (ts >= bound)
			continue;
		/* -infinity and the years before 0001 are errors of the SQL route */
		if (!ChurnMonthOf(&mc, ts))
			return false;
		month = mc.month;
		d = heap_getattr(tuple, id_att, desc, &isnull);
		if (isnull || (pos = ChurnAccountPosition(cs, DatumGetInt64(d))) < 0)
			continue;
		if (month > last[pos])
			last[pos] = month;
		if (month >= cs->w0)
		{
			int32		bit = month - cs->w0;

			bits[pos * cs->nwords + bit / 64] |= UINT64CONST(1) << (bit % 64);
		}
	}
	return true;
}

/* the last months of the leader's accounts, as an array of their own */
static int32 *
LeaderLast(ChurnScan *cs)
{
	int32	   *last = palloc_extended(sizeof(int32) * Max(cs->naccounts, 1), MCXT_ALLOC_HUGE);

	for (int64 i = 0; i < cs->naccounts; i++)
		last[i] = PG_INT32_MIN;
	return last;
}

/* the sessions into the leader's arrays, without workers */
static bool
ScanSerial(ChurnScan *cs, Relation rel, Snapshot snapshot, int32 *last)
{
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	bool		ok = ScanPart(cs, rel, scan, cs->bits, last);

	table_endscan(scan);
	return ok;
}

/* the last months into the accounts; close the sessions; ok */
static bool
ScanDone(ChurnScan *cs, Relation rel, int32 *last, bool ok)
{
	for (int64 i = 0; i < cs->naccounts; i++)
		cs->accounts[i].last = last[i];
	table_close(rel, AccessShareLock);
	return ok;
}

/* the sessions into the leader's bitmaps, with workers when worth it */
bool
ChurnScanSessions(ChurnScan *cs, Snapshot snapshot)
{
	Oid			relid = DogdbRelationId("sessions");
	Relation	rel = table_open(relid, AccessShareLock);
	int			nworkers;
	int32	   *last;
	bool		ok;

	/* heap_getnext() reads heap tables only */
	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
	{
		table_close(rel, AccessShareLock);
		return false;
	}
	nworkers = ChurnWorkers(rel);
	last = LeaderLast(cs);

	if (nworkers == 0)
		ok = ScanSerial(cs, rel, snapshot, last);
	else
	{
		Size		index_size = cs->dense ? sizeof(int32) * (Size) (cs->max_id - cs->min_id + 1)
			: (sizeof(int64) + sizeof(int32)) * (Size) cs->naccounts;
		Size		bits_size = sizeof(uint64) * (Size) cs->naccounts * cs->nwords;
		Size		worker_size = MAXALIGN(bits_size) + MAXALIGN(sizeof(int32) * (Size) cs->naccounts);
		ChurnParallel cp;
		ChurnShared *sh;

		if (!ChurnParallelBegin(&cp, rel, snapshot, "dogdb_churn_scan_worker", nworkers,
								MAXALIGN(sizeof(ChurnShared)) + MAXALIGN(index_size) + worker_size * nworkers))
			return ScanDone(cs, rel, last, ScanSerial(cs, rel, snapshot, last));	/* no shared memory */
		sh = cp.area;
		sh->naccounts = cs->naccounts;
		sh->min_id = cs->min_id;
		sh->max_id = cs->max_id;
		sh->dense = cs->dense != NULL;
		sh->w0 = cs->w0;
		sh->asof = cs->asof;
		sh->nwords = cs->nwords;
		pg_atomic_init_u32(&sh->unusual, 0);
		sh->index_off = MAXALIGN(sizeof(ChurnShared));
		sh->worker_off = sh->index_off + MAXALIGN(index_size);
		sh->worker_size = worker_size;
		if (cs->dense)
			memcpy(SHARED_AT(sh, sh->index_off), cs->dense, index_size);
		else
		{
			memcpy(SHARED_AT(sh, sh->index_off), cs->sorted_ids, sizeof(int64) * cs->naccounts);
			memcpy(SHARED_AT(sh, sh->index_off) + sizeof(int64) * cs->naccounts, cs->sorted_pos,
				   sizeof(int32) * cs->naccounts);
		}
		for (int w = 0; w < nworkers; w++)
		{
			char	   *base = SHARED_AT(sh, sh->worker_off + worker_size * w);

			memset(base, 0, bits_size);
			memcpy(base + MAXALIGN(bits_size), last, sizeof(int32) * cs->naccounts);
		}
		ChurnParallelLaunch(&cp);

		/* the leader scans too */
		ok = ScanPart(cs, rel, cp.scan, cs->bits, last);
		ChurnParallelWait(&cp);
		if (pg_atomic_read_u32(&sh->unusual) != 0)
			ok = false;
		for (int w = 0; ok && w < cp.pcxt->nworkers_launched; w++)
		{
			const char *base = SHARED_AT(sh, sh->worker_off + worker_size * w);
			const uint64 *wbits = (const uint64 *) base;
			const int32 *wlast = (const int32 *) (base + MAXALIGN(bits_size));

			for (Size i = 0; i < (Size) cs->naccounts * cs->nwords; i++)
				cs->bits[i] |= wbits[i];
			for (int64 i = 0; i < cs->naccounts; i++)
				last[i] = Max(last[i], wlast[i]);
		}
		ChurnParallelEnd(&cp);
	}
	return ScanDone(cs, rel, last, ok);
}

/* parallel worker: its share of the sessions into its own arrays */
void
dogdb_churn_scan_worker(dsm_segment *seg, shm_toc *toc)
{
	Relation	rel;
	TableScanDesc scan;
	ChurnShared *sh = ChurnParallelWorkerBegin(toc, &rel, &scan);
	char	   *base = SHARED_AT(sh, sh->worker_off + sh->worker_size * ParallelWorkerNumber);
	ChurnScan	cs = {0};

	cs.naccounts = sh->naccounts;
	cs.min_id = sh->min_id;
	cs.max_id = sh->max_id;
	cs.w0 = sh->w0;
	cs.asof = sh->asof;
	cs.nwords = sh->nwords;
	if (sh->dense)
		cs.dense = (int32 *) SHARED_AT(sh, sh->index_off);
	else
	{
		cs.sorted_ids = (int64 *) SHARED_AT(sh, sh->index_off);
		cs.sorted_pos = (int32 *) (SHARED_AT(sh, sh->index_off) + sizeof(int64) * sh->naccounts);
	}
	if (!ScanPart(&cs, rel, scan, (uint64 *) base,
				  (int32 *) (base + MAXALIGN(sizeof(uint64) * (Size) sh->naccounts * sh->nwords))))
		pg_atomic_write_u32(&sh->unusual, 1);
	ChurnParallelWorkerEnd(rel, scan);
}
