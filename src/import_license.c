/*-------------------------------------------------------------------------
 *
 * import_license.c
 *	  The license step of dogdb_import_legacy(), streamed: one scan of the
 *	  legacy customer_licenses rows, judged in memory and written through
 *	  the bulk writer, with no staging table.
 *
 * Design note: the rules are those of import.c's pipeline for licenses;
 * only the machinery differs.  Under one snapshot, taken after the import
 * lock and seeing what the earlier steps wrote:
 *	1. scan the legacy table once; parse each blob in C and give the row
 *	   the first failed check as its reason (license_data null, the parse
 *	   error, empty license_id, account_id null, no such account (an index
 *	   probe, once per account), created_at null);
 *	2. a valid row whose license id was imported before is skipped when the
 *	   data are the same, rejected when they differ (an index probe, none
 *	   when dogdb.licenses is empty);
 *	3. when the table has rejects from earlier runs, every other row gets
 *	   its reject key now (md5 of the row as jsonb, ":", its occurrence
 *	   among identical rows) and a row whose key is quarantined is skipped;
 *	4. duplicates: a hash table maps each license id to its best row so far
 *	   (updated_at DESC NULLS LAST, created_at DESC, account_id, role,
 *	   status); the other row is rejected at once;
 *	5. the winners are written through the bulk writer sorted by
 *	   (account_id, license_id), so that two of the three indexes of
 *	   dogdb.licenses take nbtree's rightmost fast path, their accounts
 *	   locked FOR KEY SHARE in batches unless this transaction created them;
 *	6. the rejects are fetched again by tid, keyed and quarantined, in
 *	   source order.
 *
 * Memory: what the scan keeps (candidates, hash tables, rejects) lives in
 * one context bounded by maintenance_work_mem.  Nothing is written before
 * the scan ends, so a scan that outgrows it is dropped and the step takes
 * the staged pipeline, as do sources this file does not read directly
 * (partitioned, row-level security, columns of other types) and Citus.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/relscan.h"
#include "access/skey.h"
#include "access/sysattr.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "common/md5.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "common.h"
#include "import_license.h"
#include "license.h"


static const char *const source_columns[4] = {"account_id", "license_data", "created_at", "updated_at"};

/* the attribute named name of rel, if of one of types (0-terminated); else 0 */
static AttrNumber
TypedAttribute(Relation rel, const char *name, const Oid *types, Oid *type)
{
	AttrNumber	attnum = get_attnum(RelationGetRelid(rel), name);

	if (attnum <= 0)
		return 0;
	*type = TupleDescAttr(RelationGetDescr(rel), attnum - 1)->atttypid;
	for (; *types != InvalidOid; types++)
		if (*types == *type)
			return attnum;
	return 0;
}

/* is indexoid a btree on column attnum alone?  If so, open it */
static bool
SingleColumnIndex(Oid indexoid, AttrNumber attnum, Relation *index)
{
	if (!OidIsValid(indexoid))
		return false;
	*index = index_open(indexoid, AccessShareLock);
	if ((*index)->rd_index->indnatts == 1 && (*index)->rd_index->indkey.values[0] == attnum &&
		(*index)->rd_rel->relam == BTREE_AM_OID)
		return true;
	index_close(*index, AccessShareLock);
	*index = NULL;
	return false;
}

/* keep size bytes in the bounded context, MAXALIGNed, without chunk overhead */
static void *
ArenaAlloc(LicenseStep *st, Size size)
{
	void	   *p;

	size = MAXALIGN(size);
	if (size > st->arena_left)
	{
		Size		block = Max(size, 64 * 1024);

		st->arena = MemoryContextAlloc(st->cxt, block);
		st->arena_left = block;
	}
	p = st->arena;
	st->arena += size;
	st->arena_left -= size;
	return p;
}

/* md5 of the source row in slot as jsonb (also returned), the reject key's start */
void
ImportLicenseRowHash(LicenseStep *st, TupleTableSlot *slot, char *hash, Jsonb **json)
{
	Datum		row = ExecFetchSlotHeapTupleDatum(slot);
	Jsonb	   *jb = DatumGetJsonbP(FunctionCall1(&st->to_jsonb, row));
	char	   *text = JsonbToCString(NULL, &jb->root, VARSIZE(jb));
	const char *errstr = NULL;

	if (!pg_md5_hash(text, strlen(text), hash, &errstr))
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("could not compute MD5 hash: %s", errstr)));
	if (json)
		*json = jb;
}

/* the reject key of the row in slot: its hash and occurrence number (in cxt) */
char *
ImportLicenseSourceKey(LicenseStep *st, TupleTableSlot *slot, Jsonb **json)
{
	char		hash[33];
	Occurrence *occ;
	bool		found;

	ImportLicenseRowHash(st, slot, hash, json);
	occ = hash_search(st->occurrences, hash, HASH_ENTER, &found);
	if (!found)
		occ->n = 0;
	return MemoryContextStrdup(st->cxt, psprintf("%s:%lld", hash, (long long) ++occ->n));
}

/* remember a row to quarantine */
static void
AddReject(LicenseStep *st, ItemPointer tid, char *reason, char *source_key)
{
	if (st->nrejects == st->maxrejects)
	{
		st->maxrejects = Max(256, st->maxrejects * 2);
		st->rejects = st->rejects ?
			repalloc_huge(st->rejects, sizeof(Reject) * st->maxrejects) :
			MemoryContextAllocHuge(st->cxt, sizeof(Reject) * st->maxrejects);
	}
	st->rejects[st->nrejects].tid = *tid;
	st->rejects[st->nrejects].reason = MemoryContextStrdup(st->cxt, reason);
	st->rejects[st->nrejects].source_key = source_key;
	st->nrejects++;
}

/*
 * the next tuple of an index scan, in the scans' context: btgettuple
 * allocates what it keeps across calls (killed items) where it is called
 */
static bool
IndexNext(LicenseStep *st, IndexScanDesc scan, TupleTableSlot *slot)
{
	MemoryContext old = MemoryContextSwitchTo(st->scancxt);
	bool		found = index_getnext_slot(scan, ForwardScanDirection, slot);

	MemoryContextSwitchTo(old);
	return found;
}

/* what account id is: missing, someone else's or ours (probed once) */
static AccountEntry *
Account(LicenseStep *st, int64 id)
{
	bool		found;
	AccountEntry *e = accts_insert(st->accts, id, &found);

	if (!found)
	{
		ScanKeyData key;

		MemoryContext old = MemoryContextSwitchTo(st->scancxt);

		ScanKeyInit(&key, 1, BTEqualStrategyNumber, F_INT8EQ, Int64GetDatum(id));
		index_rescan(st->account_scan, &key, 1, NULL, 0);
		e->state = ACCOUNT_MISSING;
		MemoryContextSwitchTo(old);
		if (IndexNext(st, st->account_scan, st->account_slot))
		{
			bool		isnull;
			Datum		xmin = slot_getsysattr(st->account_slot, MinTransactionIdAttributeNumber, &isnull);

			e->state = TransactionIdIsCurrentTransactionId(DatumGetTransactionId(xmin)) ?
				ACCOUNT_OURS : ACCOUNT_OTHERS;
		}
	}
	return e;
}

/* step 2: NULL if license c was not imported before, else whether the same */
static const char *
ImportedBefore(LicenseStep *st, const Candidate *c, bool *same)
{
	ScanKeyData key;
	text	   *id = cstring_to_text_with_len(c->data, c->len[0]);
	TupleTableSlot *slot = st->license_slot;
	bool		isnull;

	MemoryContext old = MemoryContextSwitchTo(st->scancxt);

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   st->license_idx->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(id));
	index_rescan(st->license_scan, &key, 1, NULL, 0);
	MemoryContextSwitchTo(old);
	if (!IndexNext(st, st->license_scan, slot))
		return NULL;
	*same = DatumGetInt64(slot_getattr(slot, st->lic_att[0], &isnull)) == c->account_id;
	for (int f = 1; f <= 2 && *same; f++)
	{
		text	   *v = DatumGetTextPP(slot_getattr(slot, st->lic_att[f], &isnull));

		*same = VARSIZE_ANY_EXHDR(v) == c->len[f] &&
			memcmp(VARDATA_ANY(v), CAND_FIELD(c, f), c->len[f]) == 0;
	}
	return psprintf("license %s was already imported with different data", text_to_cstring(id));
}

/* does a rank before b (updated_at DESC NULLS LAST, created_at DESC, account_id, role, status)? */
static int
CompareRank(const Candidate *a, const Candidate *b)
{
	int			c;

	if (a->updated_null != b->updated_null)
		return a->updated_null ? 1 : -1;
	if (!a->updated_null && a->updated_at != b->updated_at)
		return a->updated_at > b->updated_at ? -1 : 1;
	if (a->created_at != b->created_at)
		return a->created_at > b->created_at ? -1 : 1;
	if (a->account_id != b->account_id)
		return a->account_id < b->account_id ? -1 : 1;
	for (int f = 1; f <= 2; f++)
		if ((c = varstr_cmp(CAND_FIELD(a, f), a->len[f], CAND_FIELD(b, f), b->len[f],
							DEFAULT_COLLATION_OID)) != 0)
			return c;
	return 0;
}

static char *
DuplicateReason(const Candidate *c)
{
	return psprintf("duplicate license_id %s in source; the row updated last was imported",
					pnstrdup(c->data, c->len[0]));
}

/* step 4: c (in rowcxt) against the best row of its license id so far */
static void
Dedupe(LicenseStep *st, Candidate *c)
{
	bool		found;
	CandidateEntry *e = cands_insert(st->cands, c, &found);
	Size		size = offsetof(Candidate, data) + c->len[0] + c->len[1] + c->len[2];

	if (found && CompareRank(c, e->cand) >= 0)
	{
		AddReject(st, &c->tid, DuplicateReason(c), c->source_key);
		return;
	}
	if (found)
		AddReject(st, &e->cand->tid, DuplicateReason(e->cand), e->cand->source_key);
	e->cand = ArenaAlloc(st, size);
	memcpy(e->cand, c, size);
}

/* steps 1 to 4 for the source row in slot */
static void
JudgeRow(LicenseStep *st, TupleTableSlot *slot)
{
	Datum		v[4];
	bool		n[4];
	const LicenseResult *res = NULL;
	char	   *reason = NULL;
	char	   *key = NULL;
	Candidate  *c;

	for (int i = 0; i < 4; i++)
		v[i] = slot_getattr(slot, st->src_att[i], &n[i]);
	/* t.account_id::bigint; a timestamp column read AT TIME ZONE 'UTC' keeps its value */
	if (!n[0])
		v[0] = Int64GetDatum(st->account_type == INT8OID ? DatumGetInt64(v[0]) :
							 st->account_type == INT4OID ? DatumGetInt32(v[0]) : DatumGetInt16(v[0]));
	if (n[1])
		reason = "license_data is null";
	else
	{
		res = LicenseParseCached(DatumGetTextPP(v[1]));
		if (res->status != LICENSE_OK)
			reason = LicenseErrorText(res);
		else if (res->length[LICENSE_FIELD_ID] == 0)
			reason = "license_id is empty";
	}
	if (reason == NULL && n[0])
		reason = "account_id is null";
	else if (reason == NULL && Account(st, DatumGetInt64(v[0]))->state == ACCOUNT_MISSING)
		reason = psprintf("account %lld does not exist", (long long) DatumGetInt64(v[0]));
	else if (reason == NULL && n[2])
		reason = "created_at is null";

	c = NULL;
	if (reason == NULL)
	{
		char	   *p;

		c = palloc(offsetof(Candidate, data) + res->length[0] + res->length[1] + res->length[2]);
		c->tid = slot->tts_tid;
		c->account_id = DatumGetInt64(v[0]);
		c->created_at = DatumGetTimestampTz(v[2]);
		c->updated_null = n[3];
		c->updated_at = n[3] ? 0 : DatumGetTimestampTz(v[3]);
		c->source_key = NULL;
		p = c->data;
		for (int f = 0; f < LICENSE_NFIELDS; f++)
		{
			c->len[f] = (uint32) res->length[f];
			memcpy(p, res->value[f], res->length[f]);
			p += res->length[f];
		}
		if (st->license_scan != NULL)
		{
			bool		same = false;
			const char *changed = ImportedBefore(st, c, &same);

			if (changed != NULL && same)
				return;			/* imported before: skipped */
			reason = (char *) changed;
		}
	}

	/* step 3: a row quarantined before is skipped */
	if (st->old_keys != NULL)
	{
		bool		found;

		key = ImportLicenseSourceKey(st, slot, NULL);
		if (strlen(key) < SOURCE_KEY_MAX)
		{
			hash_search(st->old_keys, key, HASH_FIND, &found);
			if (found)
				return;
		}
	}
	if (reason != NULL)
		AddReject(st, &slot->tts_tid, reason, key);
	else
	{
		c->source_key = key;
		Dedupe(st, c);
	}
}

/* set up st for relid; false if the source or target is not for this path */
static bool
StartStep(LicenseStep *st, Oid relid)
{
	static const Oid int_types[] = {INT8OID, INT4OID, INT2OID, InvalidOid};
	static const Oid text_types[] = {TEXTOID, VARCHAROID, InvalidOid};
	static const Oid ts_types[] = {TIMESTAMPOID, TIMESTAMPTZOID, InvalidOid};
	const Oid  *types[4] = {int_types, text_types, ts_types, ts_types};
	Oid			type;
	Oid			argtype = TEXTOID;
	Datum		arg = CStringGetTextDatum("customer_licenses");
	HASHCTL		ctl = {0};
	bool		empty;

	st->source = table_open(relid, AccessShareLock);
	/* what the SQL would read as the extension's owner, and how */
	if (st->source->rd_rel->relkind != RELKIND_RELATION ||
		check_enable_rls(relid, InvalidOid, true) != RLS_NONE ||
		pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return false;
	for (int i = 0; i < 4; i++)
		if ((st->src_att[i] = TypedAttribute(st->source, source_columns[i], types[i], &type)) == 0)
			return false;
		else if (i == 0)
			st->account_type = type;

	st->accounts = table_open(DogdbRelationId("accounts"), AccessShareLock);
	st->licenses = table_open(DogdbRelationId("licenses"), AccessShareLock);
	if (!SingleColumnIndex(RelationGetPrimaryKeyIndex(st->accounts),
						   get_attnum(RelationGetRelid(st->accounts), "account_id"), &st->accounts_pk) ||
		!SingleColumnIndex(get_constraint_index(get_relation_constraint_oid(RelationGetRelid(st->licenses),
																			"licenses_license_id_key", true)),
						   get_attnum(RelationGetRelid(st->licenses), "license_id"), &st->license_idx))
		return false;
	st->lic_att[0] = get_attnum(RelationGetRelid(st->licenses), "account_id");
	st->lic_att[1] = get_attnum(RelationGetRelid(st->licenses), "role");
	st->lic_att[2] = get_attnum(RelationGetRelid(st->licenses), "status");

	st->scancxt = CurrentMemoryContext;

	/* one snapshot for everything read: after the lock, seeing the earlier steps */
	CommandCounterIncrement();
	st->snapshot = RegisterSnapshot(GetTransactionSnapshot());

	st->account_scan = index_beginscan(st->accounts, st->accounts_pk, st->snapshot, 1, 0);
	st->account_slot = table_slot_create(st->accounts, NULL);
	st->license_slot = table_slot_create(st->licenses, NULL);
	/* no probes when nothing was imported before */
	st->license_scan = index_beginscan(st->licenses, st->license_idx, st->snapshot, 0, 0);
	index_rescan(st->license_scan, NULL, 0, NULL, 0);
	empty = !index_getnext_slot(st->license_scan, ForwardScanDirection, st->license_slot);
	index_endscan(st->license_scan);
	st->license_scan = empty ? NULL :
		index_beginscan(st->licenses, st->license_idx, st->snapshot, 1, 0);

	st->cxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb license import", ALLOCSET_DEFAULT_SIZES);
	st->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb license import row", ALLOCSET_DEFAULT_SIZES);
	st->limit = (Size) maintenance_work_mem * 1024;
	st->cands = cands_create(st->cxt, 1024, NULL);
	st->accts = accts_create(st->cxt, 1024, NULL);
	ctl.keysize = 32;
	ctl.entrysize = sizeof(Occurrence);
	ctl.hcxt = st->cxt;
	st->occurrences = hash_create("dogdb license import keys", 256, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	fmgr_info_cxt(F_TO_JSONB, &st->to_jsonb, st->cxt);
	fmgr_info_set_expr((Node *) makeFuncExpr(F_TO_JSONB, JSONBOID,
											 list_make1(makeNullConst(st->source->rd_rel->reltype, -1, InvalidOid)),
											 InvalidOid, InvalidOid, COERCE_EXPLICIT_CALL),
					   &st->to_jsonb);

	/* the keys quarantined by earlier runs, if any */
	DogdbSpiExecuteWithArgs("SELECT source_key FROM dogdb.import_rejects WHERE source_table = $1",
							1, &argtype, &arg, NULL, false, 0, SPI_OK_SELECT);
	if (SPI_processed > 0)
	{
		ctl.keysize = SOURCE_KEY_MAX;
		ctl.entrysize = SOURCE_KEY_MAX;
		st->old_keys = hash_create("dogdb license import quarantined keys", SPI_processed, &ctl,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		for (uint64 r = 0; r < SPI_processed; r++)
		{
			char	   *key = SPI_getvalue(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1);

			if (strlen(key) < SOURCE_KEY_MAX)
				hash_search(st->old_keys, key, HASH_ENTER, NULL);
		}
	}
	SPI_freetuptable(SPI_tuptable);
	return true;
}

/* close what StartStep opened */
static void
EndStep(LicenseStep *st)
{
	if (st->license_scan)
		index_endscan(st->license_scan);
	if (st->account_scan)
		index_endscan(st->account_scan);
	if (st->account_slot)
		ExecDropSingleTupleTableSlot(st->account_slot);
	if (st->license_slot)
		ExecDropSingleTupleTableSlot(st->license_slot);
	if (st->accounts_pk)
		index_close(st->accounts_pk, AccessShareLock);
	if (st->license_idx)
		index_close(st->license_idx, AccessShareLock);
	if (st->accounts)
		table_close(st->accounts, AccessShareLock);
	if (st->licenses)
		table_close(st->licenses, AccessShareLock);
	if (st->snapshot)
		UnregisterSnapshot(st->snapshot);
	if (st->cxt)
		MemoryContextDelete(st->cxt);
	if (st->rowcxt)
		MemoryContextDelete(st->rowcxt);
	table_close(st->source, AccessShareLock);
}

/* steps 1 to 4 over the whole source; false if it outgrew the memory bound */
static bool
ScanSource(LicenseStep *st, int64 *rows_read)
{
	TableScanDesc scan = table_beginscan(st->source, st->snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(st->source, NULL);
	bool		fits = true;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		MemoryContext old = MemoryContextSwitchTo(st->rowcxt);

		CHECK_FOR_INTERRUPTS();
		JudgeRow(st, slot);
		MemoryContextSwitchTo(old);
		MemoryContextReset(st->rowcxt);
		if ((++*rows_read & 1023) == 0 && MemoryContextMemAllocated(st->cxt, true) > st->limit)
		{
			fits = false;
			break;
		}
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return fits;
}

bool
ImportLicensesStreamed(Oid relid, int64 *rows_read, int64 *imported, int64 *rejected)
{
	LicenseStep st = {0};
	Oid			licenses = DogdbRelationId("licenses");
	BulkInsertForeignKey fkey = {"account_id", DogdbRelationId("accounts"), "account_id"};
	BulkInsert *bulk;

	if (DogdbIsDistributed(licenses) || DogdbIsDistributed(relid))
		return false;
	/* refuse early what the bulk writer refuses (a user's trigger, rule, key) */
	bulk = BulkInsertBegin(licenses, import_license_columns, IMPORT_LICENSE_NCOLUMNS, &fkey, 1, NULL, 0);
	/* written in account order: the license id index is filled sorted at the end */
	BulkInsertSortIndex(bulk, "licenses_license_id_key");
	*rows_read = 0;
	if (!StartStep(&st, relid) || !ScanSource(&st, rows_read))
	{
		ereport(DEBUG1,
				(errmsg_internal("license step: staged pipeline after %lld rows", (long long) *rows_read)));
		EndStep(&st);
		BulkInsertEnd(bulk);
		return false;
	}
	*imported = ImportLicenseWriteWinners(&st, bulk);
	BulkInsertEnd(bulk);
	*rejected = st.nrejects;
	ImportLicenseWriteRejects(&st);
	EndStep(&st);
	return true;
}
