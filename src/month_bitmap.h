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
 * Bitmaps arrive from SQL as arbitrary bytes, so every function here takes
 * the buffer length and never reads or writes outside it, whatever the
 * header says.  month_bitmap_check() tells whether bytes are a valid
 * bitmap: the header present, the first month near the supported range,
 * at most MONTH_BITMAP_MAX_LEN bytes, and every month set within
 * MONTH_BITMAP_MIN_MONTH..MONTH_BITMAP_MAX_MONTH (the years 0001 to 9999,
 * as for every month the extension takes).  The check is O(1): only the
 * first byte and the bytes past the last supported month can hold
 * months out of range.
 *
 *-------------------------------------------------------------------------
 */
#ifndef MONTH_BITMAP_H
#define MONTH_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MONTH_BITMAP_HEADER 4

/* supported months: 0001-01 .. 9999-12 */
#define MONTH_BITMAP_MIN_MONTH	((int32_t) ((1 - 2000) * 12))
#define MONTH_BITMAP_MAX_MONTH	((int32_t) ((9999 - 2000) * 12 + 11))
/* months a new aggregate state holds: 8 years, so typical histories never grow */
#define MONTH_BITMAP_INITIAL_MONTHS 96
/* months a valid bitmap may extend past the last supported one */
#define MONTH_BITMAP_SLACK		104
/* a first month may be up to 7 months early (byte alignment) */
#define MONTH_BITMAP_MIN_FIRST	(MONTH_BITMAP_MIN_MONTH - 7)
/* longest valid bitmap: every supported month plus alignment and slack */
#define MONTH_BITMAP_MAX_LEN \
	((size_t) MONTH_BITMAP_HEADER + \
	 (size_t) (MONTH_BITMAP_MAX_MONTH + MONTH_BITMAP_SLACK - MONTH_BITMAP_MIN_FIRST) / 8 + 1)

typedef enum MonthBitmapCheck
{
	MONTH_BITMAP_OK = 0,
	MONTH_BITMAP_TOO_SHORT,		/* fewer bytes than the header */
	MONTH_BITMAP_TOO_LONG,		/* more than MONTH_BITMAP_MAX_LEN bytes */
	MONTH_BITMAP_BAD_FIRST,		/* first month outside the supported range */
	MONTH_BITMAP_OUT_OF_RANGE	/* a month set outside the supported range */
} MonthBitmapCheck;

/* whether len bytes are a valid bitmap (see above); O(1) */
extern MonthBitmapCheck month_bitmap_check(const uint8_t *bitmap, size_t len);

/* bytes needed for months [first, last] (header only if last < first) */
extern size_t month_bitmap_size(int32_t first, int32_t last);
/* the header's first month; 0 if len is shorter than the header */
extern int32_t month_bitmap_first(const uint8_t *bitmap, size_t len);
/* number of months a bitmap of len bytes can hold (0 without a header) */
extern int64_t month_bitmap_capacity(size_t len);
/* zero len bytes and write the header (needs len >= the header) */
extern void month_bitmap_init(uint8_t *bitmap, size_t len, int32_t first);
/* whether month is set; false outside the bitmap */
extern bool month_bitmap_test(const uint8_t *bitmap, size_t len, int32_t month);
/* set month; false (nothing written) when outside the bitmap */
extern bool month_bitmap_set(uint8_t *bitmap, size_t len, int32_t month);
/* no month set at all */
extern bool month_bitmap_empty(const uint8_t *bitmap, size_t len);

/*
 * OR src into dst.  Returns false if src holds a month dst cannot; such
 * months are not written (callers size dst with month_bitmap_bounds()).
 */
extern bool month_bitmap_or(uint8_t *dst, size_t dstlen, const uint8_t *src, size_t srclen);
/* first and last month set, or false if none */
extern bool month_bitmap_bounds(const uint8_t *bitmap, size_t len, int32_t *first, int32_t *last);
/* first month in [from, to] not set, or false if all are set (NULL: none is) */
extern bool month_bitmap_first_unset(const uint8_t *bitmap, size_t len, int32_t from, int32_t to,
									 int32_t *month);
/* next month set at or after *month; false if none */
extern bool month_bitmap_next_set(const uint8_t *bitmap, size_t len, int32_t *month);

#endif							/* MONTH_BITMAP_H */
