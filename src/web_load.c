/*-------------------------------------------------------------------------
 *
 * web_load.c
 *	  dogdb_internal.load_web_events_bulk(source): the C route of the web
 *	  event loader (dogdb_internal.load_web_events), with exactly the
 *	  results of its SQL route (dogdb_internal.load_web_events_sql).
 *
 * Design note.  The SQL route is one INSERT ... SELECT DISTINCT ON ... ON
 * CONFLICT DO NOTHING; its time goes to sorting every row by text, the
 * per-row conflict probe and the per-row heap and index inserts.  This
 * route reads the staging table directly (a plain heap whose columns have
 * the types, or types whose cast to them changes nothing) in two passes
 * under one snapshot:
 *	1. pass 1 checks each row in C with the SQL route's rules, in its order,
 *	   copies the rejected rows aside (step 4) and keeps a 64-bit hash of
 *	   each valid row's key (anonymous_id, event_id) in a hash table;
 *	2. pass 2 writes each valid row whose key hash was seen once: no other
 *	   staged row has its key, so it is its own winner.  The rest (repeated
 *	   keys and hash collisions, about the 2% of rows delivered twice) are
 *	   sorted by (anonymous_id, event_id) in bytes, then (occurred_at,
 *	   event_name, page_path) in the collations the SQL sorts them in; with
 *	   deterministic collations equal means equal bytes, so the groups are
 *	   DISTINCT ON's and the first row of each is its winner.  When the
 *	   hashes outgrow maintenance_work_mem, every valid row is sorted
 *	   (tuplesort: maintenance_work_mem, then temporary files);
 *	3. a row is written unless the table already holds its key (a primary
 *	   key probe with a dirty snapshot, as ON CONFLICT does; none when the
 *	   table was empty: the lock keeps other loaders out), through the bulk
 *	   writer (heap_multi_insert; the time index filled sorted at the end);
 *	4. the rejected rows are quarantined through the SQL route itself: they
 *	   are copied by ctid, under the scan's snapshot, to a temporary table
 *	   that load_web_events_sql() loads, so the reasons and keys are the
 *	   SQL's by construction; its counts (nothing loaded, every row
 *	   rejected) check that both routes judged these rows alike.
 * Sorting every row was the first design: at 10 million rows its spill to
 * temporary files (gigabytes) cost more than the sort saved.
 * Anything this route does not handle returns NULL, and the caller takes
 * the SQL route: a distributed, partitioned or altered dogdb.web_events
 * (row-level security, a trigger, rule, foreign key or other columns, a
 * deferrable index), a staging table that is not a plain table the user
 * may read or has other column types or a nondeterministic collation, a
 * read-only transaction and every bad argument (the SQL route raises the
 * errors).
 *
 * Memory: the key hashes (16 bytes a slot), the row sort and the time
 * index's sort each keep at most maintenance_work_mem; rejected rows are
 * copied 10,000 at a time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/genam.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "common/hashfn.h"
#include "catalog/pg_am.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "common.h"
#include "web_load.h"

PG_FUNCTION_INFO_V1(dogdb_load_web_events_bulk);

/* a key's hash (pass 1): seen once, or more than once (or a collision) */
typedef struct KeyEntry
{
	uint64		hash;
	char		status;
	bool		repeated;
} KeyEntry;

#define SH_PREFIX keys
#define SH_ELEMENT_TYPE KeyEntry
#define SH_KEY_TYPE uint64
#define SH_KEY hash
#define SH_HASH_KEY(tb, key) ((uint32) (key))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

/* the columns of dogdb.web_events, in order, with their types */
static const char *const column_names[WL_NCOLUMNS] = {
	"anonymous_id", "event_id", "occurred_at", "session_id", "account_id", "event_name",
	"page_path", "referrer", "client", "campaign", "properties"
};
static const Oid column_types[WL_NCOLUMNS] = {
	TEXTOID, TEXTOID, TIMESTAMPTZOID, TEXTOID, INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, JSONBOID
};

/* can a staging column of type type be read as column c without a cast that changes it? */
static bool
SourceTypeOk(int c, Oid type)
{
	switch (column_types[c])
	{
		case TEXTOID:
			return type == TEXTOID || type == VARCHAROID;
		case INT8OID:
			return type == INT8OID || type == INT4OID || type == INT2OID;
		default:
			return type == column_types[c];
	}
}

/* why dogdb.web_events is not for this route, or NULL */
static const char *
TargetRefuses(Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TriggerDesc *trigdesc = rel->trigdesc;
	List	   *indexes;
	ListCell   *lc;
	Oid			pk;
	int			n = 0;

	if (DogdbIsDistributed(RelationGetRelid(rel)))
		return "dogdb.web_events is distributed";
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return "dogdb.web_events is not a plain table";
	if (rel->rd_rel->relrowsecurity)
		return "dogdb.web_events has row-level security";
	if (rel->rd_rules != NULL)
		return "dogdb.web_events has rules";
	if (RelationGetFKeyList(rel) != NIL)
		return "dogdb.web_events has foreign keys";
	if (desc->constr != NULL && desc->constr->has_generated_stored)
		return "dogdb.web_events has generated columns";
	for (int i = 0; trigdesc != NULL && i < trigdesc->numtriggers; i++)
		if (TRIGGER_FOR_INSERT(trigdesc->triggers[i].tgtype))
			return "dogdb.web_events has insert triggers";
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (n >= WL_NCOLUMNS || strcmp(NameStr(att->attname), column_names[n]) != 0 ||
			att->atttypid != column_types[n] || att->atttypmod != -1)
			return "dogdb.web_events has other columns";
		n++;
	}
	if (n != WL_NCOLUMNS)
		return "dogdb.web_events has other columns";

	/* the primary key (anonymous_id, event_id) to probe; every index immediate */
	pk = RelationGetPrimaryKeyIndex(rel);
	if (!OidIsValid(pk))
		return "dogdb.web_events has no primary key";
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		Relation	index = index_open(lfirst_oid(lc), AccessShareLock);
		bool		ok = index->rd_index->indimmediate;

		if (lfirst_oid(lc) == pk)
			ok &= index->rd_index->indnkeyatts == 2 &&
				index->rd_rel->relam == BTREE_AM_OID &&
				get_attnum(RelationGetRelid(rel), "anonymous_id") == index->rd_index->indkey.values[0] &&
				get_attnum(RelationGetRelid(rel), "event_id") == index->rd_index->indkey.values[1];
		index_close(index, AccessShareLock);
		if (!ok)
			return "dogdb.web_events has other indexes";
	}
	list_free(indexes);
	return NULL;
}

/* why the staging table is not for this route, or NULL; fills the columns */
static const char *
SourceRefuses(WebLoad *wl)
{
	Relation	rel = wl->source;
	TupleDesc	desc = RelationGetDescr(rel);

	if (DogdbIsDistributed(wl->source_id))
		return "the staging table is distributed";
	if (rel->rd_rel->relrowsecurity)
		return "the staging table has row-level security";
	if (pg_class_aclcheck(wl->source_id, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		return "the staging table is not readable as a whole";
	/* search_path is pg_catalog, pg_temp: a temporary table of this name */
	if (OidIsValid(RelnameGetRelid(WL_REJECTS_NAME)))
		return "a table has the name of the route's own temporary table";
	for (int c = 0; c < WL_NCOLUMNS; c++)
	{
		Form_pg_attribute att;

		wl->src_att[c] = get_attnum(wl->source_id, column_names[c]);
		att = TupleDescAttr(desc, wl->src_att[c] - 1);
		wl->src_type[c] = att->atttypid;
		if (!SourceTypeOk(c, att->atttypid))
			return "a column of the staging table has another type";
		/* the text the rules and the sort compare: equal must mean equal bytes */
		if ((c == WL_ANONYMOUS_ID || c == WL_EVENT_ID || c == WL_EVENT_NAME || c == WL_PAGE_PATH) &&
			!get_collation_isdeterministic(att->attcollation))
			return "a column of the staging table has a nondeterministic collation";
		if (c == WL_EVENT_NAME)
			wl->name_collation = att->attcollation;
		if (c == WL_PAGE_PATH)
			wl->path_collation = att->attcollation;
	}
	return NULL;
}

/* the descriptor of the sorted rows (dogdb.web_events' columns) and the sort */
static void
StartSort(WebLoad *wl)
{
	AttrNumber	attnums[5] = {WL_ANONYMOUS_ID + 1, WL_EVENT_ID + 1, WL_OCCURRED_AT + 1,
	WL_EVENT_NAME + 1, WL_PAGE_PATH + 1};
	Oid			operators[5];
	Oid			collations[5] = {C_COLLATION_OID, C_COLLATION_OID, InvalidOid,
	wl->name_collation, wl->path_collation};
	bool		nulls_first[5] = {false, false, false, false, false};

	wl->sortdesc = CreateTemplateTupleDesc(WL_NCOLUMNS);
	for (int c = 0; c < WL_NCOLUMNS; c++)
		TupleDescInitEntry(wl->sortdesc, c + 1, column_names[c], column_types[c], -1, 0);
	for (int k = 0; k < 5; k++)
		operators[k] = lookup_type_cache(column_types[attnums[k] - 1], TYPECACHE_LT_OPR)->lt_opr;
	wl->sort = tuplesort_begin_heap(wl->sortdesc, 5, attnums, operators, collations, nulls_first,
									maintenance_work_mem, NULL, TUPLESORT_NONE);
}

/* a varlena value inline (and, for what is compared, uncompressed) */
static Datum
Inline(Datum value, bool compared)
{
	struct varlena *p = (struct varlena *) DatumGetPointer(value);

	if (VARATT_IS_EXTERNAL(p) || (compared && VARATT_IS_COMPRESSED(p)))
		return PointerGetDatum(pg_detoast_datum_packed(p));
	return value;
}

/* is the text value v (not NULL) exactly the ASCII string s? */
static bool
TextIs(Datum v, const char *s)
{
	text	   *t = DatumGetTextPP(v);

	return VARSIZE_ANY_EXHDR(t) == strlen(s) && memcmp(VARDATA_ANY(t), s, strlen(s)) == 0;
}

/*
 * Whether the row (dogdb.web_events' columns) is valid: the SQL route's
 * CASE, rule by rule.  Prepares its values for the sort.
 */
static bool
RowValid(Datum *v, bool *n)
{
	bool		page;
	uint32		header;
	struct varlena *props;

	for (int c = 0; c < WL_NCOLUMNS; c++)
		if (!n[c] && c != WL_OCCURRED_AT && c != WL_ACCOUNT_ID)
			v[c] = Inline(v[c], c == WL_ANONYMOUS_ID || c == WL_EVENT_ID ||
						  c == WL_EVENT_NAME || c == WL_PAGE_PATH || c == WL_PROPERTIES);
	if (n[WL_ANONYMOUS_ID] || VARSIZE_ANY_EXHDR(DatumGetPointer(v[WL_ANONYMOUS_ID])) == 0)
		return false;
	if (n[WL_EVENT_ID] || VARSIZE_ANY_EXHDR(DatumGetPointer(v[WL_EVENT_ID])) == 0)
		return false;
	if (n[WL_OCCURRED_AT] || TIMESTAMP_NOT_FINITE(DatumGetTimestampTz(v[WL_OCCURRED_AT])))
		return false;
	if (n[WL_EVENT_NAME] || VARSIZE_ANY_EXHDR(DatumGetPointer(v[WL_EVENT_NAME])) == 0)
		return false;
	page = TextIs(v[WL_EVENT_NAME], "page_view") || TextIs(v[WL_EVENT_NAME], "page_ping");
	if (page && n[WL_PAGE_PATH])
		return false;
	/* page_path LIKE '/%': its first byte ('/' is never part of another character) */
	if (page && (VARSIZE_ANY_EXHDR(DatumGetPointer(v[WL_PAGE_PATH])) == 0 ||
				 *VARDATA_ANY(DatumGetPointer(v[WL_PAGE_PATH])) != '/'))
		return false;
	if (n[WL_PROPERTIES])
		return true;
	/* jsonb_typeof(properties) = 'object': the root container's flag */
	props = (struct varlena *) DatumGetPointer(v[WL_PROPERTIES]);
	memcpy(&header, VARDATA_ANY(props), sizeof(header));
	return (header & JB_FOBJECT) != 0;
}

/* the 64-bit hash of the row's key (anonymous_id, event_id) */
static uint64
KeyHash(Datum *v)
{
	text	   *a = DatumGetTextPP(v[WL_ANONYMOUS_ID]);
	text	   *e = DatumGetTextPP(v[WL_EVENT_ID]);
	uint64		h = hash_bytes_extended((const unsigned char *) VARDATA_ANY(a), VARSIZE_ANY_EXHDR(a), 0);

	return hash_bytes_extended((const unsigned char *) VARDATA_ANY(e), VARSIZE_ANY_EXHDR(e), h);
}

/* pass 1: remember the key's hash; past the memory bound, forget them all */
static void
SeeKey(WebLoad *wl, Datum *v)
{
	bool		found;
	KeyEntry   *e;

	if (wl->keys->members >= wl->keys->grow_threshold &&
		(Size) wl->keys->size * 2 * sizeof(KeyEntry) > wl->limit)
	{
		ereport(DEBUG1, (errmsg_internal("web events load: keys beyond maintenance_work_mem, every row sorted")));
		MemoryContextDelete(wl->keycxt);
		wl->keys = NULL;
		return;
	}
	e = keys_insert(wl->keys, KeyHash(v), &found);
	e->repeated = found;
}

/* pass 2: was the row's key hash seen more than once? */
static bool
KeyRepeated(WebLoad *wl, Datum *v)
{
	KeyEntry   *e = keys_lookup(wl->keys, KeyHash(v));

	if (e == NULL)
		elog(ERROR, "web event key not seen in the first pass");
	return e->repeated;
}

/*
 * Step 1, in two passes over the staging table: pass 1 checks every row,
 * copies the rejected ones and remembers the hashes of the valid rows'
 * keys; pass 2 writes each valid row whose key hash is unique and sorts the
 * others (all of them, when the hashes outgrew the memory bound).
 */
static void
ScanSource(WebLoad *wl, int pass)
{
	TableScanDesc scan = table_beginscan(wl->source, wl->snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(wl->source, NULL);
	TupleTableSlot *row = MakeSingleTupleTableSlot(wl->sortdesc, &TTSOpsVirtual);
	Datum		empty_object = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		MemoryContext old = MemoryContextSwitchTo(wl->rowcxt);
		Datum	   *v = row->tts_values;
		bool	   *n = row->tts_isnull;

		CHECK_FOR_INTERRUPTS();
		wl->staged += (pass == 1);
		ExecClearTuple(row);
		slot_getallattrs(slot);
		for (int c = 0; c < WL_NCOLUMNS; c++)
		{
			v[c] = slot->tts_values[wl->src_att[c] - 1];
			n[c] = slot->tts_isnull[wl->src_att[c] - 1];
		}
		/* s.account_id::bigint */
		if (!n[WL_ACCOUNT_ID] && wl->src_type[WL_ACCOUNT_ID] == INT4OID)
			v[WL_ACCOUNT_ID] = Int64GetDatum(DatumGetInt32(v[WL_ACCOUNT_ID]));
		else if (!n[WL_ACCOUNT_ID] && wl->src_type[WL_ACCOUNT_ID] == INT2OID)
			v[WL_ACCOUNT_ID] = Int64GetDatum(DatumGetInt16(v[WL_ACCOUNT_ID]));
		if (!RowValid(v, n))
		{
			/* copied in pass 1 */
			if (pass == 1)
			{
				wl->rejects[wl->nrejects++] = slot->tts_tid;
				wl->rejected++;
				if (wl->nrejects == WL_REJECT_BATCH)
					WebLoadCopyRejects(wl);
			}
		}
		else if (pass == 1)
		{
			wl->valid++;
			if (wl->keys != NULL)
				SeeKey(wl, v);
		}
		else
		{
			/* coalesce(properties, '{}') */
			if (n[WL_PROPERTIES])
			{
				v[WL_PROPERTIES] = empty_object;
				n[WL_PROPERTIES] = false;
			}
			if (wl->keys != NULL && !KeyRepeated(wl, v))
				WebLoadWriteRow(wl, v, n);
			else
			{
				ExecStoreVirtualTuple(row);
				tuplesort_puttupleslot(wl->sort, row);
			}
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(wl->rowcxt);
	}
	ExecClearTuple(row);
	ExecDropSingleTupleTableSlot(row);
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
}

/*
 * dogdb_internal.load_web_events_bulk(source regclass) → (loaded, duplicates,
 * rejected), or NULL when the SQL route must load it (see the design note)
 */
Datum
dogdb_load_web_events_bulk(PG_FUNCTION_ARGS)
{
	Oid			source_id = PG_GETARG_OID(0);
	WebLoad    *wl;
	TupleDesc	resultdesc;
	const char *why = NULL;
	int			nestlevel;
	Datum		result[3];
	bool		nulls[3] = {false, false, false};

	if (get_call_result_type(fcinfo, NULL, &resultdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	nestlevel = DogdbPinSearchPath();
	wl = palloc0(sizeof(WebLoad));
	wl->source_id = source_id;
	wl->target_id = DogdbRelationId("web_events");

	/* bad arguments: the SQL route raises its errors */
	if (source_id == wl->target_id || source_id == DogdbRelationId("import_rejects"))
		why = "the source is one of the loader's tables";
	else if (get_rel_relkind(source_id) != RELKIND_RELATION)
		why = "the source is not a plain table";
	else if (XactReadOnly)
		why = "the transaction is read-only";
	for (int c = 0; why == NULL && c < WL_NCOLUMNS; c++)
		if (get_attnum(source_id, column_names[c]) == InvalidAttrNumber)
			why = "the source lacks a column";
	if (why == NULL)
	{
		Relation	target;

		/* one loader at a time (the lock conflicts with itself), readers go on */
		target = table_open(wl->target_id, ShareRowExclusiveLock);
		why = TargetRefuses(target);
		table_close(target, NoLock);
	}
	if (why == NULL)
	{
		wl->source = table_open(source_id, AccessShareLock);
		why = SourceRefuses(wl);
		if (why != NULL)
			table_close(wl->source, AccessShareLock);
	}
	if (why != NULL)
	{
		ereport(DEBUG1, (errmsg_internal("web events load: SQL route: %s", why)));
		DogdbRestoreSearchPath(nestlevel);
		PG_RETURN_NULL();
	}

	DogdbSpiConnect();
	/* one snapshot for the staged rows, taken after the lock */
	wl->snapshot = RegisterSnapshot(GetTransactionSnapshot());
	wl->rowcxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb web events load row",
									   ALLOCSET_DEFAULT_SIZES);
	wl->limit = (Size) maintenance_work_mem * 1024;
	wl->keycxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb web events load keys",
									   ALLOCSET_DEFAULT_SIZES);
	wl->keys = keys_create(wl->keycxt,
						   (uint32) Min(Max(wl->source->rd_rel->reltuples, 1024),
										wl->limit / (2 * sizeof(KeyEntry))), NULL);
	StartSort(wl);
	ScanSource(wl, 1);
	WebLoadBeginWrite(wl);
	ScanSource(wl, 2);
	WebLoadEndWrite(wl);
	if (wl->keys != NULL)
		MemoryContextDelete(wl->keycxt);
	WebLoadQuarantine(wl);
	ereport(DEBUG1,
			(errmsg_internal("web events load: C route: %lld staged, %lld loaded, %lld rejected",
							 (long long) wl->staged, (long long) wl->loaded, (long long) wl->rejected)));
	UnregisterSnapshot(wl->snapshot);
	table_close(wl->source, AccessShareLock);
	result[0] = Int64GetDatum(wl->loaded);
	result[1] = Int64GetDatum(wl->valid - wl->loaded);
	result[2] = Int64GetDatum(wl->rejected);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);
	resultdesc = BlessTupleDesc(resultdesc);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(resultdesc, result, nulls)));
}
