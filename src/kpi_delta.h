/*-------------------------------------------------------------------------
 *
 * kpi_delta.h
 *	  The KPI engine's refresh of session deltas alone (kpi_delta.c) and its
 *	  reads and writes of the state rows by their primary key
 *	  (kpi_delta_key.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_KPI_DELTA_H
#define DOGDB_KPI_DELTA_H

#include "storage/itemptr.h"
#include "utils/hsearch.h"

#include "kpi.h"

/* one (month, block) row of kpi_month_activity */
typedef struct DeltaRowKey
{
	int64		block;
	int64		month;
} DeltaRowKey;

typedef struct DeltaRow
{
	DeltaRowKey key;
	bool		found;			/* read from the table */
	bool		changed;		/* write it back */
	ItemPointerData tid;		/* where, if read by key */
	bytea	   *counts;			/* as stored (KpiSlotsCopy), changed in place */
	bytea	   *tiers;
} DeltaRow;

/* one block of kpi_churn_state (arrays of KPI_BLOCK_SLOTS, allocated when read) */
typedef struct DeltaBlock
{
	int64		block;
	bool		found;
	bool		changed;
	ItemPointerData tid;		/* where, if read by key */
	int16	   *first;
	int16	   *churn;			/* the data of churn_value, written back as is */
	char	   *size;
	bytea	   *churn_value;
} DeltaBlock;

#define DELTA_FIRST_BYTES (sizeof(int16) * KPI_BLOCK_SLOTS)
#define DELTA_CHURN_BYTES (sizeof(int16) * KPI_BLOCK_SLOTS)
#define DELTA_SIZE_BYTES KPI_BLOCK_SLOTS

/* a block's arrays, to be read into */
static inline void
DeltaBlockArrays(DeltaBlock *blk)
{
	blk->churn_value = KpiNewBytea(DELTA_CHURN_BYTES);
	blk->churn = (int16 *) VARDATA(blk->churn_value);
	blk->first = palloc(DELTA_FIRST_BYTES);
	blk->size = palloc(DELTA_SIZE_BYTES);
}

/* the difference to one fact */
typedef struct DeltaCell
{
	int32		month;
	int			size;
	int16		tier;
	KpiCell		d;
} DeltaCell;

/* an account's summed change in a month */
typedef struct DeltaChange
{
	int64		account;
	int32		month;
	int64		count;
} DeltaChange;

typedef struct DeltaState
{
	KpiState   *ks;
	HTAB	   *rows;
	HTAB	   *blocks;
	DeltaCell  *cells;
	int			ncells;
	int			cellcap;
	bool		missing;		/* a row needed is not stored */
	bool		rows_by_key;	/* rows and blocks read by key: written by tid */
	bool		blocks_by_key;
	/* the last block and row looked up (the changes come by account) */
	DeltaBlock *last_blk;
	DeltaRow   *last_row;
} DeltaState;

/* kpi_delta.c: the key of a cell's fact, false if the cell did not change */
extern bool KpiDeltaCellKey(const DeltaCell *dc, bool *changed, Datum *key, bool *keynull);

/* kpi_delta_key.c: by key, under the refresh's snapshot; false: not as made, go through SQL */
extern bool KpiDeltaReadBlocks(DeltaState *ds);
extern bool KpiDeltaReadRows(DeltaState *ds);
extern bool KpiDeltaWrite(DeltaState *ds, bool rows);
extern bool KpiDeltaWriteFacts(DeltaState *ds, bool *changed);

#endif							/* DOGDB_KPI_DELTA_H */
