/*-------------------------------------------------------------------------
 *
 * proration.c
 *	  Day-based proration of one account's month (see proration.h).
 *
 * No allocation, no backend headers: the caller owns every array, and the
 * unit tests and the fuzzer link this file alone.
 *
 *-------------------------------------------------------------------------
 */
#include "proration.h"

#include <stdbool.h>
#include <stddef.h>

#define USECS_PER_DAY INT64_C(86400000000)

/* floor(usecs / USECS_PER_DAY): the UTC day of a timestamptz value */
int64_t
proration_day_of_timestamp(int64_t usecs)
{
	int64_t		day = usecs / USECS_PER_DAY;

	if (usecs % USECS_PER_DAY < 0)
		day--;
	return day;
}

/* round(price * days / days_in_month), halves away from zero */
ProrationStatus
prorate_amount(int64_t price_cents, int64_t days, int64_t days_in_month,
			   int64_t *amount)
{
	int64_t		product;
	int64_t		quotient;
	int64_t		remainder;

	if (__builtin_mul_overflow(price_cents, days, &product))
		return PRORATION_OVERFLOW;
	quotient = product / days_in_month;
	remainder = product % days_in_month;
	/* |remainder| >= days_in_month - |remainder|, without doubling */
	if (remainder > 0 && remainder >= days_in_month - remainder)
		quotient++;
	else if (remainder < 0 && -remainder >= days_in_month + remainder)
		quotient--;
	*amount = quotient;
	return PRORATION_OK;
}

/* index of the price in force on day, or -1 if none */
static int
PriceIndexOn(const ProrationPlan *plan, int64_t day)
{
	int			lo = 0;
	int			hi = plan->nprices;

	/* first price with effective_day > day, then step back one */
	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (plan->prices[mid].effective_day <= day)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

/* add days [first, last] at one plan and price, merging with the last line */
static void
AppendPiece(ProrationResult *result, int16_t plan_id, int64_t price,
			int64_t first, int64_t last)
{
	ProrationLine *prev = result->nlines > 0 ? &result->lines[result->nlines - 1] : NULL;

	if (prev != NULL && prev->plan_id == plan_id &&
		prev->unit_price_cents == price && prev->last_day + 1 == first)
	{
		prev->last_day = last;
		return;
	}
	/* each line is at least one day of a month: cannot exceed 31 lines */
	result->lines[result->nlines].plan_id = plan_id;
	result->lines[result->nlines].first_day = first;
	result->lines[result->nlines].last_day = last;
	result->lines[result->nlines].unit_price_cents = price;
	result->nlines++;
}

ProrationStatus
prorate_account(int64_t month_start, int64_t month_end,
				const ProrationSpan *spans, int nspans,
				ProrationResult *result)
{
	int64_t		days_in_month = month_end - month_start;
	int64_t		covered_until = month_start;
	int64_t		total = 0;

	result->nlines = 0;
	result->total_cents = 0;
	result->error_plan_id = 0;
	result->error_day = 0;

	for (int i = 0; i < nspans; i++)
	{
		const ProrationPlan *plan = spans[i].plan;
		int64_t		day = spans[i].first_day > month_start ? spans[i].first_day : month_start;
		int64_t		end = spans[i].end_day < month_end ? spans[i].end_day : month_end;

		if (day >= end)
			continue;
		if (day < covered_until)
			return PRORATION_OVERLAP;
		covered_until = end;

		/* split the span where the plan's price changes */
		while (day < end)
		{
			int			k = PriceIndexOn(plan, day);
			int64_t		piece_end = end;

			if (k < 0)
			{
				result->error_plan_id = plan->plan_id;
				result->error_day = day;
				return PRORATION_NO_PRICE;
			}
			if (k + 1 < plan->nprices && plan->prices[k + 1].effective_day < piece_end)
				piece_end = plan->prices[k + 1].effective_day;
			AppendPiece(result, plan->plan_id, plan->prices[k].price_cents, day, piece_end - 1);
			day = piece_end;
		}
	}

	for (int i = 0; i < result->nlines; i++)
	{
		ProrationLine *line = &result->lines[i];

		line->days = (int32_t) (line->last_day - line->first_day + 1);
		if (prorate_amount(line->unit_price_cents, line->days, days_in_month,
						   &line->amount_cents) != PRORATION_OK ||
			__builtin_add_overflow(total, line->amount_cents, &total))
			return PRORATION_OVERFLOW;
	}
	result->total_cents = total;
	return PRORATION_OK;
}
