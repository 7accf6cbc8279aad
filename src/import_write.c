/*-------------------------------------------------------------------------
 *
 * import_write.c
 *	  The writes of the legacy import (import.h): accepted rows to the
 *	  extension's tables, rejected rows to dogdb.import_rejects, all
 *	  through the bulk writer (bulk_insert.c).
 *
 * Design note: the bulk writer fires no foreign-key triggers, so this file
 * guarantees each foreign key the way the invoice writer does (invoice.c):
 *	- subscriptions.account_id: the account is written by the same step,
 *	  invisible to other transactions until commit;
 *	- subscriptions.plan_id: every plan was locked FOR KEY SHARE before
 *	  the accounts were staged (import.c);
 *	- interactions.rep_id: the reps of the step are locked FOR KEY SHARE
 *	  once, after the new ones are created;
 *	- interactions.account_id, licenses.account_id: the referenced
 *	  accounts are locked FOR KEY SHARE in batches of BULK_INSERT_BATCH,
 *	  each account once per import; an account this transaction wrote
 *	  itself (its xmin is ours) needs no lock, nobody else can see it.
 *	  A referenced row that vanished meanwhile aborts the import with a
 *	  serialization failure.
 * The KPI change-tracking triggers of accounts and subscriptions are not
 * fired either: the step records the months they would have recorded.
 *
 * Accounts and licenses are written in the byte order of their key:
 * duplicate keys arrive together, and each primary-key insertion lands on
 * the rightmost leaf (nbtree's fast path) instead of a descent with a
 * collation compare at every level.
 *
 * Interactions are written in the order of their index on (account_id,
 * created_at), which then takes the fast path too.
 *
 * The subscriptions of new accounts are not written in key order: in a
 * GiST index (the exclusion constraint subscriptions_no_overlap) a key
 * greater than all before it costs about twice as much as one that falls
 * inside an existing subtree, since gistchoose() then finds no downlink
 * of zero penalty and computes the penalty of every downlink on its path,
 * mostly for both columns.  They are queued in chunks of
 * SUBSCRIPTION_CHUNK accounts and each chunk is written interleaved (rows
 * 0, S, 2S, ..., then 1, S + 1, ..., with S = SUBSCRIPTION_STRIDE): after
 * the first pass the keys fall inside existing subtrees.  Measured on 1M
 * new accounts: 8.4 s of CPU for the GiST inserts instead of 18.9 s.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "bulk_insert.h"
#include "common.h"
#include "import.h"

/* subscriptions of new accounts queued for the interleaved write */
#define SUBSCRIPTION_CHUNK 65536
#define SUBSCRIPTION_STRIDE 64

typedef struct QueuedSubscription
{
	int64		account_id;
	TimestampTz valid_from;
	int16		plan_id;
} QueuedSubscription;

/* the state of one write */
typedef struct ImportWriter
{
	BulkInsert *bulk;			/* the target table */
	BulkInsert *bulk2;			/* accounts: their subscriptions */
	Oid			seq;			/* identity sequence of the target, if any */
	Oid			seq2;
	/* accounts referenced that must be locked */
	SPIPlanPtr	lock_plan;
	HTAB	   *locked;			/* account ids locked so far */
	int			nlock;
	int64		lock_ids[BULK_INSERT_BATCH];
	/* duplicates: the key of the last row written and the ctids skipped */
	bool		dedupe;
	bool		have_key;
	Datum		last_key;
	bool		key_byval;
	int16		key_len;
	MemoryContext keycxt;
	ItemPointerData *dups;
	int			ndups;
	int			maxdups;
	int64		written;
	TimestampTz first_created;	/* accounts: the earliest created_at */
	QueuedSubscription *subs;	/* accounts: subscriptions not yet written */
	int			nsubs;
} ImportWriter;

typedef void (*ImportWriteRow) (ImportWriter *w, Datum *values, bool *nulls);

const BulkInsertColumn import_interaction_columns[IMPORT_INTERACTION_NCOLUMNS] = {
	{"interaction_id", INT8OID}, {"account_id", INT8OID}, {"rep_id", INT4OID},
	{"channel", TEXTOID}, {"category", TEXTOID}, {"status", TEXTOID},
	{"created_at", TIMESTAMPTZOID}, {"completed_at", TIMESTAMPTZOID}, {"legacy_key", TEXTOID}
};
const BulkInsertColumn import_license_columns[IMPORT_LICENSE_NCOLUMNS] = {
	{"license_id", TEXTOID}, {"account_id", INT8OID}, {"role", TEXTOID},
	{"status", TEXTOID}, {"created_at", TIMESTAMPTZOID}, {"updated_at", TIMESTAMPTZOID}
};
const BulkInsertColumn import_reject_columns[IMPORT_REJECT_NCOLUMNS] = {
	{"reject_id", INT8OID}, {"source_table", TEXTOID}, {"source_key", TEXTOID},
	{"source_row", JSONBOID}, {"reason", TEXTOID}, {"rejected_at", TIMESTAMPTZOID}
};

/* a referenced row vanished between staging and locking */
void
ImportReferenceVanished(const char *what, int64 missing, int64 expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
			 errmsg("could not import legacy rows because %s was deleted concurrently", what),
			 errdetail("%lld of %lld referenced rows no longer exist.",
					   (long long) missing, (long long) expected),
			 errhint("Run dogdb_import_legacy() again.")));
}

/* the query ImportLockAccounts() runs */
SPIPlanPtr
ImportPrepareAccountLock(void)
{
	Oid			argtype = INT8ARRAYOID;

	return DogdbSpiPrepare("SELECT count(*) FROM (SELECT FROM dogdb.accounts"
						   " WHERE account_id = ANY ($1) FOR KEY SHARE) a", 1, &argtype);
}

/* lock accounts ids[0..n-1] (distinct) FOR KEY SHARE; all must exist */
void
ImportLockAccounts(SPIPlanPtr plan, int64 *ids, int n)
{
	Datum		arg;
	int64		locked;
	bool		isnull;

	if (n == 0)
		return;
	arg = PointerGetDatum(construct_array((Datum *) ids, n, INT8OID,
										  sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	DogdbSpiCheck(SPI_execute_plan(plan, &arg, NULL, false, 0), SPI_OK_SELECT,
				  "lock the referenced accounts");
	locked = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (locked != n)
		ImportReferenceVanished("an account", n - locked, n);
	pfree(DatumGetPointer(arg));
}

/* lock the queued accounts FOR KEY SHARE */
static void
LockAccounts(ImportWriter *w)
{
	ImportLockAccounts(w->lock_plan, w->lock_ids, w->nlock);
	w->nlock = 0;
}

/* account_id is referenced: queue it for locking unless ours or locked */
static void
ReferenceAccount(ImportWriter *w, Datum account_id, Datum xmin)
{
	int64		id = DatumGetInt64(account_id);
	bool		found;

	if (TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin)))
		return;
	hash_search(w->locked, &id, HASH_ENTER, &found);
	if (found)
		return;
	w->lock_ids[w->nlock++] = id;
	if (w->nlock == BULK_INSERT_BATCH)
		LockAccounts(w);
}

/* write the queued subscriptions, interleaved (see the design note) */
static void
WriteSubscriptions(ImportWriter *w)
{
	Datum		values[5];
	bool		nulls[5] = {0};

	nulls[4] = true;
	for (int first = 0; first < SUBSCRIPTION_STRIDE; first++)
	{
		for (int i = first; i < w->nsubs; i += SUBSCRIPTION_STRIDE)
		{
			QueuedSubscription *sub = &w->subs[i];

			/* open, on the plan of its tier, from the account's creation */
			values[0] = Int64GetDatum(nextval_internal(w->seq2, false));
			values[1] = Int64GetDatum(sub->account_id);
			values[2] = Int16GetDatum(sub->plan_id);
			values[3] = TimestampTzGetDatum(sub->valid_from);
			BulkInsertRow(w->bulk2, values, nulls);
		}
	}
	w->nsubs = 0;
}

/* account_id, email, created_at, updated_at, plan_id */
static void
WriteAccount(ImportWriter *w, Datum *v, bool *n)
{
	Datum		values[5];
	bool		nulls[5] = {0};
	QueuedSubscription *sub;

	values[0] = v[0];
	values[1] = v[1];
	nulls[1] = n[1];
	nulls[2] = true;
	values[3] = v[2];
	values[4] = v[3];
	nulls[4] = n[3];
	BulkInsertRow(w->bulk, values, nulls);
	if (w->written == 0 || DatumGetTimestampTz(v[2]) < w->first_created)
		w->first_created = DatumGetTimestampTz(v[2]);

	/* its subscription, queued */
	sub = &w->subs[w->nsubs++];
	sub->account_id = DatumGetInt64(v[0]);
	sub->valid_from = DatumGetTimestampTz(v[2]);
	sub->plan_id = DatumGetInt16(v[4]);
	if (w->nsubs == SUBSCRIPTION_CHUNK)
		WriteSubscriptions(w);
}

/*
 * account_id, account_xmin, rep_id, channel, category, status, created_at,
 * completed_at, legacy_key
 */
static void
WriteInteraction(ImportWriter *w, Datum *v, bool *n)
{
	Datum		values[9];
	bool		nulls[9];

	ReferenceAccount(w, v[0], v[1]);
	values[0] = Int64GetDatum(nextval_internal(w->seq, false));
	nulls[0] = false;
	values[1] = v[0];
	nulls[1] = n[0];
	for (int i = 2; i < 9; i++)
	{
		values[i] = v[i];
		nulls[i] = n[i];
	}
	BulkInsertRow(w->bulk, values, nulls);
}

/* license_id, account_id, account_xmin, role, status, created_at, updated_at */
static void
WriteLicense(ImportWriter *w, Datum *v, bool *n)
{
	Datum		values[6];
	bool		nulls[6];

	ReferenceAccount(w, v[1], v[2]);
	values[0] = v[0];
	nulls[0] = n[0];
	values[1] = v[1];
	nulls[1] = n[1];
	for (int i = 2; i < 6; i++)
	{
		values[i] = v[i + 1];
		nulls[i] = n[i + 1];
	}
	BulkInsertRow(w->bulk, values, nulls);
}

/*
 * Is this row (ctid, key, ...) a duplicate of the row before?  If so,
 * remember its ctid; if not, remember its key.
 */
static bool
IsDuplicate(ImportWriter *w, TupleDesc desc, Datum *values, bool *nulls)
{
	w->key_byval = TupleDescAttr(desc, 1)->attbyval;
	w->key_len = TupleDescAttr(desc, 1)->attlen;
	if (w->have_key && !nulls[1] &&
		datumIsEqual(w->last_key, values[1], w->key_byval, w->key_len))
	{
		if (w->ndups == w->maxdups)
		{
			w->maxdups = Max(64, w->maxdups * 2);
			w->dups = w->dups ? repalloc(w->dups, sizeof(ItemPointerData) * w->maxdups) :
				MemoryContextAlloc(w->keycxt, sizeof(ItemPointerData) * w->maxdups);
		}
		w->dups[w->ndups++] = *(ItemPointer) DatumGetPointer(values[0]);
		return true;
	}
	if (!w->key_byval && w->have_key)
		pfree(DatumGetPointer(w->last_key));
	w->have_key = !nulls[1];
	if (w->have_key)
		w->last_key = datumCopy(values[1], w->key_byval, w->key_len);
	return false;
}

/* give the duplicates found their reject reason */
static void
RejectDuplicates(ImportWriter *w, const char *dup_reason)
{
	Datum		arg;
	Datum	   *elems;
	Oid			argtype = TIDARRAYOID;

	if (w->ndups == 0)
		return;
	elems = palloc(sizeof(Datum) * w->ndups);
	for (int i = 0; i < w->ndups; i++)
		elems[i] = PointerGetDatum(&w->dups[i]);
	arg = PointerGetDatum(construct_array(elems, w->ndups, TIDOID,
										  sizeof(ItemPointerData), false, TYPALIGN_SHORT));
	DogdbSpiExecuteWithArgs(psprintf("UPDATE " IMPORT_STAGE " s SET reason = %s WHERE s.ctid = ANY ($1)",
									 dup_reason),
							1, &argtype, &arg, NULL, false, 0, SPI_OK_UPDATE);
}

/*
 * Run query and pass each row, deformed, to fn, in batches of
 * BULK_INSERT_BATCH rows read through a cursor (a batch's memory is reset
 * after it); returns how many rows fn took.  Shared by both import routes.
 */
int64
ImportForEachRow(const char *query, ImportRowFn fn, void *state)
{
	SPIPlanPtr	plan = DogdbSpiPrepare(query, 0, NULL);
	Portal		portal = SPI_cursor_open(NULL, plan, NULL, NULL, false);
	MemoryContext batchcxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb import batch",
												   ALLOCSET_DEFAULT_SIZES);
	int64		taken = 0;

	if (portal == NULL)
		elog(ERROR, "SPI_cursor_open of \"%s\" failed: %s", query, SPI_result_code_string(SPI_result));
	for (;;)
	{
		MemoryContext old;
		SPITupleTable *tuptable;
		uint64		nrows;
		int			natts;
		Datum	   *values;
		bool	   *nulls;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, BULK_INSERT_BATCH);
		/* fn may run SPI queries (locks): keep the batch's own tuples */
		tuptable = SPI_tuptable;
		nrows = SPI_processed;
		if (nrows == 0)
		{
			SPI_freetuptable(tuptable);
			break;
		}
		old = MemoryContextSwitchTo(batchcxt);
		natts = tuptable->tupdesc->natts;
		values = palloc(sizeof(Datum) * natts);
		nulls = palloc(sizeof(bool) * natts);
		for (uint64 r = 0; r < nrows; r++)
		{
			heap_deform_tuple(tuptable->vals[r], tuptable->tupdesc, values, nulls);
			if (fn(state, tuptable->tupdesc, values, nulls))
				taken++;
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(tuptable);
		MemoryContextReset(batchcxt);
	}
	SPI_cursor_close(portal);
	SPI_freeplan(plan);
	MemoryContextDelete(batchcxt);
	return taken;
}

/* a stage row for the writer: (ctid, the target key, the values) */
typedef struct StageRowWriter
{
	ImportWriter *w;
	ImportWriteRow write;
} StageRowWriter;

/* write one stage row's values, unless it is a duplicate the writer skips */
static bool
WriteStageRow(void *state, TupleDesc desc, Datum *values, bool *nulls)
{
	StageRowWriter *s = state;
	ImportWriter *w = s->w;

	if (w->dedupe)
	{
		MemoryContext old = MemoryContextSwitchTo(w->keycxt);
		bool		duplicate = IsDuplicate(w, desc, values, nulls);

		MemoryContextSwitchTo(old);
		if (duplicate)
			return false;
	}
	s->write(w, values + 1, nulls + 1);
	w->written++;
	return true;
}

/*
 * Run query (a SELECT of the stage: ctid, the target key, the values) and
 * pass each row's values to write, skipping duplicates if asked.
 */
static void
WriteQueryRows(ImportWriter *w, const char *query, ImportWriteRow write)
{
	StageRowWriter s = {w, write};

	(void) ImportForEachRow(query, WriteStageRow, &s);
}

/* prepare to lock referenced accounts */
static void
StartAccountLocks(ImportWriter *w)
{
	HASHCTL		ctl = {0};

	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(int64);
	ctl.hcxt = CurrentMemoryContext;
	w->locked = hash_create("dogdb import locked accounts", 1024, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	w->lock_plan = ImportPrepareAccountLock();
}

/* lock the reps the accepted interactions name, creating the new ones */
static void
PrepareReps(void)
{
	bool		isnull;
	int64		wanted,
				locked;

	/* new reps are ours (invisible to others until commit); the others are locked */
	DogdbSpiExecute("WITH wanted AS MATERIALIZED (SELECT DISTINCT rep FROM " IMPORT_STAGE
					"                 WHERE " IMPORT_ACCEPTED " AND rep IS NOT NULL),"
					"     created AS (INSERT INTO dogdb.service_reps (name) SELECT rep FROM wanted"
					"                 ON CONFLICT (name) DO NOTHING RETURNING name),"
					"     locked AS (SELECT FROM dogdb.service_reps r"
					"                 WHERE r.name IN (SELECT rep FROM wanted) FOR KEY SHARE)"
					" SELECT (SELECT count(*) FROM wanted),"
					"        (SELECT count(*) FROM locked) + (SELECT count(*) FROM created)",
					false, 0, SPI_OK_SELECT);
	wanted = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	locked = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (locked != wanted)
		ImportReferenceVanished("a service rep", wanted - locked, wanted);
}

/* write the accepted rows of the stage to target */
int64
ImportWriteAccepted(ImportTarget target, const char *dup_order, const char *dup_reason)
{
	ImportWriter w = {0};
	Oid			accounts = DogdbRelationId("accounts");
	Oid			handled[2];
	BulkInsertForeignKey fkeys[2];
	const char *order = dup_order ? psprintf(", %s", dup_order) : "";

	w.dedupe = (dup_reason != NULL);
	w.keycxt = CurrentMemoryContext;

	switch (target)
	{
		case IMPORT_ACCOUNTS:
			/* the work of the KPI triggers is done below, for the whole batch */
			handled[0] = DogdbInternalFunctionId("kpi_track_accounts");
			w.bulk = BulkInsertBegin(accounts, bulk_account_columns, BULK_ACCOUNT_NCOLUMNS,
									 NULL, 0, handled, 1);
			handled[0] = DogdbInternalFunctionId("kpi_track_billing");
			/* the support model: new accounts have no interactions yet */
			handled[1] = DogdbInternalFunctionId("support_track");
			fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
			fkeys[1] = (BulkInsertForeignKey) {"plan_id", DogdbRelationId("pricing_plans"), "plan_id"};
			w.bulk2 = BulkInsertBegin(DogdbRelationId("subscriptions"), bulk_subscription_columns,
									  BULK_SUBSCRIPTION_NCOLUMNS, fkeys, 2, handled, 2);
			/* one subscription per new account: nothing to overlap */
			BulkInsertGuaranteeExclusion(w.bulk2, "subscriptions_no_overlap");
			w.seq2 = getIdentitySequence(DogdbRelationId("subscriptions"), 1, false);
			w.subs = palloc(sizeof(QueuedSubscription) * SUBSCRIPTION_CHUNK);
			WriteQueryRows(&w, psprintf("SELECT ctid, account_id, email, created_at, updated_at, plan_id"
										"  FROM " IMPORT_STAGE " WHERE " IMPORT_ACCEPTED
										" ORDER BY account_id%s", order), WriteAccount);
			WriteSubscriptions(&w);
			BulkInsertEnd(w.bulk2);
			pfree(w.subs);
			/*
			 * what the KPI triggers would have recorded: the new accounts
			 * (rows of the stage that lost to a duplicate are marked too,
			 * which costs nothing), and the months from the first new one on
			 * (their subscriptions start when they were created)
			 */
			DogdbSpiExecute("INSERT INTO dogdb_internal.kpi_dirty_accounts (account_id)"
							" SELECT account_id FROM " IMPORT_STAGE " WHERE " IMPORT_ACCEPTED,
							false, 0, SPI_OK_INSERT);
			if (w.written > 0)
			{
				Oid			argtype = TIMESTAMPTZOID;
				Datum		arg = TimestampTzGetDatum(w.first_created);

				DogdbSpiExecuteWithArgs("INSERT INTO dogdb_internal.kpi_dirty_months (from_month, to_month)"
										" VALUES (date_trunc('month', $1 AT TIME ZONE 'UTC')::date, NULL)",
										1, &argtype, &arg, NULL, false, 0, SPI_OK_INSERT);
			}
			break;
		case IMPORT_INTERACTIONS:
			PrepareReps();
			StartAccountLocks(&w);
			fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
			fkeys[1] = (BulkInsertForeignKey) {"rep_id", DogdbRelationId("service_reps"), "rep_id"};
			/* the support trigger's work: the accounts of the new interactions */
			handled[0] = DogdbInternalFunctionId("support_track");
			DogdbSpiExecute("INSERT INTO dogdb_internal.support_changes (kind, account_id)"
							" SELECT DISTINCT 'account', account_id FROM " IMPORT_STAGE " WHERE " IMPORT_ACCEPTED,
							false, 0, SPI_OK_INSERT);
			w.bulk = BulkInsertBegin(DogdbRelationId("interactions"), import_interaction_columns,
									 IMPORT_INTERACTION_NCOLUMNS, fkeys, 2, handled, 1);
			w.seq = getIdentitySequence(DogdbRelationId("interactions"), 1, false);
			WriteQueryRows(&w, "SELECT s.ctid, s.account_id, s.account_xmin, r.rep_id, s.channel,"
						   "       s.category, s.status, s.created_at, s.completed_at, s.legacy_key"
						   "  FROM " IMPORT_STAGE " s LEFT JOIN dogdb.service_reps r ON r.name = s.rep"
						   " WHERE s.reason IS NULL AND NOT s.done"
						   " ORDER BY s.account_id, s.created_at", WriteInteraction);
			LockAccounts(&w);
			break;
		case IMPORT_LICENSES:
			StartAccountLocks(&w);
			fkeys[0] = (BulkInsertForeignKey) {"account_id", accounts, "account_id"};
			w.bulk = BulkInsertBegin(DogdbRelationId("licenses"), import_license_columns,
									 IMPORT_LICENSE_NCOLUMNS, fkeys, 1, NULL, 0);
			WriteQueryRows(&w, psprintf("SELECT ctid, license_id, account_id, account_xmin, role, status,"
										"       created_at, updated_at"
										"  FROM " IMPORT_STAGE " WHERE " IMPORT_ACCEPTED
										" ORDER BY license_id COLLATE \"C\"%s", order), WriteLicense);
			LockAccounts(&w);
			break;
	}
	BulkInsertEnd(w.bulk);
	if (w.locked != NULL)
		hash_destroy(w.locked);
	RejectDuplicates(&w, dup_reason);
	return w.written;
}

/* source_key, source_row, reason */
static void
WriteReject(ImportWriter *w, Datum *v, bool *n)
{
	Datum		values[6];
	bool		nulls[6] = {0};

	values[0] = Int64GetDatum(nextval_internal(w->seq, false));
	values[1] = v[3];
	values[2] = v[0];
	values[3] = v[1];
	values[4] = v[2];
	values[5] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	BulkInsertRow(w->bulk, values, nulls);
}

/* quarantine the rejected rows of the stage */
int64
ImportWriteRejects(const char *source_table)
{
	ImportWriter w = {0};
	Oid			rejects = DogdbRelationId("import_rejects");
	char	   *query;

	w.bulk = BulkInsertBegin(rejects, import_reject_columns, IMPORT_REJECT_NCOLUMNS, NULL, 0, NULL, 0);
	w.seq = getIdentitySequence(rejects, 1, false);
	query = psprintf("SELECT ctid, source_key, to_jsonb(src), reason, %s::text"
					 "  FROM " IMPORT_STAGE " WHERE " IMPORT_REJECTED,
					 quote_literal_cstr(source_table));
	WriteQueryRows(&w, query, WriteReject);
	BulkInsertEnd(w.bulk);
	return w.written;
}
