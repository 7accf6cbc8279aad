/*-------------------------------------------------------------------------
 *
 * citus.c
 *	  The KPI refresh when the tables are distributed by Citus.
 *
 * Design note: the KPI engine (kpi_*.c) scans the local heaps of sessions,
 * accounts and subscriptions and keeps per-month state fed by triggers.  On
 * Citus those heaps are empty shells on the coordinator and triggers are
 * gone (dogdb_distribute() drops them), so the engine would report zero
 * facts.  Instead every refresh recomputes the facts in full with one
 * query, dogdb_internal.kpi_facts_sql(), which Citus pushes down: the
 * per-account work runs on the workers, and only sums by month, company
 * size and plan reach the coordinator, which stores them in the facts
 * table (local) that the KPI views read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "citus.h"
#include "common.h"

/* the facts table: dogdb_internal.kpi_facts, or dogdb.kpi_facts where it is still there */
static char *
KpiFactsTable(void)
{
	if (OidIsValid(get_relname_relid("kpi_facts", get_namespace_oid(DOGDB_INTERNAL_SCHEMA, false))))
		return quote_qualified_identifier(DOGDB_INTERNAL_SCHEMA, "kpi_facts");
	(void) DogdbRelationId("kpi_facts");	/* a clear error if it is missing */
	return quote_qualified_identifier(DOGDB_SCHEMA, "kpi_facts");
}

/* dogdb.kpi_update_facts() on Citus (citus.h) */
Datum
DogdbKpiUpdateFactsOnCitus(TupleDesc desc)
{
	int			nestlevel = DogdbPinSearchPath();
	char	   *facts = KpiFactsTable();
	Datum	   *values = palloc0(sizeof(Datum) * desc->natts);
	bool	   *nulls = palloc0(sizeof(bool) * desc->natts);
	int32		months;
	bool		isnull;

	DogdbSpiConnect();
	/* one refresh at a time; the views' readers are not blocked */
	DogdbSpiExecute(psprintf("LOCK TABLE %s IN EXCLUSIVE MODE", facts), false, 0, SPI_OK_UTILITY);
	DogdbSpiExecute(psprintf("DELETE FROM %s", facts), false, 0, SPI_OK_DELETE);
	DogdbSpiExecute(psprintf("INSERT INTO %s (month, company_size, plan_id, active_accounts, churned_accounts,"
							 " sessions, revenue_cents) SELECT * FROM " DOGDB_INTERNAL_SCHEMA ".kpi_facts_sql()",
							 facts),
					false, 0, SPI_OK_INSERT);
	DogdbSpiExecute(psprintf("SELECT pg_catalog.count(DISTINCT month)::pg_catalog.int4 FROM %s", facts),
					true, 0, SPI_OK_SELECT);
	months = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);

	/* (months, rebuilt, retention_changed, usage_changed, revenue_changed): all rebuilt */
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->atttypid == INT4OID)
			values[i] = Int32GetDatum(months);
		else if (att->atttypid == BOOLOID)
			values[i] = BoolGetDatum(true);
		else
			elog(ERROR, "unexpected column \"%s\" in the result of dogdb.kpi_update_facts",
				 NameStr(att->attname));
	}
	return HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls));
}
