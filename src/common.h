/*-------------------------------------------------------------------------
 *
 * common.h
 *	  What every backend file of dogdb_analytics shares: the schema name,
 *	  the lookup of the extension's tables, a search_path that callers
 *	  cannot change, checked SPI calls and the one month-argument validator.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_COMMON_H
#define DOGDB_COMMON_H

#include "access/htup_details.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/date.h"

/* the schema of the extension's user-facing tables and views */
#define DOGDB_SCHEMA "dogdb"
/* the schema of the engines' state and helpers, granted to no one */
#define DOGDB_INTERNAL_SCHEMA "dogdb_internal"

/*
 * Months an argument may name: 0001-01 through 9999-12, the years an
 * invoice number can carry.  Every function taking a month refuses others.
 */
#define DOGDB_MIN_YEAR 1
#define DOGDB_MAX_YEAR 9999

/* the OID of table dogdb.<relname>; an error (42P01) if it is missing */
extern Oid	DogdbRelationId(const char *relname);
/* the same for dogdb_internal.<relname> */
extern Oid	DogdbInternalRelationId(const char *relname);

/*
 * Whether relid is a Citus table (distributed, reference or Citus local):
 * its rows are then in shards, not in the local table, so it must be read
 * and written through SQL that Citus plans.  False without Citus.
 */
extern bool DogdbIsDistributed(Oid relid);

/* whether any of the tables dogdb.<name> (a NULL-terminated list) is a Citus table */
extern bool DogdbAnyDistributed(const char *const *relnames);

/* the OID of function dogdb.<name>() without arguments; error if missing */
extern Oid	DogdbFunctionId(const char *name);
/* the same for dogdb_internal.<name>() */
extern Oid	DogdbInternalFunctionId(const char *name);

/*
 * Run the caller's queries with search_path = pg_catalog, pg_temp, so that
 * no object of the caller's schemas (an operator, a function) can be picked
 * up by a query the extension issues.  Returns the GUC nest level to pass
 * to DogdbRestoreSearchPath(); an error restores it by itself.
 */
extern int	DogdbPinSearchPath(void);
extern void DogdbRestoreSearchPath(int nestlevel);

/*
 * Checked SPI: an unexpected result code is an internal error naming the
 * query.  DogdbSpiExecute returns SPI_processed.
 */
extern uint64 DogdbSpiExecute(const char *query, bool read_only, long count, int expected);
extern uint64 DogdbSpiExecuteWithArgs(const char *query, int nargs, Oid *argtypes, Datum *values,
									  const char *nulls, bool read_only, long count, int expected);
extern SPIPlanPtr DogdbSpiPrepare(const char *query, int nargs, Oid *argtypes);
extern void DogdbSpiCheck(int rc, int expected, const char *what);
extern void DogdbSpiConnect(void);
extern void DogdbSpiFinish(void);

/*
 * A month argument: the first day of a month between 0001-01-01 and
 * 9999-12-01.  NULL, infinite and other dates are refused with 22023 and
 * one message naming the argument.  Returns the date.
 */
extern DateADT DogdbMonthArg(FunctionCallInfo fcinfo, int argno, const char *argname);
extern void DogdbCheckMonth(DateADT date, bool isnull, const char *argname);

/*
 * heap_getattr(), with its fast case inline: a tuple without NULLs and an
 * attribute whose offset the descriptor has cached (the one-pass scans)
 */
static inline Datum
DogdbHeapGetAttr(HeapTuple tuple, AttrNumber attnum, TupleDesc desc, bool *isnull)
{
	Form_pg_attribute att = TupleDescAttr(desc, attnum - 1);

	if (likely(HeapTupleNoNulls(tuple) && att->attcacheoff >= 0 &&
			   attnum <= HeapTupleHeaderGetNatts(tuple->t_data)))
	{
		*isnull = false;
		return fetchatt(att, (char *) tuple->t_data + tuple->t_data->t_hoff + att->attcacheoff);
	}
	return heap_getattr(tuple, attnum, desc, isnull);
}

/* a serial CustomPath of an upper relation over the standard path it falls back on */
struct CustomPath;
struct RelOptInfo;
struct Path;
struct CustomPathMethods;
extern struct CustomPath *DogdbUpperCustomPath(struct RelOptInfo *rel, struct Path *child, double rows,
											   const struct CustomPathMethods *methods);

#endif							/* DOGDB_COMMON_H */
