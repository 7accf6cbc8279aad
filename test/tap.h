/*
 * tap.h
 *	  Minimal TAP output for the unit tests outside the server (run through
 *	  prove by "make unit").  Include once per test program.
 */
#ifndef TAP_H
#define TAP_H

#include <stdio.h>

static int	ntests = 0;
static int	nfailed = 0;

static void
ok(int cond, const char *name)
{
	ntests++;
	if (!cond)
		nfailed++;
	printf("%sok %d - %s\n", cond ? "" : "not ", ntests, name);
}

/* print the plan; the exit status of the program */
static int
done_testing(void)
{
	printf("1..%d\n", ntests);
	return nfailed == 0 ? 0 : 1;
}

#endif							/* TAP_H */
