/*-------------------------------------------------------------------------
 *
 * import.h
 *	  The legacy import (dogdb_import_legacy()): one pipeline for the three
 *	  legacy tables.  import.c stages and judges the source rows with
 *	  set-based SQL; import_write.c writes the verdicts through the bulk
 *	  writer (bulk_insert.c) with the locks that stand in for the foreign
 *	  keys; import_license.c streams the license step (no staging) when it
 *	  can.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_IMPORT_H
#define DOGDB_IMPORT_H

#include "postgres.h"

#include "executor/spi.h"

#include "bulk_insert.h"

/* the staging table of one step: pg_temp.dogdb_import_stage */
#define IMPORT_STAGE "pg_temp.dogdb_import_stage"

/* the rows a step writes: neither rejected nor skipped */
#define IMPORT_ACCEPTED "reason IS NULL AND NOT done"
/* the rows a step quarantines */
#define IMPORT_REJECTED "reason IS NOT NULL AND NOT done"

/* the target a step writes its accepted rows to */
typedef enum ImportTarget
{
	IMPORT_ACCOUNTS,			/* accounts and their open subscriptions */
	IMPORT_INTERACTIONS,		/* service reps, then interactions */
	IMPORT_LICENSES
} ImportTarget;

/*
 * Write the step's accepted rows (IMPORT_ACCEPTED rows of the stage) to
 * the target, in the order of its unique key; returns how many.  With
 * dup_reason, rows of the same key are duplicates: the first in dup_order
 * is written, the others get reason dup_reason (an expression over the
 * stage row s).  Runs inside the caller's SPI connection.
 */
extern int64 ImportWriteAccepted(ImportTarget target, const char *dup_order, const char *dup_reason);

/*
 * Quarantine the step's rejected rows (IMPORT_REJECTED, all with their
 * source_key) in dogdb.import_rejects; returns how many.
 */
extern int64 ImportWriteRejects(const char *source_table);

/* the columns of dogdb.licenses and dogdb.import_rejects, as the import writes them */
#define IMPORT_LICENSE_NCOLUMNS 6
#define IMPORT_REJECT_NCOLUMNS 6
extern const BulkInsertColumn import_license_columns[IMPORT_LICENSE_NCOLUMNS];
extern const BulkInsertColumn import_reject_columns[IMPORT_REJECT_NCOLUMNS];

/*
 * Locking the accounts written rows reference (FOR KEY SHARE, in batches of
 * up to BULK_INSERT_BATCH distinct ids): the plan, then each batch.  An
 * account that no longer exists is a serialization failure.
 */
extern SPIPlanPtr ImportPrepareAccountLock(void);
extern void ImportLockAccounts(SPIPlanPtr plan, int64 *ids, int n);
extern void ImportReferenceVanished(const char *what, int64 missing, int64 expected);

/*
 * The license step streamed (import_license.c): one scan of the legacy
 * table relid, judged in memory, written through the bulk writer.  Returns
 * false, having written nothing, when the step must take the staged
 * pipeline instead (a Citus table, a source it does not read directly, or
 * more rows than maintenance_work_mem holds).
 */
extern bool ImportLicensesStreamed(Oid relid, int64 *rows_read, int64 *imported, int64 *rejected);

#endif							/* DOGDB_IMPORT_H */
