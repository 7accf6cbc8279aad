/*-------------------------------------------------------------------------
 *
 * billing.c
 *	  Plans and prices for the proration core (billing.h): loading them from
 *	  dogdb.pricing_plans and dogdb.plan_prices, finding a plan, turning a
 *	  subscription into the days it covers, and the errors of a proration.
 *
 * Used by the invoice functions (invoice.c) and the revenue KPI.  Nothing
 * here pins search_path: the two queries name no operator or function, and
 * their callers pin it for the whole call (common.h).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/date.h"

#include "billing.h"
#include "common.h"

/* a column of a row the loading queries return; none of them is NULL */
static Datum
NotNullColumn(SPITupleTable *tt, uint64 row, int column)
{
	bool		isnull;
	Datum		value = SPI_getbinval(tt->vals[row], tt->tupdesc, column, &isnull);

	if (isnull)
		elog(ERROR, "unexpected null in column %d of a plan or price", column);
	return value;
}

/*
 * Load the plans and their price history (SPI must be connected).
 * lock_plans: lock every plan FOR KEY SHARE, standing in for the
 * foreign-key checks of invoice lines.
 */
BillingPlan *
LoadBillingPlans(MemoryContext cxt, bool lock_plans, int *nplans_out)
{
	MemoryContext old;
	SPITupleTable *tt;
	BillingPlan *plans;
	ProrationPrice *prices;
	uint64		nplans;
	uint64		nprices;
	uint64		k = 0;

	nplans = DogdbSpiExecute(lock_plans ?
							 "SELECT plan_id, name FROM dogdb.pricing_plans ORDER BY plan_id FOR KEY SHARE" :
							 "SELECT plan_id, name FROM dogdb.pricing_plans ORDER BY plan_id",
							 !lock_plans, 0, SPI_OK_SELECT);
	tt = SPI_tuptable;
	old = MemoryContextSwitchTo(cxt);
	plans = palloc0(sizeof(BillingPlan) * Max(nplans, 1));
	for (uint64 i = 0; i < nplans; i++)
	{
		plans[i].plan.plan_id = DatumGetInt16(NotNullColumn(tt, i, 1));
		plans[i].name = TextDatumGetCString(NotNullColumn(tt, i, 2));
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(tt);

	nprices = DogdbSpiExecute("SELECT plan_id, monthly_price_cents, effective_from FROM dogdb.plan_prices"
							  " ORDER BY plan_id, effective_from", true, 0, SPI_OK_SELECT);
	tt = SPI_tuptable;
	prices = MemoryContextAlloc(cxt, sizeof(ProrationPrice) * Max(nprices, 1));
	for (uint64 i = 0; i < nplans; i++)
	{
		BillingPlan *bp = &plans[i];

		/* both lists are in plan_id order: this plan's prices come next */
		bp->plan.prices = &prices[k];
		for (; k < nprices; k++)
		{
			if (DatumGetInt16(NotNullColumn(tt, k, 1)) != bp->plan.plan_id)
				break;
			prices[k].price_cents = DatumGetInt64(NotNullColumn(tt, k, 2));
			prices[k].effective_day = DatumGetDateADT(NotNullColumn(tt, k, 3));
			bp->plan.nprices++;
		}
	}
	if (k != nprices)			/* plan_prices.plan_id has a foreign key */
		elog(ERROR, "a price in dogdb.plan_prices has no plan in dogdb.pricing_plans");
	SPI_freetuptable(tt);
	*nplans_out = (int) nplans;
	return plans;
}

static int
ComparePlanId(const void *key, const void *elem)
{
	int16		id = *(const int16 *) key;
	int16		other = ((const BillingPlan *) elem)->plan.plan_id;

	return (id > other) - (id < other);
}

/* the plan plan_id, which must exist (plans sorted by plan_id) */
BillingPlan *
FindBillingPlan(BillingPlan *plans, int nplans, int16 plan_id)
{
	BillingPlan *bp = bsearch(&plan_id, plans, nplans, sizeof(BillingPlan), ComparePlanId);

	if (bp == NULL)				/* subscriptions.plan_id has a foreign key */
		elog(ERROR, "plan %d of a subscription is not in dogdb.pricing_plans", plan_id);
	return bp;
}

/* the UTC days a subscription covers: [date of valid_from, date of valid_to) */
ProrationSpan
SubscriptionSpan(BillingPlan *plans, int nplans, int16 plan_id, TimestampTz valid_from,
				 bool open_ended, TimestampTz valid_to)
{
	ProrationSpan span;

	span.plan = &FindBillingPlan(plans, nplans, plan_id)->plan;
	span.first_day = proration_day_of_timestamp(valid_from);
	span.end_day = open_ended ? INT64_MAX : proration_day_of_timestamp(valid_to);
	return span;
}

static char *
DayToString(int64 day)
{
	return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum((DateADT) day)));
}

/* raise the error of a proration that failed */
void
ReportProrationError(ProrationStatus status, const ProrationResult *r,
					 BillingPlan *plans, int nplans, int64 account_id, DateADT month)
{
	switch (status)
	{
		case PRORATION_OK:
			break;
		case PRORATION_NO_PRICE:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("no price in force for plan \"%s\" on %s",
							FindBillingPlan(plans, nplans, r->error_plan_id)->name,
							DayToString(r->error_day)),
					 errdetail("Account %lld is subscribed to that plan on that day.",
							   (long long) account_id),
					 errhint("Add a row to dogdb.plan_prices for plan_id %d with effective_from on or before %s.",
							 r->error_plan_id, DayToString(r->error_day))));
			break;
		case PRORATION_OVERFLOW:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("invoice amount out of range for type bigint"),
					 errdetail("An amount of account %lld for the month of %s exceeds the range of type bigint.",
							   (long long) account_id, DayToString(month))));
			break;
		case PRORATION_OVERLAP:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("subscriptions of account %lld overlap in the month of %s",
							(long long) account_id, DayToString(month)),
					 errhint("Restore the constraint subscriptions_no_overlap on dogdb.subscriptions.")));
			break;
	}
}
