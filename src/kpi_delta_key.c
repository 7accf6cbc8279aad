/*-------------------------------------------------------------------------
 *
 * kpi_delta_key.c
 *	  The session deltas' reads and writes of the engine's state rows by
 *	  their primary key (kpi_delta.h): an index probe per row, and a heap
 *	  update by tid in place of an UPDATE statement, when the state tables
 *	  are as the extension made them.  Otherwise kpi_delta.c goes through
 *	  SQL.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/nbtree.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "executor/tuptable.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "common.h"
#include "kpi_delta.h"

/*
 * An engine table read or written by its primary key: the table, that
 * index, the columns used, a slot
 */
typedef struct KeyTable
{
	Relation	rel;
	Relation	idx;
	LOCKMODE	lockmode;
	AttrNumber	att[7];
	TupleTableSlot *slot;
} KeyTable;

/*
 * Open dogdb_internal.<table> for access by key: only if it is as made
 * (KpiTableAsMade), its key index is the one the extension made (its first nkeys columns, btree, plain; the
 * primary key, or a unique key with NULLS NOT DISTINCT), it has no other
 * index and no check, and it has the columns named; false
 * otherwise (nothing left open: the caller goes through SQL)
 */
static bool
OpenKeyTable(KeyTable *kt, const char *table, int nkeys, const char *const *columns, int ncolumns,
			 LOCKMODE lockmode)
{
	Oid			relid = DogdbInternalRelationId(table);
	bool		ok;

	kt->rel = table_open(relid, lockmode);
	kt->lockmode = lockmode;
	ok = KpiTableAsMade(kt->rel) &&
		(RelationGetDescr(kt->rel)->constr == NULL || RelationGetDescr(kt->rel)->constr->num_check == 0);
	for (int c = 0; ok && c < ncolumns; c++)
		ok = (kt->att[c] = get_attnum(relid, columns[c])) != InvalidAttrNumber;
	kt->idx = ok ? KpiOpenKeyIndex(kt->rel, nkeys) : NULL;
	if (kt->idx != NULL && !((kt->idx->rd_index->indisprimary || kt->idx->rd_index->indnullsnotdistinct) &&
							 kt->idx->rd_rel->relam == BTREE_AM_OID))
	{
		index_close(kt->idx, RowExclusiveLock);
		kt->idx = NULL;
	}
	if (kt->idx == NULL)
	{
		table_close(kt->rel, lockmode);
		return false;
	}
	kt->slot = table_slot_create(kt->rel, NULL);
	return true;
}

static void
CloseKeyTable(KeyTable *kt)
{
	ExecDropSingleTupleTableSlot(kt->slot);
	index_close(kt->idx, RowExclusiveLock);
	table_close(kt->rel, kt->lockmode);
}

/* a bytea column of the slot of the expected size, copied; false if not */
static bool
CopySlotBytes(void *dst, TupleTableSlot *slot, AttrNumber att, Size n)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, att, &isnull);
	bytea	   *b;

	if (isnull)
		return false;
	b = DatumGetByteaPP(d);
	if (VARSIZE_ANY_EXHDR(b) != n)
		return false;
	memcpy(dst, VARDATA_ANY(b), n);
	return true;
}

/* the key of a hash entry; and what to take from its row, found at the slot */
typedef void (*EntryKeyFn) (void *entry, ScanKey keys);
typedef void (*EntryFoundFn) (void *entry, KeyTable *kt);

/*
 * Look up every entry of the hash table in dogdb_internal.<table> by its
 * primary key (nkeys columns), one probe each, under the refresh's
 * snapshot; false if the table is not as made
 */
static bool
ReadEntries(DeltaState *ds, const char *table, int nkeys, const char *const *columns, int ncolumns,
			HTAB *entries, EntryKeyFn key_of, EntryFoundFn found)
{
	KeyTable	kt;
	IndexScanDesc scan;
	HASH_SEQ_STATUS seq;
	void	   *entry;

	if (!OpenKeyTable(&kt, table, nkeys, columns, ncolumns, AccessShareLock))
		return false;
	scan = index_beginscan(kt.rel, kt.idx, ds->ks->snapshot, nkeys, 0);
	hash_seq_init(&seq, entries);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		ScanKeyData keys[INDEX_MAX_KEYS];

		key_of(entry, keys);
		index_rescan(scan, keys, nkeys, NULL, 0);
		if (index_getnext_slot(scan, ForwardScanDirection, kt.slot))
			found(entry, &kt);
	}
	index_endscan(scan);
	CloseKeyTable(&kt);
	return true;
}

static void
BlockKey(void *entry, ScanKey keys)
{
	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(((DeltaBlock *) entry)->block));
}

static void
BlockFound(void *entry, KeyTable *kt)
{
	DeltaBlock *blk = entry;

	blk->tid = kt->slot->tts_tid;
	DeltaBlockArrays(blk);
	blk->found = CopySlotBytes(blk->first, kt->slot, kt->att[0], DELTA_FIRST_BYTES) &&
		CopySlotBytes(blk->churn, kt->slot, kt->att[1], DELTA_CHURN_BYTES) &&
		CopySlotBytes(blk->size, kt->slot, kt->att[2], DELTA_SIZE_BYTES);
}

static void
RowKey(void *entry, ScanKey keys)
{
	DeltaRow   *row = entry;

	ScanKeyInit(&keys[0], 1, BTEqualStrategyNumber, F_DATE_EQ, KpiMonthDate((int32) row->key.month));
	ScanKeyInit(&keys[1], 2, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(row->key.block));
}

static void
RowFound(void *entry, KeyTable *kt)
{
	DeltaRow   *row = entry;
	bool		null_counts,
				null_tiers;
	Datum		counts = slot_getattr(kt->slot, kt->att[0], &null_counts);
	Datum		tiers = slot_getattr(kt->slot, kt->att[1], &null_tiers);

	row->tid = kt->slot->tts_tid;
	row->counts = null_counts ? NULL : KpiSlotsCopy(counts, false);
	row->tiers = null_tiers ? NULL : KpiSlotsCopy(tiers, true);
	row->found = row->counts != NULL && row->tiers != NULL;
}

/* the account blocks entered, read by key */
bool
KpiDeltaReadBlocks(DeltaState *ds)
{
	static const char *const columns[] = {"first_months", "churn_months", "company_sizes"};

	return ReadEntries(ds, "kpi_churn_state", 1, columns, lengthof(columns), ds->blocks, BlockKey, BlockFound);
}

/* the (month, block) rows entered, read by key */
bool
KpiDeltaReadRows(DeltaState *ds)
{
	static const char *const columns[] = {"session_counts", "plan_ids"};

	return ReadEntries(ds, "kpi_month_activity", 2, columns, lengthof(columns), ds->rows, RowKey, RowFound);
}

/*
 * Replace one column of the row at tid with a new bytea, in place of an
 * UPDATE: the table is the extension's as made (one index, its primary key,
 * no trigger, no check: OpenKeyTable), and the refresh's lock keeps every
 * other writer out.  The new version is heap-only when it fits the page;
 * else the key gets an entry for it.
 */
static void
UpdateColumn(Relation rel, Relation idx, IndexInfo *info, TupleTableSlot *slot, TupleTableSlot *newslot,
			 ItemPointer tid, AttrNumber att, bytea *value, Snapshot snapshot)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	Datum	   *repl_values = palloc0(sizeof(Datum) * RelationGetDescr(rel)->natts);
	bool	   *repl_nulls = palloc0(sizeof(bool) * RelationGetDescr(rel)->natts);
	bool	   *repl = palloc0(sizeof(bool) * RelationGetDescr(rel)->natts);
	HeapTuple	old;
	HeapTuple	new;
	bool		should_free;

	if (!table_tuple_fetch_row_version(rel, tid, snapshot, slot))
		elog(ERROR, "KPI engine state row not found at (%u,%u)",
			 ItemPointerGetBlockNumber(tid), ItemPointerGetOffsetNumber(tid));
	old = ExecFetchSlotHeapTuple(slot, false, &should_free);
	repl_values[att - 1] = PointerGetDatum(value);
	repl[att - 1] = true;
	new = heap_modify_tuple(old, RelationGetDescr(rel), repl_values, repl_nulls, repl);
	simple_heap_update(rel, tid, new);
	if (!HeapTupleIsHeapOnly(new))
	{
		ExecStoreHeapTuple(new, newslot, false);
		FormIndexDatum(info, newslot, NULL, values, isnull);
		index_insert(idx, values, isnull, &new->t_self, rel, UNIQUE_CHECK_YES, false, info);
		ExecClearTuple(newslot);
	}
	heap_freetuple(new);
	pfree(repl_values);
	pfree(repl_nulls);
	pfree(repl);
}

/* write the changed rows or blocks read by key back by tid; false if the table is not as made */
bool
KpiDeltaWrite(DeltaState *ds, bool rows)
{
	const char *column = rows ? "session_counts" : "churn_months";
	KeyTable	kt;
	IndexInfo  *info;
	TupleTableSlot *newslot;
	HASH_SEQ_STATUS seq;
	void	   *entry;

	if (!OpenKeyTable(&kt, rows ? "kpi_month_activity" : "kpi_churn_state", rows ? 2 : 1, &column, 1,
					  RowExclusiveLock))
		return false;
	info = BuildIndexInfo(kt.idx);
	newslot = MakeSingleTupleTableSlot(RelationGetDescr(kt.rel), &TTSOpsHeapTuple);
	hash_seq_init(&seq, rows ? ds->rows : ds->blocks);
	while ((entry = hash_seq_search(&seq)) != NULL)
	{
		bytea	   *b;
		ItemPointer tid;

		if (rows)
		{
			DeltaRow   *row = entry;

			if (!row->changed)
				continue;
			b = row->counts;
			tid = &row->tid;
		}
		else
		{
			DeltaBlock *blk = entry;

			if (!blk->changed)
				continue;
			b = blk->churn_value;
			tid = &blk->tid;
		}
		UpdateColumn(kt.rel, kt.idx, info, kt.slot, newslot, tid, kt.att[0], b, ds->ks->snapshot);
	}
	ExecDropSingleTupleTableSlot(newslot);
	CloseKeyTable(&kt);
	CommandCounterIncrement();
	return true;
}


/* the fact (month, company_size, plan_id) in the slot; false if none */
static bool
FindFact(KeyTable *kt, IndexScanDesc scan, const Datum *key, bool no_plan)
{
	ScanKeyData skey[3];

	ScanKeyInit(&skey[0], 1, BTEqualStrategyNumber, F_DATE_EQ, key[0]);
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTEqualStrategyNumber, InvalidOid, kt->idx->rd_indcollation[1],
						   F_TEXTEQ, key[1]);
	if (no_plan)
		ScanKeyEntryInitialize(&skey[2], SK_ISNULL | SK_SEARCHNULL, 3, InvalidStrategy, InvalidOid,
							   InvalidOid, InvalidOid, (Datum) 0);
	else
		ScanKeyInit(&skey[2], 3, BTEqualStrategyNumber, F_INT2EQ, key[2]);
	index_rescan(scan, skey, 3, NULL, 0);
	return index_getnext_slot(scan, ForwardScanDirection, kt->slot);
}

/* a + b, or the error the SQL route's bigint addition raises */
static int64
AddFact(int64 a, int64 b)
{
	int64		r;

	if (pg_add_s64_overflow(a, b, &r))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("bigint out of range")));
	return r;
}

/*
 * Add the cells' differences to dogdb_internal.kpi_facts by its key, in
 * place of an upsert statement per cell: each fact found by its unique key
 * (month, company_size, plan_id, NULLS NOT DISTINCT) is updated by tid, or
 * deleted when it becomes all zero; a new one is inserted with its key
 * entry.  The refresh's lock keeps every other writer out.  False (nothing
 * written) if the table is not as made: its seven columns in order, of
 * their types.
 */
bool
KpiDeltaWriteFacts(DeltaState *ds, bool *changed)
{
	static const char *const columns[] = {"month", "company_size", "plan_id", "active_accounts",
	"churned_accounts", "sessions", "revenue_cents"};
	static const Oid types[] = {DATEOID, TEXTOID, INT2OID, INT8OID, INT8OID, INT8OID, INT8OID};
	KeyTable	kt;
	TupleDesc	desc;
	IndexInfo  *info;
	IndexScanDesc scan;
	bool		ok;

	if (!OpenKeyTable(&kt, "kpi_facts", 3, columns, lengthof(columns), RowExclusiveLock))
		return false;
	desc = RelationGetDescr(kt.rel);
	ok = desc->natts == lengthof(columns);
	for (int c = 0; ok && c < desc->natts; c++)
		ok = kt.att[c] == c + 1 && TupleDescAttr(desc, c)->atttypid == types[c];
	if (!ok)
	{
		CloseKeyTable(&kt);
		return false;
	}
	info = BuildIndexInfo(kt.idx);
	scan = index_beginscan(kt.rel, kt.idx, ds->ks->snapshot, 3, 0);
	for (int i = 0; i < ds->ncells; i++)
	{
		DeltaCell  *dc = &ds->cells[i];
		Datum		values[7];
		bool		nulls[7] = {false};
		int64		stored[4] = {0};	/* active, churned, sessions, revenue */
		KpiCell		old;
		KpiCell		new;
		bool		found;
		ItemPointerData tid;

		if (!KpiDeltaCellKey(dc, changed, values, &nulls[2]))
			continue;
		found = FindFact(&kt, scan, values, nulls[2]);
		if (found)
		{
			bool		isnull;

			tid = kt.slot->tts_tid;
			for (int c = 0; c < 4; c++)
			{
				Datum		d = slot_getattr(kt.slot, 4 + c, &isnull);

				if (isnull)
					ereport(ERROR,
							(errcode(ERRCODE_NOT_NULL_VIOLATION),
							 errmsg("null value in column \"%s\" of relation \"%s\"",
									columns[3 + c], RelationGetRelationName(kt.rel))));
				stored[c] = DatumGetInt64(d);
			}
		}
		old.active = stored[0];
		old.churned = stored[1];
		old.sessions = stored[2];
		old.revenue = stored[3];
		new.active = AddFact(old.active, dc->d.active);
		new.churned = AddFact(old.churned, dc->d.churned);
		new.sessions = AddFact(old.sessions, dc->d.sessions);
		new.revenue = old.revenue;
		KpiNoteFactChange(ds->ks, dc->month, dc->size, dc->tier, &old, &new);
		if (found && new.active == 0 && new.churned == 0 && new.sessions == 0 && new.revenue == 0)
			simple_heap_delete(kt.rel, &tid);
		else
		{
			HeapTuple	tup;

			values[3] = Int64GetDatum(new.active);
			values[4] = Int64GetDatum(new.churned);
			values[5] = Int64GetDatum(new.sessions);
			values[6] = Int64GetDatum(new.revenue);
			tup = heap_form_tuple(desc, values, nulls);
			if (found)
				simple_heap_update(kt.rel, &tid, tup);
			else
				simple_heap_insert(kt.rel, tup);
			if (!HeapTupleIsHeapOnly(tup))
				index_insert(kt.idx, values, nulls, &tup->t_self, kt.rel, UNIQUE_CHECK_YES, false, info);
			heap_freetuple(tup);
		}
	}
	index_endscan(scan);
	CloseKeyTable(&kt);
	CommandCounterIncrement();
	return true;
}
