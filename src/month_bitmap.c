/*-------------------------------------------------------------------------
 *
 * month_bitmap.c
 *	  Active-month bitmaps, the state of dogdb_active_months() (see
 *	  month_bitmap.h).
 *
 * Every function bounds its indexes by the length it is given; months are
 * turned into bit indexes in 64-bit arithmetic, so no header value can
 * make an index wrap.
 *
 *-------------------------------------------------------------------------
 */
#include "month_bitmap.h"

#include <string.h>

#define DATA(b) ((b) + MONTH_BITMAP_HEADER)

/* bytes after the header, 0 without a header */
static inline size_t
DataLen(size_t len)
{
	return len < MONTH_BITMAP_HEADER ? 0 : len - MONTH_BITMAP_HEADER;
}

MonthBitmapCheck
month_bitmap_check(const uint8_t *bitmap, size_t len)
{
	int32_t		first;
	size_t		nbytes;
	int64_t		k;

	if (len < MONTH_BITMAP_HEADER)
		return MONTH_BITMAP_TOO_SHORT;
	if (len > MONTH_BITMAP_MAX_LEN)
		return MONTH_BITMAP_TOO_LONG;
	first = month_bitmap_first(bitmap, len);
	if (first < MONTH_BITMAP_MIN_FIRST || first > MONTH_BITMAP_MAX_MONTH)
		return MONTH_BITMAP_BAD_FIRST;
	nbytes = len - MONTH_BITMAP_HEADER;
	/* capacity may end at most SLACK (+ alignment) months past the last */
	if (nbytes > (size_t) (MONTH_BITMAP_MAX_MONTH + MONTH_BITMAP_SLACK - first) / 8 + 1)
		return MONTH_BITMAP_TOO_LONG;
	if (nbytes == 0)
		return MONTH_BITMAP_OK;
	/* months before the first supported one: low bits of the first byte */
	if (first < MONTH_BITMAP_MIN_MONTH &&
		(DATA(bitmap)[0] & ((1u << (MONTH_BITMAP_MIN_MONTH - first)) - 1)) != 0)
		return MONTH_BITMAP_OUT_OF_RANGE;
	/* months after the last supported one: bit k on */
	k = (int64_t) MONTH_BITMAP_MAX_MONTH - first + 1;
	if (k < (int64_t) nbytes * 8)
	{
		if ((DATA(bitmap)[k / 8] >> (k % 8)) != 0)
			return MONTH_BITMAP_OUT_OF_RANGE;
		for (size_t i = (size_t) k / 8 + 1; i < nbytes; i++)
			if (DATA(bitmap)[i] != 0)
				return MONTH_BITMAP_OUT_OF_RANGE;
	}
	return MONTH_BITMAP_OK;
}

size_t
month_bitmap_size(int32_t first, int32_t last)
{
	if (last < first)
		return MONTH_BITMAP_HEADER;
	return MONTH_BITMAP_HEADER + (size_t) (((int64_t) last - first) / 8) + 1;
}

int32_t
month_bitmap_first(const uint8_t *bitmap, size_t len)
{
	uint32_t	u;

	if (len < MONTH_BITMAP_HEADER)
		return 0;
	u = (uint32_t) bitmap[0] | (uint32_t) bitmap[1] << 8 |
		(uint32_t) bitmap[2] << 16 | (uint32_t) bitmap[3] << 24;
	return (int32_t) u;
}

int64_t
month_bitmap_capacity(size_t len)
{
	return (int64_t) DataLen(len) * 8;
}

void
month_bitmap_init(uint8_t *bitmap, size_t len, int32_t first)
{
	uint32_t	u = (uint32_t) first;

	if (len < MONTH_BITMAP_HEADER)
		return;
	memset(bitmap, 0, len);
	bitmap[0] = (uint8_t) u;
	bitmap[1] = (uint8_t) (u >> 8);
	bitmap[2] = (uint8_t) (u >> 16);
	bitmap[3] = (uint8_t) (u >> 24);
}

/* bit index of month, or -1 if outside the bitmap */
static inline int64_t
BitIndex(const uint8_t *bitmap, size_t len, int64_t month)
{
	int64_t		i = month - month_bitmap_first(bitmap, len);

	return (i < 0 || i >= month_bitmap_capacity(len)) ? -1 : i;
}

bool
month_bitmap_test(const uint8_t *bitmap, size_t len, int32_t month)
{
	int64_t		i = BitIndex(bitmap, len, month);

	return i >= 0 && ((DATA(bitmap)[i / 8] >> (i % 8)) & 1);
}

bool
month_bitmap_set(uint8_t *bitmap, size_t len, int32_t month)
{
	int64_t		i = BitIndex(bitmap, len, month);

	if (i < 0)
		return false;
	DATA(bitmap)[i / 8] |= (uint8_t) (1u << (i % 8));
	return true;
}

bool
month_bitmap_empty(const uint8_t *bitmap, size_t len)
{
	for (size_t i = 0; i < DataLen(len); i++)
		if (DATA(bitmap)[i] != 0)
			return false;
	return true;
}

bool
month_bitmap_or(uint8_t *dst, size_t dstlen, const uint8_t *src, size_t srclen)
{
	size_t		srcbytes = DataLen(srclen);
	int64_t		dstbits = month_bitmap_capacity(dstlen);
	int64_t		shift = (int64_t) month_bitmap_first(src, srclen) - month_bitmap_first(dst, dstlen);
	bool		all = true;

	for (size_t j = 0; j < srcbytes; j++)
	{
		uint8_t		v = DATA(src)[j];
		int64_t		d = shift + (int64_t) j * 8;	/* dst bit of src byte j's bit 0 */

		if (v == 0)
			continue;
		if (d >= 0 && d + 8 <= dstbits)
		{
			/* the whole byte fits: at most two dst bytes */
			DATA(dst)[d / 8] |= (uint8_t) (v << (d % 8));
			if (d % 8 != 0 && (v >> (8 - d % 8)) != 0)
				DATA(dst)[d / 8 + 1] |= (uint8_t) (v >> (8 - d % 8));
			continue;
		}
		for (int b = 0; b < 8; b++)
		{
			if (((v >> b) & 1) == 0)
				continue;
			if (d + b < 0 || d + b >= dstbits)
				all = false;
			else
				DATA(dst)[(d + b) / 8] |= (uint8_t) (1u << ((d + b) % 8));
		}
	}
	return all;
}

bool
month_bitmap_bounds(const uint8_t *bitmap, size_t len, int32_t *first, int32_t *last)
{
	size_t		n = DataLen(len);
	size_t		lo = 0,
				hi = n;
	int64_t		base = month_bitmap_first(bitmap, len);

	while (lo < n && DATA(bitmap)[lo] == 0)
		lo++;
	if (lo == n)
		return false;
	while (DATA(bitmap)[hi - 1] == 0)
		hi--;
	*first = (int32_t) (base + (int64_t) lo * 8 + __builtin_ctz(DATA(bitmap)[lo]));
	*last = (int32_t) (base + (int64_t) (hi - 1) * 8 + 31 - __builtin_clz(DATA(bitmap)[hi - 1]));
	return true;
}

bool
month_bitmap_first_unset(const uint8_t *bitmap, size_t len, int32_t from, int32_t to,
						 int32_t *month)
{
	int64_t		base = month_bitmap_first(bitmap, len);
	int64_t		cap = bitmap ? month_bitmap_capacity(len) : 0;

	/* ends within cap + 1 steps: a month past the bitmap is not set */
	for (int64_t m = from; m <= to; m++)
	{
		int64_t		i = m - base;
		uint8_t		v;

		if (i < 0 || i >= cap)
		{
			*month = (int32_t) m;
			return true;
		}
		v = DATA(bitmap)[i / 8];
		if (v == 0xFF && i % 8 == 0)
		{
			m += 7;				/* a full byte */
			continue;
		}
		if (((v >> (i % 8)) & 1) == 0)
		{
			*month = (int32_t) m;
			return true;
		}
	}
	return false;
}

bool
month_bitmap_next_set(const uint8_t *bitmap, size_t len, int32_t *month)
{
	int64_t		base = month_bitmap_first(bitmap, len);
	int64_t		cap = month_bitmap_capacity(len);
	int64_t		i = (int64_t) *month - base;

	if (i < 0)
		i = 0;
	while (i < cap)
	{
		uint8_t		v = DATA(bitmap)[i / 8] >> (i % 8);

		if (v != 0)
		{
			*month = (int32_t) (base + i + __builtin_ctz(v));
			return true;
		}
		i += 8 - i % 8;
	}
	return false;
}
