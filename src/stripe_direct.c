/*-------------------------------------------------------------------------
 *
 * stripe_direct.c
 *	  The store operations of Stripe ingestion as heap and index calls
 *	  (tables checked and opened by stripe_store.c).
 *
 * Design note.  Each operation does what its SQL statement in
 * stripe_sql.c does, with the executor's own pieces:
 *
 * - insert if absent (INSERT ... ON CONFLICT (pkey) DO NOTHING): the
 *   speculative insertion of ExecInsert(): ExecCheckIndexConstraints()
 *   looks for a conflicting row with a dirty snapshot and waits for its
 *   inserter; if there is none, the row is inserted with a speculative
 *   token, its index entries are inserted (the primary key's in the
 *   "partial" unique mode), and if one of them met a conflicting entry
 *   meanwhile the row is killed and it all starts again.  So two
 *   deliveries of one event at the same moment give one ledger row,
 *   through this route or SQL or both.
 * - newest-wins upsert (ON CONFLICT DO UPDATE ... WHERE old < new): the
 *   same, and on a conflict the row is locked as ExecOnConflictUpdate()
 *   does (a concurrent update or delete starts it again), compared on the
 *   locked version and replaced by the new row if older.
 * - lookups: an index scan with a fresh MVCC snapshot.
 *
 * Like SPI, each operation advances the command counter first, so it sees
 * what the previous ones wrote.  Values are formed by the caller in the
 * table's column order; a NULL in a NOT NULL column is refused as SQL
 * would, and the tables' own CHECK constraints hold by construction (see
 * stripe_store.c, which refuses a table with any other).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/heapam.h"
#include "access/toast_compression.h"
#include "access/toast_internals.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "stripe.h"

/* advance the command counter as SPI does before a statement */
static CommandId
NextCommand(void)
{
	CommandCounterIncrement();
	return GetCurrentCommandId(true);
}

/* the new row into dr->slot (values in column order) */
static void
FillSlot(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n)
{
	TupleTableSlot *slot;
	TupleDesc	desc = RelationGetDescr(dr->rel);

	StripeDirectForWrite(cx, dr);
	slot = dr->slot;
	ExecClearTuple(slot);
	for (int i = 0; i < desc->natts; i++)
	{
		if (n[i] && TupleDescAttr(desc, i)->attnotnull)
			ereport(ERROR,
					(errcode(ERRCODE_NOT_NULL_VIOLATION),
					 errmsg("null value in column \"%s\" of relation \"%s\" violates not-null constraint",
							NameStr(TupleDescAttr(desc, i)->attname), RelationGetRelationName(dr->rel))));
		slot->tts_values[i] = v[i];
		slot->tts_isnull[i] = n[i];
	}
	ExecStoreVirtualTuple(slot);
}

/*
 * Insert dr->slot unless a row with its primary key exists (ExecInsert's
 * speculative insertion).  False and *conflict set if one exists.  The
 * ledger's arrival is drawn once, when the row is first found absent.
 *
 * optimistic: where a conflict is rare (the ledger, the versions, the
 * mapping), the first attempt skips the pre-check: the primary key's entry
 * is inserted in the "partial" unique mode, which reports any conflicting
 * entry, live or in progress, so a conflict only costs a killed row and
 * the normal loop, whose pre-check then finds (or waits for) the other row.
 */
static bool
SpeculativeInsert(StripeCtx *cx, StripeDirectRel *dr, CommandId cid, ItemPointer conflict,
				  bool optimistic)
{
	bool		arrival_set = false;
	bool		precheck = !optimistic;

	for (;;)
	{
		bool		spec_conflict = false;
		uint32		token;

		CHECK_FOR_INTERRUPTS();
		if (precheck &&
			!ExecCheckIndexConstraints(dr->rri, dr->slot, cx->estate, conflict, dr->arbiter))
			return false;
		precheck = true;
		if (OidIsValid(dr->arrival_seq) && !arrival_set)
		{
			/* as SQL draws an identity: no privilege on the sequence needed */
			dr->slot->tts_values[STRIPE_EV_ARRIVAL] = Int64GetDatum(nextval_internal(dr->arrival_seq, false));
			arrival_set = true;
		}
		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(dr->rel, dr->slot, cid, 0, NULL, token);
		list_free(ExecInsertIndexTuples(dr->rri, dr->slot, cx->estate, false, true,
										&spec_conflict, dr->arbiter));
		table_tuple_complete_speculative(dr->rel, dr->slot, token, !spec_conflict);
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		ResetPerTupleExprContext(cx->estate);
		if (!spec_conflict)
			return true;
	}
}

/*
 * The raw payload as an inline compressed datum, as the toaster would store
 * it in a longer row: a delivery (about 1.5 kB of JSON) is under the
 * toaster's threshold, so it would be stored, extended onto new pages and
 * written to WAL at full size.  The column's compression method if set,
 * else lz4; without lz4 (and pglz costs more CPU than it saves) as is.
 * Readers see the same text.
 */
static Datum
CompressPayload(StripeDirectRel *dr, Datum d)
{
	char		cm = TupleDescAttr(RelationGetDescr(dr->rel), STRIPE_EV_PAYLOAD)->attcompression;
	Datum		c;

	if (!CompressionMethodIsValid(cm))
	{
#ifdef USE_LZ4
		cm = TOAST_LZ4_COMPRESSION;
#else
		return d;
#endif
	}
	c = toast_compress_datum(d, cm);
	return c != (Datum) 0 ? c : d;
}

int64
StripeDirectLedgerInsert(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n)
{
	ItemPointerData conflict;
	CommandId	cid = NextCommand();

	v[STRIPE_EV_ARRIVAL] = Int64GetDatum(0);	/* drawn when inserted */
	n[STRIPE_EV_ARRIVAL] = false;
	v[STRIPE_EV_RECEIVED] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	n[STRIPE_EV_RECEIVED] = false;
	v[STRIPE_EV_PAYLOAD] = CompressPayload(dr, v[STRIPE_EV_PAYLOAD]);
	FillSlot(cx, dr, v, n);
	if (!SpeculativeInsert(cx, dr, cid, &conflict, true))
		return 0;
	return DatumGetInt64(dr->slot->tts_values[STRIPE_EV_ARRIVAL]);
}

bool
StripeDirectInsertIfAbsent(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n)
{
	ItemPointerData conflict;
	CommandId	cid = NextCommand();

	FillSlot(cx, dr, v, n);
	return SpeculativeInsert(cx, dr, cid, &conflict, true);
}

/* is the event of the new row (created, rank, arrival) greater than the existing row's? */
static bool
NewerThanExisting(StripeDirectRel *dr, int evcol)
{
	TupleTableSlot *ex = dr->existing;
	bool		isnull;
	TimestampTz c_old = DatumGetTimestampTz(slot_getattr(ex, evcol + 2, &isnull));
	int16		r_old = DatumGetInt16(slot_getattr(ex, evcol + 3, &isnull));
	int64		a_old = DatumGetInt64(slot_getattr(ex, evcol + 4, &isnull));
	TimestampTz c_new = DatumGetTimestampTz(dr->slot->tts_values[evcol + 1]);
	int16		r_new = DatumGetInt16(dr->slot->tts_values[evcol + 2]);
	int64		a_new = DatumGetInt64(dr->slot->tts_values[evcol + 3]);

	if (c_old != c_new)
		return c_old < c_new;
	if (r_old != r_new)
		return r_old < r_new;
	return a_old < a_new;
}

/*
 * Newest-wins upsert.  The first event of an object's life (rank 1:
 * created, succeeded, failed, a refund listed by its charge) usually finds
 * no row, so its first attempt skips the pre-check as the ledger's does
 * (an existing row then costs a killed row and the normal loop).
 */
StripeOutcome
StripeDirectUpsert(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n, bool *inserted)
{
	CommandId	cid = NextCommand();
	bool		optimistic;

	Assert(dr->evcol >= 0);
	FillSlot(cx, dr, v, n);
	optimistic = DatumGetInt16(dr->slot->tts_values[dr->evcol + 2]) == 1;
	for (;;)
	{
		ItemPointerData conflict;
		TM_FailureData tmfd;
		TM_Result	res;
		LockTupleMode lockmode;
		bool		update_indexes;

		if (SpeculativeInsert(cx, dr, cid, &conflict, optimistic))
		{
			*inserted = true;
			return STRIPE_APPLIED;
		}
		/* lock the row found, as ExecOnConflictUpdate() does */
		optimistic = false;
		res = table_tuple_lock(dr->rel, &conflict, GetActiveSnapshot(), dr->existing, cid,
							   LockTupleNoKeyExclusive, LockWaitBlock, 0, &tmfd);
		if (res == TM_Updated || res == TM_Deleted)
		{
			ExecClearTuple(dr->existing);
			continue;			/* changed meanwhile: start again */
		}
		if (res != TM_Ok)
			elog(ERROR, "unexpected result %d locking a row of \"%s\"", (int) res,
				 RelationGetRelationName(dr->rel));
		if (!NewerThanExisting(dr, dr->evcol))
		{
			ExecClearTuple(dr->existing);
			return STRIPE_STALE;
		}
		CheckCmdReplicaIdentity(dr->rel, CMD_UPDATE);
		res = table_tuple_update(dr->rel, &conflict, dr->slot, cid, GetActiveSnapshot(),
								 InvalidSnapshot, true, &tmfd, &lockmode, &update_indexes);
		if (res != TM_Ok)
			elog(ERROR, "unexpected result %d updating a locked row of \"%s\"", (int) res,
				 RelationGetRelationName(dr->rel));
		if (update_indexes)
			list_free(ExecInsertIndexTuples(dr->rri, dr->slot, cx->estate, true, false, NULL, NIL));
		ResetPerTupleExprContext(cx->estate);
		ExecClearTuple(dr->existing);
		*inserted = false;
		return STRIPE_APPLIED;
	}
}

/* an index scan of dr's lookup index for key, with a fresh snapshot */
static IndexScanDesc
BeginLookup(StripeDirectRel *dr, const char *key, Relation *index, Snapshot *snap, ScanKeyData *sk)
{
	IndexScanDesc scan;

	(void) NextCommand();
	*snap = RegisterSnapshot(GetLatestSnapshot());
	*index = index_open(dr->lookup_index, AccessShareLock);
	ScanKeyEntryInitialize(sk, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   (*index)->rd_indcollation[0], F_TEXTEQ, CStringGetTextDatum(key));
	scan = index_beginscan(dr->rel, *index, *snap, 1, 0);
	index_rescan(scan, sk, 1, NULL, 0);
	return scan;
}

static void
EndLookup(IndexScanDesc scan, Relation index, Snapshot snap)
{
	index_endscan(scan);
	index_close(index, NoLock);
	UnregisterSnapshot(snap);
}

/* the int8 column resultcol of the first row whose lookup column is key; 0 if none */
int64
StripeDirectLookup(StripeCtx *cx, StripeDirectRel *dr, const char *key, int resultcol)
{
	Relation	index;
	Snapshot	snap;
	ScanKeyData sk;
	IndexScanDesc scan = BeginLookup(dr, key, &index, &snap, &sk);
	int64		result = 0;

	if (index_getnext_slot(scan, ForwardScanDirection, dr->existing))
	{
		bool		isnull;
		Datum		d = slot_getattr(dr->existing, resultcol + 1, &isnull);

		if (!isnull)
			result = DatumGetInt64(d);
	}
	ExecClearTuple(dr->existing);
	EndLookup(scan, index, snap);
	return result;
}

/*
 * The events waiting for link (stripe_waiting) that arrived before
 * horizon, by arrival, with their payloads from the ledger (by event id).
 */
int
StripeDirectLinked(StripeCtx *cx, StripeDirectRel *waiting, StripeDirectRel *events,
				   const char *link, int64 horizon, int64 **arrivals, text ***payloads)
{
	Relation	index;
	Snapshot	snap;
	ScanKeyData sk;
	IndexScanDesc scan = BeginLookup(waiting, link, &index, &snap, &sk);
	int			n = 0;
	int			found = 0;
	int			cap = 0;
	char	  **ids = NULL;

	/* the primary key (link_id, arrival): in arrival order */
	while (index_getnext_slot(scan, ForwardScanDirection, waiting->existing))
	{
		bool		isnull;
		int64		arrival = DatumGetInt64(slot_getattr(waiting->existing, 2, &isnull));

		CHECK_FOR_INTERRUPTS();
		if (arrival >= horizon)
			break;
		if (n == cap)
		{
			cap = cap ? cap * 2 : 8;
			*arrivals = n ? repalloc(*arrivals, cap * sizeof(int64)) : palloc(cap * sizeof(int64));
			ids = n ? repalloc(ids, cap * sizeof(char *)) : palloc(cap * sizeof(char *));
		}
		(*arrivals)[n] = arrival;
		ids[n] = TextDatumGetCString(slot_getattr(waiting->existing, 3, &isnull));
		n++;
	}
	ExecClearTuple(waiting->existing);
	EndLookup(scan, index, snap);
	if (n == 0)
		return 0;
	*payloads = palloc(n * sizeof(text *));
	for (int i = 0; i < n; i++)
	{
		bool		isnull;

		/* deleted from the ledger by hand (or since delivered again): nothing to apply */
		scan = BeginLookup(events, ids[i], &index, &snap, &sk);
		if (index_getnext_slot(scan, ForwardScanDirection, events->existing) &&
			DatumGetInt64(slot_getattr(events->existing, STRIPE_EV_ARRIVAL + 1, &isnull)) == (*arrivals)[i])
		{
			(*arrivals)[found] = (*arrivals)[i];
			(*payloads)[found++] = DatumGetTextPCopy(slot_getattr(events->existing, STRIPE_EV_PAYLOAD + 1, &isnull));
		}
		ExecClearTuple(events->existing);
		EndLookup(scan, index, snap);
	}
	return found;
}

/*
 * The configured secrets, read with a fresh snapshot; false: use SQL.
 * *durable: they may be kept until the table's next invalidation (its
 * reset trigger is in place).
 */
bool
StripeDirectSecrets(StripeCtx *cx, int *nsecrets, char ***secrets, size_t **lens, MemoryContext cxt,
					bool *durable)
{
	StripeDirectRel *dr = StripeDirectOpen(cx, STRIPE_T_SECRETS);
	Snapshot	snap;
	TableScanDesc scan;
	int			cap = 4;

	*durable = false;
	if (dr == NULL)
		return false;
	*durable = dr->reset_ok;
	snap = RegisterSnapshot(GetLatestSnapshot());
	scan = table_beginscan(dr->rel, snap, 0, NULL);
	*nsecrets = 0;
	*secrets = MemoryContextAlloc(cxt, cap * sizeof(char *));
	*lens = MemoryContextAlloc(cxt, cap * sizeof(size_t));
	while (table_scan_getnextslot(scan, ForwardScanDirection, dr->existing))
	{
		bool		isnull;
		text	   *t = DatumGetTextPP(slot_getattr(dr->existing, 1, &isnull));
		size_t		len = VARSIZE_ANY_EXHDR(t);

		if (*nsecrets == cap)
		{
			cap *= 2;
			*secrets = repalloc(*secrets, cap * sizeof(char *));
			*lens = repalloc(*lens, cap * sizeof(size_t));
		}
		(*secrets)[*nsecrets] = MemoryContextAlloc(cxt, len + 1);
		memcpy((*secrets)[*nsecrets], VARDATA_ANY(t), len);
		(*secrets)[*nsecrets][len] = '\0';
		(*lens)[*nsecrets] = len;
		(*nsecrets)++;
	}
	ExecClearTuple(dr->existing);
	table_endscan(scan);
	UnregisterSnapshot(snap);
	return true;
}
