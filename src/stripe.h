/*-------------------------------------------------------------------------
 *
 * stripe.h
 *	  Stripe webhooks into the payments ledger (backend side).
 *
 *	  stripe.c         dogdb_stripe_verify_signature(), the webhook secrets,
 *	                   dogdb_ingest_stripe_event(), dogdb_stripe_replay()
 *	  stripe_apply.c   one event into the ledger and the facts: the rules,
 *	                   over the store operations below
 *	  stripe_store.c   the tables: layouts, the cached check of whether a
 *	                   table may be written directly, opening them
 *	  stripe_direct.c  the store operations as heap and index accesses
 *	  stripe_sql.c     the same operations as SQL (SPI plans): the route
 *	                   for a table the direct writer refuses
 *	  stripe_hmac.c    HMAC-SHA256 of a delivery (keyed contexts kept)
 *	  stripe_cache.c   the customer mapping as this backend last saw it
 *
 *	  Pure cores: stripe_sig.[ch] (header, constant-time compare) and
 *	  stripe_core.[ch] (event JSON, ranks, MRR).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_STRIPE_H
#define DOGDB_STRIPE_H

#include "postgres.h"

#include "nodes/execnodes.h"
#include "utils/relcache.h"

#include "stripe_core.h"

/* what became of an event */
typedef enum StripeOutcome
{
	STRIPE_APPLIED,
	STRIPE_DUPLICATE,
	STRIPE_STALE,
	STRIPE_IGNORED
} StripeOutcome;

extern const char *const stripe_outcome_names[];

/* the tables an ingestion touches; values are passed in column order */
typedef enum StripeTable
{
	STRIPE_T_EVENTS,
	STRIPE_T_ACCOUNTS,
	STRIPE_T_CUSTOMERS,
	STRIPE_T_SUBSCRIPTIONS,
	STRIPE_T_VERSIONS,
	STRIPE_T_INVOICES,
	STRIPE_T_PAYMENTS,
	STRIPE_T_REFUNDS,
	STRIPE_T_SECRETS,
	STRIPE_T_WAITING,			/* dogdb_internal.stripe_waiting */
	STRIPE_NTABLES
} StripeTable;

#define STRIPE_MAX_COLS 20

/* column numbers (0-based) of the ledger dogdb.stripe_events */
#define STRIPE_EV_ARRIVAL 5
#define STRIPE_EV_RECEIVED 6
#define STRIPE_EV_PAYLOAD 7

/* a table as the extension created it */
typedef struct StripeTableDef
{
	const char *relname;
	int			ncols;
	const char *colnames[STRIPE_MAX_COLS];
	Oid			coltypes[STRIPE_MAX_COLS];
	int			npkey;			/* the primary key: the first npkey columns */
	int			evcol;			/* facts: event_id, then created, rank, arrival; else -1 */
	int			lookupcol;		/* a column looked up through an index of its own; else -1 */
	const char *checks[4];		/* its CHECK constraints, by name */
	bool		internal;		/* in dogdb_internal, not dogdb */
} StripeTableDef;

extern const StripeTableDef stripe_tables[STRIPE_NTABLES];

/* a table opened by the direct writer for one call */
typedef struct StripeDirectRel
{
	Relation	rel;
	ResultRelInfo *rri;			/* with its indexes open */
	List	   *arbiter;		/* the primary key index */
	Oid			lookup_index;	/* index on lookupcol, InvalidOid if none */
	Oid			arrival_seq;	/* the ledger's identity sequence */
	int			evcol;			/* StripeTableDef.evcol */
	bool		reset_ok;		/* changes to it reset what backends keep of it */
	TupleTableSlot *slot;		/* the new row (virtual) */
	TupleTableSlot *existing;	/* a row found (the table's own slot type) */
} StripeDirectRel;

/*
 * One call's state: whether the direct writer may be used at all (READ
 * COMMITTED, not read-only), the role the writes are made for (the
 * function's owner: its privileges are checked, and the SQL route runs as
 * it), the SPI connection, pinned search_path and switched user of the SQL
 * route (made when first needed), and the tables opened directly.
 */
typedef struct StripeCtx
{
	bool		direct_ok;
	bool		spi;			/* connected by us */
	bool		spi_outer;		/* the caller is connected and pinned */
	int			nestlevel;
	Oid			owner;			/* the role the writes are made as */
	bool		user_switched;	/* the SQL route runs as owner */
	Oid			save_user;
	int			save_sec;
	EState	   *estate;
	StripeDirectRel *rels[STRIPE_NTABLES];
	bool		refused[STRIPE_NTABLES];	/* by the direct writer, this call */
} StripeCtx;

extern void StripeCtxBegin(StripeCtx *cx, bool spi_outer, Oid owner);
extern void StripeCtxEnd(StripeCtx *cx);

/* stripe_store.c: the direct writer's table, or NULL: use SQL */
extern StripeDirectRel *StripeDirectOpen(StripeCtx *cx, StripeTable t);
extern void StripeDirectForWrite(StripeCtx *cx, StripeDirectRel *dr);
extern void StripeDirectCloseAll(StripeCtx *cx);
/* changes with every relcache invalidation of the table */
extern uint64 StripeTableGeneration(StripeTable t);
extern bool StripeTableExists(StripeTable t);
/* the SQL route: connect to SPI and pin search_path (once per call) */
extern void StripeSqlEnter(StripeCtx *cx);

/* the store operations (stripe_direct.c; stripe_sql.c the same as SQL) */
extern int64 StripeDirectLedgerInsert(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n);
extern int64 StripeDirectLookup(StripeCtx *cx, StripeDirectRel *dr, const char *key, int resultcol);
extern bool StripeDirectInsertIfAbsent(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n);
extern StripeOutcome StripeDirectUpsert(StripeCtx *cx, StripeDirectRel *dr, Datum *v, bool *n,
										bool *inserted);
extern int	StripeDirectLinked(StripeCtx *cx, StripeDirectRel *waiting, StripeDirectRel *events,
							   const char *link, int64 horizon, int64 **arrivals, text ***payloads);
extern bool StripeDirectSecrets(StripeCtx *cx, int *nsecrets, char ***secrets, size_t **lens,
								MemoryContext cxt, bool *durable);

extern int64 StripeSqlLedgerInsert(StripeCtx *cx, Datum *v, bool *n);
extern int64 StripeSqlLookup(StripeCtx *cx, StripeTable t, const char *key);
extern bool StripeSqlInsertIfAbsent(StripeCtx *cx, StripeTable t, Datum *v, bool *n);
extern StripeOutcome StripeSqlUpsert(StripeCtx *cx, StripeTable t, Datum *v, bool *n, bool *inserted);
extern int	StripeSqlLinked(StripeCtx *cx, const char *link, int64 horizon,
							int64 **arrivals, text ***payloads);
extern int	StripeSqlLinkedLedger(StripeCtx *cx, const char *link, int64 horizon,
								  int64 **arrivals, text ***payloads);
extern void StripeSqlSecrets(StripeCtx *cx, int *nsecrets, char ***secrets, size_t **lens,
							 MemoryContext cxt);

/* stripe_cache.c: the customer mapping as this backend last saw it */
extern bool StripeMapCacheGet(const char *customer, int64 *account);
extern void StripeMapCachePut(const char *customer, int64 account, bool reset_ok, uint64 generation);

/* stripe_hmac.c: HMAC-SHA256(secret, t "." payload) into mac (32 bytes) */
extern void StripeHmac(const char *secret, size_t slen, const char *t, size_t tlen,
					   const char *payload, size_t plen, uint8 *mac);

/* raise 22P02 / 54000 for a parse error of an event */
extern void StripeReportParseError(StripeParseStatus st, const StripeEvent *ev);

/* Insert the event into the ledger (unless it is there: DUPLICATE) and apply it. */
extern StripeOutcome StripeIngest(StripeCtx *cx, const StripeEvent *ev, const char *payload, size_t len);

/*
 * Apply an event already in the ledger (arrival number given) to the
 * facts: replay, and events waiting for their customer or charge.  Events
 * that waited are applied if they arrived before horizon (the arrival of
 * the event being ingested or replayed).
 */
extern StripeOutcome StripeApply(StripeCtx *cx, const StripeEvent *ev, int64 arrival, int64 horizon);

#endif							/* DOGDB_STRIPE_H */
