/*-------------------------------------------------------------------------
 *
 * kpi_facts_parallel.c
 *	  The KPI engine's facts of a full rebuild on two cores (kpi.h): a
 *	  parallel worker computes the facts, churn months and tiers of the
 *	  upper part of the accounts while the leader computes the lower part;
 *	  the leader then adds the worker's cells and takes its churn months
 *	  and tiers.
 *
 * Design note.  The worker gets everything it reads in the parallel
 * context's shared memory: the plans with their prices and names (for the
 * same error messages), its accounts and their subscriptions, their counts
 * for the months of the cells, and the months' flags.  It runs the same
 * code as the leader (KpiFactsRange) on a KpiState of its own whose arrays
 * point there, and writes its cells, churn months and tiers there.  It
 * reads no table, so what it sees cannot differ from what the leader saw.
 * The accounts are split on a tile boundary; without a worker the leader
 * computes both halves.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "common/int.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"

#include "kpi.h"

#define KEY_HEADER		0x6B706601
#define KEY_PLANS		0x6B706602
#define KEY_PRICES		0x6B706603
#define KEY_NAMES		0x6B706604
#define KEY_ACCOUNTS	0x6B706605
#define KEY_SPANS		0x6B706606
#define KEY_MONTHS		0x6B706607
#define KEY_COUNTS		0x6B706608
#define KEY_TIERS		0x6B706609
#define KEY_CHURN		0x6B70660A
#define KEY_CELLS		0x6B70660B

/*
 * below this many account-months the worker costs more than it saves
 * (force_parallel_mode, as for the planner, starts it anyway: tests)
 */
#define KPI_PARALLEL_FACTS_MIN (1024 * 1024)

typedef struct FactsHeader
{
	int32		current_month;
	int32		first_month;
	int32		cell0;
	int32		cell1;
	int32		m0;
	int			nplans;
	int32		naccounts;		/* the worker's */
	int32		nspans;
	bool		churn_changed;	/* written by the worker */
} FactsHeader;

typedef struct FactsPlan
{
	int16		plan_id;
	int			nprices;
	int32		price0;			/* its prices: prices[price0 .. price0 + nprices) */
	int32		name;			/* its name: names + name */
} FactsPlan;

typedef struct FactsSpan
{
	int32		plan;			/* index into the plans */
	int64		first_day;
	int64		end_day;
} FactsSpan;

typedef struct FactsMonth
{
	bool		counts;			/* it has counts */
	bool		tiers;			/* its tiers are kept */
	bool		facts_dirty;
	bool		revenue_dirty;
} FactsMonth;

PGDLLEXPORT void KpiFactsWorkerMain(dsm_segment *seg, shm_toc *toc);

static inline Size
CellCount(int32 cell0, int32 cell1, int nplans)
{
	return (Size) (cell1 - cell0 + 1) * KPI_NSIZES * (nplans + 1);
}

/* the worker: the facts of its accounts, on a KpiState whose arrays are in shared memory */
void
KpiFactsWorkerMain(dsm_segment *seg, shm_toc *toc)
{
	FactsHeader *h = shm_toc_lookup(toc, KEY_HEADER, false);
	FactsPlan  *fplans = shm_toc_lookup(toc, KEY_PLANS, false);
	ProrationPrice *prices = shm_toc_lookup(toc, KEY_PRICES, false);
	char	   *names = shm_toc_lookup(toc, KEY_NAMES, false);
	FactsSpan  *fspans = shm_toc_lookup(toc, KEY_SPANS, false);
	FactsMonth *fmonths = shm_toc_lookup(toc, KEY_MONTHS, false);
	int32	   *counts = shm_toc_lookup(toc, KEY_COUNTS, false);
	int16	   *tiers = shm_toc_lookup(toc, KEY_TIERS, false);
	KpiState   *ks = palloc0(sizeof(KpiState));

	KpiInitMonthDays();
	ks->cxt = CurrentMemoryContext;
	ks->current_month = h->current_month;
	ks->first_month = h->first_month;
	ks->cell0 = h->cell0;
	ks->cell1 = h->cell1;
	ks->nplans = h->nplans;
	ks->plans = palloc0(sizeof(BillingPlan) * Max(h->nplans, 1));
	for (int p = 0; p < h->nplans; p++)
	{
		ks->plans[p].plan.plan_id = fplans[p].plan_id;
		ks->plans[p].plan.nprices = fplans[p].nprices;
		ks->plans[p].plan.prices = &prices[fplans[p].price0];
		ks->plans[p].name = &names[fplans[p].name];
	}
	ks->naccounts = h->naccounts;
	ks->accounts = shm_toc_lookup(toc, KEY_ACCOUNTS, false);
	ks->spans = palloc(sizeof(ProrationSpan) * Max(h->nspans, 1));
	for (int32 s = 0; s < h->nspans; s++)
	{
		ks->spans[s].plan = &ks->plans[fspans[s].plan].plan;
		ks->spans[s].first_day = fspans[s].first_day;
		ks->spans[s].end_day = fspans[s].end_day;
	}
	ks->subscriptions_loaded = true;
	ks->churn = shm_toc_lookup(toc, KEY_CHURN, false);
	ks->cells = shm_toc_lookup(toc, KEY_CELLS, false);
	for (int32 m = h->cell0; m <= h->cell1; m++)
	{
		FactsMonth *fm = &fmonths[m - h->cell0];
		KpiMonth   *km = KpiMonthOf(ks, m);
		Size		row = (Size) (m - h->cell0) * h->naccounts;

		km->counts = fm->counts ? &counts[row] : NULL;
		km->tiers = fm->tiers ? &tiers[row] : NULL;
		km->facts_dirty = fm->facts_dirty;
		km->revenue_dirty = fm->revenue_dirty;
	}
	KpiFactsRange(ks, h->m0, 0, h->naccounts);
	h->churn_changed = ks->churn_changed;
}

/*
 * Start a worker on the accounts from *split on (the upper part, from a
 * tile boundary); NULL, with *split = every account, if none is started
 */
ParallelContext *
KpiFactsLaunch(KpiState *ks, int32 m0, int32 *split)
{
	int32		nm = ks->cell1 - ks->cell0 + 1;
	int32		lo;
	int32		n;
	int32		span_lo;
	int32		nspans;
	Size		names_len = 0;
	int			nprices = 0;
	int			ndirty = 0;
	ParallelContext *pcxt;
	FactsHeader *h;
	FactsPlan  *fplans;
	ProrationPrice *prices;
	char	   *names;
	FactsSpan  *fspans;
	FactsMonth *fmonths;
	int32	   *counts;
	int16	   *tiers;
	Size		sizes[11];

	*split = ks->naccounts;
	for (int32 m = ks->cell0; m <= ks->cell1; m++)
		ndirty += KpiMonthOf(ks, m)->facts_dirty;
	if (((int64) ks->naccounts * ndirty < KPI_PARALLEL_FACTS_MIN && force_parallel_mode == FORCE_PARALLEL_OFF) ||
		ks->naccounts < 2 * KPI_FACTS_TILE || max_parallel_workers_per_gather < 1 ||
		IsInParallelMode() || !ks->subscriptions_loaded)
		return NULL;
	/* the worker starts later and faults in the shared memory it reads: less for it */
	lo = (int32) ((int64) ks->naccounts * 58 / 100) / KPI_FACTS_TILE * KPI_FACTS_TILE;
	n = ks->naccounts - lo;
	/* their spans: those of the accounts with any, which follow one another */
	span_lo = PG_INT32_MAX;
	nspans = 0;
	for (int32 a = lo; a < ks->naccounts; a++)
		if (ks->accounts[a].nspans > 0)
		{
			span_lo = Min(span_lo, ks->accounts[a].span0);
			nspans = Max(nspans, ks->accounts[a].span0 + ks->accounts[a].nspans);
		}
	nspans = span_lo == PG_INT32_MAX ? 0 : nspans - span_lo;
	for (int p = 0; p < ks->nplans; p++)
	{
		nprices += ks->plans[p].plan.nprices;
		names_len += strlen(ks->plans[p].name) + 1;
	}

	sizes[0] = sizeof(FactsHeader);
	sizes[1] = sizeof(FactsPlan) * Max(ks->nplans, 1);
	sizes[2] = sizeof(ProrationPrice) * Max(nprices, 1);
	sizes[3] = Max(names_len, 1);
	sizes[4] = sizeof(KpiAccount) * n;
	sizes[5] = sizeof(FactsSpan) * Max(nspans, 1);
	sizes[6] = sizeof(FactsMonth) * nm;
	sizes[7] = sizeof(int32) * (Size) nm * n;
	sizes[8] = sizeof(int16) * (Size) nm * n;
	sizes[9] = sizeof(int32) * n;
	sizes[10] = sizeof(KpiCell) * CellCount(ks->cell0, ks->cell1, ks->nplans);

	EnterParallelMode();
	pcxt = CreateParallelContext("dogdb_analytics", "KpiFactsWorkerMain", 1);
	for (int i = 0; i < (int) lengthof(sizes); i++)
		shm_toc_estimate_chunk(&pcxt->estimator, sizes[i]);
	shm_toc_estimate_keys(&pcxt->estimator, lengthof(sizes));
	InitializeParallelDSM(pcxt);
	if (pcxt->seg == NULL)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return NULL;
	}

	h = shm_toc_allocate(pcxt->toc, sizes[0]);
	h->current_month = ks->current_month;
	h->first_month = ks->first_month;
	h->cell0 = ks->cell0;
	h->cell1 = ks->cell1;
	h->m0 = m0;
	h->nplans = ks->nplans;
	h->naccounts = n;
	h->nspans = nspans;
	h->churn_changed = false;
	shm_toc_insert(pcxt->toc, KEY_HEADER, h);

	fplans = shm_toc_allocate(pcxt->toc, sizes[1]);
	prices = shm_toc_allocate(pcxt->toc, sizes[2]);
	names = shm_toc_allocate(pcxt->toc, sizes[3]);
	nprices = 0;
	names_len = 0;
	for (int p = 0; p < ks->nplans; p++)
	{
		const ProrationPlan *plan = &ks->plans[p].plan;
		Size		len = strlen(ks->plans[p].name) + 1;

		fplans[p].plan_id = plan->plan_id;
		fplans[p].nprices = plan->nprices;
		fplans[p].price0 = nprices;
		fplans[p].name = (int32) names_len;
		memcpy(&prices[nprices], plan->prices, sizeof(ProrationPrice) * plan->nprices);
		memcpy(&names[names_len], ks->plans[p].name, len);
		nprices += plan->nprices;
		names_len += len;
	}
	shm_toc_insert(pcxt->toc, KEY_PLANS, fplans);
	shm_toc_insert(pcxt->toc, KEY_PRICES, prices);
	shm_toc_insert(pcxt->toc, KEY_NAMES, names);

	/* the worker's accounts, their spans numbered from 0 */
	{
		KpiAccount *accounts = shm_toc_allocate(pcxt->toc, sizes[4]);

		memcpy(accounts, &ks->accounts[lo], sizes[4]);
		for (int32 a = 0; a < n; a++)
			accounts[a].span0 = accounts[a].nspans > 0 ? accounts[a].span0 - span_lo : 0;
		shm_toc_insert(pcxt->toc, KEY_ACCOUNTS, accounts);
	}
	fspans = shm_toc_allocate(pcxt->toc, sizes[5]);
	for (int32 s = 0; s < nspans; s++)
	{
		const ProrationSpan *sp = &ks->spans[span_lo + s];

		fspans[s].plan = (int32) ((const BillingPlan *) sp->plan - ks->plans);
		fspans[s].first_day = sp->first_day;
		fspans[s].end_day = sp->end_day;
	}
	shm_toc_insert(pcxt->toc, KEY_SPANS, fspans);

	fmonths = shm_toc_allocate(pcxt->toc, sizes[6]);
	counts = shm_toc_allocate(pcxt->toc, sizes[7]);
	tiers = shm_toc_allocate(pcxt->toc, sizes[8]);
	for (int32 m = ks->cell0; m <= ks->cell1; m++)
	{
		KpiMonth   *km = KpiMonthOf(ks, m);
		FactsMonth *fm = &fmonths[m - ks->cell0];

		fm->counts = km->counts != NULL;
		fm->tiers = km->tiers != NULL;
		fm->facts_dirty = km->facts_dirty;
		fm->revenue_dirty = km->revenue_dirty;
		if (km->counts != NULL)
			memcpy(&counts[(Size) (m - ks->cell0) * n], &km->counts[lo], sizeof(int32) * n);
	}
	shm_toc_insert(pcxt->toc, KEY_MONTHS, fmonths);
	shm_toc_insert(pcxt->toc, KEY_COUNTS, counts);
	shm_toc_insert(pcxt->toc, KEY_TIERS, tiers);
	{
		int32	   *churn = shm_toc_allocate(pcxt->toc, sizes[9]);
		KpiCell    *cells = shm_toc_allocate(pcxt->toc, sizes[10]);

		memcpy(churn, &ks->churn[lo], sizes[9]);
		memset(cells, 0, sizes[10]);
		shm_toc_insert(pcxt->toc, KEY_CHURN, churn);
		shm_toc_insert(pcxt->toc, KEY_CELLS, cells);
	}

	LaunchParallelWorkers(pcxt);
	if (pcxt->nworkers_launched == 0)
	{
		DestroyParallelContext(pcxt);
		ExitParallelMode();
		return NULL;
	}
	*split = lo;
	ereport(DEBUG1, (errmsg_internal("KPI refresh: the facts of %d of %d accounts computed in a parallel worker",
									 n, ks->naccounts)));
	return pcxt;
}

/* wait for the worker; add its cells, take its churn months and tiers */
void
KpiFactsFinish(KpiState *ks, ParallelContext *pcxt, int32 split)
{
	FactsHeader *h = shm_toc_lookup(pcxt->toc, KEY_HEADER, false);
	int16	   *tiers = shm_toc_lookup(pcxt->toc, KEY_TIERS, false);
	int32	   *churn = shm_toc_lookup(pcxt->toc, KEY_CHURN, false);
	KpiCell    *cells = shm_toc_lookup(pcxt->toc, KEY_CELLS, false);
	Size		ncells = CellCount(ks->cell0, ks->cell1, ks->nplans);
	int32		n = ks->naccounts - split;

	WaitForParallelWorkersToFinish(pcxt);
	Assert(h->naccounts == n);
	for (Size i = 0; i < ncells; i++)
	{
		KpiCell    *c = &ks->cells[i];

		c->active += cells[i].active;
		c->churned += cells[i].churned;
		c->sessions += cells[i].sessions;
		if (pg_add_s64_overflow(c->revenue, cells[i].revenue, &c->revenue))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("revenue out of range for type bigint")));
	}
	memcpy(&ks->churn[split], churn, sizeof(int32) * n);
	ks->churn_changed |= h->churn_changed;
	for (int32 m = ks->cell0; m <= ks->cell1; m++)
	{
		int16	   *dst = KpiMonthOf(ks, m)->tiers;

		if (dst != NULL)
			memcpy(&dst[split], &tiers[(Size) (m - ks->cell0) * n], sizeof(int16) * n);
	}
	DestroyParallelContext(pcxt);
	ExitParallelMode();
}
