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

/* the columns of dogdb.interactions, dogdb.licenses and dogdb.import_rejects, as the import writes them */
#define IMPORT_INTERACTION_NCOLUMNS 9
#define IMPORT_LICENSE_NCOLUMNS 6
#define IMPORT_REJECT_NCOLUMNS 6
extern const BulkInsertColumn import_interaction_columns[IMPORT_INTERACTION_NCOLUMNS];
extern const BulkInsertColumn import_license_columns[IMPORT_LICENSE_NCOLUMNS];
extern const BulkInsertColumn import_reject_columns[IMPORT_REJECT_NCOLUMNS];

/*
 * Shared by the single-node pipeline (import.c) and the Citus route
 * (import_citus.c): one statement of a step (interrupts checked), the reject
 * keys of the stage rows matching filter that have none (the one place a
 * reject key is computed), @extschema@ replaced, a legacy timestamp
 * column read as timestamptz.
 */
extern uint64 ImportExec(const char *query, int expected);
extern void ImportKeyRows(const char *filter);
extern char *ImportWithExtSchema(const char *sql, const char *extschema);
extern char *ImportLegacyTimestamp(Oid relid, const char *col);
/* run query, passing each row (deformed) to fn in batches; how many rows fn took (import_write.c) */
typedef bool (*ImportRowFn) (void *state, TupleDesc desc, Datum *values, bool *nulls);
extern int64 ImportForEachRow(const char *query, ImportRowFn fn, void *state);
/* judging steps both routes take: legacy keys of repeated interactions, rows imported before */
extern void ImportNumberOccurrences(void);
extern void ImportJudgeImported(const char *same, const char *changed_reason, const char *imported,
								const char *cond);

/*
 * The rules both routes apply, written once: typed columns over the source
 * row t, the checks (CASE branches over the typed row s; the first failed
 * one is the reject reason; IMPORT_ACCOUNT_CHECK needs the account joined
 * as a), and the reasons and tie orders of duplicates and changed rows.
 */
#define IMPORT_ACCOUNT_CHECK \
	"WHEN s.account_id IS NULL THEN 'account_id is null' " \
	"WHEN a.account_id IS NULL THEN format('account %s does not exist', s.account_id) "

#define IMPORT_ACCOUNTS_COLUMNS \
	"t.account_id::bigint AS account_id, t.email::text AS email, " \
	"lower(btrim(t.current_tier::text)) AS tier"
/* created_at within the KPI horizon (constraint accounts_created_at_kpi_horizon) */
#define IMPORT_ACCOUNTS_CHECKS \
	"WHEN s.account_id IS NULL THEN 'account_id is null' " \
	"WHEN s.created_at IS NULL THEN 'created_at is null' " \
	"WHEN NOT (s.created_at OPERATOR(pg_catalog.>=) '2000-01-01 00:00+00'::timestamptz " \
	"AND s.created_at OPERATOR(pg_catalog.<) '2200-01-01 00:00+00'::timestamptz) " \
	"THEN 'created_at is outside the supported range from 2000-01-01 to 2199-12-31 UTC' " \
	"WHEN s.tier IS NULL THEN 'current_tier is null' " \
	"WHEN p.plan_id IS NULL THEN format('unknown tier %L', to_jsonb(s.src)->>'current_tier') "
#define IMPORT_ACCOUNTS_CHANGED_REASON \
	"format('account %s was already imported with different data', s.account_id)"
#define IMPORT_ACCOUNTS_DUP_REASON \
	"format('duplicate account_id %s in source; the row updated last was imported', s.account_id)"
#define IMPORT_ACCOUNTS_DUP_ORDER \
	"updated_at DESC NULLS LAST, created_at DESC, email, tier"
#define IMPORT_INTERACTIONS_COLUMNS \
	"t.account_id::bigint AS account_id, t.channel::text AS channel, " \
	"t.category::text AS category, nullif(btrim(t.service_rep::text), '') AS rep, " \
	"t.status::text AS status, " \
	"md5(jsonb_build_array(t.account_id, t.channel, t.category, t.service_rep, t.created_at)::text) AS identity"
#define IMPORT_INTERACTIONS_CHECKS \
	IMPORT_ACCOUNT_CHECK \
	"WHEN s.created_at IS NULL THEN 'created_at is null' " \
	"WHEN s.channel IS NULL THEN 'channel is null' " \
	"WHEN s.status IS NULL THEN 'status is null' " \
	"WHEN s.completed_at < s.created_at THEN 'completed_at is before created_at' "
#define IMPORT_INTERACTIONS_SAME \
	"x.status = s.status AND x.completed_at IS NOT DISTINCT FROM s.completed_at"
#define IMPORT_INTERACTIONS_CHANGED_REASON \
	"'interaction was already imported with different data'"
#define IMPORT_LICENSES_COLUMNS \
	"t.account_id::bigint AS account_id, e.parse_error, " \
	"CASE WHEN e.parse_error IS NULL THEN @extschema@.dogdb_license_id(t.license_data::text) END AS license_id, " \
	"CASE WHEN e.parse_error IS NULL THEN @extschema@.dogdb_license_role(t.license_data::text) END AS role, " \
	"CASE WHEN e.parse_error IS NULL THEN @extschema@.dogdb_license_status(t.license_data::text) END AS status"
#define IMPORT_LICENSES_FROM_EXTRA \
	", LATERAL (SELECT @extschema@.dogdb_license_error(t.license_data::text) AS parse_error) e"
#define IMPORT_LICENSES_CHECKS \
	"WHEN (s.src).license_data IS NULL THEN 'license_data is null' " \
	"WHEN s.parse_error IS NOT NULL THEN s.parse_error " \
	"WHEN s.license_id = '' THEN 'license_id is empty' " \
	IMPORT_ACCOUNT_CHECK \
	"WHEN s.created_at IS NULL THEN 'created_at is null' "
#define IMPORT_LICENSES_SAME \
	"(x.account_id, x.role, x.status) IS NOT DISTINCT FROM (s.account_id, s.role, s.status)"
#define IMPORT_LICENSES_CHANGED_REASON \
	"format('license %s was already imported with different data', s.license_id)"
#define IMPORT_LICENSES_DUP_REASON \
	"format('duplicate license_id %s in source; the row updated last was imported', s.license_id)"
#define IMPORT_LICENSES_DUP_ORDER \
	"updated_at DESC NULLS LAST, created_at DESC, account_id, role, status"

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
