/*-------------------------------------------------------------------------
 *
 * import.c
 *	  dogdb_import_legacy(): import the legacy customer_accounts,
 *	  customer_interactions and customer_licenses tables of a schema.
 *
 * Design note: the three tables go through one pipeline; an ImportSpec
 * says only what differs between them (the typed columns, the checks, how
 * to recognize a row imported before, which rows count as duplicates).
 * Each step is set-based SQL over a staging table holding every source row
 * with its verdict:
 *
 *	1. stage: the source row, its columns as the target types, and the
 *	   first failed check as its reject reason;
 *	2. (interactions) the occurrence number of rows with the same identity;
 *	3. imported before: the same data is skipped, different data rejected;
 *	4. rejected before (a key in dogdb.import_rejects): skipped;
 *	5. write the accepted rows, in C, through the bulk writer
 *	   (import_write.c); accounts and licenses in the order of their key,
 *	   so that of duplicates in the source the row updated last is written
 *	   and the others are rejected, at no extra pass;
 *	6. quarantine the rejected rows, through the bulk writer too.
 * The license step streams instead when it can (import_license.c: one scan,
 * judged in memory, the same rules, reasons and keys); the pipeline above
 * is its fallback (Citus, sources it does not read directly, more rows than
 * maintenance_work_mem holds).
 * The rule is the same for the three tables: a row imported before with
 * the same data is skipped, with different data quarantined (licenses
 * used to skip changed rows silently).
 *
 * A reject key is md5 of the whole source row as jsonb, then ":" and the
 * occurrence number of the row among identical rows (ImportKeyRows(), the
 * one place it is computed).  Keys are computed only where needed: for the
 * rejected rows, for every row when earlier rejects of the table exist (to
 * skip them), and for interactions whose identity repeats (their legacy
 * key is ordered by reject key).
 *
 * One import runs at a time (a SHARE ROW EXCLUSIVE lock on
 * dogdb.import_rejects taken before anything is read): a second one waits,
 * then finds everything imported or quarantined.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/builtins.h"
#include "utils/acl.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "citus.h"
#include "common.h"
#include "import.h"

PG_FUNCTION_INFO_V1(dogdb_import_legacy);

typedef struct ImportSpec
{
	const char *source_table;
	ImportTarget target;
	/* typed columns over the source row t; @extschema@ is replaced */
	const char *columns;
	/* legacy timestamp columns, read as UTC when without time zone */
	const char *timestamps[2];
	/* more FROM items after "source AS t" */
	const char *from_extra;
	/* lookups joined to the typed row s, and the columns they add */
	const char *joins;
	const char *join_columns;
	/* CASE branches: the first failed check is the reject reason */
	const char *checks;
	/* the row as imported before: FROM item, join condition, same data */
	const char *imported;
	const char *imported_cond;
	const char *same;
	const char *changed_reason;
	/* duplicates of the target key in the source (NULL: none): reason, tie order */
	const char *dup_reason;
	const char *dup_order;
	/* interactions: the legacy key numbers rows of the same identity */
	bool		occurrence;
} ImportSpec;

#define ACCOUNT_JOIN "LEFT JOIN dogdb.accounts a ON a.account_id = s.account_id"

static const ImportSpec import_specs[] = {
	{
		.source_table = "customer_accounts",
		.target = IMPORT_ACCOUNTS,
		.columns = IMPORT_ACCOUNTS_COLUMNS,
		.timestamps = {"created_at", "updated_at"},
		.from_extra = "",
		.joins = "LEFT JOIN dogdb.pricing_plans p ON p.name = s.tier",
		.join_columns = "p.plan_id",
		.checks = IMPORT_ACCOUNTS_CHECKS,
		.imported = "dogdb.accounts x",
		.imported_cond = "x.account_id = s.account_id",
		.same = "x.email IS NOT DISTINCT FROM s.email AND x.created_at = s.created_at "
		"AND EXISTS (SELECT FROM dogdb.subscriptions u WHERE u.account_id = x.account_id "
		"AND u.valid_to IS NULL AND u.plan_id = s.plan_id)",
		.changed_reason = IMPORT_ACCOUNTS_CHANGED_REASON,
		.dup_reason = IMPORT_ACCOUNTS_DUP_REASON,
		.dup_order = IMPORT_ACCOUNTS_DUP_ORDER,
	},
	{
		.source_table = "customer_interactions",
		.target = IMPORT_INTERACTIONS,
		.columns = IMPORT_INTERACTIONS_COLUMNS,
		.timestamps = {"created_at", "completed_at"},
		.from_extra = "",
		.joins = ACCOUNT_JOIN,
		.join_columns = "a.xmin AS account_xmin, s.identity || ':1' AS legacy_key",
		.checks = IMPORT_INTERACTIONS_CHECKS,
		.imported = "dogdb.interactions x",
		.imported_cond = "x.legacy_key = s.legacy_key",
		.same = IMPORT_INTERACTIONS_SAME,
		.changed_reason = IMPORT_INTERACTIONS_CHANGED_REASON,
		.occurrence = true,
	},
	{
		.source_table = "customer_licenses",
		.target = IMPORT_LICENSES,
		.columns = IMPORT_LICENSES_COLUMNS,
		.timestamps = {"created_at", "updated_at"},
		.from_extra = IMPORT_LICENSES_FROM_EXTRA,
		.joins = ACCOUNT_JOIN,
		.join_columns = "a.xmin AS account_xmin",
		.checks = IMPORT_LICENSES_CHECKS,
		.imported = "dogdb.licenses x",
		.imported_cond = "x.license_id = s.license_id",
		.same = IMPORT_LICENSES_SAME,
		.changed_reason = IMPORT_LICENSES_CHANGED_REASON,
		.dup_reason = IMPORT_LICENSES_DUP_REASON,
		.dup_order = IMPORT_LICENSES_DUP_ORDER,
	},
};

/* run one statement of the pipeline; returns the rows it processed */
uint64
ImportExec(const char *query, int expected)
{
	CHECK_FOR_INTERRUPTS();
	return DogdbSpiExecute(query, false, 0, expected);
}

/*
 * The reject keys of the stage rows matching filter that have none yet:
 * md5 of the source row as jsonb, ":" and its occurrence among identical
 * rows.  The one place a reject key is computed.
 */
void
ImportKeyRows(const char *filter)
{
	ImportExec(psprintf("UPDATE " IMPORT_STAGE " s SET source_key = k.key"
						"  FROM (SELECT c, h || ':' || row_number() OVER (PARTITION BY h) AS key"
						"          FROM (SELECT ctid AS c, md5(to_jsonb(src)::text) AS h"
						"                  FROM " IMPORT_STAGE
						"                 WHERE source_key IS NULL AND (%s)) r) k"
						" WHERE s.ctid = k.c", filter),
			   SPI_OK_UPDATE);
}

/* the expression reading legacy timestamp column col of relid as timestamptz */
char *
ImportLegacyTimestamp(Oid relid, const char *col)
{
	AttrNumber	attnum = get_attnum(relid, col);

	/* a timestamp without time zone is UTC */
	if (attnum != InvalidAttrNumber && get_atttype(relid, attnum) == TIMESTAMPOID)
		return psprintf("(t.%s AT TIME ZONE 'UTC')", quote_identifier(col));
	return psprintf("t.%s::timestamptz", quote_identifier(col));
}

/* the schema of a type */
static Oid
TypeNamespace(Oid typid)
{
	HeapTuple	tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(typid));
	Oid			nspid;

	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for type %u", typid);
	nspid = ((Form_pg_type) GETSTRUCT(tuple))->typnamespace;
	ReleaseSysCache(tuple);
	return nspid;
}

/* the table source_schema.table; only ordinary (or partitioned) tables */
static Oid
LegacyTable(const char *source_schema, const char *table)
{
	Oid			relid = RangeVarGetRelid(makeRangeVar(pstrdup(source_schema), pstrdup(table), -1),
										 AccessShareLock, true);
	char		relkind;

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("legacy table \"%s.%s\" does not exist", source_schema, table),
				 errhint("Pass the schema holding customer_accounts, customer_interactions and customer_licenses.")));

	/* a view or foreign table would run code of its owner's as the importer */
	relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_WRONG_OBJECT_TYPE),
				 errmsg("legacy table \"%s.%s\" is not a table", source_schema, table),
				 errdetail("The legacy import reads ordinary tables only, not views, foreign tables or other relations.")));

	/*
	 * The import runs as the extension's owner (SECURITY DEFINER): it reads
	 * only what its caller (the role in effect outside the function) may
	 * read, and only columns of built-in types (a cast from a user's type
	 * could run the user's code as the owner).
	 */
	if (pg_namespace_aclcheck(get_rel_namespace(relid), GetOuterUserId(), ACL_USAGE) != ACLCHECK_OK ||
		pg_class_aclcheck(relid, GetOuterUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s.%s", source_schema, table),
				 errdetail("The legacy import reads the legacy tables for role %s, which may not read this one.",
						   GetUserNameFromId(GetOuterUserId(), false))));
	for (AttrNumber attnum = 1;; attnum++)	/* columns are numbered 1..n, dropped ones included */
	{
		HeapTuple	tuple = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
		Form_pg_attribute att;

		if (!HeapTupleIsValid(tuple))
			break;
		att = (Form_pg_attribute) GETSTRUCT(tuple);
		if (!att->attisdropped && TypeNamespace(att->atttypid) != PG_CATALOG_NAMESPACE)
			ereport(ERROR,
					(errcode(ERRCODE_DATATYPE_MISMATCH),
					 errmsg("column \"%s\" of legacy table \"%s.%s\" has a type that is not built in",
							NameStr(att->attname), source_schema, table),
					 errhint("Give the legacy tables columns of built-in types (text, bigint, timestamp, timestamptz).")));
		ReleaseSysCache(tuple);
	}
	return relid;
}

/* replace every @extschema@ of sql by the extension's schema */
char *
ImportWithExtSchema(const char *sql, const char *extschema)
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

/* step 1: every source row, typed, with the first failed check */
static uint64
ImportStage(const ImportSpec *spec, Oid relid, const char *extschema)
{
	char	   *source = quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
													get_rel_name(relid));
	StringInfoData sql;
	uint64		rows;

	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TEMP TABLE dogdb_import_stage ON COMMIT DROP AS"
					 " SELECT s.*, %s, CASE %s END AS reason, false AS done, NULL::text AS source_key"
					 "   FROM (SELECT t AS src, %s",
					 spec->join_columns, spec->checks, ImportWithExtSchema(spec->columns, extschema));
	for (size_t i = 0; i < lengthof(spec->timestamps); i++)
		appendStringInfo(&sql, ", %s AS %s", ImportLegacyTimestamp(relid, spec->timestamps[i]),
						 quote_identifier(spec->timestamps[i]));
	appendStringInfo(&sql, " FROM %s AS t%s) AS s %s",
					 source, ImportWithExtSchema(spec->from_extra, extschema), spec->joins);
	rows = ImportExec(sql.data, SPI_OK_UTILITY);
	/* the statistics the planner needs for the joins over the stage */
	ImportExec("ANALYZE " IMPORT_STAGE, SPI_OK_UTILITY);
	return rows;
}

/*
 * Step 2 for interactions: rows of the same identity get their legacy keys
 * numbered in reject-key order (only these rows have a key so far).
 */
void
ImportNumberOccurrences(void)
{
	ImportKeyRows("identity IN (SELECT identity FROM " IMPORT_STAGE " GROUP BY identity HAVING count(*) > 1)");
	ImportExec("UPDATE " IMPORT_STAGE " s SET legacy_key = s.identity || ':' || o.n"
			   "  FROM (SELECT ctid AS c, row_number() OVER (PARTITION BY identity"
			   "                                             ORDER BY source_key) AS n"
			   "          FROM " IMPORT_STAGE " WHERE source_key IS NOT NULL) o"
			   " WHERE s.ctid = o.c",
			   SPI_OK_UPDATE);
}

/*
 * Step 3: rows imported before (found in imported, a FROM item, by cond)
 * are skipped if the same, rejected with changed_reason if not.
 */
void
ImportJudgeImported(const char *same, const char *changed_reason, const char *imported, const char *cond)
{
	ImportExec(psprintf("UPDATE " IMPORT_STAGE " s"
						"   SET done = (%s), reason = CASE WHEN %s THEN NULL ELSE %s END"
						"  FROM %s WHERE %s AND s.reason IS NULL",
						same, same, changed_reason, imported, cond),
			   SPI_OK_UPDATE);
}

/* steps 2 to 4: the verdict of every staged row */
static void
ImportJudge(const ImportSpec *spec)
{
	Datum		arg = CStringGetTextDatum(spec->source_table);
	Oid			argtype = TEXTOID;
	bool		isnull;

	/* 2: rows of the same identity are numbered in reject-key order */
	if (spec->occurrence)
		ImportNumberOccurrences();
	/* 3: imported before: skipped if the same, rejected if changed */
	ImportJudgeImported(spec->same, spec->changed_reason, spec->imported, spec->imported_cond);

	/* 4: rejected before (the key is in the quarantine): skipped */
	DogdbSpiExecuteWithArgs("SELECT EXISTS (SELECT FROM dogdb.import_rejects r WHERE r.source_table = $1)",
							1, &argtype, &arg, NULL, false, 1, SPI_OK_SELECT);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
	{
		ImportKeyRows("true");
		DogdbSpiExecuteWithArgs("UPDATE " IMPORT_STAGE " s SET done = true, reason = NULL"
								"  FROM dogdb.import_rejects r"
								" WHERE r.source_table = $1 AND r.source_key = s.source_key",
								1, &argtype, &arg, NULL, false, 0, SPI_OK_UPDATE);
	}
}

/*
 * dogdb_import_legacy(source_schema text): import the three legacy tables
 * of source_schema; one result row per table.
 */
Datum
dogdb_import_legacy(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *source_schema = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			relids[lengthof(import_specs)];
	char	   *extschema;
	int			save_nestlevel;

	SetSingleFuncCall(fcinfo, 0);
	save_nestlevel = DogdbPinSearchPath();
	/* the extension's schema: where this function is */
	extschema = pstrdup(quote_identifier(get_namespace_name(get_func_namespace(fcinfo->flinfo->fn_oid))));
	DogdbSpiConnect();

	/* one import at a time: imports read what earlier rows became */
	DogdbSpiExecute("LOCK TABLE dogdb.import_rejects IN SHARE ROW EXCLUSIVE MODE", false, 0, SPI_OK_UTILITY);
	for (size_t i = 0; i < lengthof(import_specs); i++)
		relids[i] = LegacyTable(source_schema, import_specs[i].source_table);

	/* distributed tables: the route Citus can run (import_citus.c) */
	if (DogdbImportOnCitus())
	{
		DogdbImportLegacyOnCitus(rsinfo, relids, lengthof(import_specs), extschema);
		DogdbSpiFinish();
		DogdbRestoreSearchPath(save_nestlevel);
		return (Datum) 0;
	}

	/* the plans subscriptions will reference: locked before they are read */
	DogdbSpiExecute("SELECT FROM dogdb.pricing_plans FOR KEY SHARE", false, 0, SPI_OK_SELECT);

	for (size_t i = 0; i < lengthof(import_specs); i++)
	{
		const ImportSpec *spec = &import_specs[i];
		Datum		values[5];
		bool		nulls[5] = {0};
		int64		rows_read,
					imported,
					rejected;

		/* licenses stream when they can (import_license.c) */
		if (spec->target != IMPORT_LICENSES ||
			!ImportLicensesStreamed(relids[i], &rows_read, &imported, &rejected))
		{
			rows_read = (int64) ImportStage(spec, relids[i], extschema);
			ImportJudge(spec);
			imported = ImportWriteAccepted(spec->target, spec->dup_order, spec->dup_reason);
			ImportKeyRows(IMPORT_REJECTED);
			rejected = ImportWriteRejects(spec->source_table);
			ImportExec("DROP TABLE " IMPORT_STAGE, SPI_OK_UTILITY);
		}

		values[0] = CStringGetTextDatum(spec->source_table);
		values[1] = Int64GetDatum(rows_read);
		values[2] = Int64GetDatum(imported);
		values[3] = Int64GetDatum(rejected);
		values[4] = Int64GetDatum(rows_read - imported - rejected);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	DogdbSpiFinish();
	DogdbRestoreSearchPath(save_nestlevel);
	return (Datum) 0;
}
