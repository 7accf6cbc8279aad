/*
 * unit_kpi.c
 *	  Unit tests of the KPI core (months, active-month bitmaps, random
 *	  numbers), outside the server (TAP output, run by "make unit").
 */
#include "calendar.h"
#include "month_bitmap.h"
#include "random.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

/* a heap copy of exactly len bytes, so a sanitizer would see any overrun */
static uint8_t *
exact(const uint8_t *bytes, size_t len)
{
	uint8_t    *p = malloc(len ? len : 1);

	memcpy(p, bytes, len);
	return p;
}

static void
put_first(uint8_t *b, int32_t first)
{
	uint32_t	u = (uint32_t) first;

	b[0] = (uint8_t) u;
	b[1] = (uint8_t) (u >> 8);
	b[2] = (uint8_t) (u >> 16);
	b[3] = (uint8_t) (u >> 24);
}

/*
 * Hostile bitmaps: lengths 0..5, extreme first months, bits outside the
 * supported years.  Every function stays inside the buffer (built with
 * UBSan; the exact-size heap copies make overruns visible to ASan or
 * valgrind) and the check rejects what a reader must not trust.
 */
static void
hostile_bitmaps(void)
{
	static const int32_t firsts[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX,
		MONTH_BITMAP_MIN_FIRST - 1, MONTH_BITMAP_MIN_FIRST, MONTH_BITMAP_MAX_MONTH,
	MONTH_BITMAP_MAX_MONTH + 1};
	uint8_t		raw[16];
	int			safe = 1;
	int32_t		f,
				l,
				m;

	for (size_t len = 0; len <= sizeof(raw); len++)
		for (size_t k = 0; k < sizeof(firsts) / sizeof(firsts[0]); k++)
		{
			uint8_t    *b;
			uint8_t    *dst;
			uint8_t		dstraw[6];

			memset(raw, 0xFF, sizeof(raw));
			put_first(raw, firsts[k]);
			b = exact(raw, len);
			(void) month_bitmap_check(b, len);
			(void) month_bitmap_first(b, len);
			(void) month_bitmap_empty(b, len);
			(void) month_bitmap_bounds(b, len, &f, &l);
			(void) month_bitmap_test(b, len, 0);
			(void) month_bitmap_test(b, len, INT32_MAX);
			(void) month_bitmap_test(b, len, INT32_MIN);
			(void) month_bitmap_first_unset(b, len, INT32_MIN, INT32_MAX, &m);
			(void) month_bitmap_first_unset(b, len, INT32_MAX - 3, INT32_MAX, &m);
			m = INT32_MIN;
			while (month_bitmap_next_set(b, len, &m) && m < INT32_MAX)
				m++;
			(void) month_bitmap_set(b, len, firsts[k]);
			(void) month_bitmap_set(b, len, INT32_MAX);
			/* OR into a small bitmap and from it, in both directions */
			for (size_t dl = 0; dl <= sizeof(dstraw); dl++)
			{
				memset(dstraw, 0, sizeof(dstraw));
				put_first(dstraw, 0);
				dst = exact(dstraw, dl);
				(void) month_bitmap_or(dst, dl, b, len);
				(void) month_bitmap_or(b, len, dst, dl);
				free(dst);
			}
			if (len < MONTH_BITMAP_HEADER)
				safe &= month_bitmap_check(b, len) == MONTH_BITMAP_TOO_SHORT &&
					month_bitmap_capacity(len) == 0 && !month_bitmap_set(b, len, 0);
			free(b);
		}
	ok(safe, "hostile lengths 0..16 and first months: no overrun, short input rejected");

	/* the validity rules */
	memset(raw, 0, sizeof(raw));
	put_first(raw, 0);
	ok(month_bitmap_check(raw, 4) == MONTH_BITMAP_OK, "the empty bitmap (first month 0) is valid");
	put_first(raw, 0x40000000);
	ok(month_bitmap_check(raw, 4) == MONTH_BITMAP_BAD_FIRST, "first month after 9999-12 is invalid");
	put_first(raw, MONTH_BITMAP_MIN_FIRST - 1);
	ok(month_bitmap_check(raw, 5) == MONTH_BITMAP_BAD_FIRST, "first month far before 0001-01 is invalid");
	put_first(raw, MONTH_BITMAP_MIN_MONTH - 2);
	raw[4] = 0x04;
	ok(month_bitmap_check(raw, 5) == MONTH_BITMAP_OK, "0001-01 in a bitmap starting two months early");
	raw[4] = 0x02;
	ok(month_bitmap_check(raw, 5) == MONTH_BITMAP_OUT_OF_RANGE, "a month before 0001-01 is invalid");
	put_first(raw, MONTH_BITMAP_MAX_MONTH - 8);
	raw[4] = 0;
	raw[5] = 0x01;
	ok(month_bitmap_check(raw, 6) == MONTH_BITMAP_OK, "9999-12 is valid");
	raw[5] = 0x02;
	ok(month_bitmap_check(raw, 6) == MONTH_BITMAP_OUT_OF_RANGE, "10000-01 is invalid");
	raw[5] = 0;
	raw[15] = 0x80;
	ok(month_bitmap_check(raw, 16) == MONTH_BITMAP_OUT_OF_RANGE, "a month far past 9999-12 is invalid");
	put_first(raw, 0x00800000);	/* '\x0000008001' of the issue */
	ok(month_bitmap_check(raw, 5) == MONTH_BITMAP_BAD_FIRST, "the issue's \\x0000008001 is invalid");
	{
		size_t		n = MONTH_BITMAP_MAX_LEN;
		uint8_t    *big = calloc(n + 1, 1);

		put_first(big, MONTH_BITMAP_MIN_FIRST);
		ok(month_bitmap_check(big, n) == MONTH_BITMAP_OK &&
		   month_bitmap_check(big, n + 1) == MONTH_BITMAP_TOO_LONG, "longest valid bitmap");
		put_first(big, 0);
		ok(month_bitmap_check(big, n) == MONTH_BITMAP_TOO_LONG, "shorter limit for a later first month");
		free(big);
	}

	/* set/OR refuse months outside the buffer instead of writing them */
	memset(raw, 0, sizeof(raw));
	put_first(raw, 100);
	ok(!month_bitmap_set(raw, 6, 99) && !month_bitmap_set(raw, 6, 116) && month_bitmap_set(raw, 6, 115),
	   "set outside capacity is refused");
	{
		uint8_t		src[6] = {0};

		put_first(src, 110);
		src[4] = 0xFF;
		src[5] = 0x01;
		ok(!month_bitmap_or(raw, 6, src, 6) && month_bitmap_test(raw, 6, 115) &&
		   !month_bitmap_test(raw, 6, 118), "OR of months past dst is refused, the rest written");
	}
	ok(!month_bitmap_first_unset(NULL, 0, 5, 4, &m), "empty range: no month");
	ok(month_bitmap_first_unset(NULL, 0, INT32_MAX, INT32_MAX, &m) && m == INT32_MAX, "last int32 month");

	/* calendar extremes (UBSan): timestamps of PostgreSQL's whole range */
	ok(cal_month_of_timestamp(INT64_MIN) < MONTH_BITMAP_MIN_MONTH &&
	   cal_month_of_timestamp(INT64_MAX) > MONTH_BITMAP_MAX_MONTH, "calendar of infinite timestamps");
	ok(cal_month_of_day(-2451545) == (-4713 - 2000) * 12 + 10, "4714-11-24 BC (day -2451545) is in 4714-11 BC");
}

int
main(void)
{
	uint8_t		b[MONTH_BITMAP_HEADER + 16];
	uint8_t		c[MONTH_BITMAP_HEADER + 2];
	int32_t		first,
				last,
				m;
	DemoRandom	r1,
				r2;
	int			counts[11] = {0};
	int			same = 1;

	/* months: 2021-01 is month 252; days since 2000-01-01 */
	ok(cal_month_of_day(0) == 0 && cal_month_of_day(-1) == -1, "2000-01-01 is month 0, the day before month -1");
	ok(cal_month_first_day(252) == 7671, "2021-01-01 is day 7671");
	ok(cal_month_of_day(7730) == 254 && cal_month_of_day(7729) == 253, "2021-03-01 starts month 254");
	ok(cal_month_days(253) == 28 && cal_month_days(289) == 29 && cal_month_days(255) == 30 &&
	   cal_month_days(254) == 31, "28, 29 (2024-02), 30 and 31 days");
	ok(cal_month_days(1201) == 28, "2100-02 has 28 days (not a leap year)");
	ok(cal_month_of_timestamp(-1) == -1 && cal_month_of_timestamp(0) == 0, "timestamps floor to their month");
	{
		int			okall = 1;

		for (int32_t mm = -30000; mm < 30000; mm += 7)
			okall &= (cal_month_of_day(cal_month_first_day(mm)) == mm &&
					  cal_month_of_day(cal_month_first_day(mm) - 1) == mm - 1);
		ok(okall, "month <-> first day round trip over 5000 years");
	}

	/* bitmaps */
	month_bitmap_init(b, sizeof(b), 248);
	ok(month_bitmap_first(b, sizeof(b)) == 248 && month_bitmap_capacity(sizeof(b)) == 128, "header and capacity");
	ok(month_bitmap_empty(b, sizeof(b)) && !month_bitmap_bounds(b, sizeof(b), &first, &last), "new bitmap is empty");
	month_bitmap_set(b, sizeof(b), 252);
	month_bitmap_set(b, sizeof(b), 254);
	month_bitmap_set(b, sizeof(b), 252);
	ok(month_bitmap_test(b, sizeof(b), 252) && !month_bitmap_test(b, sizeof(b), 253) &&
	   month_bitmap_test(b, sizeof(b), 254), "set and test");
	ok(!month_bitmap_test(b, sizeof(b), 100) && !month_bitmap_test(b, sizeof(b), 1000), "outside the bitmap: not set");
	ok(month_bitmap_bounds(b, sizeof(b), &first, &last) && first == 252 && last == 254, "bounds");
	ok(month_bitmap_first_unset(b, sizeof(b), 252, 260, &m) && m == 253, "first unset month");
	ok(month_bitmap_first_unset(NULL, 0, 252, 260, &m) && m == 252, "no bitmap: the first month");
	ok(!month_bitmap_first_unset(b, sizeof(b), 254, 254, &m), "all set: none");
	month_bitmap_init(c, sizeof(c), 257);	/* not byte-aligned with b */
	month_bitmap_set(c, sizeof(c), 260);
	month_bitmap_or(b, sizeof(b), c, sizeof(c));
	ok(month_bitmap_test(b, sizeof(b), 260) && month_bitmap_test(b, sizeof(b), 252), "OR of an unaligned bitmap");
	month_bitmap_init(c, sizeof(c), 256);
	month_bitmap_set(c, sizeof(c), 256);
	month_bitmap_or(b, sizeof(b), c, sizeof(c));
	ok(month_bitmap_bounds(b, sizeof(b), &first, &last) && first == 252 && last == 260 &&
	   month_bitmap_test(b, sizeof(b), 256), "OR of an aligned bitmap");
	ok(month_bitmap_check(b, 3) == MONTH_BITMAP_TOO_SHORT && month_bitmap_check(b, 4) == MONTH_BITMAP_OK,
	   "fewer than 4 bytes is not a bitmap");
	month_bitmap_init(c, sizeof(c), -5);
	month_bitmap_set(c, sizeof(c), -1);
	ok(month_bitmap_first(c, sizeof(c)) == -5 && month_bitmap_test(c, sizeof(c), -1), "negative months (before 2000)");

	hostile_bitmaps();

	/* random numbers: deterministic per seed, uniform */
	demo_random_seed(&r1, 42);
	demo_random_seed(&r2, 42);
	for (int i = 0; i < 1000; i++)
		same &= demo_random_next(&r1) == demo_random_next(&r2);
	ok(same, "same seed, same stream");
	demo_random_seed(&r2, 43);
	ok(demo_random_next(&r1) != demo_random_next(&r2), "another seed, another stream");
	for (int i = 0; i < 110000; i++)
		counts[demo_random_below(&r1, 11)]++;
	{
		int			uniform = 1;

		for (int i = 0; i < 11; i++)
			uniform &= counts[i] > 9400 && counts[i] < 10600;
		ok(uniform, "U{0..10}: each value about 1/11 of 110000 draws");
	}
	{
		int			hits = 0;

		for (int i = 0; i < 100000; i++)
			hits += demo_random_chance(&r1, 7, 10);
		ok(hits > 69400 && hits < 70600, "chance 7/10 hits about 70%");
	}
	return done_testing();
}
