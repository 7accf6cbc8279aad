/*-------------------------------------------------------------------------
 *
 * import_citus.c
 *	  dogdb_import_legacy() when the extension's tables are Citus tables
 *	  (README "Running on Citus"); import.c hands over to it.
 *
 * Design note: the single-node pipeline (import.c, import_write.c) joins
 * and updates its temporary staging table against the extension's tables,
 * locks referenced rows FOR KEY SHARE and writes through the bulk writer
 * with row-by-row decisions.  Citus refuses much of that on distributed
 * tables (an UPDATE of a local table joined to a distributed one,
 * non-IMMUTABLE functions inside CASE, row locks on distributed tables).
 * This route gives the same verdicts in a shape Citus runs:
 *
 *	1. raw: the source rows, typed (the same expressions as import.c), in a
 *	   temporary table on the coordinator;
 *	2. snapshots: what the verdicts need from the Citus tables is copied
 *	   into temporary tables by plain SELECTs that Citus routes or pushes
 *	   down, restricted to the keys of the source (the accounts named,
 *	   their open subscriptions, the plans, the reps, the interactions and
 *	   licenses imported before with the same keys, the rejects of the
 *	   table); license ids are looked up across all accounts;
 *	3. stage and judge: the single node's checks and rules, run on the
 *	   coordinator over local temporary tables only;
 *	4. duplicates of a key are decided in SQL (the first in the single
 *	   node's order is written, the others get its reason);
 *	5. the accepted rows and the rejects go through the bulk writer, which
 *	   on Citus writes INSERT ... SELECT FROM unnest() batches routed to
 *	   the shards, in the single node's order and with ids from the same
 *	   sequences (subscriptions interleaved as import_write.c does).
 * Foreign keys are checked by the shards (every referencing table is
 * co-located with dogdb.accounts or references a reference table), so no
 * row is locked.  Imports serialize on the SHARE ROW EXCLUSIVE lock of
 * dogdb.import_rejects that import.c takes first: a license id looked up
 * across all accounts cannot be taken by a concurrent import, which keeps
 * license ids unique across accounts after dogdb_distribute() drops the
 * unique key Citus cannot enforce (the lab runs two imports at once).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "bulk_insert.h"
#include "citus.h"
#include "common.h"
#include "import.h"

#define STAGE IMPORT_STAGE
#define RAW "pg_temp.dogdb_import_raw"
#define ACCEPTED IMPORT_ACCEPTED
#define REJECTED IMPORT_REJECTED

/* subscriptions of new accounts: ids given interleaved, as import_write.c */
#define SUBSCRIPTION_CHUNK 65536
#define SUBSCRIPTION_STRIDE 64

/* one legacy table; the same expressions and reasons as import.c */
typedef struct CitusImportSpec
{
	const char *source_table;
	const char *columns;		/* typed columns over t; @extschema@ replaced */
	const char *timestamps[2];
	const char *from_extra;
	/* snapshots made from the raw rows before staging */
	const char *const *snapshots;
	const char *joins;
	const char *join_columns;
	const char *checks;
	/* snapshot of the rows imported before, made from the stage */
	const char *imported_snapshot;
	const char *imported;
	const char *imported_cond;
	const char *same;
	const char *changed_reason;
	const char *dup_key;		/* NULL: no duplicates by key */
	const char *dup_order;
	const char *dup_reason;
	bool		occurrence;
} CitusImportSpec;

#define SNAP_ACCOUNTS \
	"CREATE TEMP TABLE dogdb_import_accounts ON COMMIT DROP AS" \
	" SELECT a.account_id, a.email, a.created_at FROM dogdb.accounts a" \
	" WHERE a.account_id IN (SELECT r.account_id FROM " RAW " r WHERE r.account_id IS NOT NULL)"
#define ACCOUNT_JOIN "LEFT JOIN pg_temp.dogdb_import_accounts a ON a.account_id = s.account_id"

static const char *const account_snapshots[] = {
	SNAP_ACCOUNTS,
	"CREATE TEMP TABLE dogdb_import_open_subs ON COMMIT DROP AS"
	" SELECT u.account_id, u.plan_id FROM dogdb.subscriptions u"
	" WHERE u.valid_to IS NULL"
	" AND u.account_id IN (SELECT r.account_id FROM " RAW " r WHERE r.account_id IS NOT NULL)",
	"CREATE TEMP TABLE dogdb_import_plans ON COMMIT DROP AS SELECT p.plan_id, p.name FROM dogdb.pricing_plans p",
	NULL
};
static const char *const child_snapshots[] = {SNAP_ACCOUNTS, NULL};

static const CitusImportSpec citus_specs[] = {
	{
		.source_table = "customer_accounts",
		.columns = IMPORT_ACCOUNTS_COLUMNS,
		.timestamps = {"created_at", "updated_at"},
		.from_extra = "",
		.snapshots = account_snapshots,
		.joins = "LEFT JOIN pg_temp.dogdb_import_plans p ON p.name = s.tier",
		.join_columns = "p.plan_id",
		.checks = IMPORT_ACCOUNTS_CHECKS,
		.imported = "pg_temp.dogdb_import_accounts x",
		.imported_cond = "x.account_id = s.account_id",
		.same = "x.email IS NOT DISTINCT FROM s.email AND x.created_at = s.created_at "
		"AND EXISTS (SELECT 1 FROM pg_temp.dogdb_import_open_subs u WHERE u.account_id = x.account_id "
		"AND u.plan_id = s.plan_id)",
		.changed_reason = IMPORT_ACCOUNTS_CHANGED_REASON,
		.dup_key = "account_id",
		.dup_order = IMPORT_ACCOUNTS_DUP_ORDER,
		.dup_reason = IMPORT_ACCOUNTS_DUP_REASON,
	},
	{
		.source_table = "customer_interactions",
		.columns = IMPORT_INTERACTIONS_COLUMNS,
		.timestamps = {"created_at", "completed_at"},
		.from_extra = "",
		.snapshots = child_snapshots,
		.joins = ACCOUNT_JOIN,
		.join_columns = "s.identity || ':1' AS legacy_key",
		.checks = IMPORT_INTERACTIONS_CHECKS,
		.imported_snapshot = "CREATE TEMP TABLE dogdb_import_found ON COMMIT DROP AS"
		" SELECT x.legacy_key, x.status, x.completed_at FROM dogdb.interactions x"
		" WHERE x.legacy_key IN (SELECT s.legacy_key FROM " STAGE " s WHERE s.reason IS NULL)",
		.imported = "pg_temp.dogdb_import_found x",
		.imported_cond = "x.legacy_key = s.legacy_key",
		.same = IMPORT_INTERACTIONS_SAME,
		.changed_reason = IMPORT_INTERACTIONS_CHANGED_REASON,
		.occurrence = true,
	},
	{
		.source_table = "customer_licenses",
		.columns = IMPORT_LICENSES_COLUMNS,
		.timestamps = {"created_at", "updated_at"},
		.from_extra = IMPORT_LICENSES_FROM_EXTRA,
		.snapshots = child_snapshots,
		.joins = ACCOUNT_JOIN,
		.join_columns = "NULL::text AS dogdb_unused",
		.checks = IMPORT_LICENSES_CHECKS,
		/* across all accounts: a license id belongs to one account only */
		.imported_snapshot = "CREATE TEMP TABLE dogdb_import_found ON COMMIT DROP AS"
		" SELECT x.license_id, x.account_id, x.role, x.status FROM dogdb.licenses x"
		" WHERE x.license_id IN (SELECT s.license_id FROM " STAGE " s WHERE s.reason IS NULL)",
		.imported = "pg_temp.dogdb_import_found x",
		.imported_cond = "x.license_id = s.license_id",
		.same = IMPORT_LICENSES_SAME,
		.changed_reason = IMPORT_LICENSES_CHANGED_REASON,
		.dup_key = "license_id",
		.dup_order = IMPORT_LICENSES_DUP_ORDER,
		.dup_reason = IMPORT_LICENSES_DUP_REASON,
	},
};

/* steps 1 to 3: raw rows, snapshots, the staged rows with their checks */
static uint64
Stage(const CitusImportSpec *spec, Oid relid, const char *extschema)
{
	char	   *source = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													get_rel_name(relid));
	StringInfoData sql;
	uint64		rows;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMP TABLE dogdb_import_raw ON COMMIT DROP AS SELECT t AS src, %s",
					 ImportWithExtSchema(spec->columns, extschema));
	for (size_t i = 0; i < lengthof(spec->timestamps); i++)
		appendStringInfo(&sql, ", %s AS %s", ImportLegacyTimestamp(relid, spec->timestamps[i]),
						 quote_identifier(spec->timestamps[i]));
	appendStringInfo(&sql, " FROM %s AS t%s", source, ImportWithExtSchema(spec->from_extra, extschema));
	ImportExec(sql.data, SPI_OK_UTILITY);
	for (const char *const *snap = spec->snapshots; *snap != NULL; snap++)
		ImportExec(*snap, SPI_OK_UTILITY);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMP TABLE dogdb_import_stage ON COMMIT DROP AS"
					 " SELECT s.*, %s, CASE %s END AS reason, false AS done, NULL::text AS source_key"
					 "   FROM " RAW " s %s",
					 spec->join_columns, spec->checks, spec->joins);
	rows = ImportExec(sql.data, SPI_OK_UTILITY);
	ImportExec("ANALYZE " STAGE, SPI_OK_UTILITY);
	return rows;
}

/* judge the staged rows: occurrences, imported before, rejected before */
static void
Judge(const CitusImportSpec *spec)
{
	Datum		arg = CStringGetTextDatum(spec->source_table);
	Oid			argtype = TEXTOID;

	if (spec->occurrence)
		ImportNumberOccurrences();
	if (spec->imported_snapshot)
		ImportExec(spec->imported_snapshot, SPI_OK_UTILITY);
	ImportJudgeImported(spec->same, spec->changed_reason, spec->imported, spec->imported_cond);

	/* the rejects of this table (a reference table), copied */
	DogdbSpiExecuteWithArgs("CREATE TEMP TABLE dogdb_import_rejected ON COMMIT DROP AS"
							" SELECT r.source_key FROM dogdb.import_rejects r WHERE r.source_table = $1",
							1, &argtype, &arg, NULL, false, 0, SPI_OK_UTILITY);
	if (SPI_processed > 0)
	{
		ImportKeyRows("true");
		ImportExec("UPDATE " STAGE " s SET done = true, reason = NULL"
			 "  FROM pg_temp.dogdb_import_rejected r WHERE r.source_key = s.source_key",
			 SPI_OK_UPDATE);
	}
}

/* of the accepted rows with one key, the first in dup_order is written */
static void
RejectDuplicates(const CitusImportSpec *spec)
{
	if (spec->dup_key == NULL)
		return;
	ImportExec(psprintf("UPDATE " STAGE " s SET reason = %s"
				  "  FROM (SELECT ctid AS c, row_number() OVER (PARTITION BY %s ORDER BY %s) AS n"
				  "          FROM " STAGE " WHERE " ACCEPTED " AND %s IS NOT NULL) d"
				  " WHERE s.ctid = d.c AND d.n > 1",
				  spec->dup_reason, spec->dup_key, spec->dup_order, spec->dup_key),
		 SPI_OK_UPDATE);
}

typedef struct Writer
{
	BulkInsert *bulk;
	Oid			seq;			/* identity sequence of the target, if any */
	Datum		source_table;	/* rejects */
} Writer;

/* a row of the query as it comes, a new id first if the writer has a sequence */
static bool
WriteRow(void *state, TupleDesc desc, Datum *v, bool *n)
{
	Writer	   *w = state;
	int			natts = desc->natts;
	Datum		values[16];
	bool		nulls[16] = {0};
	int			k = 0;

	if (natts > 15)
		elog(ERROR, "too many columns to write: %d", natts);
	if (OidIsValid(w->seq))
		values[k++] = Int64GetDatum(nextval_internal(w->seq, false));
	for (int i = 0; i < natts; i++, k++)
	{
		values[k] = v[i];
		nulls[k] = n[i];
	}
	BulkInsertRow(w->bulk, values, nulls);
	return true;
}

/* a reject: source_key, source_row, reason (+ source_table, rejected_at) */
static bool
WriteReject(void *state, TupleDesc desc, Datum *v, bool *n)
{
	Writer	   *w = state;
	Datum		values[6];
	bool		nulls[6] = {0};

	Assert(desc->natts == 3);
	values[0] = Int64GetDatum(nextval_internal(w->seq, false));
	values[1] = w->source_table;
	values[2] = v[0];
	values[3] = v[1];
	values[4] = v[2];
	values[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	BulkInsertRow(w->bulk, values, nulls);
	return true;
}

/* write the accepted rows of the stage; returns how many */
static int64
WriteAccepted(const CitusImportSpec *spec, int step)
{
	Oid			accounts = DogdbRelationId("accounts");
	BulkInsertForeignKey fkeys[2];
	Writer		w = {0};
	int64		written;

	RejectDuplicates(spec);
	if (step == 0)
	{
		Writer		w2 = {0};
		Oid			subscriptions = DogdbRelationId("subscriptions");

		w.bulk = BulkInsertBegin(accounts, bulk_account_columns, BULK_ACCOUNT_NCOLUMNS, NULL, 0, NULL, 0);
		written = ImportForEachRow("SELECT account_id, email, NULL::text, created_at, updated_at FROM " STAGE
							 " WHERE " ACCEPTED " ORDER BY account_id", WriteRow, &w);
		fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
		fkeys[1] = (BulkInsertForeignKey) {"plan_id", DogdbRelationId("pricing_plans"), "plan_id"};
		w2.bulk = BulkInsertBegin(subscriptions, bulk_subscription_columns, BULK_SUBSCRIPTION_NCOLUMNS,
								  fkeys, 2, NULL, 0);
		BulkInsertAfter(w2.bulk, w.bulk);
		w2.seq = getIdentitySequence(subscriptions, 1, false);
		/* open, on the plan of the tier, from creation; ids in import_write.c's order */
		ImportForEachRow(psprintf("SELECT account_id, plan_id, created_at, NULL::timestamptz"
							"  FROM (SELECT account_id, plan_id, created_at,"
							"               row_number() OVER (ORDER BY account_id) - 1 AS i"
							"          FROM " STAGE " WHERE " ACCEPTED ") a"
							" ORDER BY i / %d, (i %% %d) %% %d, (i %% %d) / %d",
							SUBSCRIPTION_CHUNK, SUBSCRIPTION_CHUNK, SUBSCRIPTION_STRIDE,
							SUBSCRIPTION_CHUNK, SUBSCRIPTION_STRIDE),
				   WriteRow, &w2);
		BulkInsertEnd(w2.bulk);
		/* the KPI engine's queue, as import_write.c fills it (local tables) */
		ImportExec("INSERT INTO dogdb_internal.kpi_dirty_accounts (account_id)"
			 " SELECT account_id FROM " STAGE " WHERE " ACCEPTED, SPI_OK_INSERT);
		ImportExec("INSERT INTO dogdb_internal.kpi_dirty_months (from_month, to_month)"
			 " SELECT date_trunc('month', min(created_at) AT TIME ZONE 'UTC')::date, NULL"
			 "   FROM " STAGE " WHERE " ACCEPTED " HAVING count(*) > 0", SPI_OK_INSERT);
	}
	else if (step == 1)
	{
		/* new reps first (a reference table), then their ids */
		ImportExec("INSERT INTO dogdb.service_reps (name)"
			 " SELECT DISTINCT rep FROM " STAGE " WHERE " ACCEPTED " AND rep IS NOT NULL ORDER BY rep"
			 " ON CONFLICT (name) DO NOTHING", SPI_OK_INSERT);
		ImportExec("CREATE TEMP TABLE dogdb_import_reps ON COMMIT DROP AS"
			 " SELECT r.rep_id, r.name FROM dogdb.service_reps r"
			 "  WHERE r.name IN (SELECT rep FROM " STAGE " WHERE " ACCEPTED " AND rep IS NOT NULL)",
			 SPI_OK_UTILITY);
		ImportExec("INSERT INTO dogdb_internal.support_changes (kind, account_id)"
			 " SELECT DISTINCT 'account', account_id FROM " STAGE " WHERE " ACCEPTED, SPI_OK_INSERT);
		fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
		fkeys[1] = (BulkInsertForeignKey) {"rep_id", DogdbRelationId("service_reps"), "rep_id"};
		w.bulk = BulkInsertBegin(DogdbRelationId("interactions"), import_interaction_columns,
								 IMPORT_INTERACTION_NCOLUMNS, fkeys, 2, NULL, 0);
		w.seq = getIdentitySequence(DogdbRelationId("interactions"), 1, false);
		written = ImportForEachRow("SELECT s.account_id, r.rep_id, s.channel, s.category, s.status,"
							 "       s.created_at, s.completed_at, s.legacy_key"
							 "  FROM " STAGE " s LEFT JOIN pg_temp.dogdb_import_reps r ON r.name = s.rep"
							 " WHERE s.reason IS NULL AND NOT s.done"
							 " ORDER BY s.account_id, s.created_at", WriteRow, &w);
	}
	else
	{
		fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
		w.bulk = BulkInsertBegin(DogdbRelationId("licenses"), import_license_columns,
								 IMPORT_LICENSE_NCOLUMNS, fkeys, 1, NULL, 0);
		written = ImportForEachRow("SELECT license_id, account_id, role, status, created_at, updated_at"
							 "  FROM " STAGE " WHERE " ACCEPTED " ORDER BY license_id COLLATE \"C\"",
							 WriteRow, &w);
	}
	BulkInsertEnd(w.bulk);
	return written;
}

/* quarantine the rejected rows of the stage; returns how many */
static int64
WriteRejects(const CitusImportSpec *spec)
{
	Oid			rejects = DogdbRelationId("import_rejects");
	Writer		w = {0};
	int64		n;

	ImportKeyRows(REJECTED);
	w.bulk = BulkInsertBegin(rejects, import_reject_columns, IMPORT_REJECT_NCOLUMNS, NULL, 0, NULL, 0);
	w.seq = getIdentitySequence(rejects, 1, false);
	w.source_table = CStringGetTextDatum(spec->source_table);
	n = ImportForEachRow("SELECT source_key, to_jsonb(src), reason FROM " STAGE " WHERE " REJECTED
				   " ORDER BY source_key COLLATE \"C\"", WriteReject, &w);
	BulkInsertEnd(w.bulk);
	return n;
}

/* is the import to take the Citus route? */
bool
DogdbImportOnCitus(void)
{
	return DogdbAnyDistributed((const char *const[]) {"accounts", "subscriptions", "interactions", "licenses",
		"import_rejects", "service_reps", "pricing_plans", NULL});
}

/* dogdb_import_legacy() on Citus (citus.h) */
void
DogdbImportLegacyOnCitus(ReturnSetInfo *rsinfo, const Oid *relids, int ntables, const char *extschema)
{
	if (ntables != lengthof(citus_specs))
		elog(ERROR, "the legacy import has %d tables, its Citus route %d",
			 ntables, (int) lengthof(citus_specs));
	/*
	 * The tables referencing reference tables (plans, reps) are written in
	 * the transaction that adds reps: Citus then wants one connection per
	 * node.  Set for this call only (the caller's GUC nest level).
	 */
	ImportExec("SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)", SPI_OK_SELECT);
	for (int i = 0; i < ntables; i++)
	{
		const CitusImportSpec *spec = &citus_specs[i];
		Datum		values[5];
		bool		nulls[5] = {0};
		int64		rows_read,
					imported,
					rejected;

		if (strcmp(get_rel_name(relids[i]), spec->source_table) != 0)
			elog(ERROR, "legacy table %d is \"%s\", not \"%s\"", i, get_rel_name(relids[i]),
				 spec->source_table);
		rows_read = (int64) Stage(spec, relids[i], extschema);
		Judge(spec);
		imported = WriteAccepted(spec, i);
		rejected = WriteRejects(spec);
		ImportExec(i == 0 ? "DROP TABLE " STAGE ", " RAW ", pg_temp.dogdb_import_accounts, pg_temp.dogdb_import_open_subs,"
			 " pg_temp.dogdb_import_plans, pg_temp.dogdb_import_rejected" :
			 i == 1 ? "DROP TABLE " STAGE ", " RAW ", pg_temp.dogdb_import_accounts, pg_temp.dogdb_import_found,"
			 " pg_temp.dogdb_import_rejected, pg_temp.dogdb_import_reps" :
			 "DROP TABLE " STAGE ", " RAW ", pg_temp.dogdb_import_accounts, pg_temp.dogdb_import_found,"
			 " pg_temp.dogdb_import_rejected", SPI_OK_UTILITY);

		values[0] = CStringGetTextDatum(spec->source_table);
		values[1] = Int64GetDatum(rows_read);
		values[2] = Int64GetDatum(imported);
		values[3] = Int64GetDatum(rejected);
		values[4] = Int64GetDatum(rows_read - imported - rejected);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}
