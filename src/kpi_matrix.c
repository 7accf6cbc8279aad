/*-------------------------------------------------------------------------
 *
 * kpi_matrix.c
 *	  The KPI engine's session matrix (kpi.h): session counts per account
 *	  and month, and their stored form between refreshes.
 *
 * Stored state is rows by block of accounts (kpi.h): per (month, block) in
 * dogdb_internal.kpi_month_activity the slots' session counts and tiers
 * (the churn state, per block, is in kpi_state.c).  Counts of accounts
 * that no longer exist are dropped when read, and the month is rewritten
 * without them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "access/xact.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/memutils.h"

#include "bulk_insert.h"
#include "calendar.h"
#include "common.h"
#include "kpi.h"

/* dogdb_internal.kpi_month_activity, as a full rebuild writes it in bulk */
static const BulkInsertColumn kpi_month_columns[] = {
	{"month", DATEOID}, {"block", INT8OID}, {"session_counts", BYTEAOID}, {"plan_ids", BYTEAOID}
};

Datum
KpiMonthDate(int32 month)
{
	return DateADTGetDatum((DateADT) cal_month_first_day(month));
}

int32
KpiDateMonth(Datum d)
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

/* a bytea of n bytes, zeroed */
bytea *
KpiNewBytea(Size n)
{
	bytea	   *b = palloc0(VARHDRSZ + n);

	SET_VARSIZE(b, VARHDRSZ + n);
	return b;
}

/* a stored bytea of the expected size, or an error */
char *
KpiStoredBytes(Datum d, Size n, const char *what)
{
	bytea	   *b = DatumGetByteaPP(d);

	if (VARSIZE_ANY_EXHDR(b) != n)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("KPI engine state in %s is corrupt", what),
				 errhint("Run SELECT dogdb_refresh_kpis(true) to rebuild it.")));
	return VARDATA_ANY(b);
}

/*
 * The codec of kpi_month_activity's slot arrays: a width byte (1, 2 or 4),
 * then KPI_BLOCK_SLOTS values of that width, the narrowest that holds every
 * value of the block (most counts and plan_ids fit in a byte, so a row is
 * 2 kB, not 6).  A tier of width 1 stores KPI_NO_PLAN as -128.
 */
static inline int
SlotWidth(int32 lo, int32 hi)
{
	return (lo >= -128 && hi <= 127) ? 1 : (lo >= PG_INT16_MIN && hi <= PG_INT16_MAX) ? 2 : 4;
}

bytea *
KpiEncodeCounts(const int32 *counts)
{
	int32		lo = 0,
				hi = 0;
	int			width;
	bytea	   *b;
	char	   *p;

	for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
	{
		lo = Min(lo, counts[i]);
		hi = Max(hi, counts[i]);
	}
	width = SlotWidth(lo, hi);
	b = KpiNewBytea(1 + width * KPI_BLOCK_SLOTS);
	p = VARDATA(b);
	*p++ = (char) width;
	if (width == 1)
		for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
			p[i] = (char) (int8) counts[i];
	else if (width == 2)
		for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
		{
			int16		x = (int16) counts[i];

			memcpy(p + 2 * i, &x, 2);
		}
	else
		memcpy(p, counts, 4 * KPI_BLOCK_SLOTS);
	return b;
}

/* tiers: never wider than 2; KPI_NO_PLAN counts as -128 for the width */
bytea *
KpiEncodeTiers(const int16 *tiers)
{
	int32		lo = 0,
				hi = 0;
	int			width;
	bytea	   *b;
	char	   *p;

	for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
	{
		int32		v = tiers[i] == KPI_NO_PLAN ? -128 : tiers[i];

		lo = Min(lo, v);
		hi = Max(hi, v);
	}
	width = SlotWidth(lo, hi);
	Assert(width <= 2);
	b = KpiNewBytea(1 + width * KPI_BLOCK_SLOTS);
	p = VARDATA(b);
	*p++ = (char) width;
	if (width == 1)
		for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
			p[i] = (char) (tiers[i] == KPI_NO_PLAN ? (int8) -128 : (int8) tiers[i]);
	else
		memcpy(p, tiers, 2 * KPI_BLOCK_SLOTS);
	return b;
}

/* decode into values; false if the bytes are not a valid encoding */
static bool
DecodeSlots(Datum d, int32 *values, bool tiers)
{
	bytea	   *b = DatumGetByteaPP(d);
	const char *p = VARDATA_ANY(b);
	int			width;

	if (VARSIZE_ANY_EXHDR(b) < 1)
		return false;
	width = *p++;
	if ((width != 1 && width != 2 && width != 4) || (tiers && width == 4) ||
		VARSIZE_ANY_EXHDR(b) != (Size) (1 + width * KPI_BLOCK_SLOTS))
		return false;
	for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
	{
		if (width == 1)
		{
			int8		x = (int8) *p++;

			values[i] = (tiers && x == -128) ? KPI_NO_PLAN : x;
		}
		else if (width == 2)
		{
			int16		x;

			memcpy(&x, p, 2);
			p += 2;
			values[i] = x;
		}
		else
		{
			memcpy(&values[i], p, 4);
			p += 4;
		}
	}
	return true;
}

/*
 * A stored slot array copied, if it is a valid encoding (a tier at most 2
 * wide); NULL if not.  The copy is read by KpiSlotGet() and changed by
 * KpiCountsSet() without decoding the other slots.
 */
bytea *
KpiSlotsCopy(Datum d, bool tiers)
{
	bytea	   *b = DatumGetByteaPP(d);
	Size		n = VARSIZE_ANY_EXHDR(b);
	int			width = n < 1 ? 0 : *VARDATA_ANY(b);
	bytea	   *copy;

	if ((width != 1 && width != 2 && width != 4) || (tiers && width == 4) ||
		n != (Size) (1 + width * KPI_BLOCK_SLOTS))
		return NULL;
	copy = KpiNewBytea(n);
	memcpy(VARDATA(copy), VARDATA_ANY(b), n);
	return copy;
}

/* the value at slot of a copy made by KpiSlotsCopy() (a tier of width 1: -128 is KPI_NO_PLAN) */
int32
KpiSlotGet(const bytea *b, int slot, bool tiers)
{
	const char *p = VARDATA_ANY(b);
	int			width = *p++;

	if (width == 1)
	{
		int8		x = (int8) p[slot];

		return (tiers && x == -128) ? KPI_NO_PLAN : x;
	}
	if (width == 2)
	{
		int16		x;

		memcpy(&x, p + 2 * slot, 2);
		return x;
	}
	{
		int32		x;

		memcpy(&x, p + 4 * slot, 4);
		return x;
	}
}

/*
 * Counts (a copy made by KpiSlotsCopy()) with slot set to value: changed in
 * place when the width stays the one the encoder would choose, else
 * encoded anew (the bytes are always the encoder's)
 */
bytea *
KpiCountsSet(bytea *b, int slot, int32 value)
{
	char	   *p = VARDATA(b);
	int			width = *p++;
	int32		old = KpiSlotGet(b, slot, false);
	int32		values[KPI_BLOCK_SLOTS];

	/* the same width unless the value needs a wider one or the old one may have set it */
	if (SlotWidth(Min(value, 0), Max(value, 0)) <= width &&
		!(width > 1 && SlotWidth(Min(old, 0), Max(old, 0)) == width &&
		  SlotWidth(Min(value, 0), Max(value, 0)) < width))
	{
		if (width == 1)
			p[slot] = (char) (int8) value;
		else if (width == 2)
		{
			int16		x = (int16) value;

			memcpy(p + 2 * slot, &x, 2);
		}
		else
			memcpy(p + 4 * slot, &value, 4);
		return b;
	}
	if (!DecodeSlots(PointerGetDatum(b), values, false))
		elog(ERROR, "KPI engine slot array not valid");
	values[slot] = value;
	pfree(b);
	return KpiEncodeCounts(values);
}

bool
KpiDecodeCounts(Datum d, int32 *counts)
{
	return DecodeSlots(d, counts, false);
}

bool
KpiDecodeTiers(Datum d, int16 *tiers)
{
	int32		v[KPI_BLOCK_SLOTS];

	if (!DecodeSlots(d, v, true))
		return false;
	for (int i = 0; i < KPI_BLOCK_SLOTS; i++)
		tiers[i] = (int16) v[i];
	return true;
}

/*
 * Stored months
 */
/* which months have rows in kpi_month_activity (one index probe a month) */
void
KpiListStoredMonths(KpiState *ks)
{
	uint64		n = KpiQuery(ks, "WITH RECURSIVE m AS ("
							 " (SELECT month FROM dogdb_internal.kpi_month_activity ORDER BY month LIMIT 1)"
							 " UNION ALL SELECT (SELECT k.month FROM dogdb_internal.kpi_month_activity k"
							 "   WHERE k.month > m.month ORDER BY k.month LIMIT 1) FROM m WHERE m.month IS NOT NULL)"
							 " SELECT month FROM m WHERE month IS NOT NULL", 0, NULL, NULL, true, SPI_OK_SELECT);

	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int32		month = KpiDateMonth(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		if (KpiInHorizon(month))	/* else a damaged row; a rebuild removes it */
			KpiMonthOf(ks, month)->stored = true;
	}
	SPI_freetuptable(SPI_tuptable);
}

/*
 * Run a query through a cursor, 256 rows at a time, and give fn each row
 * (the engine's reads of its state, which can be large)
 */
void
KpiForEachRow(const char *query, int nargs, Oid *argtypes, Datum *args,
			  void (*fn) (void *arg, HeapTuple tup, TupleDesc desc), void *arg)
{
	SPIPlanPtr	plan = DogdbSpiPrepare(query, nargs, argtypes);
	Portal		portal = SPI_cursor_open(NULL, plan, args, NULL, true);

	for (;;)
	{
		SPITupleTable *tt;

		SPI_cursor_fetch(portal, true, 256);
		tt = SPI_tuptable;
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
			fn(arg, tt->vals[i], tt->tupdesc);
		SPI_freetuptable(tt);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
}

/* one stored (month, block) row: its counts added to the matrix */
static void
AddStoredMonthRow(void *arg, HeapTuple tup, TupleDesc desc)
{
	KpiState   *ks = arg;
	bool		isnull;
	int32		month = KpiDateMonth(SPI_getbinval(tup, desc, 1, &isnull));
	int64		block = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	int32		counts[KPI_BLOCK_SLOTS];
	KpiMonth   *km = KpiMonthOf(ks, month);

	if (!KpiDecodeCounts(SPI_getbinval(tup, desc, 3, &isnull), counts))
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("KPI engine state in %s is corrupt", "dogdb_internal.kpi_month_activity"),
				 errhint("Run SELECT dogdb_refresh_kpis(true) to rebuild it.")));
	for (int slot = 0; slot < KPI_BLOCK_SLOTS; slot++)
	{
		int32		account;

		if (counts[slot] == 0)
			continue;
		account = KpiAccountIndex(ks, (block << KPI_BLOCK_SHIFT) | slot);
		if (account >= 0)
			KpiAddCount(ks, account, month, counts[slot]);
		else
			km->activity_changed = true;	/* drop a deleted account's counts */
	}
}

/* read back the stored counts of the months whose facts are recomputed */
void
KpiLoadStoredMonths(KpiState *ks)
{
	ArrayBuildState *wanted = NULL;
	Oid			argtype = DATEARRAYOID;
	Datum		arg;

	for (int32 month = KPI_MIN_MONTH; month <= KPI_MAX_MONTH; month++)
	{
		KpiMonth   *km = KpiMonthOf(ks, month);

		if (km->stored && !km->loaded && km->facts_dirty)
			wanted = accumArrayResult(wanted, KpiMonthDate(month), false, DATEOID, CurrentMemoryContext);
	}
	if (wanted == NULL)
		return;
	arg = makeArrayResult(wanted, CurrentMemoryContext);
	for (int32 month = KPI_MIN_MONTH; month <= KPI_MAX_MONTH; month++)
		KpiMonthOf(ks, month)->loaded |= KpiMonthOf(ks, month)->stored && KpiMonthOf(ks, month)->facts_dirty;
	KpiForEachRow("SELECT month, block, session_counts FROM dogdb_internal.kpi_month_activity WHERE month = ANY ($1)",
				  1, &argtype, &arg, AddStoredMonthRow, ks);
}

/*
 * The rows of one month: every block with accounts if the month is covered
 * (so that the delta path finds every tier), else the blocks with sessions
 */
/*
 * The accounts by block of kpi_month_activity, found once for every month:
 * block k holds accounts [begin[k], begin[k + 1]) at slots slot[...], and
 * the stored form of each tier
 */
typedef struct BlockRuns
{
	int			nblocks;
	int64	   *block;
	int32	   *begin;
	int16	   *slot;
	int16	   *stored;
} BlockRuns;

static void
FindBlockRuns(KpiState *ks, BlockRuns *runs)
{
	runs->nblocks = 0;
	runs->block = palloc(sizeof(int64) * Max(ks->naccounts, 1));
	runs->begin = palloc(sizeof(int32) * (ks->naccounts + 1));
	runs->slot = palloc(sizeof(int16) * Max(ks->naccounts, 1));
	for (int32 a = 0; a < ks->naccounts; a++)
	{
		int64		block = KpiBlockOf(ks->accounts[a].id);

		if (runs->nblocks == 0 || runs->block[runs->nblocks - 1] != block)
		{
			runs->block[runs->nblocks] = block;
			runs->begin[runs->nblocks++] = a;
		}
		runs->slot[a] = (int16) KpiSlotOf(ks->accounts[a].id);
	}
	runs->begin[runs->nblocks] = ks->naccounts;
	runs->stored = palloc(sizeof(int16) * (ks->nplans + 1));
	for (int t = 0; t <= ks->nplans; t++)
		runs->stored[t] = KpiStoredTier(ks, t);
}

static void
StoreMonth(KpiState *ks, const BlockRuns *runs, SPIPlanPtr insert, BulkInsert *writer, int32 month)
{
	bool		covered = (month >= ks->first_month && month <= ks->current_month);
	KpiMonth   *km = KpiMonthOf(ks, month);
	const int32 *counts = km->counts;
	ArrayBuildState *blocks = NULL;
	ArrayBuildState *countarr = NULL;
	ArrayBuildState *tierarr = NULL;
	Datum		args[4];

	for (int k = 0; k < runs->nblocks; k++)
	{
		int64		block = runs->block[k];
		int32		cv[KPI_BLOCK_SLOTS];
		int16		tv[KPI_BLOCK_SLOTS];
		bool		any = covered;

		memset(cv, 0, sizeof(cv));
		for (int slot = 0; slot < KPI_BLOCK_SLOTS; slot++)
			tv[slot] = KPI_NO_PLAN;
		for (int32 a = runs->begin[k]; a < runs->begin[k + 1]; a++)
		{
			int			slot = runs->slot[a];

			cv[slot] = counts == NULL ? 0 : counts[a];
			tv[slot] = runs->stored[km->tiers != NULL ? km->tiers[a] : KpiTierAt(ks, &ks->accounts[a], month)];
			any |= (cv[slot] != 0);
		}
		if (any && writer != NULL)
		{
			Datum		values[4] = {KpiMonthDate(month), Int64GetDatum(block),
			PointerGetDatum(KpiEncodeCounts(cv)), PointerGetDatum(KpiEncodeTiers(tv))};
			bool		nulls[4] = {false, false, false, false};

			BulkInsertRow(writer, values, nulls);	/* copies the values */
		}
		else if (any)
		{
			blocks = accumArrayResult(blocks, Int64GetDatum(block), false, INT8OID, CurrentMemoryContext);
			countarr = accumArrayResult(countarr, PointerGetDatum(KpiEncodeCounts(cv)), false, BYTEAOID,
										CurrentMemoryContext);
			tierarr = accumArrayResult(tierarr, PointerGetDatum(KpiEncodeTiers(tv)), false, BYTEAOID,
									   CurrentMemoryContext);
		}
	}
	if (blocks == NULL)
		return;
	args[0] = KpiMonthDate(month);
	args[1] = makeArrayResult(blocks, CurrentMemoryContext);
	args[2] = makeArrayResult(countarr, CurrentMemoryContext);
	args[3] = makeArrayResult(tierarr, CurrentMemoryContext);
	DogdbSpiCheck(SPI_execute_plan(insert, args, NULL, false, 0), SPI_OK_INSERT, "store a month");
}

/* write the months whose counts or tiers changed (all months if full) */
void
KpiStoreMonths(KpiState *ks, bool full)
{
	Oid			argtypes[4] = {DATEOID, INT8ARRAYOID, BYTEAARRAYOID, BYTEAARRAYOID};
	SPIPlanPtr	del = DogdbSpiPrepare("DELETE FROM dogdb_internal.kpi_month_activity WHERE month = $1", 1, argtypes);
	SPIPlanPtr	insert = DogdbSpiPrepare("INSERT INTO dogdb_internal.kpi_month_activity"
										 " (month, block, session_counts, plan_ids)"
										 " SELECT $1, b, c, t FROM unnest($2, $3, $4) u(b, c, t)", 4, argtypes);

	/*
	 * A full rebuild reads no state: TRUNCATE, not DELETE, so that rebuilds
	 * leave no dead rows behind (only the engine reads these tables, under
	 * the refresh lock, and a refresh that finds no state rebuilds).
	 */
	BulkInsert *writer = NULL;
	BlockRuns	runs;

	FindBlockRuns(ks, &runs);
	if (full)
	{
		DogdbSpiExecute("TRUNCATE dogdb_internal.kpi_month_activity, dogdb_internal.kpi_churn_state",
						false, 0, SPI_OK_UTILITY);
		/* every row is new: straight to the heap, unless the table was altered */
		writer = BulkInsertTryBegin(DogdbInternalRelationId("kpi_month_activity"),
									kpi_month_columns, lengthof(kpi_month_columns));
		/* an empty table: its index built once at the end */
		if (writer != NULL)
			BulkInsertRebuildIndexes(writer);
	}
	for (int32 month = KPI_MIN_MONTH; month <= KPI_MAX_MONTH; month++)
	{
		KpiMonth   *km = KpiMonthOf(ks, month);
		bool		covered = (month >= ks->first_month && month <= ks->current_month);
		MemoryContext old;
		Datum		arg;

		if (!(full ? (km->counts != NULL || covered) : km->activity_changed))
			continue;
		arg = KpiMonthDate(month);
		if (km->stored && !full)
			DogdbSpiCheck(SPI_execute_plan(del, &arg, NULL, false, 0), SPI_OK_DELETE, "delete a month");
		if (!covered && !KpiMonthHasSessions(ks, month))
			continue;
		old = MemoryContextSwitchTo(ks->tmpcxt);
		StoreMonth(ks, &runs, insert, writer, month);
		MemoryContextSwitchTo(old);
		MemoryContextReset(ks->tmpcxt);
		CHECK_FOR_INTERRUPTS();
	}
	if (writer != NULL)
	{
		BulkInsertEnd(writer);
		CommandCounterIncrement();
	}
	SPI_freeplan(del);
	SPI_freeplan(insert);
}
