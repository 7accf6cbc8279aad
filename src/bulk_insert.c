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
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/datum.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"

#include "bulk_insert.h"

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
	MemoryContext batchcxt;		/* copies of queued by-reference values */
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
/* is fk exactly the single-column foreign key g of rel? */
static bool
ForeignKeyMatches(Relation rel, ForeignKeyCacheInfo *fk, const BulkInsertForeignKey *g)
{
	char	   *refcol;
	bool		match;

	if (fk->nkeys != 1 || fk->confrelid != g->refrelid ||
		strcmp(get_attname(RelationGetRelid(rel), fk->conkey[0], false), g->column) != 0)
		return false;
	refcol = get_attname(fk->confrelid, fk->confkey[0], false);
	match = strcmp(refcol, g->refcolumn) == 0;
	pfree(refcol);
	return match;
}

/* refuse a table whose inserts would do more than this writer does */
static void
CheckBulkInsertTarget(Relation rel, const BulkInsertForeignKey *fkeys, int nfkeys,
					  const Oid *handled_trigfuncs, int nhandled)
{
	const char *relname = RelationGetRelationName(rel);
	TriggerDesc *trigdesc = rel->trigdesc;
	List	   *fklist = RelationGetFKeyList(rel);
	ListCell   *lc;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("\"%s\" is not a table", relname)));
	if (rel->rd_rules != NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write to table \"%s\" because it has rules", relname)));
	if (check_enable_rls(RelationGetRelid(rel), InvalidOid, false) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot write to table \"%s\" because it has row-level security enabled", relname)));
	if (rel->rd_att->constr != NULL && rel->rd_att->constr->has_generated_stored)
		ereport(ERROR,
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
			ereport(ERROR,
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
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("cannot write to table \"%s\" because of trigger \"%s\"",
							relname, trig->tgname),
					 errdetail("The extension writes this table in bulk and does not fire user triggers."),
					 errhint("Put the trigger on a table of your own that copies from this one.")));
	}
}

/* refuse a column layout other than the expected one; fill attmap */
static void
CheckColumns(Relation rel, const BulkInsertColumn *columns, int ncolumns, int *attmap)
{
	TupleDesc	desc = RelationGetDescr(rel);
	int			n = 0;

	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (n >= ncolumns || strcmp(NameStr(att->attname), columns[n].name) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("table \"%s\" does not have the columns the extension created",
							RelationGetRelationName(rel)),
					 errdetail("Column \"%s\" was not expected.", NameStr(att->attname))));
		/* the values are of the caller's type: no other type, no length limit */
		if (att->atttypid != columns[n].type || att->atttypmod != -1)
			ereport(ERROR,
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
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("table \"%s\" does not have the columns the extension created",
						RelationGetRelationName(rel)),
				 errdetail("Column \"%s\" is missing.", columns[n].name)));
}

BulkInsert *
BulkInsertBegin(Oid relid, const BulkInsertColumn *columns, int ncolumns,
				const BulkInsertForeignKey *fkeys, int nfkeys,
				const Oid *handled_trigfuncs, int nhandled)
{
	BulkInsert *bulk = palloc0(sizeof(BulkInsert));
	Relation	rel = table_open(relid, RowExclusiveLock);
	RangeTblEntry *rte = makeNode(RangeTblEntry);
	TupleDesc	desc = RelationGetDescr(rel);

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
	CheckBulkInsertTarget(rel, fkeys, nfkeys, handled_trigfuncs, nhandled);
	bulk->ncolumns = ncolumns;
	bulk->attmap = palloc(sizeof(int) * ncolumns);
	CheckColumns(rel, columns, ncolumns, bulk->attmap);

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
	old = MemoryContextSwitchTo(GetPerTupleMemoryContext(estate));
	table_multi_insert(bulk->rel, bulk->slots, bulk->nqueued, bulk->cid, 0, bulk->bistate);
	MemoryContextSwitchTo(old);
	ResetPerTupleExprContext(estate);

	for (int i = 0; i < bulk->nqueued; i++)
	{
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
	FreeBulkInsertState(bulk->bistate);
	table_finish_bulk_insert(bulk->rel, 0);
	ExecResetTupleTable(bulk->estate->es_tupleTable, false);
	ExecCloseResultRelations(bulk->estate);
	ExecCloseRangeTableRelations(bulk->estate);
	FreeExecutorState(bulk->estate);
	table_close(bulk->rel, NoLock);
	MemoryContextDelete(bulk->batchcxt);
	pfree(bulk->attmap);
	pfree(bulk);
}
