/*-------------------------------------------------------------------------
 *
 * churn_path_exec.c
 *	  The grouped scan of dogdb_active_months(): the executor side (the
 *	  planner side and the supported shape are in churn_path.c).
 *
 * Design note: at the first fetch the node reads the heap once under the
 * query's snapshot, two columns per row, into a month bitmap per key
 * (churn_groups.c; the NULL key is a group of its own).  Large tables are
 * read by parallel workers of the node's own (the parallel heap scan of
 * churn_parallel.c): each fills groups of its own, then sends them to the
 * leader as (key, chunk of 64 months, bits) records through a message
 * queue, and the leader ORs them into its groups.  Then one row per key:
 * the key and the bitmap the aggregate returns when it reads the key's rows
 * in time order (as the sorted plan over a (key, time) index does): first
 * month the key's first month rounded down to a multiple of 8, at least 96
 * months long.  The months are the same whatever the plan; a hash
 * aggregate reading rows out of time order may build a longer bitmap.
 *
 * Bounded: the groups may take ChurnMemoryLimit() per participant; groups
 * that would grow past it, an infinite or out-of-range time (which the
 * aggregate rejects), or a worker meeting either, abandons the pass and the
 * node runs its child, the standard plan, instead: the same rows and the
 * same errors as without the node.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "access/xact.h"
#include "access/tableam.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "port/atomics.h"
#include "storage/shm_mq.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "churn.h"

PGDLLEXPORT void dogdb_churn_path_worker(dsm_segment *seg, shm_toc *toc);

#define CHURN_RECORDS_PER_MESSAGE 2048
#define CHURN_QUEUE_SIZE ((Size) 256 * 1024)

/* the area of the parallel scan (ChurnParallel): this, then one queue per worker */
typedef struct ChurnPathShared
{
	AttrNumber	key_att;
	AttrNumber	time_att;
	Oid			key_type;
	Size		limit;
	pg_atomic_uint32 abandon;	/* a participant gave up: the others stop */
} ChurnPathShared;

#define QUEUE_OF(sh, i) ((shm_mq *) ((char *) (sh) + MAXALIGN(sizeof(ChurnPathShared)) + CHURN_QUEUE_SIZE * (i)))

typedef struct ChurnPathState
{
	CustomScanState css;
	AttrNumber	key_att;
	AttrNumber	time_att;
	Oid			key_type;
	PlanState  *standard;		/* the standard plan, run instead when needed */
	MemoryContext cxt;			/* the groups */
	bool		scanned;
	bool		fallback;
	int			nworkers_planned;
	int			nworkers;		/* launched */
	ChurnGroups *groups;
	ChurnGroupsCursor cursor;
} ChurnPathState;

/* a worker: its groups to the leader, as records */
static void
SendGroups(ChurnGroups *g, shm_mq_handle *mqh)
{
	ChurnRecord *buf = palloc(sizeof(ChurnRecord) * CHURN_RECORDS_PER_MESSAGE);
	ChurnGroupsCursor c = {0};
	int			n = 0;
	bool		more;

	do
	{
		more = ChurnGroupsNextRecord(g, &c, &buf[n]);
		if (more)
			n++;
		if (n == CHURN_RECORDS_PER_MESSAGE || (!more && n > 0))
		{
			if (shm_mq_send(mqh, sizeof(ChurnRecord) * n, buf, false, true) != SHM_MQ_SUCCESS)
				return;			/* the leader gave up */
			n = 0;
		}
	} while (more);
}

/* the leader: a worker's records into its groups; false at the memory bound */
static bool
ReceiveGroups(ChurnGroups *g, shm_mq_handle *mqh)
{
	ChurnRecord *buf = palloc(sizeof(ChurnRecord) * CHURN_RECORDS_PER_MESSAGE);

	for (;;)
	{
		Size		nbytes;
		void	   *data;
		shm_mq_result res = shm_mq_receive(mqh, &nbytes, &data, false);

		if (res == SHM_MQ_DETACHED)
			return true;
		if (res != SHM_MQ_SUCCESS || nbytes % sizeof(ChurnRecord) != 0 ||
			nbytes > sizeof(ChurnRecord) * CHURN_RECORDS_PER_MESSAGE)
			elog(ERROR, "unexpected message from a dogdb_active_months scan worker");
		memcpy(buf, data, nbytes);	/* aligned */
		if (!ChurnGroupsMerge(g, buf, (int) (nbytes / sizeof(ChurnRecord))))
			return false;
		CHECK_FOR_INTERRUPTS();
	}
}

/* the pass without workers; false to abandon it */
static bool
ScanSerial(ChurnGroups *g, Relation rel, Snapshot snapshot, ChurnPathShared *how)
{
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	bool		ok = ChurnGroupsScan(g, rel, scan, how->key_att, how->time_att, how->key_type, NULL);

	table_endscan(scan);
	return ok;
}

/* the parallel pass; false to abandon it */
static bool
ScanParallel(ChurnPathState *st, Relation rel, Snapshot snapshot, int nworkers, ChurnPathShared *how)
{
	ChurnParallel cp;
	ChurnPathShared *sh;
	shm_mq_handle **mqh;
	bool		ok;

	if (!ChurnParallelBegin(&cp, rel, snapshot, "dogdb_churn_path_worker", nworkers,
							MAXALIGN(sizeof(ChurnPathShared)) + CHURN_QUEUE_SIZE * nworkers))
		return ScanSerial(st->groups, rel, snapshot, how);	/* no shared memory */
	sh = cp.area;
	memcpy(sh, how, sizeof(ChurnPathShared));
	pg_atomic_init_u32(&sh->abandon, 0);
	for (int i = 0; i < nworkers; i++)
		shm_mq_set_receiver(shm_mq_create(QUEUE_OF(sh, i), CHURN_QUEUE_SIZE), MyProc);
	ChurnParallelLaunch(&cp);
	st->nworkers = cp.pcxt->nworkers_launched;
	mqh = palloc0(sizeof(shm_mq_handle *) * nworkers);
	for (int i = 0; i < st->nworkers; i++)
	{
		mqh[i] = shm_mq_attach(QUEUE_OF(sh, i), cp.pcxt->seg, NULL);
		shm_mq_set_handle(mqh[i], cp.pcxt->worker[i].bgwhandle);
	}

	/* the leader's part, then the workers' tables */
	ok = ChurnGroupsScan(st->groups, rel, cp.scan, sh->key_att, sh->time_att, sh->key_type, &sh->abandon);
	for (int i = 0; i < st->nworkers; i++)
	{
		if (!ok)
			pg_atomic_write_u32(&sh->abandon, 1);
		ok = ok && ReceiveGroups(st->groups, mqh[i]);
		shm_mq_detach(mqh[i]);
	}
	ChurnParallelWait(&cp);
	ok = ok && pg_atomic_read_u32(&sh->abandon) == 0;
	ChurnParallelEnd(&cp);
	return ok;
}

/* a parallel worker: its share of the rows, sent to the leader */
void
dogdb_churn_path_worker(dsm_segment *seg, shm_toc *toc)
{
	Relation	rel;
	TableScanDesc scan;
	ChurnPathShared *sh = ChurnParallelWorkerBegin(toc, &rel, &scan);
	shm_mq	   *mq = QUEUE_OF(sh, ParallelWorkerNumber);
	shm_mq_handle *mqh;
	ChurnGroups *g;

	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);
	g = ChurnGroupsCreate(CurrentMemoryContext, sh->limit);
	if (ChurnGroupsScan(g, rel, scan, sh->key_att, sh->time_att, sh->key_type, &sh->abandon))
		SendGroups(g, mqh);
	else
		pg_atomic_write_u32(&sh->abandon, 1);
	shm_mq_detach(mqh);
	ChurnParallelWorkerEnd(rel, scan);
}

/* the pass over the heap; false to run the standard plan instead */
static bool
RunScan(ChurnPathState *st)
{
	EState	   *estate = st->css.ss.ps.state;
	Relation	rel = st->css.ss.ss_currentRelation;
	ChurnPathShared how = {0};
	int			nworkers = 0;
	MemoryContext old;
	bool		ok;

	if (rel->rd_rel->relam != HEAP_TABLE_AM_OID)
		return false;
	how.key_att = st->key_att;
	how.time_att = st->time_att;
	how.key_type = st->key_type;
	how.limit = ChurnMemoryLimit();
	/*
	 * The workers planned, if the query is read-only (as for the planner's
	 * own parallel plans), not already in parallel mode, and the table not
	 * temporary (workers cannot read the leader's local buffers).
	 */
	if (estate->es_plannedstmt->commandType == CMD_SELECT && !estate->es_plannedstmt->hasModifyingCTE &&
		!IsInParallelMode() && IsUnderPostmaster && !RelationUsesLocalBuffers(rel))
		nworkers = Min(st->nworkers_planned, max_parallel_workers);
	old = MemoryContextSwitchTo(st->cxt);
	st->groups = ChurnGroupsCreate(st->cxt, how.limit);
	if (nworkers > 0)
		ok = ScanParallel(st, rel, estate->es_snapshot, nworkers, &how);
	else
		ok = ScanSerial(st->groups, rel, estate->es_snapshot, &how);
	MemoryContextSwitchTo(old);
	if (!ok)
		MemoryContextReset(st->cxt);
	return ok;
}

static void
StartOutput(ChurnPathState *st)
{
	memset(&st->cursor, 0, sizeof(st->cursor));
}

/* the next group into the scan slot (key, bitmap) */
static TupleTableSlot *
ChurnNext(ScanState *ss)
{
	ChurnPathState *st = (ChurnPathState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;
	int64		key;
	bool		isnull;
	bytea	   *b;
	MemoryContext old;
	bool		more;

	ExecClearTuple(slot);
	/* the bitmap in the per-tuple memory, which ExecScan resets before each row */
	old = MemoryContextSwitchTo(ss->ps.ps_ExprContext->ecxt_per_tuple_memory);
	more = ChurnGroupsNext(st->groups, &st->cursor, &key, &isnull, &b);
	MemoryContextSwitchTo(old);
	if (!more)
		return slot;
	slot->tts_isnull[0] = isnull;
	slot->tts_values[0] = isnull ? (Datum) 0 :
		st->key_type == INT8OID ? Int64GetDatum(key) :
		st->key_type == INT4OID ? Int32GetDatum((int32) key) : Int16GetDatum((int16) key);
	slot->tts_isnull[1] = b == NULL;
	slot->tts_values[1] = PointerGetDatum(b);
	return ExecStoreVirtualTuple(slot);
}

static bool
ChurnRecheck(ScanState *ss, TupleTableSlot *slot)
{
	return true;
}

static void
ChurnBegin(CustomScanState *node, EState *estate, int eflags)
{
	ChurnPathState *st = (ChurnPathState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;

	st->key_att = intVal(list_nth(cscan->custom_private, CHURN_PATH_KEY_ATTNO));
	st->time_att = intVal(list_nth(cscan->custom_private, CHURN_PATH_TIME_ATTNO));
	st->nworkers_planned = intVal(list_nth(cscan->custom_private, CHURN_PATH_NWORKERS));
	st->key_type = TupleDescAttr(node->ss.ss_ScanTupleSlot->tts_tupleDescriptor, 0)->atttypid;
	st->standard = ExecInitNode(linitial(cscan->custom_plans), estate, eflags);
	node->custom_ps = list_make1(st->standard);
	st->cxt = AllocSetContextCreate(estate->es_query_cxt, "dogdb_active_months grouped scan",
									ALLOCSET_DEFAULT_SIZES);
}

static TupleTableSlot *
ChurnExec(CustomScanState *node)
{
	ChurnPathState *st = (ChurnPathState *) node;

	if (!st->scanned)
	{
		st->fallback = !RunScan(st);
		st->scanned = true;
		if (!st->fallback)
			StartOutput(st);
	}
	if (st->fallback)
	{
		TupleTableSlot *slot = ExecProcNode(st->standard);

		if (TupIsNull(slot))
			return ExecClearTuple(node->ss.ps.ps_ResultTupleSlot);
		return ExecCopySlot(node->ss.ps.ps_ResultTupleSlot, slot);
	}
	return ExecScan(&node->ss, ChurnNext, ChurnRecheck);
}

static void
ChurnEnd(CustomScanState *node)
{
	ChurnPathState *st = (ChurnPathState *) node;

	ExecEndNode(st->standard);
	MemoryContextDelete(st->cxt);
}

/* the groups do not depend on parameters: read them again, or rescan the standard plan */
static void
ChurnReScan(CustomScanState *node)
{
	ChurnPathState *st = (ChurnPathState *) node;

	if (st->fallback)
	{
		if (node->ss.ps.chgParam != NULL)
			UpdateChangedParamSet(st->standard, node->ss.ps.chgParam);
		ExecReScan(st->standard);
	}
	else if (st->scanned)
		StartOutput(st);
}

static void
ChurnExplain(CustomScanState *node, List *ancestors, ExplainState *es)
{
	ChurnPathState *st = (ChurnPathState *) node;
	Relation	rel = node->ss.ss_currentRelation;

	ExplainPropertyText("Group Key",
						quote_identifier(get_attname(RelationGetRelid(rel), st->key_att, false)), es);
	if (st->nworkers_planned > 0)
		ExplainPropertyInteger("Workers Planned", NULL, st->nworkers_planned, es);
	if (es->analyze)
	{
		ExplainPropertyInteger("Workers Launched", NULL, st->nworkers, es);
		ExplainPropertyBool("Standard Plan Run", st->fallback, es);
	}
}

static const CustomExecMethods ChurnExecMethods = {
	.CustomName = "DogdbGroupedScan",
	.BeginCustomScan = ChurnBegin,
	.ExecCustomScan = ChurnExec,
	.EndCustomScan = ChurnEnd,
	.ReScanCustomScan = ChurnReScan,
	.ExplainCustomScan = ChurnExplain,
};

Node *
ChurnPathCreateState(CustomScan *cscan)
{
	ChurnPathState *st = (ChurnPathState *) newNode(sizeof(ChurnPathState), T_CustomScanState);

	st->css.methods = &ChurnExecMethods;
	return (Node *) st;
}
