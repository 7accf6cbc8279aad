/*-------------------------------------------------------------------------
 *
 * stripe_store.c
 *	  The tables of the Stripe ledger as the direct writer sees them: their
 *	  layouts, a per-backend check of whether a table may be written with
 *	  heap and index calls instead of SQL, and opening them for one call.
 *
 * Design note.  Ingesting an event through SPI costs more in executor
 * start-up, plan-cache checks and constraint expressions than in the
 * writes themselves, so the writes go straight to the heap and the
 * indexes (stripe_direct.c) with the executor's own speculative insertion
 * and tuple locking, the protocol INSERT ... ON CONFLICT uses.  That is
 * only the same as the SQL when SQL would do nothing more, so a table is
 * written directly only if it is a plain table with exactly the columns
 * the extension created (names, types, no dropped or generated column),
 * its own CHECK constraints and no other, a primary key on the expected
 * columns, no trigger but the extension's own cache-reset statement
 * triggers (which change nothing written), no rule, no row-level
 * security, and it is not a Citus table.  Otherwise that table's
 * operations take the SQL route (stripe_sql.c), the statements the
 * extension always ran.  A whole
 * call takes the SQL route outside READ COMMITTED (the snapshot rules of
 * REPEATABLE READ and SERIALIZABLE, predicate locks) and in a read-only
 * transaction.
 *
 * The check is cached per table and reset by a relcache invalidation of
 * the table (any DDL on it: a trigger, an index, a column, a policy,
 * Citus distributing it, GRANT/REVOKE); the caller's privileges are
 * checked once per user and reset the same way or on a role membership
 * change.  Tables are opened (and locked, which processes invalidations)
 * before the cached verdict is read.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_index.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

#include "common.h"
#include "stripe.h"

#define T TEXTOID
#define TS TIMESTAMPTZOID
#define I8 INT8OID
#define I2 INT2OID
#define B BOOLOID
#define EVCOLS "event_id", "event_created", "event_rank", "event_arrival"
#define EVTYPES T, TS, I2, I8

const StripeTableDef stripe_tables[STRIPE_NTABLES] = {
	[STRIPE_T_EVENTS] = {"stripe_events", 8,
		{"event_id", "event_type", "object_id", "link_id", "created", "arrival", "received_at", "payload"},
		{T, T, T, T, TS, I8, TS, T}, 1, -1, 0, {"stripe_events_event_id_check"}},
	[STRIPE_T_ACCOUNTS] = {"stripe_customer_accounts", 3,
		{"customer_id", "account_id", "source"}, {T, I8, T}, 1, -1, 0,
		{"stripe_customer_accounts_customer_id_check", "stripe_customer_accounts_account_id_check",
	"stripe_customer_accounts_source_check"}},
	[STRIPE_T_CUSTOMERS] = {"stripe_customers", 9,
		{"account_id", "customer_id", "email", "deleted", "created_at", EVCOLS},
		{I8, T, T, B, TS, EVTYPES}, 2, 5, -1, {NULL}},
	[STRIPE_T_SUBSCRIPTIONS] = {"stripe_subscriptions", 20,
		{"account_id", "subscription_id", "customer_id", "status", "currency", "mrr_cents", "price_id",
			"quantity", "interval", "interval_count", "discount_percent_off", "discount_amount_off_cents",
		"discount_end", "started_at", "canceled_at", "ended_at", EVCOLS},
		{I8, T, T, T, T, I8, T, I8, T, I8, NUMERICOID, I8, TS, TS, TS, TS, EVTYPES}, 2, 16, -1, {NULL}},
	[STRIPE_T_VERSIONS] = {"stripe_subscription_versions", 9,
		{"account_id", "subscription_id", EVCOLS, "status", "currency", "mrr_cents"},
		{I8, T, EVTYPES, T, T, I8}, 3, 2, -1, {NULL}},
	[STRIPE_T_INVOICES] = {"stripe_invoices", 14,
		{"account_id", "invoice_id", "customer_id", "subscription_id", "status", "currency", "total_cents",
		"tax_cents", "amount_paid_cents", "created_at", EVCOLS},
		{I8, T, T, T, T, T, I8, I8, I8, TS, EVTYPES}, 2, 10, -1, {NULL}},
	[STRIPE_T_PAYMENTS] = {"stripe_payments", 13,
		{"account_id", "charge_id", "customer_id", "invoice_id", "status", "currency", "amount_cents",
		"amount_refunded_cents", "created_at", EVCOLS},
		{I8, T, T, T, T, T, I8, I8, TS, EVTYPES}, 2, 9, 1, {NULL}},
	[STRIPE_T_REFUNDS] = {"stripe_refunds", 11,
		{"account_id", "refund_id", "charge_id", "status", "currency", "amount_cents", "created_at", EVCOLS},
		{I8, T, T, T, T, I8, TS, EVTYPES}, 2, 7, -1, {NULL}},
	[STRIPE_T_SECRETS] = {"stripe_webhook_secrets", 3,
		{"secret", "note", "added_at"}, {T, T, TS}, 1, -1, -1, {"stripe_webhook_secrets_secret_check"}},
	[STRIPE_T_WAITING] = {"stripe_waiting", 3,
		{"link_id", "arrival", "event_id"}, {T, I8, T}, 2, -1, 0, {NULL}, true},
};

/* what the backend knows of a table until its next invalidation */
typedef struct TableCache
{
	Oid			relid;
	uint64		generation;		/* counts its invalidations */
	bool		checked;		/* ok and the OIDs below are valid */
	bool		ok;				/* may be written directly */
	bool		reset_ok;		/* its changes reset what backends keep of it */
	Oid			acl_user;		/* privileges checked for this user */
	Oid			lookup_index;
	Oid			arrival_seq;
} TableCache;

static TableCache cache[STRIPE_NTABLES];
static bool callbacks_registered = false;

static void
RelcacheCallback(Datum arg, Oid relid)
{
	for (int t = 0; t < STRIPE_NTABLES; t++)
		if (relid == InvalidOid || relid == cache[t].relid)
		{
			cache[t].checked = false;
			cache[t].acl_user = InvalidOid;
			cache[t].generation++;
		}
}

uint64
StripeTableGeneration(StripeTable t)
{
	return cache[t].generation;
}

/*
 * Does the table exist?  Only dogdb_internal.stripe_waiting (1.7) may be
 * missing: a database still at 1.6 with this library, until ALTER
 * EXTENSION ... UPDATE.
 */
bool
StripeTableExists(StripeTable t)
{
	const StripeTableDef *def = &stripe_tables[t];
	Oid			nsp;

	if (cache[t].checked)
		return true;
	nsp = get_namespace_oid(def->internal ? DOGDB_INTERNAL_SCHEMA : DOGDB_SCHEMA, true);
	return OidIsValid(nsp) && OidIsValid(get_relname_relid(def->relname, nsp));
}

/*
 * Are the table's triggers only dogdb_internal.stripe_cache_reset()
 * statement triggers (which SQL writes would fire to no effect on what is
 * written)?  *reset_ok: one of them fires ALWAYS after every INSERT,
 * UPDATE, DELETE and TRUNCATE, so a backend may keep the table's rows
 * until the relcache invalidation it sends.
 */
static bool
OnlyResetTriggers(TriggerDesc *td, bool *reset_ok)
{
	const int16 all = TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE | TRIGGER_TYPE_TRUNCATE;
	Oid			nsp = get_namespace_oid(DOGDB_INTERNAL_SCHEMA, true);

	*reset_ok = false;
	for (int i = 0; i < td->numtriggers; i++)
	{
		Trigger    *tg = &td->triggers[i];
		char	   *name;
		bool		ours;

		/* by catalog lookups, not name resolution: the caller may not use the schema */
		if (!OidIsValid(nsp) || get_func_namespace(tg->tgfoid) != nsp || TRIGGER_FOR_ROW(tg->tgtype))
			return false;
		name = get_func_name(tg->tgfoid);
		ours = name != NULL && strcmp(name, "stripe_cache_reset") == 0;
		if (name != NULL)
			pfree(name);
		if (!ours)
			return false;
		if (tg->tgenabled == TRIGGER_FIRES_ALWAYS && TRIGGER_FOR_AFTER(tg->tgtype) &&
			(tg->tgtype & all) == all && tg->tgnattr == 0 && tg->tgqual == NULL)
			*reset_ok = true;
	}
	return true;
}

static void
MembershipCallback(Datum arg, int cacheid, uint32 hashvalue)
{
	for (int t = 0; t < STRIPE_NTABLES; t++)
		cache[t].acl_user = InvalidOid;
}

/* is ind a valid, plain btree index whose keys are exactly attnums 1..n or {attnum}? */
static bool
PlainIndexOn(Relation ind, int n, AttrNumber attnum)
{
	Form_pg_index ix = ind->rd_index;

	if (ix->indnkeyatts != n || !ix->indisvalid || !ix->indisready ||
		ind->rd_rel->relam != BTREE_AM_OID ||
		!heap_attisnull(ind->rd_indextuple, Anum_pg_index_indpred, NULL) ||
		!heap_attisnull(ind->rd_indextuple, Anum_pg_index_indexprs, NULL))
		return false;
	for (int i = 0; i < n; i++)
		if (ix->indkey.values[i] != (attnum > 0 ? attnum : i + 1))
			return false;
	return true;
}

/*
 * Find the primary key (the first npkey columns, immediate) and the index
 * on the lookup column; false if either is missing.
 */
static bool
CheckIndexes(Relation rel, const StripeTableDef *def, TableCache *c)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	bool		pk_ok = false;

	c->lookup_index = InvalidOid;
	foreach(lc, indexes)
	{
		Relation	ind = index_open(lfirst_oid(lc), AccessShareLock);

		if (ind->rd_index->indisprimary)
			pk_ok = ind->rd_index->indimmediate && PlainIndexOn(ind, def->npkey, 0);
		if (def->lookupcol >= 0 && !OidIsValid(c->lookup_index) &&
			(def->lookupcol == 0 ? ind->rd_index->indisprimary :
			 PlainIndexOn(ind, 1, def->lookupcol + 1)))
			c->lookup_index = RelationGetRelid(ind);
		index_close(ind, AccessShareLock);
	}
	list_free(indexes);
	return pk_ok && (def->lookupcol < 0 || OidIsValid(c->lookup_index));
}

/* may rel be written directly?  (fills the cached OIDs) */
static bool
CheckTable(Relation rel, const StripeTableDef *def, TableCache *c)
{
	TupleDesc	desc = RelationGetDescr(rel);
	TupleConstr *constr = desc->constr;

	c->reset_ok = false;
	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rules != NULL ||
		(rel->trigdesc != NULL && !OnlyResetTriggers(rel->trigdesc, &c->reset_ok)) ||
		rel->rd_rel->relrowsecurity ||
		DogdbIsDistributed(RelationGetRelid(rel)) || desc->natts != def->ncols)
		return false;
	for (int i = 0; i < def->ncols; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped || att->attgenerated || att->atttypid != def->coltypes[i] ||
			att->atttypmod != -1 || strcmp(NameStr(att->attname), def->colnames[i]) != 0)
			return false;
	}
	/* exactly its own CHECK constraints (the values written satisfy them) */
	{
		int			nchecks = 0;

		while (nchecks < 4 && def->checks[nchecks] != NULL)
			nchecks++;
		if ((constr ? constr->num_check : 0) != nchecks)
			return false;
		for (int i = 0; i < nchecks; i++)
		{
			bool		known = false;

			for (int k = 0; k < nchecks; k++)
				known |= strcmp(constr->check[i].ccname, def->checks[k]) == 0;
			if (!known)
				return false;
		}
	}
	if (!CheckIndexes(rel, def, c))
		return false;
	c->arrival_seq = InvalidOid;
	if (def == &stripe_tables[STRIPE_T_EVENTS])
	{
		if (TupleDescAttr(desc, STRIPE_EV_ARRIVAL)->attidentity != ATTRIBUTE_IDENTITY_ALWAYS)
			return false;
		c->arrival_seq = getIdentitySequence(RelationGetRelid(rel), STRIPE_EV_ARRIVAL + 1, true);
		if (!OidIsValid(c->arrival_seq))
			return false;
	}
	return true;
}

/*
 * The privileges SQL would need, of the role the writes are made as:
 * INSERT, UPDATE and SELECT (or SELECT only)
 */
static void
CheckPrivileges(Relation rel, StripeTable t, TableCache *c, Oid owner)
{
	AclMode		need = t == STRIPE_T_SECRETS ? ACL_SELECT : ACL_SELECT | ACL_INSERT | ACL_UPDATE;
	AclResult	r;

	if (c->acl_user == owner)
		return;
	r = pg_class_aclcheck(RelationGetRelid(rel), owner, need);
	if (r != ACLCHECK_OK)
		aclcheck_error(r, OBJECT_TABLE, RelationGetRelationName(rel));
	c->acl_user = owner;
}

StripeDirectRel *
StripeDirectOpen(StripeCtx *cx, StripeTable t)
{
	const StripeTableDef *def = &stripe_tables[t];
	TableCache *c = &cache[t];
	StripeDirectRel *dr;
	Relation	rel;
	MemoryContext old;

	if (cx->rels[t] != NULL)
		return cx->rels[t];
	if (!cx->direct_ok || cx->refused[t])
		return NULL;
	if (!callbacks_registered)
	{
		CacheRegisterRelcacheCallback(RelcacheCallback, (Datum) 0);
		CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, MembershipCallback, (Datum) 0);
		callbacks_registered = true;
	}
	if (!c->checked)
		c->relid = def->internal ? DogdbInternalRelationId(def->relname) : DogdbRelationId(def->relname);
	rel = table_open(c->relid, t == STRIPE_T_SECRETS ? AccessShareLock : RowExclusiveLock);
	if (!c->checked || c->relid != RelationGetRelid(rel))
	{
		c->relid = RelationGetRelid(rel);
		c->ok = CheckTable(rel, def, c);
		c->checked = true;
	}
	if (!c->ok)
	{
		table_close(rel, NoLock);
		cx->refused[t] = true;
		return NULL;
	}
	CheckPrivileges(rel, t, c, cx->owner);

	old = MemoryContextSwitchTo(cx->estate->es_query_cxt);
	dr = palloc0(sizeof(StripeDirectRel));
	dr->rel = rel;
	dr->lookup_index = c->lookup_index;
	dr->arrival_seq = c->arrival_seq;
	dr->evcol = def->evcol;
	dr->reset_ok = c->reset_ok;
	dr->existing = table_slot_create(rel, NULL);
	MemoryContextSwitchTo(old);
	cx->rels[t] = dr;
	return dr;
}

/*
 * Prepare dr for writing: its indexes open (with what speculative
 * insertion needs), the primary key as arbiter, a slot for new rows.
 * Lookups need none of it.
 */
void
StripeDirectForWrite(StripeCtx *cx, StripeDirectRel *dr)
{
	MemoryContext old;

	if (dr->rri != NULL)
		return;
	old = MemoryContextSwitchTo(cx->estate->es_query_cxt);
	dr->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(dr->rri, dr->rel, 0, NULL, 0);
	ExecOpenIndices(dr->rri, true);
	/* the arbiter: the primary key (CheckIndexes() saw one) */
	for (int i = 0; i < dr->rri->ri_NumIndices; i++)
		if (dr->rri->ri_IndexRelationDescs[i]->rd_index->indisprimary)
			dr->arbiter = list_make1_oid(RelationGetRelid(dr->rri->ri_IndexRelationDescs[i]));
	if (dr->arbiter == NIL)
		elog(ERROR, "primary key of \"%s\" not found", RelationGetRelationName(dr->rel));
	dr->slot = MakeSingleTupleTableSlot(RelationGetDescr(dr->rel), &TTSOpsVirtual);
	MemoryContextSwitchTo(old);
}

void
StripeDirectCloseAll(StripeCtx *cx)
{
	for (int t = 0; t < STRIPE_NTABLES; t++)
	{
		StripeDirectRel *dr = cx->rels[t];

		if (dr == NULL)
			continue;
		if (dr->rri != NULL)
			ExecCloseIndices(dr->rri);
		if (dr->slot != NULL)
			ExecDropSingleTupleTableSlot(dr->slot);
		ExecDropSingleTupleTableSlot(dr->existing);
		table_close(dr->rel, NoLock);
		cx->rels[t] = NULL;
	}
}

void
StripeCtxBegin(StripeCtx *cx, bool spi_outer, Oid owner)
{
	memset(cx, 0, sizeof(*cx));
	cx->spi_outer = spi_outer;
	cx->owner = owner;
	cx->direct_ok = !IsolationUsesXactSnapshot() && !XactReadOnly && !IsInParallelMode();
	cx->estate = CreateExecutorState();
}

void
StripeCtxEnd(StripeCtx *cx)
{
	StripeDirectCloseAll(cx);
	FreeExecutorState(cx->estate);
	cx->estate = NULL;
	if (cx->spi)
	{
		DogdbSpiFinish();
		DogdbRestoreSearchPath(cx->nestlevel);
		cx->spi = false;
	}
	if (cx->user_switched)
	{
		SetUserIdAndSecContext(cx->save_user, cx->save_sec);
		cx->user_switched = false;
	}
}

/*
 * The SQL route: as the owner (what SECURITY DEFINER would do; an error
 * restores the user with the transaction or subtransaction), with
 * search_path pinned, connected to SPI.
 */
void
StripeSqlEnter(StripeCtx *cx)
{
	if (cx->spi || cx->spi_outer)
		return;
	if (cx->owner != GetUserId())
	{
		GetUserIdAndSecContext(&cx->save_user, &cx->save_sec);
		SetUserIdAndSecContext(cx->owner, cx->save_sec | SECURITY_LOCAL_USERID_CHANGE);
		cx->user_switched = true;
	}
	cx->nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();
	cx->spi = true;
}
