/*-------------------------------------------------------------------------
 *
 * kpi_core.h
 *	  Months, active-month bitmaps and the demo data's random numbers, free
 *	  of backend headers.
 *
 * A month is an integer: months since January 2000 (PostgreSQL's epoch),
 * so 2021-01 is 252.  Days are PostgreSQL day numbers (days since
 * 2000-01-01), timestamps microseconds since 2000-01-01 00:00 UTC.
 *
 * An active-month bitmap is the state of the dogdb_active_months()
 * aggregate, stored in a bytea: a little-endian int32 first month, then
 * one bit per month from it (bit i of byte i / 8 is month first + i).  An
 * empty bitmap is just the header with first month 0.  Setting bits is
 * order-independent and two bitmaps combine with OR, so the aggregate can
 * run in parallel and be pushed down to shards.
 *
 *-------------------------------------------------------------------------
 */
#ifndef KPI_CORE_H
#define KPI_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KPI_BITMAP_HEADER 4

/* months <-> days */
extern int32_t kpi_month_of_day(int64_t day);
extern int64_t kpi_month_first_day(int32_t month);
extern int32_t kpi_month_of_timestamp(int64_t usecs);
/* number of days of a month */
extern int32_t kpi_month_days(int32_t month);

/* bitmaps: bytes needed for months [first, last] */
extern size_t kpi_bitmap_size(int32_t first, int32_t last);
extern int32_t kpi_bitmap_first(const uint8_t *bitmap, size_t len);
/* number of months a bitmap of len bytes can hold */
extern int32_t kpi_bitmap_capacity(size_t len);
extern void kpi_bitmap_init(uint8_t *bitmap, size_t len, int32_t first);
extern bool kpi_bitmap_test(const uint8_t *bitmap, size_t len, int32_t month);
/* set month; the caller made sure it is within capacity */
extern void kpi_bitmap_set(uint8_t *bitmap, int32_t month);
/* whether the bitmap is valid: header present (the deserializer's check) */
extern bool kpi_bitmap_valid(size_t len);
/* no month set at all */
extern bool kpi_bitmap_empty(const uint8_t *bitmap, size_t len);
/* OR src into dst; dst must cover every month set in src */
extern void kpi_bitmap_or(uint8_t *dst, size_t dstlen, const uint8_t *src, size_t srclen);
/* first and last month set, or false if none */
extern bool kpi_bitmap_bounds(const uint8_t *bitmap, size_t len, int32_t *first, int32_t *last);
/* first month in [from, to] not set, or false if all are set */
extern bool kpi_bitmap_first_unset(const uint8_t *bitmap, size_t len, int32_t from, int32_t to,
								   int32_t *month);

/* deterministic random numbers (xoshiro256**, seeded through splitmix64) */
typedef struct KpiRandom
{
	uint64_t	s[4];
} KpiRandom;

extern void kpi_random_seed(KpiRandom *r, uint64_t seed);
extern uint64_t kpi_random_next(KpiRandom *r);
/* uniform integer in [0, n), n > 0, without modulo bias */
extern uint64_t kpi_random_below(KpiRandom *r, uint64_t n);
/* true with probability num / den */
extern bool kpi_random_chance(KpiRandom *r, uint64_t num, uint64_t den);

#endif							/* KPI_CORE_H */
