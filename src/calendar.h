/*-------------------------------------------------------------------------
 *
 * calendar.h
 *	  UTC calendar months as integers, free of backend headers.
 *
 * A month is an integer: months since January 2000 (PostgreSQL's epoch),
 * so 2021-01 is 252.  Days are PostgreSQL day numbers (days since
 * 2000-01-01), timestamps microseconds since 2000-01-01 00:00 UTC.
 *
 *-------------------------------------------------------------------------
 */
#ifndef CALENDAR_H
#define CALENDAR_H

#include <stdint.h>

/* months <-> days */
extern int32_t cal_month_of_day(int64_t day);
extern int64_t cal_month_first_day(int32_t month);
extern int32_t cal_month_of_timestamp(int64_t usecs);
/* number of days of a month */
extern int32_t cal_month_days(int32_t month);

#endif							/* CALENDAR_H */
