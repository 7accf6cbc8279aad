/*
 * funnel_bruteforce.h
 *	  The window funnel by enumerating every chain: the definition in
 *	  funnel_core.h read literally, exponential, for small inputs.  Shared by
 *	  the unit test and the fuzzer.
 */
#ifndef FUNNEL_BRUTEFORCE_H
#define FUNNEL_BRUTEFORCE_H

#include "funnel_core.h"

typedef struct Occ
{
	int64_t		ts;
	int			step;
	int			row;
} Occ;

static Occ	occ[256];
static int	nocc;
static int	bf_steps;
static int64_t bf_window;
static int	bf_modes;
static int	chain[FUNNEL_MAX_STEPS + 1];

static int
KeyCmp(const Occ *x, const Occ *y)
{
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	return x->step - y->step;
}

/* is p strictly between keys of o and q and forbidden for link step j -> j+1? */
static bool
LinkOk(const Occ *o, const Occ *q, int j)
{
	if (KeyCmp(o, q) >= 0)
		return false;
	if ((bf_modes & FUNNEL_STRICT_INCREASE) && q->ts <= o->ts)
		return false;
	for (int i = 0; i < nocc; i++)
	{
		const Occ  *p = &occ[i];

		if (KeyCmp(o, p) >= 0 || KeyCmp(p, q) >= 0)
			continue;
		if ((bf_modes & FUNNEL_STRICT_ORDER) && p->step != j && p->step != j + 1)
			return false;
		if ((bf_modes & FUNNEL_STRICT_DEDUP) && (p->step == j || p->step == j + 1))
			return false;
	}
	return true;
}

static int
Extend(int k)
{
	int			best = k;

	if (k == bf_steps)
		return k;
	for (int i = 0; i < nocc; i++)
	{
		const Occ  *q = &occ[i];
		bool		okay = q->step == k + 1;

		if (okay && k > 0)
		{
			okay = LinkOk(&occ[chain[k - 1]], q, k) &&
				q->ts - occ[chain[0]].ts <= bf_window;
			if (okay && (bf_modes & FUNNEL_STRICT_ONCE))
				for (int m = 0; m < k; m++)
					if (occ[chain[m]].row == q->row)
						okay = false;
		}
		if (okay)
		{
			int			l;

			chain[k] = i;
			l = Extend(k + 1);
			if (l > best)
				best = l;
		}
	}
	return best;
}

static int
BruteForce(int nsteps, int64_t window, int modes, const FunnelEvent *ev, int n)
{
	nocc = 0;
	bf_steps = nsteps;
	bf_window = window;
	bf_modes = modes;
	for (int i = 0; i < n; i++)
		for (int j = 1; j <= nsteps; j++)
			if ((ev[i].mask >> (j - 1)) & 1)
				occ[nocc++] = (Occ) {ev[i].ts, j, i};
	return Extend(0);
}

#endif
