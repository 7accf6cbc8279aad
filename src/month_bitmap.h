/*-------------------------------------------------------------------------
 *
 * month_bitmap.h
 *	  Active-month bitmaps, free of backend headers.
 *
 * An active-month bitmap is the state of the dogdb_active_months()
 * aggregate, stored in a bytea: a little-endian int32 first month (months
 * since 2000-01, calendar.h), then one bit per month from it (bit i of
 * byte i / 8 is month first + i).  An empty bitmap is just the header with
 * first month 0.  Setting bits is order-independent and two bitmaps
 * combine with OR, so the aggregate can run in parallel and be pushed down
 * to shards.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MONTH_BITMAP_H
#define MONTH_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MONTH_BITMAP_HEADER 4

/* bitmaps: bytes needed for months [first, last] */
extern size_t month_bitmap_size(int32_t first, int32_t last);
extern int32_t month_bitmap_first(const uint8_t *bitmap, size_t len);
/* number of months a bitmap of len bytes can hold */
extern int32_t month_bitmap_capacity(size_t len);
extern void month_bitmap_init(uint8_t *bitmap, size_t len, int32_t first);
extern bool month_bitmap_test(const uint8_t *bitmap, size_t len, int32_t month);
/* set month; the caller made sure it is within capacity */
extern void month_bitmap_set(uint8_t *bitmap, int32_t month);
/* whether the bitmap is valid: header present (the deserializer's check) */
extern bool month_bitmap_valid(size_t len);
/* no month set at all */
extern bool month_bitmap_empty(const uint8_t *bitmap, size_t len);
/* OR src into dst; dst must cover every month set in src */
extern void month_bitmap_or(uint8_t *dst, size_t dstlen, const uint8_t *src, size_t srclen);
/* first and last month set, or false if none */
extern bool month_bitmap_bounds(const uint8_t *bitmap, size_t len, int32_t *first, int32_t *last);
/* first month in [from, to] not set, or false if all are set */
extern bool month_bitmap_first_unset(const uint8_t *bitmap, size_t len, int32_t from, int32_t to,
								   int32_t *month);

#endif							/* MONTH_BITMAP_H */
