/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  The KPI refresh when the tables are distributed by Citus.
 *
 * Design note: the KPI engine (kpi_*.c) scans the local heaps of sessions,
 * accounts and subscriptions and keeps per-month state fed by triggers.  On
 * Citus those heaps are empty shells on the coordinator and triggers are
 * gone (dogdb_distribute() drops them), so the engine would report zero
 * facts.  Instead the facts are kept by block of 1024 accounts
 * (dogdb_internal.kpi_block_facts, on the coordinator) and computed by one
 * query, dogdb_internal.kpi_block_facts_sql(blocks), which Citus pushes
 * down: the per-account work runs on the workers, and only sums by block,
 * month, company size and plan reach the coordinator.  Change tracking
 * without triggers: each refresh has the workers compute per block a row
 * count and a sum of row hashes of accounts, sessions and subscriptions
 * (dogdb_internal.citus_changed_blocks()), compares them with the stored
 * ones and recomputes only the blocks that differ; a change of the prices,
 * of the first month or of the current month recomputes all.  The facts
 * table the KPI views read holds the sums of the blocks.  The work lives
 * in SQL (dogdb_internal.kpi_citus_refresh()); this file is the hook.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"

#include "citus.h"
#include "common.h"

/* dogdb.kpi_update_facts() on Citus (citus.h) */
Datum
DogdbKpiUpdateFactsOnCitus(TupleDesc desc, bool full)
{
	int			nestlevel = DogdbPinSearchPath();
	Datum		values[5];
	bool		nulls[5] = {0};
	Datum		arg = BoolGetDatum(full);
	Oid			argtype = BOOLOID;
	int32		months;
	bool		rebuilt,
				changed,
				isnull;

	if (desc->natts != 5)
		elog(ERROR, "unexpected result type of dogdb.kpi_update_facts: %d columns", desc->natts);
	DogdbSpiConnect();
	DogdbSpiExecuteWithArgs("SELECT months, rebuilt, changed FROM " DOGDB_INTERNAL_SCHEMA ".kpi_citus_refresh($1)",
							1, &argtype, &arg, NULL, false, 0, SPI_OK_SELECT);
	months = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	rebuilt = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	changed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);

	/* (months, rebuilt, retention_changed, usage_changed, revenue_changed) */
	values[0] = Int32GetDatum(months);
	values[1] = BoolGetDatum(rebuilt);
	for (int i = 2; i < 5; i++)
		values[i] = BoolGetDatum(changed);
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}
