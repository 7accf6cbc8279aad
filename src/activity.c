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
 * aggregates with a combine function and a non-pseudo state type.  The
 * transition and combine functions update the state in place when called
 * as aggregates (AggCheckCallContext), growing it when a month falls
 * outside.  Bytes that come from outside (the combine function's second
 * argument, the readers' input) are validated before use.
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

/* months a new state holds: 8 years, so typical histories never grow */
#define INITIAL_MONTHS 96

#define BITMAP_DATA(b) ((uint8 *) VARDATA(b))
#define BITMAP_LEN(b) ((size_t) VARSIZE(b) - VARHDRSZ)

/* round down to a multiple of 8, so that most ORs are byte-aligned */
static int32
AlignMonth(int32 month)
{
	return month - (int32) (((int64) month % 8 + 8) % 8);
}

static bytea *
NewBitmap(MemoryContext cxt, int32 first, int32 last)
{
	size_t		len = month_bitmap_size(first, last);
	bytea	   *b = MemoryContextAlloc(cxt, VARHDRSZ + len);

	SET_VARSIZE(b, VARHDRSZ + len);
	month_bitmap_init(BITMAP_DATA(b), len, first);
	return b;
}

/* a bitmap datum from outside: check its header before reading it */
static bytea *
GetBitmapArg(FunctionCallInfo fcinfo, int argno)
{
	bytea	   *b = PG_GETARG_BYTEA_P(argno);

	if (!month_bitmap_valid(BITMAP_LEN(b)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
				 errmsg("invalid active-month bitmap"),
				 errdetail("A bitmap has at least %d bytes; this one has %zu.",
						   MONTH_BITMAP_HEADER, BITMAP_LEN(b))));
	return b;
}

/* state extended (in cxt) to cover months [first, last] as well */
static bytea *
CoverMonths(MemoryContext cxt, bytea *state, int32 first, int32 last)
{
	size_t		len = BITMAP_LEN(state);
	int32		base = month_bitmap_first(BITMAP_DATA(state), len);
	int64		top = (int64) base + month_bitmap_capacity(len) - 1;
	bytea	   *grown;

	if (first >= base && last <= top)
		return state;
	first = AlignMonth(Min(first, base));
	last = (int32) Max(last, top);
	grown = NewBitmap(cxt, first, last);
	month_bitmap_or(BITMAP_DATA(grown), BITMAP_LEN(grown), BITMAP_DATA(state), len);
	return grown;
}

static MemoryContext
AggregateContext(FunctionCallInfo fcinfo, const char *name)
{
	MemoryContext aggcxt;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s called in non-aggregate context", name)));
	return aggcxt;
}

/* transition: set the month of a session's timestamp */
Datum
dogdb_active_months_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = AggregateContext(fcinfo, "dogdb_active_months_transfn");
	bytea	   *state = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_P(0);
	TimestampTz ts;
	int32		month;

	if (PG_ARGISNULL(1))
	{
		if (state == NULL)
			PG_RETURN_NULL();
		PG_RETURN_BYTEA_P(state);
	}
	ts = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("session time must be finite")));
	month = cal_month_of_timestamp(ts);
	if (state == NULL)
		state = NewBitmap(aggcxt, AlignMonth(month), AlignMonth(month) + INITIAL_MONTHS - 1);
	else
		state = CoverMonths(aggcxt, state, month, month);
	month_bitmap_set(BITMAP_DATA(state), month);
	PG_RETURN_BYTEA_P(state);
}

/* combine: OR of two partial states */
Datum
dogdb_active_months_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt = AggregateContext(fcinfo, "dogdb_active_months_combinefn");
	bytea	   *state;
	bytea	   *other;
	int32		first,
				last;

	if (PG_ARGISNULL(1))
	{
		if (PG_ARGISNULL(0))
			PG_RETURN_NULL();
		PG_RETURN_BYTEA_P(PG_GETARG_BYTEA_P(0));
	}
	other = GetBitmapArg(fcinfo, 1);
	if (PG_ARGISNULL(0))
	{
		/* copy: the other state does not live in our context */
		state = MemoryContextAlloc(aggcxt, VARSIZE(other));
		memcpy(state, other, VARSIZE(other));
		PG_RETURN_BYTEA_P(state);
	}
	state = PG_GETARG_BYTEA_P(0);
	if (!month_bitmap_bounds(BITMAP_DATA(other), BITMAP_LEN(other), &first, &last))
		PG_RETURN_BYTEA_P(state);
	state = CoverMonths(aggcxt, state, first, last);
	month_bitmap_or(BITMAP_DATA(state), BITMAP_LEN(state), BITMAP_DATA(other), BITMAP_LEN(other));
	PG_RETURN_BYTEA_P(state);
}

static int32
MonthOfDate(DateADT date)
{
	if (DATE_NOT_FINITE(date))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("month must be finite")));
	return cal_month_of_day(date);
}

static Datum
MonthToDate(int32 month)
{
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
	int32		month;

	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		PG_RETURN_NULL();
	active = PG_ARGISNULL(0) ? NULL : GetBitmapArg(fcinfo, 0);
	if (month_bitmap_first_unset(active ? BITMAP_DATA(active) : NULL, active ? BITMAP_LEN(active) : 0,
							   MonthOfDate(PG_GETARG_DATEADT(1)), MonthOfDate(PG_GETARG_DATEADT(2)),
							   &month))
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
	int32		base = month_bitmap_first(BITMAP_DATA(active), len);
	int32		capacity = month_bitmap_capacity(len);

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
	for (int32 i = 0; i < capacity; i++)
	{
		if (month_bitmap_test(BITMAP_DATA(active), len, base + i))
		{
			Datum		value = MonthToDate(base + i);
			bool		isnull = false;

			tuplestore_putvalues(store, desc, &value, &isnull);
		}
	}
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = store;
	rsinfo->setDesc = desc;
	return (Datum) 0;
}
