/*-------------------------------------------------------------------------
 *
 * kpi_bulk.c
 *	  The month rows of a full rebuild written in bulk (kpi.h): straight
 *	  into dogdb_internal.kpi_month_activity's heap with heap_multi_insert
 *	  and into its indexes, without SPI, arrays or the executor.
 *
 * A full rebuild writes every (month, block) row, 24 x 977 rows of 2 kB at
 * a million accounts, into the table it has just truncated; through an
 * INSERT ... SELECT FROM unnest() each row costs an array element, an
 * executor tuple and a heap insert of its own.  Here a month's rows go to
 * the heap in one heap_multi_insert (a page at a time, one WAL record per
 * page) and each row's key to the table's indexes.  The table must be as
 * the extension made it: no trigger, and indexes on plain columns, without
 * predicates; otherwise KpiMonthWriterBegin() returns NULL and the caller
 * inserts through SPI.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_type.h"
#include "executor/tuptable.h"
#include "nodes/execnodes.h"
#include "utils/rel.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

#define KPI_WRITER_MAX_INDEXES 8

struct KpiMonthWriter
{
	Relation	rel;
	int			nindexes;
	Relation	indexes[KPI_WRITER_MAX_INDEXES];
	IndexInfo  *info[KPI_WRITER_MAX_INDEXES];
	BulkInsertState bistate;
	CommandId	cid;
	TupleTableSlot **slots;		/* the month's rows, KPI_WRITER_BATCH at most */
	Datum	  (*values)[4];		/* each row's values, for the index keys */
	int			n;
};

#define KPI_WRITER_BATCH 1024

/* a writer of kpi_month_activity's rows, or NULL if the table is not as expected */
KpiMonthWriter *
KpiMonthWriterBegin(void)
{
	Relation	rel = table_open(DogdbInternalRelationId("kpi_month_activity"), RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	List	   *indexes;
	ListCell   *lc;
	KpiMonthWriter *w;

	if (rel->trigdesc != NULL || desc->natts != 4 ||
		TupleDescAttr(desc, 0)->atttypid != DATEOID || TupleDescAttr(desc, 1)->atttypid != INT8OID ||
		TupleDescAttr(desc, 2)->atttypid != BYTEAOID || TupleDescAttr(desc, 3)->atttypid != BYTEAOID)
	{
		table_close(rel, RowExclusiveLock);
		return NULL;
	}
	indexes = RelationGetIndexList(rel);
	if (list_length(indexes) > KPI_WRITER_MAX_INDEXES)
	{
		table_close(rel, RowExclusiveLock);
		return NULL;
	}
	w = palloc0(sizeof(KpiMonthWriter));
	w->rel = rel;
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), RowExclusiveLock);
		IndexInfo  *ii = BuildIndexInfo(idx);
		bool		plain = (ii->ii_Expressions == NIL && ii->ii_Predicate == NIL);

		for (int k = 0; k < ii->ii_NumIndexAttrs; k++)
			plain &= (ii->ii_IndexAttrNumbers[k] >= 1 && ii->ii_IndexAttrNumbers[k] <= 4);
		w->indexes[w->nindexes] = idx;
		w->info[w->nindexes++] = ii;
		if (!plain || !ii->ii_ReadyForInserts)
		{
			for (int i = 0; i < w->nindexes; i++)
				index_close(w->indexes[i], RowExclusiveLock);
			table_close(rel, RowExclusiveLock);
			return NULL;
		}
	}
	w->bistate = GetBulkInsertState();
	w->cid = GetCurrentCommandId(true);
	w->slots = palloc(sizeof(TupleTableSlot *) * KPI_WRITER_BATCH);
	for (int i = 0; i < KPI_WRITER_BATCH; i++)
		w->slots[i] = MakeSingleTupleTableSlot(desc, &TTSOpsHeapTuple);
	w->values = palloc(sizeof(Datum) * 4 * KPI_WRITER_BATCH);
	return w;
}

/* write the rows added */
void
KpiMonthWriterFlush(KpiMonthWriter *w)
{
	if (w->n == 0)
		return;
	heap_multi_insert(w->rel, w->slots, w->n, w->cid, 0, w->bistate);
	for (int i = 0; i < w->n; i++)
	{
		for (int x = 0; x < w->nindexes; x++)
		{
			IndexInfo  *ii = w->info[x];
			Datum		key[INDEX_MAX_KEYS];
			bool		isnull[INDEX_MAX_KEYS];

			for (int k = 0; k < ii->ii_NumIndexAttrs; k++)
			{
				key[k] = w->values[i][ii->ii_IndexAttrNumbers[k] - 1];
				isnull[k] = false;
			}
			index_insert(w->indexes[x], key, isnull, &w->slots[i]->tts_tid, w->rel,
						 w->indexes[x]->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
						 false, ii);
		}
		ExecClearTuple(w->slots[i]);
	}
	w->n = 0;
}

/* add a row (its values must live until the next flush) */
void
KpiMonthWriterAdd(KpiMonthWriter *w, int32 month, int64 block, bytea *counts, bytea *tiers)
{
	TupleTableSlot *slot;
	bool		nulls[4] = {false, false, false, false};

	if (w->n == KPI_WRITER_BATCH)
		KpiMonthWriterFlush(w);
	slot = w->slots[w->n];
	w->values[w->n][0] = KpiMonthDate(month);
	w->values[w->n][1] = Int64GetDatum(block);
	w->values[w->n][2] = PointerGetDatum(counts);
	w->values[w->n][3] = PointerGetDatum(tiers);
	ExecStoreHeapTuple(heap_form_tuple(slot->tts_tupleDescriptor, w->values[w->n], nulls), slot, true);
	w->n++;
}

/* flush, close the table and its indexes */
void
KpiMonthWriterEnd(KpiMonthWriter *w)
{
	KpiMonthWriterFlush(w);
	FreeBulkInsertState(w->bistate);
	for (int i = 0; i < KPI_WRITER_BATCH; i++)
		ExecDropSingleTupleTableSlot(w->slots[i]);
	for (int i = 0; i < w->nindexes; i++)
		index_close(w->indexes[i], NoLock);
	table_close(w->rel, NoLock);
	CommandCounterIncrement();
}
