/*-------------------------------------------------------------------------
 *
 * common.c
 *	  Helpers every backend file of dogdb_analytics shares (common.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/htup_details.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/pathnodes.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"

#include "common.h"

static Oid
SchemaRelationId(const char *nspname, const char *relname)
{
	Oid			nsp = get_namespace_oid(nspname, false);
	Oid			relid = get_relname_relid(relname, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation \"%s.%s\" does not exist", nspname, relname),
				 errhint("The dogdb_analytics extension is damaged; reinstall it.")));
	return relid;
}

/* the OID of table dogdb.<relname> */
Oid
DogdbRelationId(const char *relname)
{
	return SchemaRelationId(DOGDB_SCHEMA, relname);
}

/* the OID of table dogdb_internal.<relname> */
Oid
DogdbInternalRelationId(const char *relname)
{
	return SchemaRelationId(DOGDB_INTERNAL_SCHEMA, relname);
}

/*
 * Is relid a Citus table?  Looks it up in pg_catalog.pg_dist_partition,
 * Citus's catalog of the tables it manages (first column: logicalrelid),
 * when that catalog exists; no Citus header or function is needed.
 */
bool
DogdbIsDistributed(Oid relid)
{
	Oid			catalog = get_relname_relid("pg_dist_partition", PG_CATALOG_NAMESPACE);
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	bool		found;

	if (!OidIsValid(catalog))
		return false;
	rel = table_open(catalog, AccessShareLock);
	ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	found = HeapTupleIsValid(systable_getnext(scan));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* is one of the tables dogdb.<relnames[i]> a Citus table? */
bool
DogdbAnyDistributed(const char *const *relnames)
{
	for (int i = 0; relnames[i] != NULL; i++)
		if (DogdbIsDistributed(DogdbRelationId(relnames[i])))
			return true;
	return false;
}

/* the OID of function dogdb.<name>() */
Oid
DogdbFunctionId(const char *name)
{
	return LookupFuncName(list_make2(makeString(DOGDB_SCHEMA), makeString(pstrdup(name))), 0, NULL, false);
}

/* the OID of function dogdb_internal.<name>() */
Oid
DogdbInternalFunctionId(const char *name)
{
	return LookupFuncName(list_make2(makeString(DOGDB_INTERNAL_SCHEMA), makeString(pstrdup(name))), 0, NULL, false);
}

/* search_path = pg_catalog, pg_temp until DogdbRestoreSearchPath() */
int
DogdbPinSearchPath(void)
{
	int			nestlevel = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp",
							 PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nestlevel;
}

void
DogdbRestoreSearchPath(int nestlevel)
{
	AtEOXact_GUC(true, nestlevel);
}

/* an unexpected SPI result is a bug or a damaged installation */
void
DogdbSpiCheck(int rc, int expected, const char *what)
{
	if (rc != expected)
		elog(ERROR, "SPI error in \"%s\": %s (expected %s)", what,
			 SPI_result_code_string(rc), SPI_result_code_string(expected));
}

uint64
DogdbSpiExecute(const char *query, bool read_only, long count, int expected)
{
	DogdbSpiCheck(SPI_execute(query, read_only, count), expected, query);
	return SPI_processed;
}

uint64
DogdbSpiExecuteWithArgs(const char *query, int nargs, Oid *argtypes, Datum *values,
						const char *nulls, bool read_only, long count, int expected)
{
	DogdbSpiCheck(SPI_execute_with_args(query, nargs, argtypes, values, nulls, read_only, count),
				  expected, query);
	return SPI_processed;
}

SPIPlanPtr
DogdbSpiPrepare(const char *query, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(query, nargs, argtypes);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare of \"%s\" failed: %s", query, SPI_result_code_string(SPI_result));
	return plan;
}

void
DogdbSpiConnect(void)
{
	DogdbSpiCheck(SPI_connect(), SPI_OK_CONNECT, "SPI_connect");
}

void
DogdbSpiFinish(void)
{
	DogdbSpiCheck(SPI_finish(), SPI_OK_FINISH, "SPI_finish");
}

/* the one month validator: first day of a month in years 1..9999 */
void
DogdbCheckMonth(DateADT date, bool isnull, const char *argname)
{
	int			year = 0,
				mon = 0,
				mday = 0;

	if (!isnull && !DATE_NOT_FINITE(date))
		j2date(date + POSTGRES_EPOCH_JDATE, &year, &mon, &mday);
	if (isnull || DATE_NOT_FINITE(date) || mday != 1 ||
		year < DOGDB_MIN_YEAR || year > DOGDB_MAX_YEAR)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be the first day of a month from 0001-01-01 to 9999-12-01, not %s",
						argname, isnull ? "NULL" :
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(date)))),
				 errhint("Months are UTC calendar months, such as date '2021-03-01'; "
						 "for a timestamptz x use date_trunc('month', x AT TIME ZONE 'UTC')::date.")));
}

DateADT
DogdbMonthArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	bool		isnull = PG_ARGISNULL(argno);
	DateADT		date = isnull ? 0 : PG_GETARG_DATEADT(argno);

	DogdbCheckMonth(date, isnull, argname);
	return date;
}

/*
 * A CustomPath producing rows for the upper relation rel, serial, whose
 * one child is the standard path it runs instead when it must (the
 * planner paths of src/churn_path.c and src/funnel_path.c); costs, path
 * keys and private data are the caller's
 */
CustomPath *
DogdbUpperCustomPath(RelOptInfo *rel, Path *child, double rows, const CustomPathMethods *methods)
{
	CustomPath *cp = makeNode(CustomPath);

	cp->path.pathtype = T_CustomScan;
	cp->path.parent = rel;
	cp->path.pathtarget = rel->reltarget;
	cp->path.param_info = NULL;
	cp->path.parallel_aware = false;
	cp->path.parallel_safe = false;
	cp->path.parallel_workers = 0;
	cp->path.rows = rows;
	cp->flags = 0;
	cp->custom_paths = list_make1(child);
	cp->methods = methods;
	return cp;
}
