/*-------------------------------------------------------------------------
 *
 * bulk_insert.h
 *	  Batched inserts into one of the extension's own tables, the way COPY
 *	  writes: table_multi_insert() of up to BULK_INSERT_BATCH rows, then the
 *	  index entries, with CHECK and NOT NULL constraints enforced per row.
 *
 * Foreign keys are not checked row by row: the caller must guarantee every
 * foreign key of the table itself (see invoice.c) and lists, for
 * BulkInsertBegin(), the referenced tables it guarantees.  A table with any
 * other insert trigger, a rule or row-level security is refused.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BULK_INSERT_H
#define BULK_INSERT_H

#include "access/tupdesc.h"
#include "utils/relcache.h"

#define BULK_INSERT_BATCH 1000

typedef struct BulkInsert BulkInsert;

/*
 * Open relid for inserting (RowExclusiveLock, INSERT privilege checked).
 * columns: the names of the table's columns, in order, as the caller will
 * pass them.  guaranteed_refs: the OIDs of the tables the caller
 * guarantees this table's foreign keys into.  handled_trigfuncs: functions
 * of insert triggers whose work the caller does itself.
 */
extern BulkInsert *BulkInsertBegin(Oid relid, const char *const *columns, int ncolumns,
								   const Oid *guaranteed_refs, int nrefs,
								   const Oid *handled_trigfuncs, int nhandled);

/* queue one row (one value per column); values are copied */
extern void BulkInsertRow(BulkInsert *bulk, Datum *values, bool *nulls);

/* write what is queued */
extern void BulkInsertFlush(BulkInsert *bulk);

/* flush, close the relation and free everything */
extern void BulkInsertEnd(BulkInsert *bulk);

#endif							/* BULK_INSERT_H */
