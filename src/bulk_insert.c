/*-------------------------------------------------------------------------
 *
 * bulk_insert.c
 *	  Batched inserts into the extension's own tables (see bulk_insert.h).
 *
 * Design note: this is the write half of COPY FROM (copyfrom.c) cut down
 * to what the extension's tables need.  Rows are collected in slots and
 * written with table_multi_insert() (one WAL record per page instead of
 * per row), then their index entries are inserted, which also enforces
 * UNIQUE and PRIMARY KEY.  CHECK and NOT NULL run per row through
 * ExecConstraints().
 *
 * The per-row foreign-key triggers are what make INSERT ... SELECT slow
 * here (a query per row).  This writer does not fire them; instead the
 * caller must guarantee each foreign key of the table, and names each one
 * it guarantees: referencing column, referenced table and column.  A
 * foreign key it does not name (a user's, even one into a table the caller
 * locks), and anything else that acts on insert (an unknown trigger, a
 * rule, row-level security, a stored generated column) makes
 * BulkInsertBegin() refuse, as does a column layout other than the one the
 * caller expects, names and types: values are formed as the caller's
 * types, so a column whose type was altered must never be written.
 *
 * Citus: a distributed or reference table's local heap is an empty shell
 * on the coordinator.  For such a table the batch is sent as one INSERT
 * ... SELECT FROM ROWS FROM (unnest($1), ...) (an array per column), which Citus
 * routes row by row to the shards; the shards check every constraint and
 * foreign key, so a child's batch waits for its parent's (BulkInsertAfter).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/array.h"
#include "utils/datum.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/tuplesort.h"

#include "bulk_insert.h"
#include "common.h"

struct BulkInsert
{
	Relation	rel;
	EState	   *estate;
	ResultRelInfo *rri;
	BulkInsertState bistate;
	CommandId	cid;
	bool		check_constraints;
	int			ncolumns;
	int		   *attmap;			/* column n of the caller is attribute attmap[n] */
	const BulkInsertColumn *columns;
	char	   *citus_insert;	/* a Citus table: the INSERT of a batch, else NULL */
	BulkInsert *after;			/* flushed before this one (BulkInsertAfter) */
	MemoryContext batchcxt;		/* copies of queued by-reference values */
	Relation	sorted_index;	/* BulkInsertSortIndex(): written at the end */
	IndexInfo  *sorted_info;
	Tuplesortstate *index_sort; /* its entries, sorted in its order */
	bool		rebuild_indexes;	/* BulkInsertRebuildIndexes() */
	int			nqueued;
	TupleTableSlot *slots[BULK_INSERT_BATCH];
};

/* the layouts of dogdb.accounts and dogdb.subscriptions (bulk_insert.h) */
const BulkInsertColumn bulk_account_columns[BULK_ACCOUNT_NCOLUMNS] = {
	{"account_id", INT8OID}, {"email", TEXTOID}, {"company_size", TEXTOID},
	{"created_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID}
};
const BulkInsertColumn bulk_subscription_columns[BULK_SUBSCRIPTION_NCOLUMNS] = {
	{"subscription_id", INT8OID}, {"account_id", INT8OID}, {"plan_id", INT2OID},
	{"valid_from", TIMESTAMPTZOID}, {"valid_to", TIMESTAMPTZOID}
};
/* is "a,b,..." exactly the names of the nkeys attributes attnums of relid? */
static bool
ColumnListMatches(Oid relid, const AttrNumber *attnums, int nkeys, const char *list)
{
	for (int n = 0; n < nkeys; n++)
	{
		char	   *name = get_attname(relid, attnums[n], false);
		size_t		len = strlen(name);
		bool		match = strncmp(list, name, len) == 0 &&
			list[len] == (n == nkeys - 1 ? '\0' : ',');

		pfree(name);
		if (!match)
			return false;
		list += len + 1;
	}
	return true;
}

/* is fk exactly the foreign key g of rel (same columns, in order)? */
static bool
ForeignKeyMatches(Relation rel, ForeignKeyCacheInfo *fk, const BulkInsertForeignKey *g)
{
	return fk->confrelid == g->refrelid &&
		ColumnListMatches(RelationGetRelid(rel), fk->conkey, fk->nkeys, g->column) &&
		ColumnListMatches(fk->confrelid, fk->confkey, fk->nkeys, g->refcolumn);
}

/*
 * A refusal of the table: an error, or false when the caller only asks
 * (report false, BulkInsertTryBegin)
 */
#define REFUSE(report, errargs) \
	do { \
		if (!(report)) \
			return false; \
		ereport(ERROR, errargs); \
	} while (0)

/* refuse a table whose inserts would do more than this writer does */
static bool
CheckBulkInsertTarget(Relation rel, const BulkInsertForeignKey *fkeys, int nfkeys,
					  const Oid *handled_trigfuncs, int nhandled, bool report)
{
	const char *relname = RelationGetRelationName(rel);
	TriggerDesc *trigdesc = rel->trigdesc;
	List	   *fklist = RelationGetFKeyList(rel);
	ListCell   *lc;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		REFUSE(report,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", relname)));
	if (rel->rd_rules != NULL)
		REFUSE(report,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write to table \"%s\" because it has rules", relname)));
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED)
		REFUSE(report,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write to table \"%s\" because it has row-level security enabled", relname)));
	if (rel->rd_att->constr != NULL && rel->rd_att->constr->has_generated_stored)
		REFUSE(report,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write to table \"%s\" because it has generated columns", relname)));

	/*
	 * every foreign key of the table must be one the caller guarantees:
	 * same referencing column, same referenced table and column
	 */
	foreach(lc, fklist)
	{
		ForeignKeyCacheInfo *fk = lfirst_node(ForeignKeyCacheInfo, lc);
		bool		guaranteed = false;

		for (int i = 0; i < nfkeys && !guaranteed; i++)
			guaranteed = ForeignKeyMatches(rel, fk, &fkeys[i]);
		if (!guaranteed)
			REFUSE(report,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot write to table \"%s\" because of foreign key \"%s\"",
							relname, get_constraint_name(fk->conoid)),
					 errdetail("Only the foreign keys the extension creates are supported on this table.")));
	}

	/*
	 * The only insert triggers allowed are those foreign keys' checks and
	 * the extension's own triggers whose work the caller does itself.
	 */
	for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
	{
		Trigger    *trig = &trigdesc->triggers[i];
		bool		known_fk = false;
		bool		handled = false;

		if (!TRIGGER_FOR_INSERT(trig->tgtype))
			continue;
		for (int k = 0; k < nhandled; k++)
			handled |= (trig->tgfoid == handled_trigfuncs[k]);
		if (handled)
			continue;
		foreach(lc, fklist)
			known_fk |= (trig->tgconstraint == lfirst_node(ForeignKeyCacheInfo, lc)->conoid);
		if (!(known_fk && trig->tgfoid == F_RI_FKEY_CHECK_INS))
			REFUSE(report,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot write to table \"%s\" because of trigger \"%s\"",
							relname, trig->tgname),
					 errdetail("The extension writes this table in bulk and does not fire user triggers."),
					 errhint("Put the trigger on a table of your own that copies from this one.")));
	}
	return true;
}

/* refuse a column layout other than the expected one; fill attmap */
static bool
CheckColumns(Relation rel, const BulkInsertColumn *columns, int ncolumns, int *attmap, bool report)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (n >= ncolumns || strcmp(NameStr(att->attname), columns[n].name) != 0)
			REFUSE(report,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("table \"%s\" does not have the columns the extension created",
							RelationGetRelationName(rel)),
					 errdetail("Column \"%s\" was not expected.", NameStr(att->attname))));
		/* the values are of the caller's type: no other type, no length limit */
		if (att->atttypid != columns[n].type || att->atttypmod != -1)
			REFUSE(report,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("table \"%s\" does not have the columns the extension created",
							RelationGetRelationName(rel)),
					 errdetail("Column \"%s\" has type %s, but the extension writes %s.",
							   NameStr(att->attname),
							   format_type_with_typemod(att->atttypid, att->atttypmod),
							   format_type_be(columns[n].type)),
					 errhint("Restore the column type the extension created.")));
		attmap[n++] = i;
	}
	if (n != ncolumns)
		REFUSE(report,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" does not have the columns the extension created",
						RelationGetRelationName(rel)),
				 errdetail("Column \"%s\" is missing.", columns[n].name)));
	return true;
}

/* INSERT INTO rel (columns) SELECT * FROM ROWS FROM (unnest($1), ...): a batch on Citus */
static char *
CitusInsertQuery(Relation rel, const BulkInsertColumn *columns, int ncolumns)
{
	StringInfoData q;

	initStringInfo(&q);
	appendStringInfo(&q, "INSERT INTO %s (",
					 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(rel)),
												RelationGetRelationName(rel)));
	for (int n = 0; n < ncolumns; n++)
		appendStringInfo(&q, "%s%s", n > 0 ? ", " : "", quote_identifier(columns[n].name));
	appendStringInfoString(&q, ") SELECT * FROM ROWS FROM (");
	for (int n = 0; n < ncolumns; n++)
		appendStringInfo(&q, "%spg_catalog.unnest($%d)", n > 0 ? ", " : "", n + 1);
	appendStringInfoChar(&q, ')');
	return q.data;
}

/* write the queued rows of a Citus table through SQL (in batchcxt) */
static void
CitusFlush(BulkInsert *bulk)
{
	int			n = bulk->ncolumns;
	Oid		   *argtypes = palloc(sizeof(Oid) * n);
	Datum	   *args = palloc(sizeof(Datum) * n);
	Datum	   *elems = palloc(sizeof(Datum) * bulk->nqueued);
	bool	   *isnull = palloc(sizeof(bool) * bulk->nqueued);
	int			dims[1] = {bulk->nqueued};
	int			lbs[1] = {1};

	for (int c = 0; c < n; c++)
	{
		Oid			type = bulk->columns[c].type;
		int16		typlen;
		bool		typbyval;
		char		typalign;

		for (int r = 0; r < bulk->nqueued; r++)
		{
			TupleTableSlot *slot = bulk->slots[r];

			elems[r] = slot->tts_values[bulk->attmap[c]];
			isnull[r] = slot->tts_isnull[bulk->attmap[c]];
		}
		get_typlenbyvalalign(type, &typlen, &typbyval, &typalign);
		argtypes[c] = get_array_type(type);
		args[c] = PointerGetDatum(construct_md_array(elems, isnull, 1, dims, lbs,
													  type, typlen, typbyval, typalign));
	}
	DogdbSpiConnect();
	if (DogdbSpiExecuteWithArgs(bulk->citus_insert, n, argtypes, args, NULL, false, 0,
								SPI_OK_INSERT) != (uint64) bulk->nqueued)
		elog(ERROR, "\"%s\" did not insert %d rows", bulk->citus_insert, bulk->nqueued);
	DogdbSpiFinish();
}

/* BulkInsertBegin() or, with report false, BulkInsertTryBegin() */
static BulkInsert *
Begin(Oid relid, const BulkInsertColumn *columns, int ncolumns,
	  const BulkInsertForeignKey *fkeys, int nfkeys,
	  const Oid *handled_trigfuncs, int nhandled, bool report)
{
	BulkInsert *bulk;
	Relation	rel = table_open(relid, RowExclusiveLock);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	TupleDesc	desc = RelationGetDescr(rel);
	int		   *attmap = palloc(sizeof(int) * ncolumns);

	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	rte->requiredPerms = ACL_INSERT;
	for (int i = 0; i < desc->natts; i++)
		if (!TupleDescAttr(desc, i)->attisdropped)
			rte->insertedCols = bms_add_member(rte->insertedCols,
											   i + 1 - FirstLowInvalidHeapAttributeNumber);
	ExecCheckRTPerms(list_make1(rte), true);
	if (!CheckBulkInsertTarget(rel, fkeys, nfkeys, handled_trigfuncs, nhandled, report) ||
		!CheckColumns(rel, columns, ncolumns, attmap, report))
	{
		table_close(rel, RowExclusiveLock);
		pfree(attmap);
		return NULL;
	}
	bulk = palloc0(sizeof(BulkInsert));
	bulk->ncolumns = ncolumns;
	bulk->columns = columns;
	bulk->attmap = attmap;
	if (DogdbIsDistributed(relid))
		bulk->citus_insert = CitusInsertQuery(rel, columns, ncolumns);

	bulk->estate = CreateExecutorState();
	ExecInitRangeTable(bulk->estate, list_make1(rte));
	bulk->rri = makeNode(ResultRelInfo);
	ExecInitResultRelation(bulk->estate, bulk->rri, 1);
	ExecOpenIndices(bulk->rri, false);
	bulk->rel = rel;
	bulk->check_constraints = (desc->constr != NULL);
	bulk->cid = GetCurrentCommandId(true);
	bulk->bistate = GetBulkInsertState();
	bulk->batchcxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb bulk insert batch",
										   ALLOCSET_DEFAULT_SIZES);
	for (int i = 0; i < BULK_INSERT_BATCH; i++)
		bulk->slots[i] = table_slot_create(rel, &bulk->estate->es_tupleTable);
	return bulk;
}

BulkInsert *
BulkInsertBegin(Oid relid, const BulkInsertColumn *columns, int ncolumns,
				const BulkInsertForeignKey *fkeys, int nfkeys,
				const Oid *handled_trigfuncs, int nhandled)
{
	return Begin(relid, columns, ncolumns, fkeys, nfkeys, handled_trigfuncs, nhandled, true);
}

BulkInsert *
BulkInsertTryBegin(Oid relid, const BulkInsertColumn *columns, int ncolumns)
{
	return Begin(relid, columns, ncolumns, NULL, 0, NULL, 0, false);
}

void
BulkInsertGuaranteeExclusion(BulkInsert *bulk, const char *conname)
{
	Oid			indexoid = get_constraint_index(get_relation_constraint_oid(RelationGetRelid(bulk->rel),
																			conname, false));
	ResultRelInfo *rri = bulk->rri;

	for (int i = 0; i < rri->ri_NumIndices; i++)
	{
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (RelationGetRelid(rri->ri_IndexRelationDescs[i]) != indexoid)
			continue;
		if (ii->ii_ExclusionOps == NULL)
			elog(ERROR, "constraint \"%s\" is not an exclusion constraint", conname);
		/* the index entries are still inserted; only the check goes */
		ii->ii_ExclusionOps = NULL;
		ii->ii_ExclusionProcs = NULL;
		ii->ii_ExclusionStrats = NULL;
		return;
	}
	elog(ERROR, "index of constraint \"%s\" not found", conname);
}

void
BulkInsertAfter(BulkInsert *bulk, BulkInsert *first)
{
	bulk->after = first;
}

void
BulkInsertSortIndex(BulkInsert *bulk, const char *indexname)
{
	ResultRelInfo *rri = bulk->rri;
	int			last = rri->ri_NumIndices - 1;

	if (bulk->citus_insert != NULL || bulk->index_sort != NULL)
		return;					/* no local index; or one already */
	for (int i = 0; i <= last; i++)
	{
		Relation	index = rri->ri_IndexRelationDescs[i];
		IndexInfo  *ii = rri->ri_IndexRelationInfo[i];

		if (strcmp(RelationGetRelationName(index), indexname) != 0)
			continue;
		/* a plain, immediate btree index only */
		if (index->rd_rel->relam != BTREE_AM_OID || ii->ii_Expressions != NIL ||
			ii->ii_Predicate != NIL || ii->ii_ExclusionOps != NULL || !ii->ii_ReadyForInserts ||
			!index->rd_index->indimmediate)
			return;
		/* moved last, out of the count ExecInsertIndexTuples() sees */
		rri->ri_IndexRelationDescs[i] = rri->ri_IndexRelationDescs[last];
		rri->ri_IndexRelationInfo[i] = rri->ri_IndexRelationInfo[last];
		rri->ri_IndexRelationDescs[last] = index;
		rri->ri_IndexRelationInfo[last] = ii;
		rri->ri_NumIndices--;
		bulk->sorted_index = index;
		bulk->sorted_info = ii;
		bulk->index_sort = tuplesort_begin_index_btree(bulk->rel, index, false, false,
													   maintenance_work_mem, NULL, TUPLESORT_NONE);
		return;
	}
}

void
BulkInsertRebuildIndexes(BulkInsert *bulk)
{
	if (bulk->citus_insert != NULL)
		return;
	if (bulk->index_sort != NULL)
	{
		tuplesort_end(bulk->index_sort);
		bulk->index_sort = NULL;
		bulk->rri->ri_NumIndices++;		/* the sorted index: closed with the others */
	}
	bulk->rebuild_indexes = true;
}

/* insert the sorted index's entries, in its order (BulkInsertSortIndex) */
static void
InsertSortedIndex(BulkInsert *bulk)
{
	Datum		values[INDEX_MAX_KEYS];
	bool		isnull[INDEX_MAX_KEYS];
	IndexTuple	itup;
	int64		n = 0;

	tuplesort_performsort(bulk->index_sort);
	while ((itup = tuplesort_getindextuple(bulk->index_sort, true)) != NULL)
	{
		if ((++n & 1023) == 0)
			CHECK_FOR_INTERRUPTS();
		index_deform_tuple(itup, RelationGetDescr(bulk->sorted_index), values, isnull);
		index_insert(bulk->sorted_index, values, isnull, &itup->t_tid, bulk->rel,
					 bulk->sorted_index->rd_index->indisunique ? UNIQUE_CHECK_YES : UNIQUE_CHECK_NO,
					 false, bulk->sorted_info);
	}
	tuplesort_end(bulk->index_sort);
	bulk->index_sort = NULL;
	bulk->rri->ri_NumIndices++;		/* closed with the others */
}

void
BulkInsertRow(BulkInsert *bulk, Datum *values, bool *nulls)
{
	TupleTableSlot *slot = bulk->slots[bulk->nqueued];
	TupleDesc	desc = slot->tts_tupleDescriptor;
	MemoryContext old = MemoryContextSwitchTo(bulk->batchcxt);

	ExecClearTuple(slot);
	memset(slot->tts_isnull, true, sizeof(bool) * desc->natts);
	for (int n = 0; n < bulk->ncolumns; n++)
	{
		int			i = bulk->attmap[n];
		Form_pg_attribute att = TupleDescAttr(desc, i);

		slot->tts_isnull[i] = nulls[n];
		slot->tts_values[i] = nulls[n] ? (Datum) 0 :
			datumCopy(values[n], att->attbyval, att->attlen);
	}
	MemoryContextSwitchTo(old);
	ExecStoreVirtualTuple(slot);
	if (bulk->check_constraints)
		ExecConstraints(bulk->rri, slot, bulk->estate);
	if (++bulk->nqueued == BULK_INSERT_BATCH)
		BulkInsertFlush(bulk);
}

void
BulkInsertFlush(BulkInsert *bulk)
{
	EState	   *estate = bulk->estate;
	MemoryContext old;

	if (bulk->nqueued == 0)
		return;
	if (bulk->citus_insert != NULL)
	{
		if (bulk->after != NULL)
			BulkInsertFlush(bulk->after);
		old = MemoryContextSwitchTo(bulk->batchcxt);
		CitusFlush(bulk);
		MemoryContextSwitchTo(old);
		for (int i = 0; i < bulk->nqueued; i++)
			ExecClearTuple(bulk->slots[i]);
		MemoryContextReset(bulk->batchcxt);
		bulk->nqueued = 0;
		CHECK_FOR_INTERRUPTS();
		return;
	}
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	table_multi_insert(bulk->rel, bulk->slots, bulk->nqueued, bulk->cid, 0, bulk->bistate);
	MemoryContextSwitchTo(old);
	ResetPerTupleExprContext(estate);

	for (int i = 0; i < bulk->nqueued; i++)
	{
		if (bulk->rebuild_indexes)
		{
			ExecClearTuple(bulk->slots[i]);
			continue;
		}
		if (bulk->index_sort != NULL)
		{
			Datum		values[INDEX_MAX_KEYS];
			bool		isnull[INDEX_MAX_KEYS];

			GetPerTupleExprContext(estate)->ecxt_scantuple = bulk->slots[i];
			FormIndexDatum(bulk->sorted_info, bulk->slots[i], estate, values, isnull);
			tuplesort_putindextuplevalues(bulk->index_sort, bulk->sorted_index,
										  &bulk->slots[i]->tts_tid, values, isnull);
		}
		if (bulk->rri->ri_NumIndices > 0)
			list_free(ExecInsertIndexTuples(bulk->rri, bulk->slots[i], estate,
											false, false, NULL, NIL));
		ResetPerTupleExprContext(estate);
		ExecClearTuple(bulk->slots[i]);
	}
	MemoryContextReset(bulk->batchcxt);
	bulk->nqueued = 0;
	CHECK_FOR_INTERRUPTS();
}

void
BulkInsertEnd(BulkInsert *bulk)
{
	BulkInsertFlush(bulk);
	if (bulk->index_sort != NULL)
		InsertSortedIndex(bulk);
	FreeBulkInsertState(bulk->bistate);
	table_finish_bulk_insert(bulk->rel, 0);
	ExecResetTupleTable(bulk->estate->es_tupleTable, false);
	ExecCloseResultRelations(bulk->estate);
	ExecCloseRangeTableRelations(bulk->estate);
	FreeExecutorState(bulk->estate);
	if (bulk->rebuild_indexes)
	{
		ReindexParams params = {0};

		reindex_relation(RelationGetRelid(bulk->rel), REINDEX_REL_CHECK_CONSTRAINTS, &params);
	}
	table_close(bulk->rel, NoLock);
	MemoryContextDelete(bulk->batchcxt);
	pfree(bulk->attmap);
	pfree(bulk);
}
