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

#define STAGE "pg_temp.dogdb_import_stage"
#define RAW "pg_temp.dogdb_import_raw"
#define ACCEPTED "reason IS NULL AND NOT done"
#define REJECTED "reason IS NOT NULL AND NOT done"

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
#define ACCOUNT_CHECK \
	"WHEN s.account_id IS NULL THEN 'account_id is null' " \
	"WHEN a.account_id IS NULL THEN format('account %s does not exist', s.account_id) "

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
		.columns = "t.account_id::bigint AS account_id, t.email::text AS email, "
		"lower(btrim(t.current_tier::text)) AS tier",
		.timestamps = {"created_at", "updated_at"},
		.from_extra = "",
		.snapshots = account_snapshots,
		.joins = "LEFT JOIN pg_temp.dogdb_import_plans p ON p.name = s.tier",
		.join_columns = "p.plan_id",
		.checks = "WHEN s.account_id IS NULL THEN 'account_id is null' "
		"WHEN s.created_at IS NULL THEN 'created_at is null' "
		"WHEN NOT (s.created_at OPERATOR(pg_catalog.>=) '2000-01-01 00:00+00'::timestamptz "
		"AND s.created_at OPERATOR(pg_catalog.<) '2200-01-01 00:00+00'::timestamptz) "
		"THEN 'created_at is outside the supported range from 2000-01-01 to 2199-12-31 UTC' "
		"WHEN s.tier IS NULL THEN 'current_tier is null' "
		"WHEN p.plan_id IS NULL THEN format('unknown tier %L', to_jsonb(s.src)->>'current_tier') ",
		.imported = "pg_temp.dogdb_import_accounts x",
		.imported_cond = "x.account_id = s.account_id",
		.same = "x.email IS NOT DISTINCT FROM s.email AND x.created_at = s.created_at "
		"AND EXISTS (SELECT 1 FROM pg_temp.dogdb_import_open_subs u WHERE u.account_id = x.account_id "
		"AND u.plan_id = s.plan_id)",
		.changed_reason = "format('account %s was already imported with different data', s.account_id)",
		.dup_key = "account_id",
		.dup_order = "updated_at DESC NULLS LAST, created_at DESC, email, tier",
		.dup_reason = "format('duplicate account_id %s in source; the row updated last was imported', s.account_id)",
	},
	{
		.source_table = "customer_interactions",
		.columns = "t.account_id::bigint AS account_id, t.channel::text AS channel, "
		"t.category::text AS category, nullif(btrim(t.service_rep::text), '') AS rep, "
		"t.status::text AS status, "
		"md5(jsonb_build_array(t.account_id, t.channel, t.category, t.service_rep, t.created_at)::text) AS identity",
		.timestamps = {"created_at", "completed_at"},
		.from_extra = "",
		.snapshots = child_snapshots,
		.joins = ACCOUNT_JOIN,
		.join_columns = "s.identity || ':1' AS legacy_key",
		.checks = ACCOUNT_CHECK
		"WHEN s.created_at IS NULL THEN 'created_at is null' "
		"WHEN s.channel IS NULL THEN 'channel is null' "
		"WHEN s.status IS NULL THEN 'status is null' "
		"WHEN s.completed_at < s.created_at THEN 'completed_at is before created_at' ",
		.imported_snapshot = "CREATE TEMP TABLE dogdb_import_found ON COMMIT DROP AS"
		" SELECT x.legacy_key, x.status, x.completed_at FROM dogdb.interactions x"
		" WHERE x.legacy_key IN (SELECT s.legacy_key FROM " STAGE " s WHERE s.reason IS NULL)",
		.imported = "pg_temp.dogdb_import_found x",
		.imported_cond = "x.legacy_key = s.legacy_key",
		.same = "x.status = s.status AND x.completed_at IS NOT DISTINCT FROM s.completed_at",
		.changed_reason = "'interaction was already imported with different data'",
		.occurrence = true,
	},
	{
		.source_table = "customer_licenses",
		.columns = "t.account_id::bigint AS account_id, e.parse_error, "
		"CASE WHEN e.parse_error IS NULL THEN @extschema@.dogdb_license_id(t.license_data::text) END AS license_id, "
		"CASE WHEN e.parse_error IS NULL THEN @extschema@.dogdb_license_role(t.license_data::text) END AS role, "
		"CASE WHEN e.parse_error IS NULL THEN @extschema@.dogdb_license_status(t.license_data::text) END AS status",
		.timestamps = {"created_at", "updated_at"},
		.from_extra = ", LATERAL (SELECT @extschema@.dogdb_license_error(t.license_data::text) AS parse_error) e",
		.snapshots = child_snapshots,
		.joins = ACCOUNT_JOIN,
		.join_columns = "NULL::text AS dogdb_unused",
		.checks = "WHEN (s.src).license_data IS NULL THEN 'license_data is null' "
		"WHEN s.parse_error IS NOT NULL THEN s.parse_error "
		"WHEN s.license_id = '' THEN 'license_id is empty' "
		ACCOUNT_CHECK
		"WHEN s.created_at IS NULL THEN 'created_at is null' ",
		/* across all accounts: a license id belongs to one account only */
		.imported_snapshot = "CREATE TEMP TABLE dogdb_import_found ON COMMIT DROP AS"
		" SELECT x.license_id, x.account_id, x.role, x.status FROM dogdb.licenses x"
		" WHERE x.license_id IN (SELECT s.license_id FROM " STAGE " s WHERE s.reason IS NULL)",
		.imported = "pg_temp.dogdb_import_found x",
		.imported_cond = "x.license_id = s.license_id",
		.same = "(x.account_id, x.role, x.status) IS NOT DISTINCT FROM (s.account_id, s.role, s.status)",
		.changed_reason = "format('license %s was already imported with different data', s.license_id)",
		.dup_key = "license_id",
		.dup_order = "updated_at DESC NULLS LAST, created_at DESC, account_id, role, status",
		.dup_reason = "format('duplicate license_id %s in source; the row updated last was imported', s.license_id)",
	},
};

static const BulkInsertColumn interaction_columns[] = {
	{"interaction_id", INT8OID}, {"account_id", INT8OID}, {"rep_id", INT4OID},
	{"channel", TEXTOID}, {"category", TEXTOID}, {"status", TEXTOID},
	{"created_at", TIMESTAMPTZOID}, {"completed_at", TIMESTAMPTZOID}, {"legacy_key", TEXTOID}
};
static const BulkInsertColumn license_columns[] = {
	{"license_id", TEXTOID}, {"account_id", INT8OID}, {"role", TEXTOID},
	{"status", TEXTOID}, {"created_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID}
};
static const BulkInsertColumn reject_columns[] = {
	{"reject_id", INT8OID}, {"source_table", TEXTOID}, {"source_key", TEXTOID},
	{"source_row", JSONBOID}, {"reason", TEXTOID}, {"rejected_at", TIMESTAMPTZOID}
};

/* run one statement; returns the rows it processed */
static uint64
Exec(const char *query, int expected)
{
	CHECK_FOR_INTERRUPTS();
	return DogdbSpiExecute(query, false, 0, expected);
}

/* replace every @extschema@ of sql */
static char *
WithExtSchema(const char *sql, const char *extschema)
{
	StringInfoData buf;
	const char *p;

	initStringInfo(&buf);
	while ((p = strstr(sql, "@extschema@")) != NULL)
	{
		appendBinaryStringInfo(&buf, sql, p - sql);
		appendStringInfoString(&buf, extschema);
		sql = p + strlen("@extschema@");
	}
	appendStringInfoString(&buf, sql);
	return buf.data;
}

/* legacy timestamp column col of relid as timestamptz (without time zone: UTC) */
static char *
LegacyTimestamp(Oid relid, const char *col)
{
	AttrNumber	attnum = get_attnum(relid, col);

	if (attnum != InvalidAttrNumber && get_atttype(relid, attnum) == TIMESTAMPOID)
		return psprintf("(t.%s AT TIME ZONE 'UTC')", quote_identifier(col));
	return psprintf("t.%s::timestamptz", quote_identifier(col));
}

/* the reject keys of the stage rows matching filter that have none (import.c) */
static void
KeyRows(const char *filter)
{
	Exec(psprintf("UPDATE " STAGE " s SET source_key = k.key"
				  "  FROM (SELECT c, h || ':' || row_number() OVER (PARTITION BY h) AS key"
				  "          FROM (SELECT ctid AS c, md5(to_jsonb(src)::text) AS h"
				  "                  FROM " STAGE " WHERE source_key IS NULL AND (%s)) r) k"
				  " WHERE s.ctid = k.c", filter),
		 SPI_OK_UPDATE);
}

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
					 WithExtSchema(spec->columns, extschema));
	for (size_t i = 0; i < lengthof(spec->timestamps); i++)
		appendStringInfo(&sql, ", %s AS %s", LegacyTimestamp(relid, spec->timestamps[i]),
						 quote_identifier(spec->timestamps[i]));
	appendStringInfo(&sql, " FROM %s AS t%s", source, WithExtSchema(spec->from_extra, extschema));
	Exec(sql.data, SPI_OK_UTILITY);
	for (const char *const *snap = spec->snapshots; *snap != NULL; snap++)
		Exec(*snap, SPI_OK_UTILITY);

	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMP TABLE dogdb_import_stage ON COMMIT DROP AS"
					 " SELECT s.*, %s, CASE %s END AS reason, false AS done, NULL::text AS source_key"
					 "   FROM " RAW " s %s",
					 spec->join_columns, spec->checks, spec->joins);
	rows = Exec(sql.data, SPI_OK_UTILITY);
	Exec("ANALYZE " STAGE, SPI_OK_UTILITY);
	return rows;
}

/* judge the staged rows: occurrences, imported before, rejected before */
static void
Judge(const CitusImportSpec *spec)
{
	Datum		arg = CStringGetTextDatum(spec->source_table);
	Oid			argtype = TEXTOID;

	if (spec->occurrence)
	{
		KeyRows("identity IN (SELECT identity FROM " STAGE " GROUP BY identity HAVING count(*) > 1)");
		Exec("UPDATE " STAGE " s SET legacy_key = s.identity || ':' || o.n"
			 "  FROM (SELECT ctid AS c, row_number() OVER (PARTITION BY identity ORDER BY source_key) AS n"
			 "          FROM " STAGE " WHERE source_key IS NOT NULL) o"
			 " WHERE s.ctid = o.c",
			 SPI_OK_UPDATE);
	}
	if (spec->imported_snapshot)
		Exec(spec->imported_snapshot, SPI_OK_UTILITY);
	Exec(psprintf("UPDATE " STAGE " s"
				  "   SET done = (%s), reason = CASE WHEN %s THEN NULL ELSE %s END"
				  "  FROM %s WHERE %s AND s.reason IS NULL",
				  spec->same, spec->same, spec->changed_reason, spec->imported, spec->imported_cond),
		 SPI_OK_UPDATE);

	/* the rejects of this table (a reference table), copied */
	DogdbSpiExecuteWithArgs("CREATE TEMP TABLE dogdb_import_rejected ON COMMIT DROP AS"
							" SELECT r.source_key FROM dogdb.import_rejects r WHERE r.source_table = $1",
							1, &argtype, &arg, NULL, false, 0, SPI_OK_UTILITY);
	if (SPI_processed > 0)
	{
		KeyRows("true");
		Exec("UPDATE " STAGE " s SET done = true, reason = NULL"
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
	Exec(psprintf("UPDATE " STAGE " s SET reason = %s"
				  "  FROM (SELECT ctid AS c, row_number() OVER (PARTITION BY %s ORDER BY %s) AS n"
				  "          FROM " STAGE " WHERE " ACCEPTED " AND %s IS NOT NULL) d"
				  " WHERE s.ctid = d.c AND d.n > 1",
				  spec->dup_reason, spec->dup_key, spec->dup_order, spec->dup_key),
		 SPI_OK_UPDATE);
}

typedef void (*WriteRowFn) (void *state, int natts, Datum *values, bool *nulls);

/* pass every row of query to write, in batches; returns how many */
static int64
ForEachRow(const char *query, WriteRowFn write, void *state)
{
	SPIPlanPtr	plan = DogdbSpiPrepare(query, 0, NULL);
	Portal		portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	MemoryContext batchcxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb citus import batch",
												   ALLOCSET_DEFAULT_SIZES);
	int64		n = 0;

	if (portal == NULL)
		elog(ERROR, "SPI_cursor_open of \"%s\" failed: %s", query, SPI_result_code_string(SPI_result));
	for (;;)
	{
		SPITupleTable *tuptable;
		uint64		nrows;
		MemoryContext old;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, BULK_INSERT_BATCH);
		tuptable = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
		{
			SPI_freetuptable(tuptable);
			break;
		}
		old = MemoryContextSwitchTo(batchcxt);
		for (uint64 r = 0; r < nrows; r++)
		{
			Datum	   *values = palloc(sizeof(Datum) * tuptable->tupdesc->natts);
			bool	   *nulls = palloc(sizeof(bool) * tuptable->tupdesc->natts);

			heap_deform_tuple(tuptable->vals[r], tuptable->tupdesc, values, nulls);
			write(state, tuptable->tupdesc->natts, values, nulls);
			n++;
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(tuptable);
		MemoryContextReset(batchcxt);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	MemoryContextDelete(batchcxt);
	return n;
}

typedef struct Writer
{
	BulkInsert *bulk;
	Oid			seq;			/* identity sequence of the target, if any */
	Datum		source_table;	/* rejects */
} Writer;

/* a row of the query as it comes, a new id first if the writer has a sequence */
static void
WriteRow(void *state, int natts, Datum *v, bool *n)
{
	Writer	   *w = state;
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
}

/* a reject: source_key, source_row, reason (+ source_table, rejected_at) */
static void
WriteReject(void *state, int natts, Datum *v, bool *n)
{
	Writer	   *w = state;
	Datum		values[6];
	bool		nulls[6] = {0};

	Assert(natts == 3);
	values[0] = Int64GetDatum(nextval_internal(w->seq, false));
	values[1] = w->source_table;
	values[2] = v[0];
	values[3] = v[1];
	values[4] = v[2];
	values[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	BulkInsertRow(w->bulk, values, nulls);
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
		written = ForEachRow("SELECT account_id, email, NULL::text, created_at, updated_at FROM " STAGE
							 " WHERE " ACCEPTED " ORDER BY account_id", WriteRow, &w);
		fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
		fkeys[1] = (BulkInsertForeignKey) {"plan_id", DogdbRelationId("pricing_plans"), "plan_id"};
		w2.bulk = BulkInsertBegin(subscriptions, bulk_subscription_columns, BULK_SUBSCRIPTION_NCOLUMNS,
								  fkeys, 2, NULL, 0);
		BulkInsertAfter(w2.bulk, w.bulk);
		w2.seq = getIdentitySequence(subscriptions, 1, false);
		/* open, on the plan of the tier, from creation; ids in import_write.c's order */
		ForEachRow(psprintf("SELECT account_id, plan_id, created_at, NULL::timestamptz"
							"  FROM (SELECT account_id, plan_id, created_at,"
							"               row_number() OVER (ORDER BY account_id) - 1 AS i"
							"          FROM " STAGE " WHERE " ACCEPTED ") a"
							" ORDER BY i / %d, (i %% %d) %% %d, (i %% %d) / %d",
							SUBSCRIPTION_CHUNK, SUBSCRIPTION_CHUNK, SUBSCRIPTION_STRIDE,
							SUBSCRIPTION_CHUNK, SUBSCRIPTION_STRIDE),
				   WriteRow, &w2);
		BulkInsertEnd(w2.bulk);
		/* the KPI engine's queue, as import_write.c fills it (local tables) */
		Exec("INSERT INTO dogdb_internal.kpi_dirty_accounts (account_id)"
			 " SELECT account_id FROM " STAGE " WHERE " ACCEPTED, SPI_OK_INSERT);
		Exec("INSERT INTO dogdb_internal.kpi_dirty_months (from_month, to_month)"
			 " SELECT date_trunc('month', min(created_at) AT TIME ZONE 'UTC')::date, NULL"
			 "   FROM " STAGE " WHERE " ACCEPTED " HAVING count(*) > 0", SPI_OK_INSERT);
	}
	else if (step == 1)
	{
		/* new reps first (a reference table), then their ids */
		Exec("INSERT INTO dogdb.service_reps (name)"
			 " SELECT DISTINCT rep FROM " STAGE " WHERE " ACCEPTED " AND rep IS NOT NULL ORDER BY rep"
			 " ON CONFLICT (name) DO NOTHING", SPI_OK_INSERT);
		Exec("CREATE TEMP TABLE dogdb_import_reps ON COMMIT DROP AS"
			 " SELECT r.rep_id, r.name FROM dogdb.service_reps r"
			 "  WHERE r.name IN (SELECT rep FROM " STAGE " WHERE " ACCEPTED " AND rep IS NOT NULL)",
			 SPI_OK_UTILITY);
		Exec("INSERT INTO dogdb_internal.support_changes (kind, account_id)"
			 " SELECT DISTINCT 'account', account_id FROM " STAGE " WHERE " ACCEPTED, SPI_OK_INSERT);
		fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
		fkeys[1] = (BulkInsertForeignKey) {"rep_id", DogdbRelationId("service_reps"), "rep_id"};
		w.bulk = BulkInsertBegin(DogdbRelationId("interactions"), interaction_columns,
								 lengthof(interaction_columns), fkeys, 2, NULL, 0);
		w.seq = getIdentitySequence(DogdbRelationId("interactions"), 1, false);
		written = ForEachRow("SELECT s.account_id, r.rep_id, s.channel, s.category, s.status,"
							 "       s.created_at, s.completed_at, s.legacy_key"
							 "  FROM " STAGE " s LEFT JOIN pg_temp.dogdb_import_reps r ON r.name = s.rep"
							 " WHERE s.reason IS NULL AND NOT s.done"
							 " ORDER BY s.account_id, s.created_at", WriteRow, &w);
	}
	else
	{
		fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
		w.bulk = BulkInsertBegin(DogdbRelationId("licenses"), license_columns,
								 lengthof(license_columns), fkeys, 1, NULL, 0);
		written = ForEachRow("SELECT license_id, account_id, role, status, created_at, updated_at"
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

	KeyRows(REJECTED);
	w.bulk = BulkInsertBegin(rejects, reject_columns, lengthof(reject_columns), NULL, 0, NULL, 0);
	w.seq = getIdentitySequence(rejects, 1, false);
	w.source_table = CStringGetTextDatum(spec->source_table);
	n = ForEachRow("SELECT source_key, to_jsonb(src), reason FROM " STAGE " WHERE " REJECTED
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
	Exec("SELECT pg_catalog.set_config('citus.multi_shard_modify_mode', 'sequential', true)", SPI_OK_SELECT);
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
		Exec(i == 0 ? "DROP TABLE " STAGE ", " RAW ", pg_temp.dogdb_import_accounts, pg_temp.dogdb_import_open_subs,"
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
