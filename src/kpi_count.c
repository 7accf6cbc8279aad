/*-------------------------------------------------------------------------
 *
 * kpi_count.c
 *	  The KPI engine's hot loop (kpi.h): count the sessions of heap blocks
 *	  into a matrix of (month, account), page by page.
 *
 * The leader of a full rebuild and its parallel worker (kpi_parallel.c)
 * run the same loop over their chunks of dogdb.sessions; the serial count
 * (kpi_scan.c) runs it over every block.  A page is read with
 * heapgetpage(), which decides visibility for the whole page under the
 * snapshot the way a sequential scan does; the two columns are then read
 * in place from each visible tuple, without a per-tuple call into the
 * scan.  One scan, and so one buffer ring, serves all of a process's
 * chunks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/relscan.h"
#include "access/tableam.h"
#include "miscadmin.h"
#include "storage/bufmgr.h"
#include "utils/timestamp.h"

#include "common.h"
#include "kpi.h"

/* the month of each day of the horizon, filled by KpiInitDayMonths() */
static int16 kpi_day_month[366 * (KPI_NMONTHS / 12)];

static void
KpiInitDayMonths(void)
{
	if (kpi_day_month[lengthof(kpi_day_month) - 1] != 0)
		return;
	KpiInitMonthDays();
	StaticAssertStmt(KPI_MIN_MONTH == 0 && KPI_MAX_MONTH < PG_INT16_MAX, "months must fit an int16");
	Assert(KpiMonthFirstDay(KPI_MIN_MONTH) == 0);
	for (int32 m = KPI_MIN_MONTH; m <= KPI_MAX_MONTH; m++)
		for (int64 d = KpiMonthFirstDay(m); d < KpiMonthFirstDay(m + 1); d++)
			kpi_day_month[d] = (int16) m;
	/* the days after the horizon: never looked up, but marked filled */
	for (int64 d = KpiMonthFirstDay(KPI_MAX_MONTH + 1); d < (int64) lengthof(kpi_day_month); d++)
		kpi_day_month[d] = KPI_MAX_MONTH;
}

/*
 * The month of a timestamp, or KPI_MIN_MONTH - 1 if outside the horizon:
 * a lookup (KpiInitDayMonths first)
 */
static inline int32
HorizonMonth(TimestampTz ts)
{
	if (ts < 0 || ts >= KpiMonthFirstDay(KPI_MAX_MONTH + 1) * USECS_PER_DAY)
		return KPI_MIN_MONTH - 1;	/* also -infinity and infinity */
	/* the horizon starts at day 0, 2000-01-01 */
	return kpi_day_month[ts / USECS_PER_DAY];
}

int32
KpiHorizonMonth(TimestampTz ts)
{
	KpiInitDayMonths();
	return HorizonMonth(ts);
}

/* a session of account id at ts */
static inline void
CountOne(KpiCounter *kc, int64 id, TimestampTz ts)
{
	int64		index;
	int32		month;
	int32	   *row;

	if (kc->index_of != NULL)
	{
		if ((index = kc->index_of(kc->arg, id)) < 0)
			return;
	}
	else
	{
		uint64		off = (uint64) (id - kc->min_id);

		if (off >= (uint64) kc->dense_len)
			return;				/* no such account */
		index = kc->map == NULL ? (int64) off : kc->map[off];
		if (index < 0)
			return;
	}
	month = HorizonMonth(ts);
	if (unlikely(!KpiInHorizon(month)))
	{
		kc->outside++;
		return;
	}
	row = kc->rows[month - KPI_MIN_MONTH];
	if (unlikely(row == NULL))
	{
		row = kc->row_of(kc->arg, month);
		if (row == NULL)
		{
			kc->elsewhere(kc->arg, month, index);
			return;
		}
		kc->rows[month - KPI_MIN_MONTH] = row;
	}
	if (row[index] < PG_INT32_MAX)
		row[index]++;
}

void
KpiCountRow(KpiCounter *kc, int64 id, TimestampTz ts)
{
	KpiInitDayMonths();
	CountOne(kc, id, ts);
}

/*
 * Count the visible sessions of blocks [start, end) of the heap scan's
 * relation (a heap scan begun in page mode: an MVCC snapshot)
 */
void
KpiCountBlocks(TableScanDesc scan, BlockNumber start, BlockNumber end, KpiCounter *kc)
{
	HeapScanDesc hscan = (HeapScanDesc) scan;
	TupleDesc	desc = RelationGetDescr(scan->rs_rd);
	AttrNumber	acc = kc->account_att;
	AttrNumber	cre = kc->created_att;

	if (!(scan->rs_flags & SO_ALLOW_PAGEMODE))
		elog(ERROR, "the session count needs an MVCC snapshot");
	KpiInitDayMonths();
	for (BlockNumber blk = start; blk < end; blk++)
	{
		Page		page;

		heapgetpage(scan, blk);	/* checks for interrupts */
		page = BufferGetPage(hscan->rs_cbuf);
		for (int i = 0; i < hscan->rs_ntuples; i++)
		{
			ItemId		lp = PageGetItemId(page, hscan->rs_vistuples[i]);
			HeapTupleData tuple;
			bool		null1,
						null2;
			Datum		id;
			Datum		ts;

			tuple.t_data = (HeapTupleHeader) PageGetItem(page, lp);
			tuple.t_len = ItemIdGetLength(lp);
			id = DogdbHeapGetAttr(&tuple, acc, desc, &null1);
			ts = DogdbHeapGetAttr(&tuple, cre, desc, &null2);
			if (!null1 && !null2)
				CountOne(kc, DatumGetInt64(id), DatumGetTimestampTz(ts));
		}
	}
	/* the last page's pin goes with the scan, or with the next page */
}
