/*-------------------------------------------------------------------------
 *
 * kpi_state.c
 *	  The KPI engine's per-account state between refreshes (kpi.h): per
 *	  block of accounts in dogdb_internal.kpi_churn_state the slots' first
 *	  month, churn month and size, and the months the last refresh covered
 *	  (dogdb_internal.kpi_coverage).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "bulk_insert.h"
#include "common.h"
#include "kpi.h"

/* dogdb_internal.kpi_churn_state, as a full rebuild writes it in bulk */
static const BulkInsertColumn kpi_churn_columns[] = {
	{"block", INT8OID}, {"first_months", BYTEAOID}, {"churn_months", BYTEAOID}, {"company_sizes", BYTEAOID}
};

/*
 * Churn state and coverage
 */
/* one stored block: its accounts' churn months */
static void
AddChurnBlock(void *arg, HeapTuple tup, TupleDesc desc)
{
	KpiState   *ks = arg;
	bool		isnull;
	int64		block = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	const int16 *first = (const int16 *) KpiStoredBytes(SPI_getbinval(tup, desc, 2, &isnull),
													 sizeof(int16) * KPI_BLOCK_SLOTS,
													 "dogdb_internal.kpi_churn_state");
	const int16 *churn = (const int16 *) KpiStoredBytes(SPI_getbinval(tup, desc, 3, &isnull),
													 sizeof(int16) * KPI_BLOCK_SLOTS,
													 "dogdb_internal.kpi_churn_state");

	for (int slot = 0; slot < KPI_BLOCK_SLOTS; slot++)
	{
		int32		account;

		if (first[slot] == KPI_NO_ACCOUNT)
			continue;
		account = KpiAccountIndex(ks, (block << KPI_BLOCK_SHIFT) | slot);
		if (account >= 0)
			ks->churn[account] = churn[slot];
		else
			ks->churn_changed = true;	/* drop a deleted account */
	}
}

/* read every account's churn month and the months covered; false if none */
bool
KpiLoadChurnState(KpiState *ks, int32 *first_month, int32 *last_month)
{
	if (!KpiLoadCoverage(ks, first_month, last_month))
		return false;
	KpiForEachRow("SELECT block, first_months, churn_months FROM dogdb_internal.kpi_churn_state",
				  0, NULL, NULL, AddChurnBlock, ks);
	return true;
}

/* write every account's first month, churn month and size, by block */
void
KpiStoreChurnState(KpiState *ks, bool full)
{
	Oid			argtypes[4] = {INT8ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID};
	ArrayBuildState *arrs[4] = {NULL, NULL, NULL, NULL};
	Datum		args[4];
	int			a = 0;
	MemoryContext old = MemoryContextSwitchTo(ks->tmpcxt);
	BulkInsert *writer = NULL;

	/* a full rebuild has emptied the table (KpiStoreMonths): straight to the heap */
	if (full)
		writer = BulkInsertTryBegin(DogdbInternalRelationId("kpi_churn_state"),
									kpi_churn_columns, lengthof(kpi_churn_columns));
	else
		DogdbSpiExecute("DELETE FROM dogdb_internal.kpi_churn_state", false, 0, SPI_OK_DELETE);
	while (a < ks->naccounts)
	{
		int64		block = KpiBlockOf(ks->accounts[a].id);
		bytea	   *f = KpiNewBytea(sizeof(int16) * KPI_BLOCK_SLOTS);
		bytea	   *c = KpiNewBytea(sizeof(int16) * KPI_BLOCK_SLOTS);
		bytea	   *z = KpiNewBytea(KPI_BLOCK_SLOTS);
		int16	   *fv = (int16 *) VARDATA(f);
		int16	   *cv = (int16 *) VARDATA(c);

		for (int slot = 0; slot < KPI_BLOCK_SLOTS; slot++)
			fv[slot] = KPI_NO_ACCOUNT;
		for (; a < ks->naccounts && KpiBlockOf(ks->accounts[a].id) == block; a++)
		{
			int			slot = KpiSlotOf(ks->accounts[a].id);

			fv[slot] = (int16) ks->accounts[a].first_month;
			cv[slot] = (int16) ks->churn[a];
			VARDATA(z)[slot] = (char) ks->accounts[a].size;
		}
		if (writer != NULL)
		{
			Datum		values[4] = {Int64GetDatum(block), PointerGetDatum(f), PointerGetDatum(c), PointerGetDatum(z)};
			bool		nulls[4] = {false, false, false, false};

			BulkInsertRow(writer, values, nulls);	/* copies the values */
			pfree(f);
			pfree(c);
			pfree(z);
			continue;
		}
		arrs[0] = accumArrayResult(arrs[0], Int64GetDatum(block), false, INT8OID, ks->tmpcxt);
		arrs[1] = accumArrayResult(arrs[1], PointerGetDatum(f), false, BYTEAOID, ks->tmpcxt);
		arrs[2] = accumArrayResult(arrs[2], PointerGetDatum(c), false, BYTEAOID, ks->tmpcxt);
		arrs[3] = accumArrayResult(arrs[3], PointerGetDatum(z), false, BYTEAOID, ks->tmpcxt);
	}
	if (writer != NULL)
	{
		BulkInsertEnd(writer);
		CommandCounterIncrement();
	}
	else if (arrs[0] != NULL)
	{
		for (int i = 0; i < 4; i++)
			args[i] = makeArrayResult(arrs[i], ks->tmpcxt);
		DogdbSpiExecuteWithArgs("INSERT INTO dogdb_internal.kpi_churn_state (block, first_months, churn_months, company_sizes)"
								" SELECT * FROM unnest($1, $2, $3, $4)", 4, argtypes, args, NULL, false, 0, SPI_OK_INSERT);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(ks->tmpcxt);
}

/* record the months this refresh covered */
void
KpiStoreCoverage(KpiState *ks)
{
	Oid			argtypes[2] = {DATEOID, DATEOID};
	Datum		args[2];

	args[0] = KpiMonthDate(ks->first_month);
	args[1] = KpiMonthDate(ks->current_month);
	DogdbSpiExecuteWithArgs("INSERT INTO dogdb_internal.kpi_coverage (first_month, last_month) VALUES ($1, $2)"
							" ON CONFLICT (singleton) DO UPDATE SET first_month = $1, last_month = $2",
							2, argtypes, args, NULL, false, 0, SPI_OK_INSERT);
}
