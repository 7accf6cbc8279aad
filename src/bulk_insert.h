/*-------------------------------------------------------------------------
 *
 * bulk_insert.h
 *	  Batched inserts into one of the extension's own tables, the way COPY
 *	  writes: table_multi_insert() of up to BULK_INSERT_BATCH rows, then the
 *	  index entries, with CHECK and NOT NULL constraints enforced per row.
 *
 * Foreign keys are not checked row by row: the caller must guarantee every
 * foreign key of the table itself (see invoice.c) and lists, for
 * BulkInsertBegin(), exactly the foreign keys it guarantees (column,
 * referenced table and column).  A table with any other foreign key, any
 * other insert trigger, a rule, row-level security, or a column whose name
 * or type differs from what the caller expects is refused.
 *
 * On a Citus table (distributed or reference) the local table is an empty
 * shell: rows are written with INSERT ... SELECT FROM unnest(arrays), one
 * statement per batch, which Citus routes to the shards, where every
 * constraint and foreign key is checked.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULK_INSERT_H
#define BULK_INSERT_H

#include "access/tupdesc.h"
#include "utils/relcache.h"

#define BULK_INSERT_BATCH 1000

typedef struct BulkInsert BulkInsert;

/* a column the caller writes: its name and type */
typedef struct BulkInsertColumn
{
	const char *name;
	Oid			type;
} BulkInsertColumn;

/*
 * a foreign key the caller guarantees itself; a key of several columns
 * lists them in order, separated by commas without spaces
 */
typedef struct BulkInsertForeignKey
{
	const char *column;			/* referencing column(s) of the written table */
	Oid			refrelid;		/* referenced table */
	const char *refcolumn;		/* referenced column(s) */
} BulkInsertForeignKey;

/*
 * The layouts of the tables more than one writer fills (the legacy import
 * and the demo data): dogdb.accounts and dogdb.subscriptions, all columns
 * in order.
 */
#define BULK_ACCOUNT_NCOLUMNS 5
#define BULK_SUBSCRIPTION_NCOLUMNS 5
extern const BulkInsertColumn bulk_account_columns[BULK_ACCOUNT_NCOLUMNS];
extern const BulkInsertColumn bulk_subscription_columns[BULK_SUBSCRIPTION_NCOLUMNS];

/*
 * Open relid for inserting (RowExclusiveLock, INSERT privilege checked).
 * columns: the table's columns (name and type), in order, as the caller
 * will pass them.  fkeys: the foreign keys of this table the caller
 * guarantees.  handled_trigfuncs: functions of insert triggers whose work
 * the caller does itself.  Anything else is refused with 0A000.
 */
extern BulkInsert *BulkInsertBegin(Oid relid, const BulkInsertColumn *columns, int ncolumns,
								   const BulkInsertForeignKey *fkeys, int nfkeys,
								   const Oid *handled_trigfuncs, int nhandled);

/*
 * The same for a table without foreign keys or insert triggers whose rows
 * the caller can also write another way: NULL, instead of an error, if
 * the table is not as the caller expects (the privilege check still
 * raises).
 */
extern BulkInsert *BulkInsertTryBegin(Oid relid, const BulkInsertColumn *columns, int ncolumns);

/*
 * The caller guarantees that no row it writes conflicts under exclusion
 * constraint conname of the table (e.g. every row is for a key created by
 * the same transaction): the per-row check, an index scan, is skipped.
 */
extern void BulkInsertGuaranteeExclusion(BulkInsert *bulk, const char *conname);

/*
 * Insert the entries of index indexname (a plain btree index of the table)
 * not row by row but at BulkInsertEnd(), sorted in the index's order
 * (memory: maintenance_work_mem, then temporary files): for rows whose
 * order suits the table's other indexes but not this one.  Uniqueness is
 * checked then, with the usual error.  Without effect on Citus or on an
 * index of another kind.
 */
extern void BulkInsertSortIndex(BulkInsert *bulk, const char *indexname);

/*
 * Insert no index entries while writing; rebuild every index of the table
 * at BulkInsertEnd() instead, as REINDEX does (the entries sorted and the
 * index built bottom-up, uniqueness checked): for a load into a table that
 * held no rows, where building the indexes from the finished table costs
 * far less than inserting entries one at a time.  The rebuild takes ACCESS
 * EXCLUSIVE on each index, so queries on the table wait for it, and the
 * caller must have closed every index of the table it opened itself.
 * Overrides BulkInsertSortIndex(); without effect on Citus.
 */
extern void BulkInsertRebuildIndexes(BulkInsert *bulk);

/*
 * first holds the rows bulk's foreign key references: on Citus, where the
 * shards check that key, first's queued rows are written before bulk's.
 * End bulk before first.
 */
extern void BulkInsertAfter(BulkInsert *bulk, BulkInsert *first);

/* queue one row (one value per column); values are copied */
extern void BulkInsertRow(BulkInsert *bulk, Datum *values, bool *nulls);

/* write what is queued */
extern void BulkInsertFlush(BulkInsert *bulk);

/* flush, close the relation and free everything */
extern void BulkInsertEnd(BulkInsert *bulk);

#endif							/* BULK_INSERT_H */
