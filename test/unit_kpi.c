/*
 * unit_kpi.c
 *	  Unit tests of the KPI core (months, active-month bitmaps, random
 *	  numbers), outside the server (TAP output, run by "make unit").
 */
#include "calendar.h"
#include "month_bitmap.h"
#include "random.h"
#include "tap.h"

#include <string.h>

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
	month_bitmap_set(b, 252);
	month_bitmap_set(b, 254);
	month_bitmap_set(b, 252);
	ok(month_bitmap_test(b, sizeof(b), 252) && !month_bitmap_test(b, sizeof(b), 253) &&
	   month_bitmap_test(b, sizeof(b), 254), "set and test");
	ok(!month_bitmap_test(b, sizeof(b), 100) && !month_bitmap_test(b, sizeof(b), 1000), "outside the bitmap: not set");
	ok(month_bitmap_bounds(b, sizeof(b), &first, &last) && first == 252 && last == 254, "bounds");
	ok(month_bitmap_first_unset(b, sizeof(b), 252, 260, &m) && m == 253, "first unset month");
	ok(month_bitmap_first_unset(NULL, 0, 252, 260, &m) && m == 252, "no bitmap: the first month");
	ok(!month_bitmap_first_unset(b, sizeof(b), 254, 254, &m), "all set: none");
	month_bitmap_init(c, sizeof(c), 257);	/* not byte-aligned with b */
	month_bitmap_set(c, 260);
	month_bitmap_or(b, sizeof(b), c, sizeof(c));
	ok(month_bitmap_test(b, sizeof(b), 260) && month_bitmap_test(b, sizeof(b), 252), "OR of an unaligned bitmap");
	month_bitmap_init(c, sizeof(c), 256);
	month_bitmap_set(c, 256);
	month_bitmap_or(b, sizeof(b), c, sizeof(c));
	ok(month_bitmap_bounds(b, sizeof(b), &first, &last) && first == 252 && last == 260 &&
	   month_bitmap_test(b, sizeof(b), 256), "OR of an aligned bitmap");
	ok(!month_bitmap_valid(3) && month_bitmap_valid(4), "fewer than 4 bytes is not a bitmap");
	month_bitmap_init(c, sizeof(c), -5);
	month_bitmap_set(c, -1);
	ok(month_bitmap_first(c, sizeof(c)) == -5 && month_bitmap_test(c, sizeof(c), -1), "negative months (before 2000)");

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
