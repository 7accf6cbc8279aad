/*-------------------------------------------------------------------------
 *
 * web_load_write.c
 *	  The writes of the web event loader's C route (web_load.c, whose
 *	  design note this follows): rows probed against the table and written
 *	  through the bulk writer, the sorted ones deduplicated first (step 3);
 *	  the rejected rows quarantined through the SQL route (step 4).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/executor.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "bulk_insert.h"
#include "common.h"
#include "web_load.h"

#define WL_REJECTS_TABLE "pg_temp." WL_REJECTS_NAME

static const BulkInsertColumn web_columns[WL_NCOLUMNS] = {
	{"anonymous_id", TEXTOID}, {"event_id", TEXTOID}, {"occurred_at", TIMESTAMPTZOID},
	{"session_id", TEXTOID}, {"account_id", INT8OID}, {"event_name", TEXTOID},
	{"page_path", TEXTOID}, {"referrer", TEXTOID}, {"client", TEXTOID},
	{"campaign", TEXTOID}, {"properties", JSONBOID}
};

/* does the table hold any row (live, or written by a transaction in progress)? */
static bool
TableEmpty(WebLoad *wl)
{
	IndexScanDesc scan = index_beginscan(wl->rel, wl->pk, &wl->dirty, 0, 0);
	bool		empty;

	index_rescan(scan, NULL, 0, NULL, 0);
	empty = !index_getnext_slot(scan, ForwardScanDirection, wl->found);
	index_endscan(scan);
	return empty;
}

/*
 * Does the table hold key (anonymous_id, event_id)?  As ON CONFLICT DO
 * NOTHING: a dirty snapshot, the index's collations; under REPEATABLE READ
 * a row the transaction's snapshot does not see is a serialization failure.
 */
static bool
Stored(WebLoad *wl, Datum anonymous_id, Datum event_id)
{
	ScanKeyData keys[2];
	bool		isnull;
	Datum		xmin;

	ScanKeyEntryInitialize(&keys[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   wl->pk->rd_indcollation[0], F_TEXTEQ, anonymous_id);
	ScanKeyEntryInitialize(&keys[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   wl->pk->rd_indcollation[1], F_TEXTEQ, event_id);
	index_rescan(wl->probe, keys, 2, NULL, 0);
	if (!index_getnext_slot(wl->probe, ForwardScanDirection, wl->found))
		return false;
	if (IsolationUsesXactSnapshot() &&
		!table_tuple_satisfies_snapshot(wl->rel, wl->found, wl->snapshot))
	{
		xmin = slot_getsysattr(wl->found, MinTransactionIdAttributeNumber, &isnull);
		if (!TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin)))
			ereport(ERROR,
					(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					 errmsg("could not serialize access due to concurrent update")));
	}
	return true;
}

/* is the key of the row (v) the one saved in prev?  If not, save it */
static bool
SameKey(StringInfo prev, Datum *v)
{
	text	   *a = DatumGetTextPP(v[WL_ANONYMOUS_ID]);
	text	   *e = DatumGetTextPP(v[WL_EVENT_ID]);
	int			alen = VARSIZE_ANY_EXHDR(a);
	int			elen = VARSIZE_ANY_EXHDR(e);

	if (prev->len == (int) sizeof(int) + alen + elen &&
		memcmp(prev->data, &alen, sizeof(int)) == 0 &&
		memcmp(prev->data + sizeof(int), VARDATA_ANY(a), alen) == 0 &&
		memcmp(prev->data + sizeof(int) + alen, VARDATA_ANY(e), elen) == 0)
		return true;
	resetStringInfo(prev);
	appendBinaryStringInfo(prev, (char *) &alen, sizeof(int));
	appendBinaryStringInfo(prev, VARDATA_ANY(a), alen);
	appendBinaryStringInfo(prev, VARDATA_ANY(e), elen);
	return false;
}

/* open dogdb.web_events for writing; probes only if it holds rows */
void
WebLoadBeginWrite(WebLoad *wl)
{
	wl->rel = table_open(wl->target_id, NoLock);	/* locked by the caller */
	wl->bulk = BulkInsertBegin(wl->target_id, web_columns, WL_NCOLUMNS, NULL, 0, NULL, 0);
	InitDirtySnapshot(wl->dirty);
	wl->pk = index_open(RelationGetPrimaryKeyIndex(wl->rel), AccessShareLock);
	wl->found = table_slot_create(wl->rel, NULL);
	wl->scancxt = CurrentMemoryContext;
	if (TableEmpty(wl))
	{
		/* the first load: the indexes are built from the finished table */
		BulkInsertRebuildIndexes(wl->bulk);
		return;
	}
	/* rows come in about visitor order: the time index is filled sorted at the end */
	BulkInsertSortIndex(wl->bulk, "web_events_time");
	wl->probe = index_beginscan(wl->rel, wl->pk, &wl->dirty, 2, 0);
}

/* write a row (the winner of its key in this load) unless its key is stored */
void
WebLoadWriteRow(WebLoad *wl, Datum *values, bool *nulls)
{
	if (wl->probe != NULL)
	{
		/* the scan keeps allocations across calls (killed items) where it runs */
		MemoryContext old = MemoryContextSwitchTo(wl->scancxt);
		bool		stored = Stored(wl, values[WL_ANONYMOUS_ID], values[WL_EVENT_ID]);

		MemoryContextSwitchTo(old);
		if (stored)
			return;				/* stored by an earlier load */
	}
	BulkInsertRow(wl->bulk, values, nulls);
	wl->loaded++;
}

/* step 3 for the sorted rows: the first of each key; then close */
void
WebLoadEndWrite(WebLoad *wl)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(wl->sortdesc, &TTSOpsMinimalTuple);
	StringInfoData prev;
	int64		n = 0;

	tuplesort_performsort(wl->sort);
	initStringInfo(&prev);
	while (tuplesort_gettupleslot(wl->sort, true, false, slot, NULL))
	{
		if ((++n & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		if (!SameKey(&prev, slot->tts_values))
			WebLoadWriteRow(wl, slot->tts_values, slot->tts_isnull);
	}
	tuplesort_end(wl->sort);
	wl->sort = NULL;
	/* the primary key closed first: the bulk writer may rebuild it */
	if (wl->probe != NULL)
		index_endscan(wl->probe);
	ExecDropSingleTupleTableSlot(wl->found);
	index_close(wl->pk, AccessShareLock);
	BulkInsertEnd(wl->bulk);
	wl->bulk = NULL;
	ExecDropSingleTupleTableSlot(slot);
	table_close(wl->rel, NoLock);
	pfree(prev.data);
}

/* step 4: copy the batch of rejected rows, by ctid under the scan's snapshot */
void
WebLoadCopyRejects(WebLoad *wl)
{
	Datum	   *tids;
	Datum		arg;
	Oid			argtype = TIDARRAYOID;
	int			rc;

	if (wl->nrejects == 0)
		return;
	if (wl->copy_rejects == NULL)
	{
		char	   *source = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(wl->source)),
														RelationGetRelationName(wl->source));

		DogdbSpiExecute(psprintf("CREATE TEMPORARY TABLE %s AS SELECT * FROM %s WITH NO DATA",
								 WL_REJECTS_TABLE, source), false, 0, SPI_OK_UTILITY);
		wl->copy_rejects = DogdbSpiPrepare(psprintf("INSERT INTO %s SELECT * FROM %s s WHERE s.ctid = ANY ($1)",
													WL_REJECTS_TABLE, source), 1, &argtype);
	}
	tids = palloc(sizeof(Datum) * wl->nrejects);
	for (int i = 0; i < wl->nrejects; i++)
		tids[i] = PointerGetDatum(&wl->rejects[i]);
	arg = PointerGetDatum(construct_array(tids, wl->nrejects, TIDOID, sizeof(ItemPointerData), false,
										  TYPALIGN_SHORT));
	rc = SPI_execute_snapshot(wl->copy_rejects, &arg, NULL, wl->snapshot, InvalidSnapshot,
							  false, false, 0);
	DogdbSpiCheck(rc, SPI_OK_INSERT, "copy of the rejected web events");
	if (SPI_processed != (uint64) wl->nrejects)
		elog(ERROR, "copied %llu of %d rejected web events", (unsigned long long) SPI_processed, wl->nrejects);
	pfree(DatumGetPointer(arg));
	pfree(tids);
	wl->nrejects = 0;
}

/* step 4: the SQL route loads the rejected rows: it must reject every one */
void
WebLoadQuarantine(WebLoad *wl)
{
	bool		isnull;
	int64		counts[3];

	if (wl->rejected == 0)
		return;
	WebLoadCopyRejects(wl);
	DogdbSpiExecute("SELECT l.loaded, l.duplicates, l.rejected FROM dogdb_internal.load_web_events_sql('"
					WL_REJECTS_TABLE "'::regclass) l", false, 0, SPI_OK_SELECT);
	for (int i = 0; i < 3; i++)
		counts[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, i + 1, &isnull));
	if (counts[0] != 0 || counts[1] != 0 || counts[2] != wl->rejected)
		elog(ERROR, "the SQL route loaded %lld, skipped %lld and rejected %lld of the %lld rows the C route rejected",
			 (long long) counts[0], (long long) counts[1], (long long) counts[2], (long long) wl->rejected);
	SPI_freetuptable(SPI_tuptable);
	SPI_freeplan(wl->copy_rejects);
	wl->copy_rejects = NULL;
	DogdbSpiExecute("DROP TABLE " WL_REJECTS_TABLE, false, 0, SPI_OK_UTILITY);
}
