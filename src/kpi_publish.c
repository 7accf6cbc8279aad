/*-------------------------------------------------------------------------
 *
 * kpi_publish.c
 *	  The KPI views (dogdb.kpi_retention, kpi_usage, kpi_revenue) brought
 *	  up to date by the facts that changed (kpi.h), not by a refresh.
 *
 * Design note.  Each view is a filter of dogdb_internal.kpi_facts, keyed
 * by (month, company_size, plan_id).  REFRESH MATERIALIZED VIEW
 * CONCURRENTLY recomputes the whole view, builds two temporary tables and
 * diffs them: 5-20 ms even when one fact changed, most of a small
 * refresh.  When the engine knows each changed fact's old and new values
 * (an incremental refresh), the view's rows are changed in place: under
 * the same lock REFRESH CONCURRENTLY takes (EXCLUSIVE: readers are not
 * blocked), the old row is found by the view's unique index and deleted,
 * the new one inserted into the heap and that index.  Every row the old
 * values say is there is checked against the row found; if the view is
 * not as expected (it has another index, is not populated, a row differs),
 * nothing is changed in place and the caller refreshes it the usual way.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/relscan.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/index.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "nodes/execnodes.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "calendar.h"
#include "common.h"
#include "kpi.h"

static const char *const view_names[3] = {"kpi_retention", "kpi_usage", "kpi_revenue"};

/* record a changed fact (kept in ks->pubcxt, for the caller) */
void
KpiNoteFactChange(KpiState *ks, int32 month, int size, int16 plan_id, const KpiCell *old, const KpiCell *new)
{
	KpiFactChange *c;

	if (ks->pubcxt == NULL)
		return;
	if (ks->npub == ks->pubcap)
	{
		ks->pubcap = Max(64, ks->pubcap * 2);
		ks->pub = ks->pub == NULL ? MemoryContextAlloc(ks->pubcxt, sizeof(KpiFactChange) * ks->pubcap) :
			repalloc(ks->pub, sizeof(KpiFactChange) * ks->pubcap);
	}
	c = &ks->pub[ks->npub++];
	c->month = month;
	c->size = size;
	c->plan_id = plan_id;
	c->old = *old;
	c->new = *new;
}

/* the view's columns after the key, from a fact; false if the view has no row for it */
static bool
ViewRow(int view, const KpiCell *c, int64 *v, int *nv)
{
	switch (view)
	{
		case 0:
			v[0] = c->active;
			v[1] = c->churned;
			*nv = 2;
			return c->active != 0 || c->churned != 0;
		case 1:
			v[0] = c->active;
			v[1] = c->sessions;
			*nv = 2;
			return c->active != 0 || c->sessions != 0;
		default:
			v[0] = c->revenue;
			*nv = 1;
			return c->revenue != 0;
	}
}

/* the view's key (month, company_size, plan_id) of a changed fact; nulls[2] when it has no plan */
static void
ViewKey(const KpiFactChange *c, Datum *values, bool *nulls)
{
	values[0] = KpiMonthDate(c->month);
	values[1] = CStringGetTextDatum(kpi_size_names[c->size]);
	values[2] = Int16GetDatum(c->plan_id);
	nulls[0] = nulls[1] = false;
	nulls[2] = (c->plan_id == KPI_NO_PLAN);
}

/*
 * The relation's one index, opened, if it is a plain unique key on its
 * first nkeys columns, as the extension makes them; else NULL (the views
 * here, and the engine's state tables, kpi_delta_key.c)
 */
Relation
KpiOpenKeyIndex(Relation rel, int nkeys)
{
	List	   *indexes = RelationGetIndexList(rel);
	Relation	idx;
	bool		ok;

	if (list_length(indexes) != 1)
		return NULL;
	idx = index_open(linitial_oid(indexes), RowExclusiveLock);
	ok = idx->rd_index->indisunique && idx->rd_index->indisvalid && idx->rd_index->indisready &&
		idx->rd_index->indnatts == nkeys && idx->rd_index->indnkeyatts == nkeys &&
		RelationGetIndexExpressions(idx) == NIL && RelationGetIndexPredicate(idx) == NIL;
	for (int k = 0; ok && k < nkeys; k++)
		ok = idx->rd_index->indkey.values[k] == k + 1;
	if (!ok)
	{
		index_close(idx, RowExclusiveLock);
		return NULL;
	}
	return idx;
}

/*
 * Is the engine's table as the extension made it, so that heap and index
 * calls may read and write it in place of SQL: a heap without a trigger, a
 * rule or row security, not a Citus table (whose local relation is a
 * shell)?
 */
bool
KpiTableAsMade(Relation rel)
{
	return rel->rd_rel->relam == HEAP_TABLE_AM_OID && rel->trigdesc == NULL && rel->rd_rules == NULL &&
		!rel->rd_rel->relrowsecurity && !DogdbIsDistributed(RelationGetRelid(rel));
}

/* the view's row of a key: its tid and values, false if none */
static bool
FindRow(Relation rel, Relation idx, Snapshot snap, TupleTableSlot *slot, const Datum *key,
		const bool *keynulls, ItemPointer tid)
{
	ScanKeyData skey[3];
	IndexScanDesc scan;
	bool		found;

	ScanKeyEntryInitialize(&skey[0], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_DATE_EQ, key[0]);
	ScanKeyEntryInitialize(&skey[1], 0, 2, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[1], F_TEXTEQ, key[1]);
	if (keynulls[2])
		ScanKeyEntryInitialize(&skey[2], SK_ISNULL | SK_SEARCHNULL, 3, InvalidStrategy, InvalidOid,
							   InvalidOid, InvalidOid, (Datum) 0);
	else
		ScanKeyEntryInitialize(&skey[2], 0, 3, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[2], F_INT2EQ, key[2]);
	scan = index_beginscan(rel, idx, snap, 3, 0);
	index_rescan(scan, skey, 3, NULL, 0);
	found = index_getnext_slot(scan, ForwardScanDirection, slot);
	if (found)
		*tid = slot->tts_tid;
	index_endscan(scan);
	return found;
}

/* apply the changes to one view; false (nothing changed) if it is not as expected */
static bool
PublishView(KpiState *ks, int view)
{
	Relation	rel = table_open(DogdbRelationId(view_names[view]), ExclusiveLock);
	Relation	idx = NULL;
	IndexInfo  *ii;
	Snapshot	snap;
	TupleTableSlot *slot;
	ItemPointerData *dead;
	int			ndead = 0;
	int		   *ins;			/* the changes that insert a row */
	int			nins = 0;
	bool		ok = true;

	if (rel->rd_rel->relkind != RELKIND_MATVIEW || !RelationIsPopulated(rel) ||
		(idx = KpiOpenKeyIndex(rel, 3)) == NULL)
	{
		table_close(rel, NoLock);
		return false;
	}
	ii = BuildIndexInfo(idx);
	CommandCounterIncrement();
	snap = RegisterSnapshot(GetLatestSnapshot());
	slot = table_slot_create(rel, NULL);
	dead = palloc(sizeof(ItemPointerData) * Max(ks->npub, 1));
	ins = palloc(sizeof(int) * Max(ks->npub, 1));

	/* first check every change against the view, then write */
	for (int i = 0; i < ks->npub && ok; i++)
	{
		KpiFactChange *c = &ks->pub[i];
		int64		ov[2],
					nv[2];
		int			n;
		bool		had = ViewRow(view, &c->old, ov, &n);
		bool		has = ViewRow(view, &c->new, nv, &n);
		Datum		key[3];
		bool		keynulls[3];
		ItemPointerData tid;
		bool		found;

		if (had == has && (!had || memcmp(ov, nv, sizeof(int64) * n) == 0))
			continue;
		if (has)
			ins[nins++] = i;
		ViewKey(c, key, keynulls);
		found = FindRow(rel, idx, snap, slot, key, keynulls, &tid);
		if (found != had)
			ok = false;
		else if (found)
		{
			slot_getallattrs(slot);
			for (int k = 0; k < n; k++)
				if (slot->tts_isnull[3 + k] || DatumGetInt64(slot->tts_values[3 + k]) != ov[k])
					ok = false;
			dead[ndead++] = tid;
		}
	}
	if (ok)
	{
		for (int i = 0; i < ndead; i++)
			simple_heap_delete(rel, &dead[i]);
		for (int i = 0; i < nins; i++)
		{
			KpiFactChange *c = &ks->pub[ins[i]];
			int64		nv[2];
			int			n;
			Datum		values[5];
			bool		nulls[5];
			HeapTuple	tup;

			(void) ViewRow(view, &c->new, nv, &n);
			ViewKey(c, values, nulls);
			for (int k = 0; k < n; k++)
			{
				values[3 + k] = Int64GetDatum(nv[k]);
				nulls[3 + k] = false;
			}
			tup = heap_form_tuple(RelationGetDescr(rel), values, nulls);
			heap_insert(rel, tup, GetCurrentCommandId(true), 0, NULL);
			index_insert(idx, values, nulls, &tup->t_self, rel, UNIQUE_CHECK_YES, false, ii);
			heap_freetuple(tup);
		}
		CommandCounterIncrement();
	}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	index_close(idx, NoLock);
	table_close(rel, NoLock);
	return ok;
}

/*
 * Bring the views whose facts changed up to date from the changes the
 * engine noted; published[v] says which it did (the others are to be
 * refreshed)
 */
void
KpiPublishFacts(KpiState *ks, const bool *changed, bool *published)
{
	for (int v = 0; v < 3; v++)
		published[v] = !changed[v] || (!ks->pub_unknown && PublishView(ks, v));
}
