/*-------------------------------------------------------------------------
 *
 * month_bitmap.c
 *	  Active-month bitmaps, the state of dogdb_active_months() (see
 *	  month_bitmap.h).
 *
 *-------------------------------------------------------------------------
 */
#include "month_bitmap.h"

#include <string.h>

size_t
month_bitmap_size(int32_t first, int32_t last)
{
	return MONTH_BITMAP_HEADER + (size_t) ((int64_t) last - first) / 8 + 1;
}

bool
month_bitmap_valid(size_t len)
{
	return len >= MONTH_BITMAP_HEADER;
}

int32_t
month_bitmap_first(const uint8_t *bitmap, size_t len)
{
	uint32_t	u = (uint32_t) bitmap[0] | (uint32_t) bitmap[1] << 8 |
		(uint32_t) bitmap[2] << 16 | (uint32_t) bitmap[3] << 24;

	(void) len;
	return (int32_t) u;
}

int32_t
month_bitmap_capacity(size_t len)
{
	size_t		bits = (len - MONTH_BITMAP_HEADER) * 8;

	return bits > INT32_MAX ? INT32_MAX : (int32_t) bits;
}

void
month_bitmap_init(uint8_t *bitmap, size_t len, int32_t first)
{
	uint32_t	u = (uint32_t) first;

	memset(bitmap, 0, len);
	bitmap[0] = (uint8_t) u;
	bitmap[1] = (uint8_t) (u >> 8);
	bitmap[2] = (uint8_t) (u >> 16);
	bitmap[3] = (uint8_t) (u >> 24);
}

bool
month_bitmap_test(const uint8_t *bitmap, size_t len, int32_t month)
{
	int64_t		i = (int64_t) month - month_bitmap_first(bitmap, len);

	if (i < 0 || i >= month_bitmap_capacity(len))
		return false;
	return (bitmap[MONTH_BITMAP_HEADER + i / 8] >> (i % 8)) & 1;
}

void
month_bitmap_set(uint8_t *bitmap, int32_t month)
{
	int64_t		i = (int64_t) month - month_bitmap_first(bitmap, MONTH_BITMAP_HEADER);

	bitmap[MONTH_BITMAP_HEADER + i / 8] |= (uint8_t) (1u << (i % 8));
}

bool
month_bitmap_empty(const uint8_t *bitmap, size_t len)
{
	for (size_t i = MONTH_BITMAP_HEADER; i < len; i++)
		if (bitmap[i] != 0)
			return false;
	return true;
}

void
month_bitmap_or(uint8_t *dst, size_t dstlen, const uint8_t *src, size_t srclen)
{
	int32_t		first = month_bitmap_first(src, srclen);
	int64_t		nbits = (int64_t) (srclen - MONTH_BITMAP_HEADER) * 8;
	int64_t		shift = (int64_t) first - month_bitmap_first(dst, dstlen);

	/* byte-aligned: OR whole bytes; otherwise bit by bit */
	if (shift >= 0 && shift % 8 == 0)
	{
		for (size_t i = MONTH_BITMAP_HEADER; i < srclen; i++)
			if (src[i] != 0)
				dst[MONTH_BITMAP_HEADER + shift / 8 + (i - MONTH_BITMAP_HEADER)] |= src[i];
		return;
	}
	for (int64_t i = 0; i < nbits; i++)
		if ((src[MONTH_BITMAP_HEADER + i / 8] >> (i % 8)) & 1)
			month_bitmap_set(dst, (int32_t) (first + i));
}

bool
month_bitmap_bounds(const uint8_t *bitmap, size_t len, int32_t *first, int32_t *last)
{
	int32_t		base = month_bitmap_first(bitmap, len);
	int64_t		nbits = (int64_t) (len - MONTH_BITMAP_HEADER) * 8;
	int64_t		lo = -1,
				hi = -1;

	for (int64_t i = 0; i < nbits; i++)
		if ((bitmap[MONTH_BITMAP_HEADER + i / 8] >> (i % 8)) & 1)
		{
			if (lo < 0)
				lo = i;
			hi = i;
		}
	if (lo < 0)
		return false;
	*first = (int32_t) (base + lo);
	*last = (int32_t) (base + hi);
	return true;
}

bool
month_bitmap_first_unset(const uint8_t *bitmap, size_t len, int32_t from, int32_t to,
					   int32_t *month)
{
	for (int64_t m = from; m <= to; m++)
		if (bitmap == NULL || !month_bitmap_test(bitmap, len, (int32_t) m))
		{
			*month = (int32_t) m;
			return true;
		}
	return false;
}
