/*-------------------------------------------------------------------------
 *
 * kpi_core.c
 *	  Months, active-month bitmaps and random numbers (see kpi_core.h).
 *
 *-------------------------------------------------------------------------
 */
#include "kpi_core.h"

#include <string.h>

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
kpi_month_of_day(int64_t day)
{
	int64_t		year;
	int32_t		month;

	DayToCivil(day, &year, &month);
	return (int32_t) ((year - 2000) * 12 + (month - 1));
}

int64_t
kpi_month_first_day(int32_t month)
{
	int64_t		m = month;

	return CivilToDay(2000 + FloorDiv(m, 12), (int32_t) (m - FloorDiv(m, 12) * 12) + 1);
}

int32_t
kpi_month_of_timestamp(int64_t usecs)
{
	return kpi_month_of_day(FloorDiv(usecs, USECS_PER_DAY));
}

int32_t
kpi_month_days(int32_t month)
{
	return (int32_t) (kpi_month_first_day(month + 1) - kpi_month_first_day(month));
}

size_t
kpi_bitmap_size(int32_t first, int32_t last)
{
	return KPI_BITMAP_HEADER + (size_t) ((int64_t) last - first) / 8 + 1;
}

bool
kpi_bitmap_valid(size_t len)
{
	return len >= KPI_BITMAP_HEADER;
}

int32_t
kpi_bitmap_first(const uint8_t *bitmap, size_t len)
{
	uint32_t	u = (uint32_t) bitmap[0] | (uint32_t) bitmap[1] << 8 |
		(uint32_t) bitmap[2] << 16 | (uint32_t) bitmap[3] << 24;

	(void) len;
	return (int32_t) u;
}

int32_t
kpi_bitmap_capacity(size_t len)
{
	size_t		bits = (len - KPI_BITMAP_HEADER) * 8;

	return bits > INT32_MAX ? INT32_MAX : (int32_t) bits;
}

void
kpi_bitmap_init(uint8_t *bitmap, size_t len, int32_t first)
{
	uint32_t	u = (uint32_t) first;

	memset(bitmap, 0, len);
	bitmap[0] = (uint8_t) u;
	bitmap[1] = (uint8_t) (u >> 8);
	bitmap[2] = (uint8_t) (u >> 16);
	bitmap[3] = (uint8_t) (u >> 24);
}

bool
kpi_bitmap_test(const uint8_t *bitmap, size_t len, int32_t month)
{
	int64_t		i = (int64_t) month - kpi_bitmap_first(bitmap, len);

	if (i < 0 || i >= kpi_bitmap_capacity(len))
		return false;
	return (bitmap[KPI_BITMAP_HEADER + i / 8] >> (i % 8)) & 1;
}

void
kpi_bitmap_set(uint8_t *bitmap, int32_t month)
{
	int64_t		i = (int64_t) month - kpi_bitmap_first(bitmap, KPI_BITMAP_HEADER);

	bitmap[KPI_BITMAP_HEADER + i / 8] |= (uint8_t) (1u << (i % 8));
}

bool
kpi_bitmap_empty(const uint8_t *bitmap, size_t len)
{
	for (size_t i = KPI_BITMAP_HEADER; i < len; i++)
		if (bitmap[i] != 0)
			return false;
	return true;
}

void
kpi_bitmap_or(uint8_t *dst, size_t dstlen, const uint8_t *src, size_t srclen)
{
	int32_t		first = kpi_bitmap_first(src, srclen);
	int64_t		nbits = (int64_t) (srclen - KPI_BITMAP_HEADER) * 8;
	int64_t		shift = (int64_t) first - kpi_bitmap_first(dst, dstlen);

	/* byte-aligned: OR whole bytes; otherwise bit by bit */
	if (shift >= 0 && shift % 8 == 0)
	{
		for (size_t i = KPI_BITMAP_HEADER; i < srclen; i++)
			if (src[i] != 0)
				dst[KPI_BITMAP_HEADER + shift / 8 + (i - KPI_BITMAP_HEADER)] |= src[i];
		return;
	}
	for (int64_t i = 0; i < nbits; i++)
		if ((src[KPI_BITMAP_HEADER + i / 8] >> (i % 8)) & 1)
			kpi_bitmap_set(dst, (int32_t) (first + i));
}

bool
kpi_bitmap_bounds(const uint8_t *bitmap, size_t len, int32_t *first, int32_t *last)
{
	int32_t		base = kpi_bitmap_first(bitmap, len);
	int64_t		nbits = (int64_t) (len - KPI_BITMAP_HEADER) * 8;
	int64_t		lo = -1,
				hi = -1;

	for (int64_t i = 0; i < nbits; i++)
		if ((bitmap[KPI_BITMAP_HEADER + i / 8] >> (i % 8)) & 1)
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
kpi_bitmap_first_unset(const uint8_t *bitmap, size_t len, int32_t from, int32_t to,
					   int32_t *month)
{
	for (int64_t m = from; m <= to; m++)
		if (bitmap == NULL || !kpi_bitmap_test(bitmap, len, (int32_t) m))
		{
			*month = (int32_t) m;
			return true;
		}
	return false;
}

/*
 * Random numbers: xoshiro256** (Blackman and Vigna, public domain), state
 * filled by splitmix64 from the seed.
 */
static uint64_t
Rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
kpi_random_seed(KpiRandom *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
	{
		uint64_t	z = (seed += UINT64_C(0x9e3779b97f4a7c15));

		z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
		z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
		r->s[i] = z ^ (z >> 31);
	}
}

uint64_t
kpi_random_next(KpiRandom *r)
{
	uint64_t	result = Rotl(r->s[1] * 5, 7) * 9;
	uint64_t	t = r->s[1] << 17;

	r->s[2] ^= r->s[0];
	r->s[3] ^= r->s[1];
	r->s[1] ^= r->s[2];
	r->s[0] ^= r->s[3];
	r->s[2] ^= t;
	r->s[3] = Rotl(r->s[3], 45);
	return result;
}

uint64_t
kpi_random_below(KpiRandom *r, uint64_t n)
{
	/* reject the top partial range so every value is equally likely */
	uint64_t	limit = UINT64_MAX - UINT64_MAX % n;
	uint64_t	x;

	do
		x = kpi_random_next(r);
	while (x >= limit);
	return x % n;
}

bool
kpi_random_chance(KpiRandom *r, uint64_t num, uint64_t den)
{
	return kpi_random_below(r, den) < num;
}
