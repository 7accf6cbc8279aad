/*-------------------------------------------------------------------------
 *
 * kpi_matrix.c
 *	  The KPI engine's session matrix (kpi.h): session counts per account
 *	  and month, and their stored form between refreshes.
 *
 * Stored state is pairs of bytea arrays, sorted int8 account ids and an
 * int4 value for each: one row of dogdb.kpi_month_activity per month with
 * sessions (the counts), and one row of dogdb.kpi_churn_state (every
 * account's churn month, with the months that refresh covered).  Entries
 * of accounts that no longer exist are dropped when read, and the month
 * is rewritten without them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/memutils.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

static Datum
MonthDate(int32 month)
{
	return DateADTGetDatum((DateADT) cal_month_first_day(month));
}

static int32
DateMonth(Datum d)
{
	DateADT		date = DatumGetDateADT(d);

	return DATE_NOT_FINITE(date) ? KPI_MIN_MONTH - 1 : cal_month_of_day(date);
}

/*
 * The matrix
 */
/* the session counts of a month, allocated when first needed */
int32 *
KpiMonthRow(KpiState *ks, int32 month)
{
	KpiMonth   *km = KpiMonthOf(ks, month);

	if (km->counts == NULL)
		km->counts = MemoryContextAllocExtended(ks->cxt, sizeof(int32) * Max(ks->naccounts, 1),
												MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
	return km->counts;
}

/* the count of (account, month); 0 for months not touched */
int32
KpiCountOf(KpiState *ks, int32 account, int32 month)
{
	KpiMonth   *km = KpiMonthOf(ks, month);

	return km->counts == NULL ? 0 : km->counts[account];
}

/* add count to (account, month), clamped to 0..INT32_MAX */
void
KpiAddCount(KpiState *ks, int32 account, int32 month, int64 count)
{
	int32	   *cell = &KpiMonthRow(ks, month)[account];
	int64		sum = (int64) *cell + count;

	*cell = (int32) Max(0, Min(sum, PG_INT32_MAX));
}

/* whether a month has sessions (a stored month not read back has) */
bool
KpiMonthHasSessions(KpiState *ks, int32 month)
{
	KpiMonth   *km = KpiMonthOf(ks, month);

	if (km->counts == NULL)
		return km->stored && !km->loaded;
	for (int a = 0; a < ks->naccounts; a++)
		if (km->counts[a] != 0)
			return true;
	return false;
}

/*
 * The pairs codec
 */
/* the number of pairs, after checking that the two arrays agree */
static Size
PairCount(bytea *ids, bytea *values, const char *what)
{
	Size		n = VARSIZE_ANY_EXHDR(ids) / sizeof(int64);

	if (VARSIZE_ANY_EXHDR(ids) % sizeof(int64) != 0 || VARSIZE_ANY_EXHDR(values) != n * sizeof(int32))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("KPI engine state in %s is corrupt", what),
				 errhint("Run SELECT dogdb_refresh_kpis(true) to rebuild it.")));
	return n;
}

/* pair i: its account position (-1 if the account is gone) and value */
static int32
PairAt(KpiState *ks, bytea *ids, bytea *values, Size i, int32 *value)
{
	int64		id;

	memcpy(&id, VARDATA_ANY(ids) + i * sizeof(int64), sizeof(int64));
	memcpy(value, VARDATA_ANY(values) + i * sizeof(int32), sizeof(int32));
	return KpiAccountIndex(ks, id);
}

/* every account's value (values NULL: all 0), without the zeros if asked */
static void
MakePairs(KpiState *ks, const int32 *values, bool skip_zero, bytea **ids, bytea **out)
{
	Size		n = 0;

	for (int a = 0; a < ks->naccounts; a++)
		n += !(skip_zero && (values == NULL || values[a] == 0));
	*ids = palloc_extended(VARHDRSZ + n * sizeof(int64), MCXT_ALLOC_HUGE);
	*out = palloc_extended(VARHDRSZ + n * sizeof(int32), MCXT_ALLOC_HUGE);
	SET_VARSIZE(*ids, VARHDRSZ + n * sizeof(int64));
	SET_VARSIZE(*out, VARHDRSZ + n * sizeof(int32));
	n = 0;
	for (int a = 0; a < ks->naccounts; a++)
	{
		int32		v = values == NULL ? 0 : values[a];

		if (skip_zero && v == 0)
			continue;
		memcpy(VARDATA(*ids) + n * sizeof(int64), &ks->accounts[a].id, sizeof(int64));
		memcpy(VARDATA(*out) + n * sizeof(int32), &v, sizeof(int32));
		n++;
	}
}

/*
 * Stored months
 */
/* which months have a row in dogdb.kpi_month_activity */
void
KpiListStoredMonths(KpiState *ks)
{
	uint64		n = KpiQuery(ks, "SELECT month FROM dogdb.kpi_month_activity", 0, NULL, NULL, true, SPI_OK_SELECT);

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int32		month = DateMonth(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (KpiInHorizon(month))	/* else a damaged row; a rebuild removes it */
			KpiMonthOf(ks, month)->stored = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/* read back the stored counts of the months whose facts are recomputed */
void
KpiLoadStoredMonths(KpiState *ks)
{
	ArrayBuildState *wanted = NULL;
	Oid			argtype = DATEARRAYOID;
	Datum		arg;
	SPITupleTable *tt;
	uint64		n;

	for (int32 month = KPI_MIN_MONTH; month <= KPI_MAX_MONTH; month++)
	{
		KpiMonth   *km = KpiMonthOf(ks, month);

		if (km->stored && !km->loaded && km->facts_dirty)
			wanted = accumArrayResult(wanted, MonthDate(month), false, DATEOID, CurrentMemoryContext);
	}
	if (wanted == NULL)
		return;
	arg = makeArrayResult(wanted, CurrentMemoryContext);
	n = KpiQuery(ks, "SELECT month, account_ids, session_counts FROM dogdb.kpi_month_activity WHERE month = ANY ($1)",
				 1, &argtype, &arg, true, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(ks->tmpcxt);
		bool		isnull;
		int32		month = DateMonth(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		bytea	   *ids = DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		bytea	   *counts = DatumGetByteaPP(SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &isnull));
		Size		npairs = PairCount(ids, counts, "dogdb.kpi_month_activity");
		KpiMonth   *km = KpiMonthOf(ks, month);

		MemoryContextSwitchTo(old);
		for (Size p = 0; p < npairs; p++)
		{
			int32		c;
			int32		account = PairAt(ks, ids, counts, p, &c);

			if (account >= 0)
				KpiAddCount(ks, account, month, c);
			else
				km->activity_changed = true;	/* drop a deleted account's counts */
		}
		km->loaded = true;
		MemoryContextReset(ks->tmpcxt);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freetuptable(tt);
}

/* write the months whose counts changed (all months if full) */
void
KpiStoreMonths(KpiState *ks, bool full)
{
	Oid			argtypes[3] = {DATEOID, BYTEAOID, BYTEAOID};
	SPIPlanPtr	del = DogdbSpiPrepare("DELETE FROM dogdb.kpi_month_activity WHERE month = $1", 1, argtypes);
	SPIPlanPtr	upsert = DogdbSpiPrepare("INSERT INTO dogdb.kpi_month_activity (month, account_ids, session_counts)"
										 " VALUES ($1, $2, $3) ON CONFLICT (month) DO UPDATE"
										 " SET account_ids = $2, session_counts = $3", 3, argtypes);

	if (full)
		DogdbSpiExecute("DELETE FROM dogdb.kpi_month_activity", false, 0, SPI_OK_DELETE);
	for (int32 month = KPI_MIN_MONTH; month <= KPI_MAX_MONTH; month++)
	{
		KpiMonth   *km = KpiMonthOf(ks, month);
		MemoryContext old;
		Datum		args[3];
		bytea	   *ids;
		bytea	   *counts;

		if (!(full ? km->counts != NULL : km->activity_changed))
			continue;
		args[0] = MonthDate(month);
		if (!KpiMonthHasSessions(ks, month))
		{
			if (km->stored && !full)
				DogdbSpiCheck(SPI_execute_plan(del, args, NULL, false, 0), SPI_OK_DELETE, "delete a month");
			continue;
		}
		old = MemoryContextSwitchTo(ks->tmpcxt);
		MakePairs(ks, km->counts, true, &ids, &counts);
		MemoryContextSwitchTo(old);
		args[1] = PointerGetDatum(ids);
		args[2] = PointerGetDatum(counts);
		DogdbSpiCheck(SPI_execute_plan(upsert, args, NULL, false, 0), SPI_OK_INSERT, "store a month");
		MemoryContextReset(ks->tmpcxt);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_freeplan(del);
	SPI_freeplan(upsert);
}

/*
 * Churn state
 */
/* read every account's churn month and the months it covers; false if none */
bool
KpiLoadChurnState(KpiState *ks, int32 *first_month, int32 *last_month)
{
	bool		isnull;
	SPITupleTable *tt;
	bytea	   *ids;
	bytea	   *months;
	Size		n;

	if (KpiQuery(ks, "SELECT account_ids, churn_months, first_month, last_month FROM dogdb.kpi_churn_state",
				 0, NULL, NULL, true, SPI_OK_SELECT) != 1)
		return false;
	tt = SPI_tuptable;
	*first_month = DateMonth(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
	*last_month = DateMonth(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
	if (!KpiInHorizon(*first_month) || !KpiInHorizon(*last_month))
	{
		SPI_freetuptable(tt);
		return false;			/* damaged: rebuild */
	}
	ids = DatumGetByteaPP(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
	months = DatumGetByteaPP(SPI_getbinval(tt->vals[0], tt->tupdesc, 2, &isnull));
	n = PairCount(ids, months, "dogdb.kpi_churn_state");
	for (Size i = 0; i < n; i++)
	{
		int32		c;
		int32		account = PairAt(ks, ids, months, i, &c);

		if (account >= 0)
			ks->churn[account] = c;
		else
			ks->churn_changed = true;	/* drop a deleted account */
	}
	SPI_freetuptable(tt);
	return true;
}

/* write every account's churn month and the months computed */
void
KpiStoreChurnState(KpiState *ks)
{
	Oid			argtypes[4] = {BYTEAOID, BYTEAOID, DATEOID, DATEOID};
	Datum		args[4];
	bytea	   *ids;
	bytea	   *months;

	MakePairs(ks, ks->churn, false, &ids, &months);
	args[0] = PointerGetDatum(ids);
	args[1] = PointerGetDatum(months);
	args[2] = MonthDate(ks->first_month);
	args[3] = MonthDate(ks->current_month);
	DogdbSpiExecute("DELETE FROM dogdb.kpi_churn_state", false, 0, SPI_OK_DELETE);
	DogdbSpiExecuteWithArgs("INSERT INTO dogdb.kpi_churn_state (account_ids, churn_months, first_month, last_month)"
							" VALUES ($1, $2, $3, $4)", 4, argtypes, args, NULL, false, 0, SPI_OK_INSERT);
	pfree(ids);
	pfree(months);
}
