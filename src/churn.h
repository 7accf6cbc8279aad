/*-------------------------------------------------------------------------
 *
 * churn.h
 *	  dogdb_account_churn's one-pass reader: the accounts and their
 *	  bitmaps (churn_scan.c), and the scan of the sessions, serial or with
 *	  parallel workers (churn_parallel.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_CHURN_H
#define DOGDB_CHURN_H

#include "utils/snapshot.h"

typedef struct ChurnAccount
{
	int64		id;
	int32		first;			/* UTC month of created_at */
	int32		last;			/* last month with a session, or INT32_MIN */
} ChurnAccount;

typedef struct ChurnScan
{
	ChurnAccount *accounts;
	int64		naccounts;
	int64		min_id;
	int64		max_id;
	int32	   *dense;			/* id - min_id -> position, or NULL */
	int64	   *sorted_ids;		/* when not dense: ids sorted ... */
	int32	   *sorted_pos;		/* ... and their positions */
	int32		w0;				/* month of bit 0 */
	int32		asof;			/* last month counted */
	int			nwords;			/* 64-bit words per account */
	uint64	   *bits;
} ChurnScan;

/* the position of account id, or -1 */
static inline int64
ChurnAccountPosition(const ChurnScan *cs, int64 id)
{
	int64		lo = 0,
				hi = cs->naccounts;

	if (cs->dense != NULL)
	{
		uint64		off = (uint64) id - (uint64) cs->min_id;

		return off <= (uint64) cs->max_id - (uint64) cs->min_id ? cs->dense[off] : -1;
	}
	while (lo < hi)
	{
		int64		mid = lo + (hi - lo) / 2;

		if (cs->sorted_ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < cs->naccounts && cs->sorted_ids[lo] == id ? cs->sorted_pos[lo] : -1;
}

/* the attribute number of a column of relid; an internal error if missing */
extern AttrNumber ChurnColumnNumber(Oid relid, const char *column);

/*
 * Every session of dogdb.sessions under the snapshot into cs's bitmaps and
 * its accounts' last months; false if a session is one the SQL route must
 * handle, or the table is not a heap.
 */
extern bool ChurnScanSessions(ChurnScan *cs, Snapshot snapshot);

#endif							/* DOGDB_CHURN_H */
