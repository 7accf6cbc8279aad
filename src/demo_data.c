/*-------------------------------------------------------------------------
 *
 * demo_data.c
 *	  dogdb_generate_demo_data(): a deterministic demo dataset of accounts,
 *	  subscriptions and sessions (README "Demo data").
 *
 * Each company draws from its own random stream (xoshiro256**, seeded from
 * the seed and the company number), so the data depends only on the
 * arguments, not on the order of generation.  Sessions are written month
 * by month, as they would arrive, through the bulk writer (bulk_insert.c):
 * the accounts referenced are created by the same call and the plans are
 * locked FOR KEY SHARE, which stands in for the foreign-key checks; the
 * KPI change-tracking triggers are not fired, a full KPI rebuild is
 * requested instead.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "parser/parse_func.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/regproc.h"
#include "utils/timestamp.h"

#include "bulk_insert.h"
#include "calendar.h"
#include "common.h"
#include "random.h"

PG_FUNCTION_INFO_V1(dogdb_generate_demo_data);

#define MAX_COMPANIES 10000000
#define MAX_MONTHS 1200

typedef struct DemoCompany
{
	DemoRandom	rng;
	bool		small;
	int16		plan_id;
	int32		churn_month;	/* month number from 0, or -1 */
} DemoCompany;

static const BulkInsertColumn session_columns[] = {
	{"session_id", INT8OID}, {"account_id", INT8OID}, {"created_at", TIMESTAMPTZOID}
};

static int32
GetIntArg(FunctionCallInfo fcinfo, int argno, const char *name, int32 min, int32 max)
{
	int32		v;

	if (PG_ARGISNULL(argno))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must not be null", name)));
	v = PG_GETARG_INT32(argno);
	if (v < min || v > max)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s must be between %d and %d: %d", name, min, max, v)));
	return v;
}

/* refuse to write into a table that has rows */
static void
RequireEmpty(const char *table)
{
	char		query[128];
	bool		isnull;

	snprintf(query, sizeof(query), "SELECT EXISTS (SELECT 1 FROM %s.%s)", DOGDB_SCHEMA, table);
	DogdbSpiExecute(query, false, 1, SPI_OK_SELECT);
	if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("dogdb.%s is not empty", table),
				 errdetail("The demo data generator only fills empty tables."),
				 errhint("Use a new database, or empty the tables with TRUNCATE dogdb.accounts CASCADE.")));
}

static int16
PlanId(const char *name)
{
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum(name);
	bool		isnull;

	if (DogdbSpiExecuteWithArgs("SELECT plan_id FROM dogdb.pricing_plans WHERE name = $1 FOR KEY SHARE",
								1, &argtype, &arg, NULL, false, 1, SPI_OK_SELECT) != 1)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("plan \"%s\" does not exist", name),
				 errhint("The demo data uses the plans \"medium\" and \"enterprise\".")));
	return DatumGetInt16(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* the next value of a table's identity sequence, and the sequence */
static int64
IdentityStart(Oid relid, Oid *seq)
{
	*seq = getIdentitySequence(relid, 1, false);
	return nextval_internal(*seq, true);
}

static void
IdentityEnd(Oid seq, int64 last)
{
	DirectFunctionCall3(setval3_oid, ObjectIdGetDatum(seq), Int64GetDatum(last), BoolGetDatum(true));
}

Datum
dogdb_generate_demo_data(PG_FUNCTION_ARGS)
{
	int			nestlevel = DogdbPinSearchPath();
	int32		ncompanies = GetIntArg(fcinfo, 0, "companies", 1, MAX_COMPANIES);
	int32		nmonths = GetIntArg(fcinfo, 1, "months", 1, MAX_MONTHS);
	DateADT		start = DogdbMonthArg(fcinfo, 2, "start_month");
	int64		seed;
	int32		first_month;
	int16		medium,
				enterprise;
	DemoCompany *companies;
	Oid			plans_rel = DogdbRelationId("pricing_plans");
	Oid			accounts_rel = DogdbRelationId("accounts");
	Oid			handled[2];
	BulkInsertForeignKey refs[2];
	BulkInsert *bulk;
	Oid			seq;
	int64		next_id;
	int64		nsessions = 0;
	int64		nsubscriptions = 0;
	TimestampTz start_ts;
	TupleDesc	desc;
	Datum		values[5];
	bool		nulls[5] = {0};

	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seed must not be null")));
	seed = PG_GETARG_INT64(3);
	first_month = cal_month_of_day(start);
	if (cal_month_first_day(first_month + nmonths) >= (TIMESTAMP_END_JULIAN - POSTGRES_EPOCH_JDATE))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("start_month plus months is out of range for type timestamp with time zone")));
	start_ts = (TimestampTz) start * USECS_PER_DAY;
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");

	DogdbSpiConnect();
	DogdbSpiExecute("LOCK TABLE dogdb.accounts, dogdb.subscriptions, dogdb.sessions IN SHARE ROW EXCLUSIVE MODE",
					false, 0, SPI_OK_UTILITY);
	RequireEmpty("accounts");
	RequireEmpty("subscriptions");
	RequireEmpty("sessions");
	medium = PlanId("medium");
	enterprise = PlanId("enterprise");

	/* the companies: size, tier, and each one's random stream */
	companies = palloc_extended(sizeof(DemoCompany) * ncompanies, MCXT_ALLOC_HUGE);
	for (int32 i = 0; i < ncompanies; i++)
	{
		DemoCompany *c = &companies[i];

		demo_random_seed(&c->rng, (uint64) seed * UINT64_C(0x9E3779B97F4A7C15) + (uint64) i);
		c->small = demo_random_chance(&c->rng, 7, 10);
		if (c->small)
			c->plan_id = demo_random_chance(&c->rng, 17, 20) ? medium : enterprise;
		else
			c->plan_id = demo_random_chance(&c->rng, 3, 5) ? enterprise : medium;
		c->churn_month = -1;
	}

	/* accounts, all acquired at the start */
	handled[0] = DogdbInternalFunctionId("kpi_track_accounts");
	bulk = BulkInsertBegin(accounts_rel, bulk_account_columns, BULK_ACCOUNT_NCOLUMNS, NULL, 0, handled, 1);
	nulls[4] = true;
	for (int32 i = 0; i < ncompanies; i++)
	{
		char		email[64];

		snprintf(email, sizeof(email), "company%d@demo.example", i + 1);
		values[0] = Int64GetDatum(i + 1);
		values[1] = CStringGetTextDatum(email);
		values[2] = CStringGetTextDatum(companies[i].small ? "small" : "large");
		values[3] = TimestampTzGetDatum(start_ts);
		BulkInsertRow(bulk, values, nulls);
		pfree(DatumGetPointer(values[1]));
		pfree(DatumGetPointer(values[2]));
	}
	BulkInsertEnd(bulk);
	nulls[4] = false;

	/* sessions, month by month, until a company's first month without one */
	refs[0] = (BulkInsertForeignKey) {"account_id", accounts_rel, "account_id"};
	handled[0] = DogdbInternalFunctionId("kpi_track_sessions");
	bulk = BulkInsertBegin(DogdbRelationId("sessions"), session_columns, lengthof(session_columns), refs, 1, handled, 1);
	next_id = IdentityStart(DogdbRelationId("sessions"), &seq);
	for (int32 m = 0; m < nmonths; m++)
	{
		TimestampTz month_ts = cal_month_first_day(first_month + m) * USECS_PER_DAY;
		uint64		month_usecs = (uint64) cal_month_days(first_month + m) * USECS_PER_DAY;

		for (int32 i = 0; i < ncompanies; i++)
		{
			DemoCompany *c = &companies[i];
			int			n;

			if (c->churn_month >= 0)
				continue;
			/* small: 5 +- U{0..5}, large: 10 +- U{0..10} */
			n = c->small ? (int) demo_random_below(&c->rng, 11) : (int) demo_random_below(&c->rng, 21);
			if (n == 0)
			{
				c->churn_month = m;
				continue;
			}
			for (int k = 0; k < n; k++)
			{
				values[0] = Int64GetDatum(next_id + nsessions);
				values[1] = Int64GetDatum(i + 1);
				values[2] = TimestampTzGetDatum(month_ts + (int64) demo_random_below(&c->rng, month_usecs));
				BulkInsertRow(bulk, values, nulls);
				nsessions++;
			}
		}
	}
	BulkInsertEnd(bulk);
	if (nsessions > 0)
		IdentityEnd(seq, next_id + nsessions - 1);

	/*
	 * subscriptions: from the start until the churn month (open if none); a
	 * company without a session in its first month has none
	 */
	refs[1] = (BulkInsertForeignKey) {"plan_id", plans_rel, "plan_id"};
	handled[0] = DogdbInternalFunctionId("kpi_track_billing");
	handled[1] = DogdbInternalFunctionId("support_track");	/* new accounts: no interactions */
	bulk = BulkInsertBegin(DogdbRelationId("subscriptions"), bulk_subscription_columns, BULK_SUBSCRIPTION_NCOLUMNS,
						   refs, 2, handled, 2);
	next_id = IdentityStart(DogdbRelationId("subscriptions"), &seq);
	for (int32 i = 0; i < ncompanies; i++)
	{
		/* churned in its first month: the subscription would be empty */
		if (companies[i].churn_month == 0)
			continue;
		values[0] = Int64GetDatum(next_id + nsubscriptions);
		values[1] = Int64GetDatum(i + 1);
		values[2] = Int16GetDatum(companies[i].plan_id);
		values[3] = TimestampTzGetDatum(start_ts);
		nulls[4] = companies[i].churn_month < 0;
		values[4] = nulls[4] ? (Datum) 0 :
			TimestampTzGetDatum(cal_month_first_day(first_month + companies[i].churn_month) * USECS_PER_DAY);
		BulkInsertRow(bulk, values, nulls);
		nsubscriptions++;
	}
	BulkInsertEnd(bulk);
	if (nsubscriptions > 0)
		IdentityEnd(seq, next_id + nsubscriptions - 1);

	/* the triggers were not fired: the next KPI refresh rebuilds */
	DogdbSpiExecute("INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true)",
					false, 0, SPI_OK_INSERT);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);

	values[0] = Int64GetDatum(ncompanies);
	values[1] = Int64GetDatum(nsubscriptions);
	values[2] = Int64GetDatum(nsessions);
	nulls[0] = nulls[1] = nulls[2] = false;
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
