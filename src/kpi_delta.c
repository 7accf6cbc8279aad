/*-------------------------------------------------------------------------
 *
 * kpi_delta.c
 *	  The KPI engine's refresh of session deltas alone (kpi.h): the cost of
 *	  the change, not of the data.
 *
 * When the only changes queued are session count deltas and the current
 * month is the one the last refresh covered, the facts move by each
 * touched account's old and new contribution: in a month whose count goes
 * from old to new, its cell (month, size, tier) gains (new > 0) - (old > 0)
 * active accounts and new - old sessions; if its churn month moves (a
 * session lands in its churn month, or its last session of a month before
 * is removed), the churned count moves from the old month's cell to the
 * new one's.  The stored rows carry every slot's tier per month and each
 * account's first month, churn month and size, so nothing else is read:
 * the (month, block) rows the deltas touch (and, for an account whose
 * churn month may move forward, its block's later months), the account
 * blocks, and the facts rows the differences land on.
 *
 * Everything is read before anything is written; when a row the path
 * needs is missing (a month not covered, a damaged state) it returns
 * false and the caller takes the full path with the same changes.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"

#include "calendar.h"
#include "common.h"
#include "kpi_delta.h"

/*
 * The changes sorted by account, then month: a least significant digit
 * radix sort, stable, by month first (when there are several), then by the
 * account's offset from the least, RADIX_BITS a pass (two passes for a
 * million accounts).  A comparison sort took 80 ns a change.
 */
#define RADIX_BITS 11
#define RADIX_SIZE (1 << RADIX_BITS)

static inline uint64
ChangeKey(const DeltaChange *c, bool by_month, int64 lo)
{
	return by_month ? (uint64) ((int64) c->month - lo) : (uint64) c->account - (uint64) lo;
}

/* one stable pass of the digit at shift, from src to dst */
static void
RadixPass(const DeltaChange *src, DeltaChange *dst, int n, bool by_month, int64 lo, int shift)
{
	int			start[RADIX_SIZE + 1] = {0};

	for (int i = 0; i < n; i++)
		start[((ChangeKey(&src[i], by_month, lo) >> shift) & (RADIX_SIZE - 1)) + 1]++;
	for (int d = 0; d < RADIX_SIZE; d++)
		start[d + 1] += start[d];
	for (int i = 0; i < n; i++)
		dst[start[(ChangeKey(&src[i], by_month, lo) >> shift) & (RADIX_SIZE - 1)]++] = src[i];
}

static void
SortChanges(DeltaChange *ch, int n)
{
	DeltaChange *buf[2];
	int			cur = 0;
	int64		lo[2] = {PG_INT64_MAX, PG_INT32_MAX};	/* account, month */
	int64		hi[2] = {PG_INT64_MIN, PG_INT32_MIN};

	if (n < 2)
		return;
	for (int i = 0; i < n; i++)
	{
		lo[0] = Min(lo[0], ch[i].account);
		hi[0] = Max(hi[0], ch[i].account);
		lo[1] = Min(lo[1], ch[i].month);
		hi[1] = Max(hi[1], ch[i].month);
	}
	buf[0] = ch;
	buf[1] = palloc(sizeof(DeltaChange) * n);
	/* the month, the less significant key, first; then the account */
	for (int k = 1; k >= 0; k--)
	{
		uint64		range = (uint64) hi[k] - (uint64) lo[k];

		for (int shift = 0; shift < 64 && (range >> shift) != 0; shift += RADIX_BITS)
		{
			RadixPass(buf[cur], buf[1 - cur], n, k == 1, lo[k], shift);
			cur = 1 - cur;
		}
	}
	if (cur != 0)
		memcpy(ch, buf[1], sizeof(DeltaChange) * n);
	pfree(buf[1]);
}

/* the block of accounts, entered if enter (else it must be there) */
static DeltaBlock *
BlockOf(DeltaState *ds, int64 block, bool enter)
{
	bool		found;

	if (ds->last_blk != NULL && ds->last_blk->block == block)
		return ds->last_blk;
	ds->last_blk = hash_search(ds->blocks, &block, enter ? HASH_ENTER : HASH_FIND, &found);
	if (enter && !found)
		ds->last_blk->found = ds->last_blk->changed = false;
	return ds->last_blk;
}

/* the row (month, block), entered to be read if not yet */
static DeltaRow *
RowOf(DeltaState *ds, int32 month, int64 block)
{
	DeltaRowKey key;
	bool		found;
	DeltaRow   *row;

	if (ds->last_row != NULL && ds->last_row->key.block == block && ds->last_row->key.month == month)
		return ds->last_row;
	key.block = block;
	key.month = month;
	row = hash_search(ds->rows, &key, HASH_ENTER, &found);
	if (!found)
	{
		row->found = false;
		row->changed = false;
	}
	ds->last_row = row;
	return row;
}

/* a row that must have been read; NULL (and the path given up) if not stored */
static DeltaRow *
StoredRow(DeltaState *ds, int32 month, int64 block)
{
	DeltaRowKey key;
	DeltaRow   *row;

	if (ds->last_row != NULL && ds->last_row->key.block == block && ds->last_row->key.month == month)
		row = ds->last_row;
	else
	{
		key.block = block;
		key.month = month;
		row = hash_search(ds->rows, &key, HASH_FIND, NULL);
		if (row != NULL)
			ds->last_row = row;
	}
	if (row == NULL || !row->found)
	{
		ds->missing = true;
		return NULL;
	}
	return row;
}

/* the difference to the fact (month, size, tier) */
static KpiCell *
CellOf(DeltaState *ds, int32 month, int size, int16 tier)
{
	for (int i = 0; i < ds->ncells; i++)
		if (ds->cells[i].month == month && ds->cells[i].size == size && ds->cells[i].tier == tier)
			return &ds->cells[i].d;
	if (ds->ncells == ds->cellcap)
	{
		ds->cellcap *= 2;
		ds->cells = repalloc(ds->cells, sizeof(DeltaCell) * ds->cellcap);
	}
	ds->cells[ds->ncells].month = month;
	ds->cells[ds->ncells].size = size;
	ds->cells[ds->ncells].tier = tier;
	memset(&ds->cells[ds->ncells].d, 0, sizeof(KpiCell));
	return &ds->cells[ds->ncells++].d;
}

/* copy a stored bytea of the expected size; false if it has another */
static bool
CopyStored(void *dst, HeapTuple tup, TupleDesc desc, int col, Size n)
{
	bool		isnull;
	bytea	   *b = DatumGetByteaPP(SPI_getbinval(tup, desc, col, &isnull));

	if (isnull || VARSIZE_ANY_EXHDR(b) != n)
		return false;
	memcpy(dst, VARDATA_ANY(b), n);
	return true;
}

/* read the account blocks entered */
static void
ReadBlocks(DeltaState *ds)
{
	ArrayBuildState *ids = NULL;
	HASH_SEQ_STATUS seq;
	DeltaBlock *blk;
	Oid			argtype = INT8ARRAYOID;
	Datum		arg;
	SPITupleTable *tt;
	uint64		n;

	if ((ds->blocks_by_key = KpiDeltaReadBlocks(ds)))
		return;
	hash_seq_init(&seq, ds->blocks);
	while ((blk = hash_seq_search(&seq)) != NULL)
		ids = accumArrayResult(ids, Int64GetDatum(blk->block), false, INT8OID, CurrentMemoryContext);
	arg = makeArrayResult(ids, CurrentMemoryContext);
	n = KpiQuery(ds->ks, "SELECT block, first_months, churn_months, company_sizes"
				 " FROM dogdb_internal.kpi_churn_state WHERE block = ANY ($1)",
				 1, &argtype, &arg, true, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		int64		block = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));

		blk = hash_search(ds->blocks, &block, HASH_FIND, NULL);
		if (blk == NULL)
			continue;
		DeltaBlockArrays(blk);
		blk->found = CopyStored(blk->first, tt->vals[i], tt->tupdesc, 2, DELTA_FIRST_BYTES) &&
			CopyStored(blk->churn, tt->vals[i], tt->tupdesc, 3, DELTA_CHURN_BYTES) &&
			CopyStored(blk->size, tt->vals[i], tt->tupdesc, 4, DELTA_SIZE_BYTES);
	}
	SPI_freetuptable(tt);
}

/* read the (month, block) rows entered */
static void
ReadRows(DeltaState *ds)
{
	ArrayBuildState *months = NULL;
	ArrayBuildState *blocks = NULL;
	HASH_SEQ_STATUS seq;
	DeltaRow   *row;
	Oid			argtypes[2] = {DATEARRAYOID, INT8ARRAYOID};
	Datum		args[2];
	SPITupleTable *tt;
	uint64		n;

	if ((ds->rows_by_key = KpiDeltaReadRows(ds)))
		return;
	hash_seq_init(&seq, ds->rows);
	while ((row = hash_seq_search(&seq)) != NULL)
	{
		months = accumArrayResult(months, KpiMonthDate((int32) row->key.month), false, DATEOID, CurrentMemoryContext);
		blocks = accumArrayResult(blocks, Int64GetDatum(row->key.block), false, INT8OID, CurrentMemoryContext);
	}
	args[0] = makeArrayResult(months, CurrentMemoryContext);
	args[1] = makeArrayResult(blocks, CurrentMemoryContext);
	n = KpiQuery(ds->ks, "SELECT k.month, k.block, k.session_counts, k.plan_ids"
				 " FROM unnest($1, $2) u(m, b) JOIN dogdb_internal.kpi_month_activity k"
				 " ON k.month = u.m AND k.block = u.b", 2, argtypes, args, true, SPI_OK_SELECT);
	tt = SPI_tuptable;
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull,
					null_counts,
					null_tiers;
		Datum		counts,
					tiers;
		DeltaRowKey key;

		key.month = KpiDateMonth(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		key.block = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 2, &isnull));
		row = hash_search(ds->rows, &key, HASH_FIND, NULL);
		if (row == NULL)
			continue;
		counts = SPI_getbinval(tt->vals[i], tt->tupdesc, 3, &null_counts);
		tiers = SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &null_tiers);
		row->counts = null_counts ? NULL : KpiSlotsCopy(counts, false);
		row->tiers = null_tiers ? NULL : KpiSlotsCopy(tiers, true);
		row->found = row->counts != NULL && row->tiers != NULL;
	}
	SPI_freetuptable(tt);
}

/*
 * Apply one account's changes (sorted by month) to the rows, its churn
 * month and the differences of the facts
 */
static void
ApplyAccount(DeltaState *ds, const DeltaChange *ch, int n)
{
	int32		current = ds->ks->current_month;
	int64		block = KpiBlockOf(ch[0].account);
	int			slot = KpiSlotOf(ch[0].account);
	DeltaBlock *blk = BlockOf(ds, block, false);
	int32		first = blk->first[slot];
	int			size = (unsigned char) blk->size[slot];

	for (int i = 0; i < n && !ds->missing; i++)
	{
		int32		month = ch[i].month;
		DeltaRow   *row = StoredRow(ds, month, block);
		int32		old;
		int32		new;
		int32		churn;
		int32		churn_new;
		KpiCell    *c;

		if (row == NULL)
			return;
		old = KpiSlotGet(row->counts, slot, false);
		new = (int32) Max(0, Min((int64) old + ch[i].count, PG_INT32_MAX));
		if (new == old)
			continue;
		row->counts = KpiCountsSet(row->counts, slot, new);
		row->changed = true;
		c = CellOf(ds, month, size, (int16) KpiSlotGet(row->tiers, slot, true));
		c->active += (new > 0) - (old > 0);
		c->sessions += (int64) new - old;

		/* churn: the first month from the first month on without a session */
		if (month < first || month > current)
			continue;
		churn = churn_new = blk->churn[slot];
		if (old == 0 && new > 0 && churn == month)
		{
			churn_new = CHURN_NONE;
			for (int32 m = month + 1; m <= current; m++)
			{
				DeltaRow   *later = StoredRow(ds, m, block);

				if (later == NULL)
					return;
				if (KpiSlotGet(later->counts, slot, false) == 0)
				{
					churn_new = m;
					break;
				}
			}
		}
		else if (old > 0 && new == 0 && (churn == CHURN_NONE || churn > month))
			churn_new = month;
		if (churn_new == churn)
			continue;
		if (churn != CHURN_NONE)
		{
			DeltaRow   *at = StoredRow(ds, churn, block);

			if (at == NULL)
				return;
			CellOf(ds, churn, size, (int16) KpiSlotGet(at->tiers, slot, true))->churned--;
		}
		if (churn_new != CHURN_NONE)
		{
			DeltaRow   *at = StoredRow(ds, churn_new, block);

			if (at == NULL)
				return;
			CellOf(ds, churn_new, size, (int16) KpiSlotGet(at->tiers, slot, true))->churned++;
		}
		blk->churn[slot] = (int16) churn_new;
		blk->changed = true;
	}
}

/* run an UPDATE ... FROM unnest($1 ... $n) of the arrays built, if any */
static void
UpdateFromArrays(const char *query, int n, ArrayBuildState **arrs, Oid *argtypes)
{
	Datum		args[3];

	Assert(n <= lengthof(args));
	if (arrs[0] == NULL)
		return;
	for (int i = 0; i < n; i++)
		args[i] = makeArrayResult(arrs[i], CurrentMemoryContext);
	KpiExecute(query, n, argtypes, args, NULL, SPI_OK_UPDATE);
}

/* write the changed rows and blocks back */
static void
WriteState(DeltaState *ds)
{
	ArrayBuildState *arrs[3] = {NULL, NULL, NULL};
	HASH_SEQ_STATUS seq;
	DeltaRow   *row;
	DeltaBlock *blk;

	if (!(ds->rows_by_key && KpiDeltaWrite(ds, true)))
	{
		hash_seq_init(&seq, ds->rows);
		while ((row = hash_seq_search(&seq)) != NULL)
		{
			if (!row->changed)
				continue;
			arrs[0] = accumArrayResult(arrs[0], KpiMonthDate((int32) row->key.month), false, DATEOID, CurrentMemoryContext);
			arrs[1] = accumArrayResult(arrs[1], Int64GetDatum(row->key.block), false, INT8OID, CurrentMemoryContext);
			arrs[2] = accumArrayResult(arrs[2], PointerGetDatum(row->counts), false, BYTEAOID, CurrentMemoryContext);
		}
		UpdateFromArrays("UPDATE dogdb_internal.kpi_month_activity k SET session_counts = u.c"
						 " FROM unnest($1, $2, $3) u(m, b, c) WHERE k.month = u.m AND k.block = u.b",
						 3, arrs, (Oid[]) {DATEARRAYOID, INT8ARRAYOID, BYTEAARRAYOID});
	}

	if (ds->blocks_by_key && KpiDeltaWrite(ds, false))
		return;
	arrs[0] = arrs[1] = NULL;
	hash_seq_init(&seq, ds->blocks);
	while ((blk = hash_seq_search(&seq)) != NULL)
	{
		if (!blk->changed)
			continue;
		arrs[0] = accumArrayResult(arrs[0], Int64GetDatum(blk->block), false, INT8OID, CurrentMemoryContext);
		arrs[1] = accumArrayResult(arrs[1], PointerGetDatum(blk->churn_value), false, BYTEAOID,
								   CurrentMemoryContext);
	}
	UpdateFromArrays("UPDATE dogdb_internal.kpi_churn_state k SET churn_months = u.c"
					 " FROM unnest($1, $2) u(b, c) WHERE k.block = u.b",
					 2, arrs, (Oid[]) {INT8ARRAYOID, BYTEAARRAYOID});
}

/*
 * The key of the fact a cell's differences go to (month, company_size,
 * plan_id, keynull: no plan), the views they change noted in changed;
 * false if the cell has none
 */
bool
KpiDeltaCellKey(const DeltaCell *dc, bool *changed, Datum *key, bool *keynull)
{
	if (dc->d.active == 0 && dc->d.churned == 0 && dc->d.sessions == 0)
		return false;
	changed[0] |= (dc->d.active != 0 || dc->d.churned != 0);
	changed[1] |= (dc->d.active != 0 || dc->d.sessions != 0);
	key[0] = KpiMonthDate(dc->month);
	key[1] = CStringGetTextDatum(kpi_size_names[dc->size]);
	key[2] = Int16GetDatum(dc->tier);
	*keynull = dc->tier == KPI_NO_PLAN;
	return true;
}

/* add the differences to dogdb_internal.kpi_facts; a fact that becomes all zero is deleted */
static void
WriteFacts(DeltaState *ds, bool *changed)
{
	Oid			argtypes[7] = {DATEOID, TEXTOID, INT2OID, INT8OID, INT8OID, INT8OID, INT8OID};
	static const char *const add =
		"INSERT INTO dogdb_internal.kpi_facts AS f (month, company_size, plan_id,"
		" active_accounts, churned_accounts, sessions, revenue_cents)"
		" VALUES ($1, $2, $3, $4, $5, $6, 0)"
		" ON CONFLICT ON CONSTRAINT kpi_facts_key DO UPDATE SET"
		" active_accounts = f.active_accounts + $4, churned_accounts = f.churned_accounts + $5,"
		" sessions = f.sessions + $6"
		" RETURNING active_accounts, churned_accounts, sessions, revenue_cents";
	static const char *const del =
		"DELETE FROM dogdb_internal.kpi_facts WHERE month = $1 AND company_size = $2"
		" AND plan_id IS NOT DISTINCT FROM $3";

	if (KpiDeltaWriteFacts(ds, changed))
		return;
	for (int i = 0; i < ds->ncells; i++)
	{
		DeltaCell  *dc = &ds->cells[i];
		Datum		args[6];
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		bool		isnull;
		SPITupleTable *tt;
		KpiCell		old;
		KpiCell		new;
		bool		no_plan;

		if (!KpiDeltaCellKey(dc, changed, args, &no_plan))
			continue;
		nulls[2] = no_plan ? 'n' : ' ';
		args[3] = Int64GetDatum(dc->d.active);
		args[4] = Int64GetDatum(dc->d.churned);
		args[5] = Int64GetDatum(dc->d.sessions);
		KpiExecute(add, 6, argtypes, args, nulls, SPI_OK_INSERT_RETURNING);
		if (SPI_processed != 1)
			elog(ERROR, "KPI fact upsert returned " UINT64_FORMAT " rows", SPI_processed);
		tt = SPI_tuptable;
		new.active = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 1, &isnull));
		new.churned = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 2, &isnull));
		new.sessions = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 3, &isnull));
		new.revenue = DatumGetInt64(SPI_getbinval(tt->vals[0], tt->tupdesc, 4, &isnull));
		SPI_freetuptable(tt);
		old.active = new.active - dc->d.active;
		old.churned = new.churned - dc->d.churned;
		old.sessions = new.sessions - dc->d.sessions;
		old.revenue = new.revenue;
		KpiNoteFactChange(ds->ks, dc->month, dc->size, dc->tier, &old, &new);
		if (new.active == 0 && new.churned == 0 && new.sessions == 0 && new.revenue == 0)
			KpiExecute(del, 3, argtypes, args, nulls, SPI_OK_DELETE);
	}
}

/*
 * The refresh of session deltas alone; false (nothing written) if a row it
 * needs is not stored or a delta is outside the horizon
 */
bool
KpiApplySessionDeltas(KpiState *ks, int ndeltas, const int32 *months, const int64 *accounts,
					  const int64 *counts, bool *changed, int *months_done)
{
	DeltaState	ds;
	DeltaChange *ch = palloc(sizeof(DeltaChange) * ndeltas);
	int			nch = 0;
	HASHCTL		ctl;
	bool		seen[KPI_NMONTHS] = {false};

	memset(&ds, 0, sizeof(ds));
	ds.ks = ks;
	/* sum per account and month */
	for (int i = 0; i < ndeltas; i++)
	{
		if (!KpiInHorizon(months[i]))
			return false;		/* the full path warns */
		ch[i].account = accounts[i];
		ch[i].month = months[i];
		ch[i].count = counts[i];
	}
	SortChanges(ch, ndeltas);
	for (int i = 0; i < ndeltas; i++)
	{
		if (nch > 0 && ch[nch - 1].account == ch[i].account && ch[nch - 1].month == ch[i].month)
			ch[nch - 1].count += ch[i].count;
		else
			ch[nch++] = ch[i];
	}

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(DeltaBlock);
	ctl.hcxt = CurrentMemoryContext;
	ds.blocks = hash_create("KPI delta blocks", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(DeltaRowKey);
	ctl.entrysize = sizeof(DeltaRow);
	ds.rows = hash_create("KPI delta rows", 1024, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ds.cellcap = 64;
	ds.cells = palloc(sizeof(DeltaCell) * ds.cellcap);

	for (int i = 0; i < nch; i++)
		(void) BlockOf(&ds, KpiBlockOf(ch[i].account), true);
	ReadBlocks(&ds);

	/* the rows: the deltas', and those churn may read */
	for (int i = 0; i < nch; i++)
	{
		int64		block = KpiBlockOf(ch[i].account);
		int			slot = KpiSlotOf(ch[i].account);
		DeltaBlock *blk = BlockOf(&ds, block, false);
		int32		first;
		int32		churn;

		if (!blk->found || blk->first[slot] == KPI_NO_ACCOUNT)
			continue;			/* no such account: its sessions count nowhere */
		RowOf(&ds, ch[i].month, block);
		first = blk->first[slot];
		churn = blk->churn[slot];
		/* a change after the churn month cannot move it */
		if (ch[i].month < first || ch[i].month > ks->current_month || churn == CHURN_NONE ||
			ch[i].month > churn)
			continue;
		for (int32 m = ch[i].month; m <= ks->current_month; m++)
			RowOf(&ds, m, block);
	}
	if (hash_get_num_entries(ds.rows) > 0)
		ReadRows(&ds);

	for (int i = 0; i < nch && !ds.missing;)
	{
		int			j = i + 1;
		DeltaBlock *blk = BlockOf(&ds, KpiBlockOf(ch[i].account), false);

		while (j < nch && ch[j].account == ch[i].account)
			j++;
		if (blk->found && blk->first[KpiSlotOf(ch[i].account)] != KPI_NO_ACCOUNT)
			ApplyAccount(&ds, &ch[i], j - i);
		i = j;
		CHECK_FOR_INTERRUPTS();
	}
	if (ds.missing)
		return false;

	WriteState(&ds);
	WriteFacts(&ds, changed);
	for (int i = 0; i < nch; i++)
		seen[ch[i].month - KPI_MIN_MONTH] = true;
	*months_done = 0;
	for (int m = 0; m < KPI_NMONTHS; m++)
		*months_done += seen[m];
	return true;
}
