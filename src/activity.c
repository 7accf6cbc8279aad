/*-------------------------------------------------------------------------
 *
 * activity.c
 *	  The dogdb_active_months(timestamptz) aggregate: which UTC months an
 *	  account had sessions in, as a bitmap (month_bitmap.h), and the functions
 *	  that read such bitmaps.
 *
 * Design note: the state is a bytea, not internal, so that no serialize or
 * deserialize step is needed between parallel workers and a distributed
 * engine (Citus) can push partial aggregation down: it only does so for
 * aggregates with a combine function and a non-pseudo state type.
 *
 * A bytea state can be any bytes: CREATE AGGREGATE lets any role start
 * the support functions from its own INITCOND or feed them its own
 * values.  So the transition and combine functions refuse to run outside
 * an aggregate, and every bitmap they are given, state included, passes
 * month_bitmap_check() (O(1)) before use; the readers check their input
 * the same way.  Only months of the years 0001 to 9999 are accepted, so
 * whatever a reader returns is a date PostgreSQL can read back.
 *
 * Speed: the transition function updates the state in place and returns
 * the same pointer, so the executor copies nothing; only a state that must
 * grow is allocated anew, in the per-call context (the executor copies a
 * new state into the aggregate context itself).  The UTC month of a
 * session time is found without calendar arithmetic when it falls in the
 * month of the previous row, whose bounds are cached in fn_extra; the
 * cache exists only once a call passed AggCheckCallContext, so later calls
 * through the same FmgrInfo skip that check.  Measured on the benchmark
 * (test/bench/churn.sql), the aggregate costs about what count(*) does in
 * the same GROUP BY: the hash aggregation and the scan are the rest.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "month_bitmap.h"

PG_FUNCTION_INFO_V1(dogdb_active_months_transfn);
PG_FUNCTION_INFO_V1(dogdb_active_months_combinefn);
PG_FUNCTION_INFO_V1(dogdb_first_inactive_month);
PG_FUNCTION_INFO_V1(dogdb_last_active_month);
PG_FUNCTION_INFO_V1(dogdb_active_month_list);

#define INITIAL_MONTHS MONTH_BITMAP_INITIAL_MONTHS

#define BITMAP_DATA(b) ((uint8 *) VARDATA(b))
#define BITMAP_LEN(b) ((size_t) VARSIZE(b) - VARHDRSZ)

/* the month of the previous session time, kept in fn_extra */
typedef struct MonthCache
{
	TimestampTz lo;				/* first microsecond of the month */
	TimestampTz hi;				/* first microsecond of the next month */
	int32		month;
} MonthCache;

/* round down to a multiple of 8, so that most ORs are byte-aligned */
static int32
AlignMonth(int32 month)
{
	return month - (int32) (((int64) month % 8 + 8) % 8);
}

/* a zeroed bitmap for months [first, last], in the current context */
static bytea *
NewBitmap(int32 first, int32 last)
{
	size_t		len = month_bitmap_size(first, last);
	bytea	   *b = palloc(VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	month_bitmap_init(BITMAP_DATA(b), len, first);
	return b;
}

/* the longest valid bitmap starting at month first (for messages) */
static size_t
MaxBitmapLength(int32 first)
{
	int64		months = (int64) MONTH_BITMAP_MAX_MONTH + MONTH_BITMAP_SLACK - first;

	if (months < 0)
		months = 0;
	return Min(MONTH_BITMAP_MAX_LEN, (size_t) MONTH_BITMAP_HEADER + (size_t) (months / 8) + 1);
}

/* raise an error unless b is a valid bitmap */
static void
CheckBitmap(bytea *b)
{
	size_t		len = BITMAP_LEN(b);
	int32		first = month_bitmap_first(BITMAP_DATA(b), len);

	switch (month_bitmap_check(BITMAP_DATA(b), len))
	{
		case MONTH_BITMAP_OK:
			return;
		case MONTH_BITMAP_TOO_SHORT:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid active-month bitmap"),
					 errdetail("A bitmap has at least %d bytes; this one has %zu.",
							   MONTH_BITMAP_HEADER, len)));
			break;
		case MONTH_BITMAP_TOO_LONG:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid active-month bitmap"),
					 errdetail("A bitmap starting at month %d has at most %zu bytes; this one has %zu.",
							   first, MaxBitmapLength(first), len)));
			break;
		case MONTH_BITMAP_BAD_FIRST:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid active-month bitmap"),
					 errdetail("Its first month is %d; months from %d (0001-01) to %d (9999-12) are supported.",
							   first, MONTH_BITMAP_MIN_MONTH, MONTH_BITMAP_MAX_MONTH)));
			break;
		case MONTH_BITMAP_OUT_OF_RANGE:
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
					 errmsg("invalid active-month bitmap"),
					 errdetail("It holds a month outside the supported years 0001 to 9999.")));
			break;
	}
}

/* a bitmap argument, checked */
static bytea *
GetBitmapArg(FunctionCallInfo fcinfo, int argno)
{
	bytea	   *b = PG_GETARG_BYTEA_P(argno);

	CheckBitmap(b);
	return b;
}

/* state extended (in a new bitmap) to cover months [first, last] as well */
static bytea *
CoverMonths(bytea *state, int32 first, int32 last)
{
	size_t		len = BITMAP_LEN(state);
	int32		base = month_bitmap_first(BITMAP_DATA(state), len);
	int64		top = (int64) base + month_bitmap_capacity(len) - 1;
	bytea	   *grown;

	if (first >= base && last <= top)
		return state;
	/* within the supported months: bits past them are zero in a valid state */
	first = Max(AlignMonth(Min(first, base)), MONTH_BITMAP_MIN_FIRST);
	last = (int32) Min(Max((int64) last, top), MONTH_BITMAP_MAX_MONTH);
	grown = NewBitmap(first, last);
	if (!month_bitmap_or(BITMAP_DATA(grown), BITMAP_LEN(grown), BITMAP_DATA(state), len))
		elog(ERROR, "active-month bitmap grown from %d to %d misses a month", first, last);
	return grown;
}

/* as PostgreSQL's own aggregate support functions say it */
static void
CheckAggregateContext(FunctionCallInfo fcinfo, const char *name)
{
	if (!AggCheckCallContext(fcinfo, NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", name)));
}

/* the UTC month of a session time, through the one-month cache */
static int32
SessionMonth(FunctionCallInfo fcinfo, TimestampTz ts)
{
	MonthCache *mc = (MonthCache *) fcinfo->flinfo->fn_extra;
	int32		month;

	if (mc != NULL && ts >= mc->lo && ts < mc->hi)
		return mc->month;
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("session time must be finite, not %s",
						DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts))))));
	month = cal_month_of_timestamp(ts);
	if (month < MONTH_BITMAP_MIN_MONTH || month > MONTH_BITMAP_MAX_MONTH)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("session time %s is out of range",
						DatumGetCString(DirectFunctionCall1(timestamptz_out, TimestampTzGetDatum(ts)))),
				 errdetail("Active months are counted for the years 0001 to 9999 (UTC).")));
	if (mc == NULL)
		fcinfo->flinfo->fn_extra = mc = MemoryContextAlloc(fcinfo->flinfo->fn_mcxt, sizeof(MonthCache));
	mc->month = month;
	mc->lo = cal_month_first_day(month) * USECS_PER_DAY;
	mc->hi = cal_month_first_day(month + 1) * USECS_PER_DAY;
	return month;
}

/* transition: set the month of a session's timestamp */
Datum
dogdb_active_months_transfn(PG_FUNCTION_ARGS)
{
	bytea	   *state;
	int32		month;

	/* fn_extra is set only after a call that passed this check */
	if (fcinfo->flinfo->fn_extra == NULL)
		CheckAggregateContext(fcinfo, "dogdb_active_months_transfn");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_BYTEA_P(GetBitmapArg(fcinfo, 0));
	}
	month = SessionMonth(fcinfo, PG_GETARG_TIMESTAMPTZ(1));
	if (PG_ARGISNULL(0))
	{
		int32		first = AlignMonth(month);

		state = NewBitmap(first, Min(first + INITIAL_MONTHS - 1, MONTH_BITMAP_MAX_MONTH));
	}
	else
	{
		state = GetBitmapArg(fcinfo, 0);
		if (!month_bitmap_set(BITMAP_DATA(state), BITMAP_LEN(state), month))
			state = CoverMonths(state, month, month);
		else
			PG_RETURN_BYTEA_P(state);
	}
	if (!month_bitmap_set(BITMAP_DATA(state), BITMAP_LEN(state), month))
		elog(ERROR, "active-month bitmap misses month %d", month);
	PG_RETURN_BYTEA_P(state);
}

/* combine: OR of two partial states */
Datum
dogdb_active_months_combinefn(PG_FUNCTION_ARGS)
{
	bytea	   *state;
	bytea	   *other;
	int32		first,
				last;

	CheckAggregateContext(fcinfo, "dogdb_active_months_combinefn");
	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_BYTEA_P(GetBitmapArg(fcinfo, 0));
	}
	other = GetBitmapArg(fcinfo, 1);
	if (PG_ARGISNULL(0))
	{
		/* a copy: the executor must not take the other state for ours */
		state = palloc(VARSIZE(other));
		memcpy(state, other, VARSIZE(other));
		PG_RETURN_BYTEA_P(state);
	}
	state = GetBitmapArg(fcinfo, 0);
	if (!month_bitmap_bounds(BITMAP_DATA(other), BITMAP_LEN(other), &first, &last))
		PG_RETURN_BYTEA_P(state);
	state = CoverMonths(state, first, last);
	if (!month_bitmap_or(BITMAP_DATA(state), BITMAP_LEN(state), BITMAP_DATA(other), BITMAP_LEN(other)))
		elog(ERROR, "active-month bitmap covering %d to %d misses a month", first, last);
	PG_RETURN_BYTEA_P(state);
}

/* the month of a date argument of a reader, in the supported years */
static int32
MonthOfDateArg(FunctionCallInfo fcinfo, int argno, const char *argname)
{
	DateADT		date = PG_GETARG_DATEADT(argno);
	int32		month = DATE_NOT_FINITE(date) ? 0 : cal_month_of_day(date);

	if (DATE_NOT_FINITE(date) || month < MONTH_BITMAP_MIN_MONTH || month > MONTH_BITMAP_MAX_MONTH)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("%s must be a date from 0001-01-01 to 9999-12-31, not %s", argname,
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(date))))));
	return month;
}

static Datum
MonthToDate(int32 month)
{
	Assert(month >= MONTH_BITMAP_MIN_MONTH && month <= MONTH_BITMAP_MAX_MONTH);
	return DateADTGetDatum((DateADT) cal_month_first_day(month));
}

/*
 * dogdb_first_inactive_month(active, from_month, to_month): the first month
 * from the month of from_month through the month of to_month that is not
 * in the bitmap (NULL bitmap: no month is), or NULL if every one is.
 */
Datum
dogdb_first_inactive_month(PG_FUNCTION_ARGS)
{
	bytea	   *active;
	int32		from,
				to,
				month;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	active = PG_ARGISNULL(0) ? NULL : GetBitmapArg(fcinfo, 0);
	from = MonthOfDateArg(fcinfo, 1, "from_month");
	to = MonthOfDateArg(fcinfo, 2, "to_month");
	if (month_bitmap_first_unset(active ? BITMAP_DATA(active) : NULL, active ? BITMAP_LEN(active) : 0,
								 from, to, &month))
		PG_RETURN_DATUM(MonthToDate(month));
	PG_RETURN_NULL();
}

/* dogdb_last_active_month(active): the last month in the bitmap, or NULL */
Datum
dogdb_last_active_month(PG_FUNCTION_ARGS)
{
	bytea	   *active = GetBitmapArg(fcinfo, 0);
	int32		first,
				last;

	if (month_bitmap_bounds(BITMAP_DATA(active), BITMAP_LEN(active), &first, &last))
		PG_RETURN_DATUM(MonthToDate(last));
	PG_RETURN_NULL();
}

/* dogdb_active_month_list(active): the months in the bitmap, in order */
Datum
dogdb_active_month_list(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bytea	   *active = GetBitmapArg(fcinfo, 0);
	size_t		len = BITMAP_LEN(active);
	int32		month = MONTH_BITMAP_MIN_MONTH;
	MemoryContext old;
	TupleDesc	desc;
	Tuplestorestate *store;

	/* a scalar result: SetSingleFuncCall() wants a row type in PostgreSQL 15 */
	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) ||
		!(rsinfo->allowedModes & SFRM_Materialize))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	desc = CreateTemplateTupleDesc(1);
	TupleDescInitEntry(desc, 1, "month", DATEOID, -1, 0);
	store = tuplestore_begin_heap(false, false, work_mem);
	MemoryContextSwitchTo(old);
	while (month_bitmap_next_set(BITMAP_DATA(active), len, &month))
	{
		Datum		value = MonthToDate(month);
		bool		isnull = false;

		tuplestore_putvalues(store, desc, &value, &isnull);
		if (month == MONTH_BITMAP_MAX_MONTH)
			break;
		month++;
	}
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = desc;
	return (Datum) 0;
}
