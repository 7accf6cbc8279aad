/*-------------------------------------------------------------------------
 *
 * import.h
 *	  The legacy import (dogdb_import_legacy()): one pipeline for the three
 *	  legacy tables.  import.c stages and judges the source rows with
 *	  set-based SQL; import_write.c writes the verdicts through the bulk
 *	  writer (bulk_insert.c) with the locks that stand in for the foreign
 *	  keys.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_IMPORT_H
#define DOGDB_IMPORT_H

#include "postgres.h"

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

#endif							/* DOGDB_IMPORT_H */
