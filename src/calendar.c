/*-------------------------------------------------------------------------
 *
 * calendar.c
 *	  UTC calendar months as integers (see calendar.h).
 *
 *-------------------------------------------------------------------------
 */
#include "calendar.h"

#define USECS_PER_DAY INT64_C(86400000000)
/* 2000-01-01 as days since 0000-03-01 in the proleptic Gregorian calendar */
#define EPOCH_SHIFT INT64_C(730425)

/* floor division */
static int64_t
FloorDiv(int64_t a, int64_t b)
{
	int64_t		q = a / b;

	return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/* civil date of a day number (Howard Hinnant's days_from_civil, inverted) */
static void
DayToCivil(int64_t day, int64_t *year, int32_t *month)
{
	int64_t		z = day + EPOCH_SHIFT;
	int64_t		era = FloorDiv(z, 146097);
	int64_t		doe = z - era * 146097;
	int64_t		yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t		doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t		mp = (5 * doy + 2) / 153;
	int32_t		m = (int32_t) (mp < 10 ? mp + 3 : mp - 9);

	*year = yoe + era * 400 + (m <= 2);
	*month = m;
}

static int64_t
CivilToDay(int64_t year, int32_t month)
{
	int64_t		y = year - (month <= 2);
	int64_t		era = FloorDiv(y, 400);
	int64_t		yoe = y - era * 400;
	int64_t		mp = month > 2 ? month - 3 : month + 9;
	int64_t		doy = (153 * mp + 2) / 5;
	int64_t		doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - EPOCH_SHIFT;
}

int32_t
cal_month_of_day(int64_t day)
{
	int64_t		year;
	int32_t		month;

	DayToCivil(day, &year, &month);
	return (int32_t) ((year - 2000) * 12 + (month - 1));
}

int64_t
cal_month_first_day(int32_t month)
{
	int64_t		m = month;

	return CivilToDay(2000 + FloorDiv(m, 12), (int32_t) (m - FloorDiv(m, 12) * 12) + 1);
}

int32_t
cal_month_of_timestamp(int64_t usecs)
{
	return cal_month_of_day(FloorDiv(usecs, USECS_PER_DAY));
}

int32_t
cal_month_days(int32_t month)
{
	return (int32_t) (cal_month_first_day(month + 1) - cal_month_first_day(month));
}
