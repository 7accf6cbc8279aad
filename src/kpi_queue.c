/*-------------------------------------------------------------------------
 *
 * kpi_queue.c
 *	  The KPI engine's inputs (kpi.h): the queues its triggers fill
 *	  (dogdb_internal.kpi_dirty_months, kpi_dirty_accounts,
 *	  kpi_session_deltas), taken by a refresh.  Each queue's rows are read
 *	  and deleted with heap calls when the table is as the extension made
 *	  it (no statement to parse and plan: a refresh in a fresh connection
 *	  pays no planning for them); otherwise by DELETE ... RETURNING.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/heaptoast.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_type.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/date.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

/* the rows taken from a queue: columns at att[] of desc; tt: from SPI, to free */
typedef struct KpiQueueRows
{
	uint64		n;
	HeapTuple  *rows;
	TupleDesc	desc;
	AttrNumber	att[3];
	SPITupleTable *tt;
} KpiQueueRows;

/*
 * Take every row of the queue dogdb_internal.<table> visible to the
 * refresh's snapshot: each copied (values kept out of line read in) and
 * deleted, in place of DELETE ... RETURNING; the columns named are found
 * in the copies at q->att.  Only when the table is as made
 * (KpiTableAsMade, the columns there); false otherwise, nothing done.
 */
static bool
TakeQueue(KpiState *ks, const char *table, int ncolumns, const char *const *columns, KpiQueueRows *q)
{
	Relation	rel = table_open(DogdbInternalRelationId(table), RowExclusiveLock);
	TableScanDesc scan;
	HeapTuple	tup;
	uint64		cap = 16;
	bool		ok;

	ok = KpiTableAsMade(rel);
	for (int c = 0; ok && c < ncolumns; c++)
		ok = (q->att[c] = get_attnum(RelationGetRelid(rel), columns[c])) != InvalidAttrNumber;
	if (!ok)
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	q->desc = CreateTupleDescCopy(RelationGetDescr(rel));
	q->rows = palloc(sizeof(HeapTuple) * cap);
	q->n = 0;
	q->tt = NULL;
	scan = table_beginscan(rel, ks->snapshot, 0, NULL);
	while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		if (q->n == cap)
		{
			cap *= 2;
			q->rows = repalloc_huge(q->rows, sizeof(HeapTuple) * cap);
		}
		q->rows[q->n++] = HeapTupleHasExternal(tup) ? toast_flatten_tuple(tup, q->desc) : heap_copytuple(tup);
		simple_heap_delete(rel, &tup->t_self);
		CHECK_FOR_INTERRUPTS();
	}
	table_endscan(scan);
	table_close(rel, NoLock);
	CommandCounterIncrement();
	return true;
}

/*
 * Take the rows of a queue (a queue without rows is not deleted from: no
 * statement to plan); the SQL route when the table is not as made
 */
static void
ConsumeQueue(KpiState *ks, const char *table, int ncolumns, const char *const *columns, KpiQueueRows *q)
{
	StringInfoData query;

	if (TakeQueue(ks, table, ncolumns, columns, q))
		return;
	q->n = 0;
	q->tt = NULL;
	if (!KpiTableHasRows(DogdbInternalRelationId(table), ks->snapshot))
		return;
	initStringInfo(&query);
	appendStringInfo(&query, "DELETE FROM %s.%s RETURNING ", DOGDB_INTERNAL_SCHEMA, table);
	for (int c = 0; c < ncolumns; c++)
	{
		appendStringInfo(&query, "%s%s", c > 0 ? ", " : "", columns[c]);
		q->att[c] = c + 1;
	}
	/* DogdbSpi* run it unprepared: a queue with rows is read once a refresh */
	DogdbSpiExecute(query.data, false, 0, SPI_OK_DELETE_RETURNING);
	q->n = SPI_processed;
	q->tt = SPI_tuptable;
	q->rows = q->tt->vals;
	q->desc = q->tt->tupdesc;
}

/* a column of a queue row */
static Datum
QueueValue(const KpiQueueRows *q, uint64 i, int column, bool *isnull)
{
	return heap_getattr(q->rows[i], q->att[column], q->desc, isnull);
}

static void
FreeQueue(KpiQueueRows *q)
{
	if (q->tt != NULL)
		SPI_freetuptable(q->tt);
}

/* a date column's month; -infinity/infinity are the ends of the horizon */
static int32
QueueMonth(const KpiQueueRows *q, uint64 i, int column, int32 if_null)
{
	bool		isnull;
	DateADT		d = DatumGetDateADT(QueueValue(q, i, column, &isnull));

	if (isnull)
		return if_null;
	if (DATE_IS_NOBEGIN(d))
		return KPI_MIN_MONTH - 1;
	if (DATE_IS_NOEND(d))
		return KPI_MAX_MONTH + 1;
	return cal_month_of_day(d);
}

static void
QueueCorrupt(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("KPI engine input in %s is corrupt", "dogdb_internal.kpi_session_deltas"),
			 errhint("Run SELECT dogdb_refresh_kpis(true) to rebuild.")));
}

/* step: consume the marks, dirty accounts and session deltas */
void
KpiConsumeChanges(KpiState *ks, KpiChanges *ch)
{
	static const char *const month_columns[] = {"from_month", "to_month", "full_rebuild"};
	static const char *const account_columns[] = {"account_id"};
	static const char *const delta_columns[] = {"months", "account_ids", "sessions"};
	KpiQueueRows q;
	int			cap;

	ConsumeQueue(ks, "kpi_dirty_months", 3, month_columns, &q);
	ch->ranges = palloc(sizeof(int32) * 2 * Max(q.n, 1));
	ch->nranges = (int) q.n;
	for (uint64 i = 0; i < q.n; i++)
	{
		bool		isnull;

		ch->full |= DatumGetBool(QueueValue(&q, i, 2, &isnull)) && !isnull;
		ch->ranges[2 * i] = QueueMonth(&q, i, 0, KPI_MIN_MONTH);
		ch->ranges[2 * i + 1] = QueueMonth(&q, i, 1, KPI_MAX_MONTH + 1);
	}
	FreeQueue(&q);

	ConsumeQueue(ks, "kpi_dirty_accounts", 1, account_columns, &q);
	ch->accounts = palloc(sizeof(int64) * Max(q.n, 1));
	ch->naccounts = (int) q.n;
	for (uint64 i = 0; i < q.n; i++)
	{
		bool		isnull;

		ch->accounts[i] = DatumGetInt64(QueueValue(&q, i, 0, &isnull));
	}
	FreeQueue(&q);

	/* one row per statement that changed sessions: three arrays side by side */
	ConsumeQueue(ks, "kpi_session_deltas", 3, delta_columns, &q);
	ch->ndeltas = 0;
	cap = 1024;
	ch->delta_month = palloc(sizeof(int32) * cap);
	ch->delta_account = palloc(sizeof(int64) * cap);
	ch->delta_count = palloc(sizeof(int64) * cap);
	for (uint64 i = 0; i < q.n; i++)
	{
		static const Oid types[3] = {DATEOID, INT8OID, INT8OID};
		ArrayType  *arrays[3];
		int			n = 0;
		const DateADT *m;
		const int64 *a;
		const int64 *c;
		DateADT		last_day = DATEVAL_NOBEGIN;
		int32		last_month = KPI_MIN_MONTH - 1;

		/* read in place: one dimension, no NULL, of the types the triggers write */
		for (int col = 0; col < 3; col++)
		{
			bool		isnull;
			Datum		d = QueueValue(&q, i, col, &isnull);
			int			len;

			if (isnull)
				QueueCorrupt();
			arrays[col] = DatumGetArrayTypeP(d);
			len = ARR_NDIM(arrays[col]) == 0 ? 0 : ARR_DIMS(arrays[col])[0];
			if (ARR_NDIM(arrays[col]) > 1 || ARR_HASNULL(arrays[col]) ||
				ARR_ELEMTYPE(arrays[col]) != types[col] || (col > 0 && len != n))
				QueueCorrupt();
			n = len;
		}
		/* without NULLs the values follow the one-dimension header */
		m = (const DateADT *) ((char *) arrays[0] + ARR_OVERHEAD_NONULLS(1));
		a = (const int64 *) ((char *) arrays[1] + ARR_OVERHEAD_NONULLS(1));
		c = (const int64 *) ((char *) arrays[2] + ARR_OVERHEAD_NONULLS(1));
		if (ch->ndeltas + n > cap)
		{
			cap = Max(cap * 2, ch->ndeltas + n);
			ch->delta_month = repalloc_huge(ch->delta_month, sizeof(int32) * cap);
			ch->delta_account = repalloc_huge(ch->delta_account, sizeof(int64) * cap);
			ch->delta_count = repalloc_huge(ch->delta_count, sizeof(int64) * cap);
		}
		for (int j = 0; j < n; j++)
		{
			int			k = ch->ndeltas++;

			/* a statement's sessions are mostly of one day */
			if (m[j] != last_day)
			{
				last_day = m[j];
				last_month = DATE_IS_NOEND(last_day) ? KPI_MAX_MONTH + 1 :
					DATE_NOT_FINITE(last_day) ? KPI_MIN_MONTH - 1 : cal_month_of_day(last_day);
			}
			ch->delta_month[k] = last_month;
			ch->delta_account[k] = a[j];
			ch->delta_count[k] = c[j];
		}
		CHECK_FOR_INTERRUPTS();
	}
	FreeQueue(&q);
}
