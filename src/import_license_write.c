/*-------------------------------------------------------------------------
 *
 * import_license_write.c
 *	  The writes of the streamed license step (import_license.c, whose
 *	  design note this follows): the winners through the bulk writer, their
 *	  accounts locked in batches; then the rejects, keyed and quarantined.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "common.h"
#include "import_license.h"

/* the write order: account_id, then license_id's bytes */
static int
CompareWrite(const void *pa, const void *pb)
{
	const Candidate *a = *(Candidate *const *) pa;
	const Candidate *b = *(Candidate *const *) pb;
	int			c;

	if (a->account_id != b->account_id)
		return a->account_id < b->account_id ? -1 : 1;
	c = memcmp(a->data, b->data, Min(a->len[0], b->len[0]));
	return c != 0 ? c : (a->len[0] > b->len[0]) - (a->len[0] < b->len[0]);
}

/* step 5: the winners, sorted, their accounts locked in batches */
int64
ImportLicenseWriteWinners(LicenseStep *st, BulkInsert *bulk)
{
	Candidate **all = MemoryContextAllocHuge(st->cxt, sizeof(Candidate *) * Max(st->cands->members, 1));
	int64		n = 0;
	cands_iterator it;
	CandidateEntry *e;
	SPIPlanPtr	lock_plan = ImportPrepareAccountLock();
	int64		lock_ids[BULK_INSERT_BATCH];
	int			nlock = 0;

	cands_start_iterate(st->cands, &it);
	while ((e = cands_iterate(st->cands, &it)) != NULL)
		all[n++] = e->cand;
	qsort(all, n, sizeof(Candidate *), CompareWrite);
	for (int64 i = 0; i < n; i++)
	{
		Candidate  *c = all[i];
		AccountEntry *account = accts_lookup(st->accts, c->account_id);
		Datum		values[IMPORT_LICENSE_NCOLUMNS];
		bool		nulls[IMPORT_LICENSE_NCOLUMNS] = {0};
		MemoryContext old;

		if (account->state == ACCOUNT_OTHERS)
		{
			account->state = ACCOUNT_LOCKED;
			lock_ids[nlock++] = c->account_id;
			if (nlock == BULK_INSERT_BATCH)
			{
				ImportLockAccounts(lock_plan, lock_ids, nlock);
				nlock = 0;
			}
		}
		old = MemoryContextSwitchTo(st->rowcxt);
		values[0] = PointerGetDatum(cstring_to_text_with_len(c->data, c->len[0]));
		values[1] = Int64GetDatum(c->account_id);
		values[2] = PointerGetDatum(cstring_to_text_with_len(CAND_FIELD(c, 1), c->len[1]));
		values[3] = PointerGetDatum(cstring_to_text_with_len(CAND_FIELD(c, 2), c->len[2]));
		values[4] = TimestampTzGetDatum(c->created_at);
		values[5] = TimestampTzGetDatum(c->updated_at);
		nulls[5] = c->updated_null;
		BulkInsertRow(bulk, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(st->rowcxt);
	}
	ImportLockAccounts(lock_plan, lock_ids, nlock);
	SPI_freeplan(lock_plan);
	return n;
}

static int
CompareRejectTid(const void *a, const void *b)
{
	return ItemPointerCompare(&((Reject *) a)->tid, &((Reject *) b)->tid);
}

/* step 6: quarantine the rejects, in source order */
void
ImportLicenseWriteRejects(LicenseStep *st)
{
	Oid			relid = DogdbRelationId("import_rejects");
	BulkInsert *bulk = BulkInsertBegin(relid, import_reject_columns, IMPORT_REJECT_NCOLUMNS,
									   NULL, 0, NULL, 0);
	Oid			seq = getIdentitySequence(relid, 1, false);
	TupleTableSlot *slot = table_slot_create(st->source, NULL);
	Datum		source_table = CStringGetTextDatum("customer_licenses");

	qsort(st->rejects, st->nrejects, sizeof(Reject), CompareRejectTid);
	for (int64 i = 0; i < st->nrejects; i++)
	{
		Reject	   *r = &st->rejects[i];
		Datum		values[IMPORT_REJECT_NCOLUMNS];
		bool		nulls[IMPORT_REJECT_NCOLUMNS] = {0};
		Jsonb	   *json;
		char		hash[33];
		MemoryContext old = MemoryContextSwitchTo(st->rowcxt);

		CHECK_FOR_INTERRUPTS();
		if (!table_tuple_fetch_row_version(st->source, &r->tid, st->snapshot, slot))
			elog(ERROR, "legacy license row (%u,%u) vanished",
				 ItemPointerGetBlockNumber(&r->tid), ItemPointerGetOffsetNumber(&r->tid));
		if (r->source_key != NULL)
			ImportLicenseRowHash(st, slot, hash, &json);
		else
			r->source_key = ImportLicenseSourceKey(st, slot, &json);
		values[0] = Int64GetDatum(nextval_internal(seq, false));
		values[1] = source_table;
		values[2] = CStringGetTextDatum(r->source_key);
		values[3] = JsonbPGetDatum(json);
		values[4] = CStringGetTextDatum(r->reason);
		values[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
		BulkInsertRow(bulk, values, nulls);
		MemoryContextSwitchTo(old);
		MemoryContextReset(st->rowcxt);
	}
	ExecDropSingleTupleTableSlot(slot);
	BulkInsertEnd(bulk);
}
