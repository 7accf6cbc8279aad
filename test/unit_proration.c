/*
 * unit_proration.c
 *	  Unit tests of the proration core, outside the server (TAP output, run
 *	  by "make unit" through prove).  Days are PostgreSQL day numbers (days
 *	  since 2000-01-01); 2021-03-01 is day 7730.
 */
#include "proration.h"
#include "tap.h"

#include <stdint.h>

#define MAR1 7730				/* 2021-03-01 */
#define APR1 (MAR1 + 31)

static const ProrationPrice medium_prices[] = {{0, 5000}};
static const ProrationPrice enterprise_prices[] = {{0, 50000}, {MAR1 + 9, 60000}};
static const ProrationPrice late_prices[] = {{MAR1 + 5, 900}};
static const ProrationPlan medium = {2, 1, medium_prices};
static const ProrationPlan enterprise = {3, 2, enterprise_prices};
static const ProrationPlan late = {7, 1, late_prices};

static int64_t
amount(int64_t price, int64_t days, int64_t dim)
{
	int64_t		a = -1;

	prorate_amount(price, days, dim, &a);
	return a;
}

int
main(void)
{
	ProrationResult r;
	int64_t		a;

	/* rounding: halves away from zero, exact integer arithmetic */
	ok(amount(5000, 15, 31) == 2419, "5000 * 15 / 31 = 2419.35 -> 2419");
	ok(amount(50000, 16, 31) == 25806, "50000 * 16 / 31 = 25806.45 -> 25806");
	ok(amount(1, 15, 30) == 1, "0.5 rounds up");
	ok(amount(3, 5, 30) == 1, "0.5 again (15 / 30)");
	ok(amount(1, 14, 30) == 0, "0.467 rounds down");
	ok(amount(-1, 15, 30) == -1, "-0.5 rounds away from zero");
	ok(amount(INT64_MAX / 31, 31, 31) == INT64_MAX / 31, "large price, whole month: exact");
	ok(prorate_amount(INT64_MAX, 2, 31, &a) == PRORATION_OVERFLOW, "price * days overflow is reported");

	/* UTC day of a timestamp, floor division */
	ok(proration_day_of_timestamp(0) == 0, "2000-01-01 00:00 is day 0");
	ok(proration_day_of_timestamp(-1) == -1, "one microsecond before is day -1");
	ok(proration_day_of_timestamp(INT64_C(86400000000) - 1) == 0, "23:59:59.999999 is still day 0");

	/* the README example: medium to the 15th, enterprise from the 16th */
	{
		ProrationSpan spans[] = {{&medium, 0, MAR1 + 15}, {&enterprise, MAR1 + 15, INT64_MAX}};

		ok(prorate_account(MAR1, APR1, spans, 2, &r) == PRORATION_OK && r.nlines == 2 &&
		   r.lines[0].amount_cents == 2419 && r.lines[0].days == 15 &&
		   r.lines[1].unit_price_cents == 60000 && r.lines[1].first_day == MAR1 + 15,
		   "medium then enterprise; enterprise's price changed on the 10th, before it started");
	}
	/* a price change inside a span splits it */
	{
		ProrationSpan spans[] = {{&enterprise, 0, INT64_MAX}};

		ok(prorate_account(MAR1, APR1, spans, 1, &r) == PRORATION_OK && r.nlines == 2 &&
		   r.lines[0].days == 9 && r.lines[1].days == 22 &&
		   r.total_cents == amount(50000, 9, 31) + amount(60000, 22, 31),
		   "price change on the 10th: two lines, total = sum of lines");
	}
	/* back-to-back spans of one plan and price merge into one line */
	{
		ProrationSpan spans[] = {{&medium, MAR1, MAR1 + 10}, {&medium, MAR1 + 10, APR1}};

		ok(prorate_account(MAR1, APR1, spans, 2, &r) == PRORATION_OK && r.nlines == 1 &&
		   r.lines[0].days == 31 && r.total_cents == 5000, "adjacent spans merge");
	}
	/* a gap keeps them apart; empty and out-of-month spans are ignored */
	{
		ProrationSpan spans[] = {{&medium, 0, MAR1}, {&medium, MAR1, MAR1 + 4}, {&enterprise, MAR1 + 4, MAR1 + 4},
		{&medium, MAR1 + 24, APR1}, {&medium, APR1 + 3, INT64_MAX}};

		ok(prorate_account(MAR1, APR1, spans, 5, &r) == PRORATION_OK && r.nlines == 2 &&
		   r.lines[0].days == 4 && r.lines[1].days == 7, "gap, empty span, spans outside the month");
	}
	/* nothing covered: no lines, total 0 */
	ok(prorate_account(MAR1, APR1, NULL, 0, &r) == PRORATION_OK && r.nlines == 0 && r.total_cents == 0,
	   "no subscription: no lines");
	/* 31 one-day lines alternate plans: the most a month can have */
	{
		ProrationSpan spans[31];

		for (int i = 0; i < 31; i++)
		{
			spans[i].plan = (i % 2) ? &medium : &enterprise;
			spans[i].first_day = MAR1 + i;
			spans[i].end_day = MAR1 + i + 1;
		}
		ok(prorate_account(MAR1, APR1, spans, 31, &r) == PRORATION_OK && r.nlines == PRORATION_MAX_LINES,
		   "31 one-day lines");
	}
	/* errors */
	{
		ProrationSpan spans[] = {{&late, MAR1, APR1}};

		ok(prorate_account(MAR1, APR1, spans, 1, &r) == PRORATION_NO_PRICE &&
		   r.error_plan_id == 7 && r.error_day == MAR1, "no price in force: plan and first day reported");
	}
	{
		ProrationSpan spans[] = {{&medium, MAR1, MAR1 + 10}, {&enterprise, MAR1 + 5, APR1}};

		ok(prorate_account(MAR1, APR1, spans, 2, &r) == PRORATION_OVERLAP, "overlapping spans are refused");
	}
	{
		static const ProrationPrice huge_prices[] = {{0, INT64_MAX / 2}};
		static const ProrationPlan huge = {9, 1, huge_prices};
		ProrationSpan spans[] = {{&huge, MAR1, MAR1 + 10}, {&huge, MAR1 + 11, APR1}};

		ok(prorate_account(MAR1, APR1, spans, 2, &r) == PRORATION_OVERFLOW, "total overflow is reported");
	}
	/* February of a leap year has 29 days */
	{
		ProrationSpan spans[] = {{&medium, 0, INT64_MAX}};
		int64_t		feb1_2024 = 8797;	/* 2024-02-01 */

		ok(prorate_account(feb1_2024, feb1_2024 + 29, spans, 1, &r) == PRORATION_OK &&
		   r.lines[0].days == 29 && r.total_cents == 5000, "leap February, whole month = monthly price");
	}
	return done_testing();
}
