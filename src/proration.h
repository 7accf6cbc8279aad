/*-------------------------------------------------------------------------
 *
 * proration.h
 *	  Day-based proration of one account's month, free of backend headers.
 *
 * Billing rules (README "Billing"): a month is a UTC calendar month; days
 * are UTC days.  A subscription covers the days from the date of its
 * valid_from (inclusive) to the date of its valid_to (exclusive).  Each
 * covered day costs price / days_in_month, where price is the plan's
 * monthly price in force that day.  A line is a maximal run of consecutive
 * days with the same plan and price; its amount is
 * round(price * days / days_in_month), halves away from zero, in integer
 * arithmetic.  The total is the sum of the lines.
 *
 * Days are counted as in PostgreSQL's date type: days since 2000-01-01.
 * They are int64 here so that clipping infinite periods cannot overflow.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PRORATION_H
#define PRORATION_H

#include <stdint.h>

/* a line is at least one day, so a month has at most 31 lines */
#define PRORATION_MAX_LINES 31

/* one price of a plan: monthly_price_cents from effective_day on */
typedef struct ProrationPrice
{
	int64_t		effective_day;
	int64_t		price_cents;
} ProrationPrice;

/* price history of one plan, sorted by effective_day ascending */
typedef struct ProrationPlan
{
	int16_t		plan_id;		/* dogdb.pricing_plans.plan_id (smallint) */
	int			nprices;
	const ProrationPrice *prices;
} ProrationPlan;

/* one subscription of the account: days [first_day, end_day) on a plan */
typedef struct ProrationSpan
{
	const ProrationPlan *plan;
	int64_t		first_day;
	int64_t		end_day;
} ProrationSpan;

typedef struct ProrationLine
{
	int16_t		plan_id;		/* dogdb.pricing_plans.plan_id (smallint) */
	int64_t		first_day;		/* first day billed */
	int64_t		last_day;		/* last day billed (inclusive) */
	int32_t		days;
	int64_t		unit_price_cents;	/* the monthly price */
	int64_t		amount_cents;
} ProrationLine;

typedef enum ProrationStatus
{
	PRORATION_OK = 0,
	PRORATION_NO_PRICE,			/* a covered day has no price in force */
	PRORATION_OVERFLOW,			/* an amount or the total exceeds int64 */
	PRORATION_OVERLAP			/* spans not sorted or overlapping */
} ProrationStatus;

typedef struct ProrationResult
{
	int			nlines;
	ProrationLine lines[PRORATION_MAX_LINES];
	int64_t		total_cents;
	/* on PRORATION_NO_PRICE: the plan and the first day without a price */
	int16_t		error_plan_id;
	int64_t		error_day;
} ProrationResult;

/*
 * Bill one account for the month [month_start, month_end) (day numbers).
 * spans must be sorted by first_day and must not overlap; spans outside
 * the month, or empty after clipping, are ignored.
 */
extern ProrationStatus prorate_account(int64_t month_start, int64_t month_end,
									   const ProrationSpan *spans, int nspans,
									   ProrationResult *result);

/* round(value * days / days_in_month), halves away from zero */
extern ProrationStatus prorate_amount(int64_t price_cents, int64_t days,
									  int64_t days_in_month, int64_t *amount);

/* floor(usecs / USECS_PER_DAY): the UTC day of a timestamptz value */
extern int64_t proration_day_of_timestamp(int64_t usecs);

#endif							/* PRORATION_H */
