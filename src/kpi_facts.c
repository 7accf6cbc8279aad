/*-------------------------------------------------------------------------
 *
 * kpi_facts.c
 *	  The KPI engine's facts (kpi.h): per month, company size and tier, the
 *	  active accounts, churned accounts, sessions and revenue, computed from
 *	  the matrix and the subscriptions, compared with dogdb_internal.kpi_facts and
 *	  written where they differ.
 *
 * A tier is a plan of dogdb.pricing_plans, stored as its plan_id (NULL for
 * an account without a plan), so renaming a plan changes no fact.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/parallel.h"
#include "catalog/pg_type.h"
#include "common/int.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

/* the position of (month, size, tier) in cells and old_cells */
static inline Size
CellIndex(KpiState *ks, int32 month, int size, int tier)
{
	Assert(month >= ks->cell0 && month <= ks->cell1);
	return ((Size) (month - ks->cell0) * KPI_NSIZES + size) * (ks->nplans + 1) + tier;
}

static inline KpiCell *
Cell(KpiState *ks, int32 month, int size, int tier)
{
	return &ks->cells[CellIndex(ks, month, size, tier)];
}

/* the tier of a plan the engine holds: its position in ks->plans */
static inline int
TierOfPlan(KpiState *ks, const ProrationPlan *plan)
{
	const BillingPlan *bp = (const BillingPlan *) ((const char *) plan - offsetof(BillingPlan, plan));

	return (int) (bp - ks->plans);
}

/* the tier of a plan_id, or -1 if there is no such plan */
static int
TierOfPlanId(KpiState *ks, int16 plan_id)
{
	int			lo = 0,
				hi = ks->nplans;

	while (lo < hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (ks->plans[mid].plan.plan_id < plan_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return (lo < ks->nplans && ks->plans[lo].plan.plan_id == plan_id) ? lo : -1;
}

/*
 * The tier of an account in a month (index into plans; nplans = none): the
 * plan in force on the first day; without one, the plan it had before;
 * without one, the first plan it starts that month.
 */
int
KpiTierAt(KpiState *ks, KpiAccount *a, int32 month)
{
	ProrationSpan *spans = &ks->spans[a->span0];
	int64		d = KpiMonthFirstDay(month);
	int64		next = KpiMonthFirstDay(month + 1);
	const ProrationPlan *plan = NULL;
	int			k = 0;

	while (k < a->nspans && spans[k].end_day <= d)
		k++;
	if (k < a->nspans && spans[k].first_day <= d)
		plan = spans[k].plan;
	else if (k > 0)
		plan = spans[k - 1].plan;
	else if (k < a->nspans && spans[k].first_day < next)
		plan = spans[k].plan;
	return plan == NULL ? ks->nplans : TierOfPlan(ks, plan);
}

/*
 * The facts as dogdb_internal.kpi_facts has them (old_cells), and those of the
 * months not recomputed (or their revenue) carried over into cells.  Facts
 * of plans that no longer exist, or of months outside the cells, are
 * deleted: no account can have such a tier or month.
 */
void
KpiKeepFacts(KpiState *ks)
{
	Oid			argtypes[2] = {DATEOID, DATEOID};
	Datum		args[2];
	Oid			arraytype = INT2ARRAYOID;
	Datum		planarray;
	Datum	   *ids = palloc(sizeof(Datum) * Max(ks->nplans, 1));
	SPITupleTable *tt;
	uint64		n;

	n = KpiQuery(ks, "SELECT month, company_size, plan_id, active_accounts, churned_accounts, sessions, revenue_cents"
				 " FROM dogdb_internal.kpi_facts", 0, NULL, NULL, true, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		HeapTuple	tup = tt->vals[i];
		bool		isnull;
		int32		month = cal_month_of_day(DatumGetDateADT(SPI_getbinval(tup, tt->tupdesc, 1, &isnull)));
		text	   *size = DatumGetTextPP(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));
		Datum		plan_id = SPI_getbinval(tup, tt->tupdesc, 3, &isnull);
		int			si = 0;
		int			ti = isnull ? ks->nplans : TierOfPlanId(ks, DatumGetInt16(plan_id));
		KpiMonth   *km;
		KpiCell		row;
		KpiCell    *c;
		KpiCell    *o;

		while (si < KPI_NSIZES - 1 &&
			   !(VARSIZE_ANY_EXHDR(size) == strlen(kpi_size_names[si]) &&
				 memcmp(VARDATA_ANY(size), kpi_size_names[si], VARSIZE_ANY_EXHDR(size)) == 0))
			si++;
		if (ti < 0 || month < ks->cell0 || month > ks->cell1)
		{
			ks->facts_dropped = true;	/* deleted below */
			continue;
		}
		km = KpiMonthOf(ks, month);
		row.active = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 4, &isnull));
		row.churned = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 5, &isnull));
		row.sessions = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 6, &isnull));
		row.revenue = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 7, &isnull));
		o = &ks->old_cells[CellIndex(ks, month, si, ti)];
		o->active += row.active;
		o->churned += row.churned;
		o->sessions += row.sessions;
		o->revenue += row.revenue;
		if (km->revenue_dirty)
			continue;
		c = Cell(ks, month, si, ti);
		c->revenue += row.revenue;
		if (!km->facts_dirty)
		{
			c->active += row.active;
			c->churned += row.churned;
			c->sessions += row.sessions;
		}
	}
	SPI_freetuptable(tt);

	if (ks->facts_dropped)
	{
		for (int p = 0; p < ks->nplans; p++)
			ids[p] = Int16GetDatum((int16) ks->plans[p].plan.plan_id);
		planarray = PointerGetDatum(construct_array(ids, ks->nplans, INT2OID, sizeof(int16), true, TYPALIGN_SHORT));
		args[0] = DateADTGetDatum((DateADT) cal_month_first_day(ks->cell0));
		args[1] = DateADTGetDatum((DateADT) cal_month_first_day(ks->cell1));
		DogdbSpiExecuteWithArgs("DELETE FROM dogdb_internal.kpi_facts WHERE month < $1 OR month > $2",
								2, argtypes, args, NULL, false, 0, SPI_OK_DELETE);
		DogdbSpiExecuteWithArgs("DELETE FROM dogdb_internal.kpi_facts WHERE plan_id <> ALL ($1)",
								1, &arraytype, &planarray, NULL, false, 0, SPI_OK_DELETE);
	}
	pfree(ids);
}

/*
 * The counts of a tile of accounts, [a0, a0 + n), for the months [cell0,
 * cell1], month by month: tile[(month - cell0) * KPI_FACTS_TILE + i].  The
 * facts read an account's months together; read from the month rows they
 * would be as many streams of memory as months, too many for the
 * hardware's prefetch, each of them a cache miss.  Copied a row at a time,
 * they are read in order.  The tiers go back the same way.
 */
static void
GatherTile(KpiState *ks, int32 a0, int n, int32 *tile)
{
	for (int32 month = ks->cell0; month <= ks->cell1; month++)
	{
		const int32 *counts = KpiMonthOf(ks, month)->counts;
		int32	   *dst = &tile[(Size) (month - ks->cell0) * KPI_FACTS_TILE];

		if (counts == NULL)
			memset(dst, 0, sizeof(int32) * n);
		else
			memcpy(dst, &counts[a0], sizeof(int32) * n);
	}
}

/* an account's churn month from month `from` on: the first without a session */
static int32
ChurnFrom(KpiState *ks, const int32 *tile, int i, int32 from)
{
	for (int32 month = from; month <= ks->current_month; month++)
		if (tile[(Size) (month - ks->cell0) * KPI_FACTS_TILE + i] == 0)
			return month;
	return CHURN_NONE;
}

/* add an account's revenue of a month to its cell; *tier: its tier, -1 if not known yet */
static void
AddRevenue(KpiState *ks, KpiAccount *a, int32 month, int *tier)
{
	ProrationResult r;
	int64		start = KpiMonthFirstDay(month);
	ProrationStatus st = prorate_account(start, KpiMonthFirstDay(month + 1),
										 &ks->spans[a->span0], a->nspans, &r);
	KpiCell    *c;

	if (st != PRORATION_OK)
		ReportProrationError(st, &r, ks->plans, ks->nplans, a->id, (DateADT) start);
	if (r.total_cents == 0)
		return;
	if (*tier < 0)
		*tier = KpiTierAt(ks, a, month);
	c = Cell(ks, month, a->size, *tier);
	if (pg_add_s64_overflow(c->revenue, r.total_cents, &c->revenue))
		ereport(ERROR,
				(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
				 errmsg("revenue out of range for type bigint")));
}

/*
 * The facts of accounts [begin, end): churn months from month m0 on
 * (earlier ones are known and unchanged), then the facts of the dirty
 * months, and their tiers where kept (the leader, or a parallel worker on
 * its own KpiState, kpi_facts_parallel.c)
 */
void
KpiFactsRange(KpiState *ks, int32 m0, int32 begin, int32 end)
{
	int32	   *dirty = palloc(sizeof(int32) * (ks->cell1 - ks->cell0 + 1));
	int			ndirty = 0;
	int32	   *tile;
	int16	   *tiers;

	for (int32 month = ks->cell0; month <= ks->cell1; month++)
		if (KpiMonthOf(ks, month)->facts_dirty)
			dirty[ndirty++] = month;
	tile = palloc(sizeof(int32) * (Size) (ks->cell1 - ks->cell0 + 1) * KPI_FACTS_TILE);
	tiers = palloc(sizeof(int16) * (Size) Max(ndirty, 1) * KPI_FACTS_TILE);
	for (int32 a0 = begin; a0 < end; a0 += KPI_FACTS_TILE)
	{
		int			n = Min(KPI_FACTS_TILE, end - a0);

		GatherTile(ks, a0, n, tile);
		for (int i = 0; i < n; i++)
		{
			int32		ai = a0 + i;
			KpiAccount *a = &ks->accounts[ai];
			int32	   *churn = &ks->churn[ai];
			int64		span_end;

			if (*churn == CHURN_UNKNOWN || *churn == CHURN_NONE || *churn >= m0)
			{
				int32		was = *churn;

				*churn = ChurnFrom(ks, tile, i, was == CHURN_UNKNOWN ? a->first_month : Max(a->first_month, m0));
				ks->churn_changed |= (*churn != was);
			}
			if (*churn != CHURN_NONE && KpiMonthOf(ks, *churn)->facts_dirty)
				Cell(ks, *churn, a->size, KpiTierAt(ks, a, *churn))->churned++;
			span_end = PG_INT64_MIN;
			for (int k = 0; k < a->nspans; k++)
				span_end = Max(span_end, ks->spans[a->span0 + k].end_day);

			for (int k = 0; k < ndirty; k++)
			{
				int32		month = dirty[k];
				KpiMonth   *km = KpiMonthOf(ks, month);
				int32		count = tile[(Size) (month - ks->cell0) * KPI_FACTS_TILE + i];
				int			tier = -1;

				if (count > 0)
				{
					KpiCell    *c = Cell(ks, month, a->size, tier = KpiTierAt(ks, a, month));

					c->active++;
					c->sessions += count;
				}
				/* revenue: months that meet one of its subscriptions (sorted by start) */
				if (a->nspans > 0 && km->revenue_dirty &&
					month >= ks->first_month && month <= ks->current_month &&
					KpiMonthFirstDay(month) < span_end && KpiMonthFirstDay(month + 1) > ks->spans[a->span0].first_day)
					AddRevenue(ks, a, month, &tier);
				if (km->tiers != NULL)
					tiers[(Size) k * KPI_FACTS_TILE + i] = (int16) (tier >= 0 ? tier : KpiTierAt(ks, a, month));
			}
		}
		for (int k = 0; k < ndirty; k++)
		{
			int16	   *dst = KpiMonthOf(ks, dirty[k])->tiers;

			if (dst != NULL)
				memcpy(&dst[a0], &tiers[(Size) k * KPI_FACTS_TILE], sizeof(int16) * n);
		}
		CHECK_FOR_INTERRUPTS();
	}
	pfree(tile);
	pfree(tiers);
	pfree(dirty);
}

/* the facts of every account: on two cores when there are enough */
void
KpiComputeFacts(KpiState *ks, int32 m0)
{
	ParallelContext *pcxt;
	int32		split;

	/* a full rebuild keeps every tier for storing the months */
	if (ks->keep_tiers)
		for (int32 month = ks->cell0; month <= ks->cell1; month++)
			if (KpiMonthOf(ks, month)->facts_dirty)
				KpiMonthOf(ks, month)->tiers = MemoryContextAllocExtended(ks->cxt, sizeof(int16) * Max(ks->naccounts, 1),
																		  MCXT_ALLOC_HUGE);
	pcxt = ks->keep_tiers ? KpiFactsLaunch(ks, m0, &split) : NULL;
	if (pcxt == NULL)
		split = ks->naccounts;
	KpiFactsRange(ks, m0, 0, split);
	if (pcxt != NULL)
		KpiFactsFinish(ks, pcxt, split);
}

/*
 * Write the cells that differ from dogdb_internal.kpi_facts; changed says which
 * KPIs (retention, usage, revenue) changed
 */
void
KpiStoreFacts(KpiState *ks, bool *changed)
{
	Oid			argtypes[7] = {DATEOID, TEXTOID, INT2OID, INT8OID, INT8OID, INT8OID, INT8OID};
	SPIPlanPtr	upsert = DogdbSpiPrepare("INSERT INTO dogdb_internal.kpi_facts (month, company_size, plan_id, active_accounts,"
										 " churned_accounts, sessions, revenue_cents) VALUES ($1, $2, $3, $4, $5, $6, $7)"
										 " ON CONFLICT ON CONSTRAINT kpi_facts_key DO UPDATE SET"
										 " active_accounts = $4, churned_accounts = $5, sessions = $6, revenue_cents = $7",
										 7, argtypes);
	SPIPlanPtr	del = DogdbSpiPrepare("DELETE FROM dogdb_internal.kpi_facts WHERE month = $1 AND company_size = $2 AND plan_id = $3",
									  3, argtypes);
	SPIPlanPtr	del_none = DogdbSpiPrepare("DELETE FROM dogdb_internal.kpi_facts WHERE month = $1 AND company_size = $2"
										   " AND plan_id IS NULL", 2, argtypes);
	Datum		sizes[KPI_NSIZES];

	for (int s = 0; s < KPI_NSIZES; s++)
		sizes[s] = CStringGetTextDatum(kpi_size_names[s]);
	changed[0] = changed[1] = changed[2] = ks->facts_dropped;
	ks->pub_unknown |= ks->facts_dropped;	/* rows deleted that no change notes */
	for (int32 month = ks->cell0; month <= ks->cell1; month++)
		for (int s = 0; s < KPI_NSIZES; s++)
			for (int t = 0; t <= ks->nplans; t++)
			{
				Size		i = CellIndex(ks, month, s, t);
				KpiCell    *c = &ks->cells[i];
				KpiCell    *o = &ks->old_cells[i];
				Datum		args[7];
				char		nulls[7] = {' ', ' ', ' ', ' ', ' ', ' ', ' '};
				bool		none = (t == ks->nplans);

				if (memcmp(c, o, sizeof(KpiCell)) == 0)
					continue;
				KpiNoteFactChange(ks, month, s, none ? KPI_NO_PLAN : (int16) ks->plans[t].plan.plan_id, o, c);
				changed[0] |= (c->active != o->active || c->churned != o->churned);
				changed[1] |= (c->active != o->active || c->sessions != o->sessions);
				changed[2] |= (c->revenue != o->revenue);
				args[0] = DateADTGetDatum((DateADT) cal_month_first_day(month));
				args[1] = sizes[s];
				args[2] = none ? (Datum) 0 : Int16GetDatum((int16) ks->plans[t].plan.plan_id);
				nulls[2] = none ? 'n' : ' ';
				args[3] = Int64GetDatum(c->active);
				args[4] = Int64GetDatum(c->churned);
				args[5] = Int64GetDatum(c->sessions);
				args[6] = Int64GetDatum(c->revenue);
				if (c->active != 0 || c->churned != 0 || c->sessions != 0 || c->revenue != 0)
					DogdbSpiCheck(SPI_execute_plan(upsert, args, nulls, false, 0), SPI_OK_INSERT, "store a KPI fact");
				else
					DogdbSpiCheck(SPI_execute_plan(none ? del_none : del, args, nulls, false, 0),
								  SPI_OK_DELETE, "delete a KPI fact");
			}
	SPI_freeplan(upsert);
	SPI_freeplan(del);
	SPI_freeplan(del_none);
}
