/*-------------------------------------------------------------------------
 *
 * churn_path_exec.c
 *	  The grouped scan of dogdb_active_months(): the executor side (the
 *	  planner side and the supported shape are in churn_path.c).
 *
 * Design note: at the first fetch the node reads the heap once under the
 * query's snapshot, two columns per row, into a hash table keyed by the
 * int64 group key (the NULL key is a group of its own).  Each key holds
 * its months in one 64-bit word of 64 months (the chunk of its first row);
 * months of other chunks, rare, go to a second table keyed by (key, chunk).
 * Large tables are read by parallel workers of the node's own
 * (churn_parallel.c): each fills a table of its own, then sends it to the
 * leader as (key, chunk, bits) records through a message queue, and the
 * leader ORs them into its table.  Then one row per key: the key and the
 * bitmap the aggregate returns when it reads the key's rows in time order
 * (as the sorted plan over a (key, time) index does): first month the
 * key's first month rounded down to a multiple of 8, at least 96 months
 * long; the months are the same whatever the plan.
 *
 * Bounded: the tables may take ChurnMemoryLimit() per participant; a table
 * that would grow past it, an infinite or out-of-range time (which the
 * aggregate rejects), or a worker meeting either, abandons the pass and the
 * node runs its child, the standard plan, instead: the same rows and the
 * same errors as without the node.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/tableam.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_type.h"
#include "commands/explain.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/extensible.h"
#include "port/atomics.h"
#include "port/pg_bitutils.h"
#include "storage/shm_mq.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "churn.h"
#include "month_bitmap.h"

PGDLLEXPORT void dogdb_churn_path_worker(dsm_segment *seg, shm_toc *toc);

/* the 64-bit finalizer of MurmurHash3 */
static inline uint64
HashKey(uint64 k)
{
	k ^= k >> 33;
	k *= UINT64CONST(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64CONST(0xc4ceb9fe1a85ec53);
	k ^= k >> 33;
	return k;
}

/* one key's months: the chunk of 64 months of its first row, more in ChurnOver */
typedef struct ChurnGroup
{
	int64		key;
	int32		chunk;			/* -1: no month yet (only NULL times) */
	char		status;			/* simplehash */
	uint64		bits;
	int32		olo;			/* other chunks in ChurnOver: olo..ohi */
	int32		ohi;
} ChurnGroup;

#define SH_PREFIX churn_groups
#define SH_ELEMENT_TYPE ChurnGroup
#define SH_KEY_TYPE int64
#define SH_KEY key
#define SH_HASH_KEY(tb, k) HashKey((uint64) (k))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct ChurnOverKey
{
	int64		key;
	int32		chunk;
	int32		isnull;
} ChurnOverKey;

typedef struct ChurnOver
{
	ChurnOverKey k;
	char		status;
	uint64		bits;
} ChurnOver;

#define SH_PREFIX churn_over
#define SH_ELEMENT_TYPE ChurnOver
#define SH_KEY_TYPE ChurnOverKey
#define SH_KEY k
#define SH_HASH_KEY(tb, x) hash_combine64(HashKey((uint64) (x).key), (uint64) (x).chunk * 2 + (x).isnull)
#define SH_EQUAL(tb, a, b) ((a).key == (b).key && (a).chunk == (b).chunk && (a).isnull == (b).isnull)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* the keys of one participant */
typedef struct ChurnGroups
{
	churn_groups_hash *main;
	churn_over_hash *over;
	bool		has_null;
	ChurnGroup	null_group;
	ChurnGroup *last;			/* the group of the previous row */
	Size		limit;
} ChurnGroups;

/* what a worker sends the leader, per chunk of a key */
typedef struct ChurnRecord
{
	int64		key;
	int32		chunk;
	int32		isnull;
	uint64		bits;
} ChurnRecord;

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
	int			nworkers;		/* launched */
	ChurnGroups groups;
	churn_groups_iterator iter;
	bool		null_done;
} ChurnPathState;

static void
GroupsInit(ChurnGroups *g, MemoryContext cxt, Size limit)
{
	memset(g, 0, sizeof(*g));
	g->main = churn_groups_create(cxt, 1024, NULL);
	g->over = churn_over_create(cxt, 16, NULL);
	g->null_group.chunk = -1;
	g->null_group.olo = PG_INT32_MAX;
	g->null_group.ohi = PG_INT32_MIN;
	g->limit = limit;
}

/* whether a table of size entries of width bytes may double */
static inline bool
MayGrow(uint32 members, uint32 threshold, uint64 size, Size width, const ChurnGroups *g)
{
	Size		both = (Size) (g->main->size * sizeof(ChurnGroup) + g->over->size * sizeof(ChurnOver));

	return members < threshold || both + (Size) size * width <= g->limit;
}

/* the group of a key; NULL if the table would exceed the memory bound */
static inline ChurnGroup *
GroupsFind(ChurnGroups *g, int64 key, bool isnull)
{
	ChurnGroup *grp;
	bool		found;

	if (isnull)
	{
		g->has_null = true;
		return &g->null_group;
	}
	if (g->last != NULL && g->last->key == key)
		return g->last;
	if (!MayGrow(g->main->members, g->main->grow_threshold, g->main->size, sizeof(ChurnGroup), g))
		return NULL;
	grp = churn_groups_insert(g->main, key, &found);
	if (!found)
	{
		grp->chunk = -1;
		grp->bits = 0;
		grp->olo = PG_INT32_MAX;
		grp->ohi = PG_INT32_MIN;
	}
	g->last = grp;
	return grp;
}

/* OR bits into the group's chunk; false if the memory bound would be exceeded */
static inline bool
GroupAdd(ChurnGroups *g, ChurnGroup *grp, bool isnull, int32 chunk, uint64 bits)
{
	ChurnOverKey k = {0};
	ChurnOver  *o;
	bool		found;

	if (grp->chunk == chunk)
	{
		grp->bits |= bits;
		return true;
	}
	if (grp->chunk < 0)
	{
		grp->chunk = chunk;
		grp->bits = bits;
		return true;
	}
	if (!MayGrow(g->over->members, g->over->grow_threshold, g->over->size, sizeof(ChurnOver), g))
		return false;
	k.key = isnull ? 0 : grp->key;
	k.chunk = chunk;
	k.isnull = isnull;
	o = churn_over_insert(g->over, k, &found);
	o->bits = found ? o->bits | bits : bits;
	grp->olo = Min(grp->olo, chunk);
	grp->ohi = Max(grp->ohi, chunk);
	return true;
}

static inline int64
KeyOf(Datum d, Oid type)
{
	return type == INT8OID ? DatumGetInt64(d) : type == INT4OID ? DatumGetInt32(d) : DatumGetInt16(d);
}

/*
 * One participant's rows into g; false to abandon the pass (an unusual
 * time, the memory bound, or another participant gave up).
 */
static bool
ScanInto(ChurnGroups *g, Relation rel, TableScanDesc scan, const ChurnPathShared *how,
		 pg_atomic_uint32 *abandon)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TimestampTz lo = 1,
				hi = 0;			/* [lo, hi): the times of month */
	int32		rel_month = 0;
	uint64		n = 0;
	HeapTuple	tuple;

	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		ChurnGroup *grp;
		Datum		d;
		bool		isnull,
					keynull;
		TimestampTz ts;

		if ((++n & 0xFFFF) == 0)
		{
			CHECK_FOR_INTERRUPTS();
			if (abandon != NULL && pg_atomic_read_u32(abandon) != 0)
				return false;
		}
		d = heap_getattr(tuple, how->key_att, desc, &keynull);
		grp = GroupsFind(g, keynull ? 0 : KeyOf(d, how->key_type), keynull);
		if (grp == NULL)
			return false;
		d = heap_getattr(tuple, how->time_att, desc, &isnull);
		if (isnull)
			continue;			/* the aggregate skips them */
		ts = DatumGetTimestampTz(d);
		if (ts < lo || ts >= hi)
		{
			int32		month;

			/* the aggregate's errors: the standard plan raises them */
			if (TIMESTAMP_NOT_FINITE(ts))
				return false;
			month = cal_month_of_timestamp(ts);
			if (month < MONTH_BITMAP_MIN_MONTH || month > MONTH_BITMAP_MAX_MONTH)
				return false;
			lo = (TimestampTz) cal_month_first_day(month) * USECS_PER_DAY;
			hi = (TimestampTz) cal_month_first_day(month + 1) * USECS_PER_DAY;
			rel_month = month - MONTH_BITMAP_MIN_MONTH;
		}
		if (!GroupAdd(g, grp, keynull, rel_month / 64, UINT64CONST(1) << (rel_month % 64)))
			return false;
	}
	return true;
}

/* the months of chunk into a bitmap */
static void
SetChunk(uint8 *bitmap, size_t len, int32 chunk, uint64 bits)
{
	while (bits != 0)
	{
		int			i = pg_rightmost_one_pos64(bits);

		if (!month_bitmap_set(bitmap, len, MONTH_BITMAP_MIN_MONTH + chunk * 64 + i))
			elog(ERROR, "active-month bitmap misses month %d", MONTH_BITMAP_MIN_MONTH + chunk * 64 + i);
		bits &= bits - 1;
	}
}

/* another chunk of a group, or 0 */
static uint64
OverBits(ChurnGroups *g, const ChurnGroup *grp, bool isnull, int32 chunk)
{
	ChurnOverKey k = {0};
	ChurnOver  *o;

	k.key = isnull ? 0 : grp->key;
	k.chunk = chunk;
	k.isnull = isnull;
	o = churn_over_lookup(g->over, k);
	return o != NULL ? o->bits : 0;
}

/* the aggregate's result for a group (see the design note), or NULL */
static bytea *
GroupBitmap(ChurnGroups *g, const ChurnGroup *grp, bool isnull)
{
	int32		lo_chunk = grp->chunk,
				hi_chunk = grp->chunk;
	uint64		lo_bits = grp->bits,
				hi_bits = grp->bits;
	int32		first,
				last;
	size_t		len;
	bytea	   *b;

	if (grp->chunk < 0)
		return NULL;
	if (grp->olo < lo_chunk)
		lo_bits = OverBits(g, grp, isnull, lo_chunk = grp->olo);
	if (grp->ohi > hi_chunk)
		hi_bits = OverBits(g, grp, isnull, hi_chunk = grp->ohi);
	first = MONTH_BITMAP_MIN_MONTH + lo_chunk * 64 + pg_rightmost_one_pos64(lo_bits);
	last = MONTH_BITMAP_MIN_MONTH + hi_chunk * 64 + pg_leftmost_one_pos64(hi_bits);
	/* as the aggregate: the first month rounded down to a multiple of 8, 96 months or more */
	first -= (int32) (((int64) first % 8 + 8) % 8);
	last = Max(last, Min(first + MONTH_BITMAP_INITIAL_MONTHS - 1, MONTH_BITMAP_MAX_MONTH));
	len = month_bitmap_size(first, last);
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	month_bitmap_init((uint8 *) VARDATA(b), len, first);
	SetChunk((uint8 *) VARDATA(b), len, grp->chunk, grp->bits);
	for (int32 c = grp->olo; c <= grp->ohi; c++)
		SetChunk((uint8 *) VARDATA(b), len, c, OverBits(g, grp, isnull, c));
	return b;
}

/* a worker: its groups to the leader, as records */
static void
SendGroups(ChurnGroups *g, shm_mq_handle *mqh)
{
	ChurnRecord *buf = palloc(sizeof(ChurnRecord) * CHURN_RECORDS_PER_MESSAGE);
	int			n = 0;
	churn_groups_iterator it;
	churn_over_iterator oit;
	ChurnGroup *grp;
	ChurnOver  *o;
	bool		more = true;

#define PUT(k_, c_, n_, b_) \
	do { \
		buf[n].key = (k_); buf[n].chunk = (c_); buf[n].isnull = (n_); buf[n].bits = (b_); \
		if (++n == CHURN_RECORDS_PER_MESSAGE) \
		{ \
			more = shm_mq_send(mqh, sizeof(ChurnRecord) * n, buf, false, true) == SHM_MQ_SUCCESS; \
			n = 0; \
		} \
	} while (0)

	if (g->has_null)
		PUT(0, g->null_group.chunk, 1, g->null_group.bits);
	churn_groups_start_iterate(g->main, &it);
	while (more && (grp = churn_groups_iterate(g->main, &it)) != NULL)
		PUT(grp->key, grp->chunk, 0, grp->bits);
	churn_over_start_iterate(g->over, &oit);
	while (more && (o = churn_over_iterate(g->over, &oit)) != NULL)
		PUT(o->k.key, o->k.chunk, o->k.isnull, o->bits);
	if (more && n > 0)
		(void) shm_mq_send(mqh, sizeof(ChurnRecord) * n, buf, false, true);
#undef PUT
}

/* the leader: a worker's records into its groups; false at the memory bound */
static bool
ReceiveGroups(ChurnGroups *g, shm_mq_handle *mqh)
{
	for (;;)
	{
		Size		nbytes;
		void	   *data;
		shm_mq_result res = shm_mq_receive(mqh, &nbytes, &data, false);

		if (res == SHM_MQ_DETACHED)
			return true;
		if (res != SHM_MQ_SUCCESS || nbytes % sizeof(ChurnRecord) != 0)
			elog(ERROR, "unexpected message from a dogdb_active_months scan worker");
		for (Size i = 0; i < nbytes / sizeof(ChurnRecord); i++)
		{
			ChurnRecord r;
			ChurnGroup *grp;

			memcpy(&r, (char *) data + i * sizeof(ChurnRecord), sizeof(r));
			g->last = NULL;
			grp = GroupsFind(g, r.key, r.isnull);
			if (grp == NULL || (r.chunk >= 0 && !GroupAdd(g, grp, r.isnull, r.chunk, r.bits)))
				return false;
		}
		CHECK_FOR_INTERRUPTS();
	}
}

/* the pass without workers; false to abandon it */
static bool
ScanSerial(ChurnGroups *g, Relation rel, Snapshot snapshot, ChurnPathShared *how)
{
	TableScanDesc scan = table_beginscan(rel, snapshot, 0, NULL);
	bool		ok = ScanInto(g, rel, scan, how, NULL);

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
		return ScanSerial(&st->groups, rel, snapshot, how);	/* no shared memory */
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
	ok = ScanInto(&st->groups, rel, cp.scan, sh, &sh->abandon);
	for (int i = 0; i < st->nworkers; i++)
	{
		if (!ok)
			pg_atomic_write_u32(&sh->abandon, 1);
		ok = ok && ReceiveGroups(&st->groups, mqh[i]);
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
	ChurnGroups g;

	shm_mq_set_sender(mq, MyProc);
	mqh = shm_mq_attach(mq, seg, NULL);
	GroupsInit(&g, CurrentMemoryContext, sh->limit);
	if (ScanInto(&g, rel, scan, sh, &sh->abandon))
		SendGroups(&g, mqh);
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
	/* workers only for a read-only query, as the planner's own parallel plans */
	if (estate->es_plannedstmt->commandType == CMD_SELECT && !estate->es_plannedstmt->hasModifyingCTE)
		nworkers = ChurnWorkers(rel);
	old = MemoryContextSwitchTo(st->cxt);
	GroupsInit(&st->groups, st->cxt, how.limit);
	if (nworkers > 0)
		ok = ScanParallel(st, rel, estate->es_snapshot, nworkers, &how);
	else
		ok = ScanSerial(&st->groups, rel, estate->es_snapshot, &how);
	MemoryContextSwitchTo(old);
	if (!ok)
		MemoryContextReset(st->cxt);
	return ok;
}

static void
StartOutput(ChurnPathState *st)
{
	st->null_done = false;
	churn_groups_start_iterate(st->groups.main, &st->iter);
}

/* the next group into the scan slot (key, bitmap) */
static TupleTableSlot *
ChurnNext(ScanState *ss)
{
	ChurnPathState *st = (ChurnPathState *) ss;
	TupleTableSlot *slot = ss->ss_ScanTupleSlot;
	ChurnGroup *grp = NULL;
	bool		isnull = false;
	bytea	   *b;

	ExecClearTuple(slot);
	if (!st->null_done)
	{
		st->null_done = true;
		if (st->groups.has_null)
		{
			grp = &st->groups.null_group;
			isnull = true;
		}
	}
	if (grp == NULL && (grp = churn_groups_iterate(st->groups.main, &st->iter)) == NULL)
		return slot;
	slot->tts_isnull[0] = isnull;
	slot->tts_values[0] = isnull ? (Datum) 0 :
		st->key_type == INT8OID ? Int64GetDatum(grp->key) :
		st->key_type == INT4OID ? Int32GetDatum((int32) grp->key) : Int16GetDatum((int16) grp->key);
	/* in the per-tuple memory, which ExecScan resets before each row */
	b = GroupBitmap(&st->groups, grp, isnull);
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
