/*-------------------------------------------------------------------------
 *
 * stripe_apply.c
 *	  One Stripe event into the ledger and the facts: the rules, over the
 *	  store operations of stripe_direct.c (heap and index calls) or, for a
 *	  table the direct writer refuses, stripe_sql.c (SQL).
 *
 * Design note.  The ledger dogdb.stripe_events keeps every accepted event
 * raw, keyed by event id (a global key without account_id: the ledger is
 * the dedup table, see sql/dogdb_analytics.sql).  Facts are derived from
 * it: each fact row remembers the (created, rank, arrival) of the event it
 * came from, and an upsert replaces it only by a greater one, so the
 * facts do not depend on arrival order except for exact ties, which go to
 * the later arrival.  Subscriptions also keep every version (MRR history).
 *
 * An event whose customer is not yet mapped to an account (or a refund
 * whose charge is not yet known) changes no fact: it waits, listed in
 * dogdb_internal.stripe_waiting under its customer or charge id (most
 * events never wait, so the ledger has no index on link_id), and is
 * applied when its customer gets mapped or its charge arrives.  Its row
 * stays: re-applying an event is harmless, its own (created, rank,
 * arrival) is never greater than itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "stripe.h"

const char *const stripe_outcome_names[] = {"applied", "duplicate", "stale", "ignored"};

/* a row being formed, in the table's column order */
typedef struct Row
{
	Datum		v[STRIPE_MAX_COLS];
	bool		n[STRIPE_MAX_COLS];
} Row;

static TimestampTz
UnixTime(int64 s)
{
	return (s - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
}

static void
SetText(Row *r, int i, const char *s)
{
	r->v[i] = CStringGetTextDatum(s);
	r->n[i] = false;
}

/* a text column: NULL when empty */
static void
SetOptText(Row *r, int i, const char *s)
{
	r->n[i] = s[0] == '\0';
	r->v[i] = r->n[i] ? (Datum) 0 : CStringGetTextDatum(s);
}

static void
SetInt8(Row *r, int i, int64 x)
{
	r->v[i] = Int64GetDatum(x);
	r->n[i] = false;
}

/* a time column: NULL when 0 */
static void
SetOptTime(Row *r, int i, int64 s)
{
	r->n[i] = s == 0;
	r->v[i] = s ? TimestampTzGetDatum(UnixTime(s)) : (Datum) 0;
}

/* the four event columns from column i on */
static void
SetEventCols(Row *r, int i, const StripeEvent *ev, int rank, int64 arrival)
{
	SetText(r, i, ev->id);
	r->v[i + 1] = TimestampTzGetDatum(UnixTime(ev->created));
	r->v[i + 2] = Int16GetDatum((int16) rank);
	r->v[i + 3] = Int64GetDatum(arrival);
	r->n[i + 1] = r->n[i + 2] = r->n[i + 3] = false;
}

/*
 * The account of a customer id (0 if not mapped) or of a known charge.  A
 * customer's mapping kept by the backend (stripe_cache.c) is used on the
 * direct route only.
 */
static int64
Lookup(StripeCtx *cx, StripeTable t, const char *key)
{
	StripeDirectRel *dr;
	uint64		generation = StripeTableGeneration(t);
	int64		account;

	if (t == STRIPE_T_ACCOUNTS && cx->direct_ok && !cx->refused[t] &&
		StripeMapCacheGet(key, &account))
		return account;
	dr = StripeDirectOpen(cx, t);
	if (dr == NULL)
		return StripeSqlLookup(cx, t, key);
	account = StripeDirectLookup(cx, dr, key, t == STRIPE_T_ACCOUNTS ? 1 : 0);
	if (t == STRIPE_T_ACCOUNTS)
		StripeMapCachePut(key, account, dr->reset_ok, generation);
	return account;
}

/* insert unless the primary key is there; true if inserted */
static bool
InsertIfAbsent(StripeCtx *cx, StripeTable t, Row *r)
{
	StripeDirectRel *dr = StripeDirectOpen(cx, t);
	uint64		generation = StripeTableGeneration(t);

	if (dr == NULL)
		return StripeSqlInsertIfAbsent(cx, t, r->v, r->n);
	if (!StripeDirectInsertIfAbsent(cx, dr, r->v, r->n))
		return false;
	if (t == STRIPE_T_ACCOUNTS)
		StripeMapCachePut(TextDatumGetCString(r->v[0]), DatumGetInt64(r->v[1]), dr->reset_ok, generation);
	return true;
}

/* newest-wins upsert: APPLIED if it wrote, else STALE; *inserted if new */
static StripeOutcome
Upsert(StripeCtx *cx, StripeTable t, Row *r, bool *inserted)
{
	StripeDirectRel *dr = StripeDirectOpen(cx, t);
	bool		dummy;

	if (inserted == NULL)
		inserted = &dummy;
	if (dr != NULL)
		return StripeDirectUpsert(cx, dr, r->v, r->n, inserted);
	return StripeSqlUpsert(cx, t, r->v, r->n, inserted);
}

/*
 * An event that cannot be applied yet: it waits (stripe_waiting) for link,
 * its customer's mapping or its refund's charge.  Applied all the same.
 */
static StripeOutcome
Wait(StripeCtx *cx, const StripeEvent *ev, const char *link, int64 arrival)
{
	Row			r;

	/* at 1.6 (no list yet) the ledger is the list; the update fills it */
	if (!StripeTableExists(STRIPE_T_WAITING))
		return STRIPE_APPLIED;
	SetText(&r, 0, link);
	SetInt8(&r, 1, arrival);
	SetText(&r, 2, ev->id);
	(void) InsertIfAbsent(cx, STRIPE_T_WAITING, &r);
	return STRIPE_APPLIED;
}

/*
 * Apply the events that wait for a customer's mapping or a charge: those
 * linked to it that arrived before horizon (the arrival of the event being
 * ingested or replayed; later ones find the mapping or charge themselves).
 */
static void
ApplyLinked(StripeCtx *cx, const char *link, int64 horizon)
{
	StripeDirectRel *waiting;
	StripeDirectRel *events;
	int64	   *arrivals;
	text	  **payloads;
	int			n;
	StripeEvent *ev;

	if (!StripeTableExists(STRIPE_T_WAITING))
		n = StripeSqlLinkedLedger(cx, link, horizon, &arrivals, &payloads);
	else if ((waiting = StripeDirectOpen(cx, STRIPE_T_WAITING)) != NULL &&
			 (events = StripeDirectOpen(cx, STRIPE_T_EVENTS)) != NULL)
		n = StripeDirectLinked(cx, waiting, events, link, horizon, &arrivals, &payloads);
	else
		n = StripeSqlLinked(cx, link, horizon, &arrivals, &payloads);
	if (n == 0)
		return;
	ev = palloc(sizeof(StripeEvent));
	for (int i = 0; i < n; i++)
	{
		StripeParseStatus st = stripe_event_parse(VARDATA_ANY(payloads[i]), VARSIZE_ANY_EXHDR(payloads[i]), ev);

		CHECK_FOR_INTERRUPTS();
		if (st != STRIPE_PARSE_OK)
			StripeReportParseError(st, ev); /* the ledger holds only valid events */
		(void) StripeApply(cx, ev, arrivals[i], horizon);
	}
	pfree(ev);
}

static StripeOutcome
ApplyCustomer(StripeCtx *cx, const StripeEvent *ev, int64 arrival, int64 horizon)
{
	int64		account = Lookup(cx, STRIPE_T_ACCOUNTS, ev->object_id);
	bool		newly = false;
	Row			r;
	StripeOutcome out;

	if (account == 0 && ev->account_id > 0)
	{
		SetText(&r, 0, ev->object_id);
		SetInt8(&r, 1, ev->account_id);
		SetText(&r, 2, "metadata");
		/* the mapping just written, or one written meanwhile by another */
		if (InsertIfAbsent(cx, STRIPE_T_ACCOUNTS, &r))
			account = ev->account_id;
		else
			account = Lookup(cx, STRIPE_T_ACCOUNTS, ev->object_id);
		newly = true;
	}
	if (account == 0)
		return Wait(cx, ev, ev->object_id, arrival);	/* for a mapping */
	SetInt8(&r, 0, account);
	SetText(&r, 1, ev->object_id);
	SetOptText(&r, 2, ev->email);
	r.v[3] = BoolGetDatum(ev->deleted);
	r.n[3] = false;
	SetOptTime(&r, 4, ev->object_created);
	SetEventCols(&r, 5, ev, ev->rank, arrival);
	out = Upsert(cx, STRIPE_T_CUSTOMERS, &r, NULL);
	if (newly)
		ApplyLinked(cx, ev->object_id, horizon);
	return out;
}

static StripeOutcome
ApplySubscription(StripeCtx *cx, const StripeEvent *ev, int64 account, int64 arrival)
{
	Row			r;
	Row			w;
	const StripeItem *it = &ev->items[0];
	int64		quantity = 0;

	for (int i = 0; i < ev->nitems; i++)
		quantity += ev->items[i].quantity;
	SetInt8(&r, 0, account);
	SetText(&r, 1, ev->object_id);
	SetText(&r, 2, ev->customer);
	SetText(&r, 3, ev->status);
	SetText(&r, 4, ev->currency);
	SetInt8(&r, 5, ev->mrr_cents);
	SetText(&r, 6, it->price_id);
	SetInt8(&r, 7, quantity);
	SetText(&r, 8, it->interval);
	SetInt8(&r, 9, it->interval_count);
	r.n[10] = r.n[11] = !ev->has_discount;
	r.v[10] = ev->has_discount ? DirectFunctionCall1(float8_numeric, Float8GetDatum(ev->percent_off)) : (Datum) 0;
	r.v[11] = Int64GetDatum(ev->amount_off);
	SetOptTime(&r, 12, ev->discount_end);
	SetOptTime(&r, 13, ev->object_created);
	SetOptTime(&r, 14, ev->canceled_at);
	SetOptTime(&r, 15, ev->ended_at);
	SetEventCols(&r, 16, ev, ev->rank, arrival);

	/* the version first: every event is part of the MRR history */
	w.v[0] = r.v[0];
	w.v[1] = r.v[1];
	memcpy(&w.v[2], &r.v[16], 4 * sizeof(Datum));
	w.v[6] = r.v[3];
	w.v[7] = r.v[4];
	w.v[8] = r.v[5];
	memset(w.n, false, sizeof(w.n));
	(void) InsertIfAbsent(cx, STRIPE_T_VERSIONS, &w);
	return Upsert(cx, STRIPE_T_SUBSCRIPTIONS, &r, NULL);
}

static StripeOutcome
ApplyInvoice(StripeCtx *cx, const StripeEvent *ev, int64 account, int64 arrival)
{
	Row			r;

	SetInt8(&r, 0, account);
	SetText(&r, 1, ev->object_id);
	SetText(&r, 2, ev->customer);
	SetOptText(&r, 3, ev->subscription);
	SetText(&r, 4, ev->status);
	SetText(&r, 5, ev->currency);
	SetInt8(&r, 6, ev->total);
	SetInt8(&r, 7, ev->tax);
	SetInt8(&r, 8, ev->amount_paid);
	SetOptTime(&r, 9, ev->object_created);
	SetEventCols(&r, 10, ev, ev->rank, arrival);
	return Upsert(cx, STRIPE_T_INVOICES, &r, NULL);
}

/* one refund (rank: 1 when listed by its charge, 2 from charge.refund.updated) */
static StripeOutcome
ApplyRefund(StripeCtx *cx, const StripeEvent *ev, const StripeRefund *rf, const char *charge,
			int64 account, int rank, int64 arrival)
{
	Row			r;

	SetInt8(&r, 0, account);
	SetText(&r, 1, rf->id);
	SetText(&r, 2, charge);
	SetText(&r, 3, rf->status);
	SetText(&r, 4, rf->currency);
	SetInt8(&r, 5, rf->amount);
	SetOptTime(&r, 6, rf->created);
	SetEventCols(&r, 7, ev, rank, arrival);
	return Upsert(cx, STRIPE_T_REFUNDS, &r, NULL);
}

static StripeOutcome
ApplyCharge(StripeCtx *cx, const StripeEvent *ev, int64 account, int64 arrival, int64 horizon)
{
	Row			r;
	bool		inserted = false;
	StripeOutcome out;

	SetInt8(&r, 0, account);
	SetText(&r, 1, ev->object_id);
	SetText(&r, 2, ev->customer);
	SetOptText(&r, 3, ev->invoice);
	SetText(&r, 4, ev->status);
	SetText(&r, 5, ev->currency);
	SetInt8(&r, 6, ev->amount);
	SetInt8(&r, 7, ev->amount_refunded);
	SetOptTime(&r, 8, ev->object_created);
	SetEventCols(&r, 9, ev, ev->rank, arrival);
	out = Upsert(cx, STRIPE_T_PAYMENTS, &r, &inserted);
	for (int i = 0; i < ev->nrefunds; i++)
		(void) ApplyRefund(cx, ev, &ev->refunds[i], ev->object_id, account, 1, arrival);
	if (inserted)
		ApplyLinked(cx, ev->object_id, horizon);	/* refunds that came first */
	return out;
}

StripeOutcome
StripeApply(StripeCtx *cx, const StripeEvent *ev, int64 arrival, int64 horizon)
{
	int64		account;

	switch (ev->kind)
	{
		case STRIPE_OTHER:
			return STRIPE_IGNORED;
		case STRIPE_CUSTOMER:
			return ApplyCustomer(cx, ev, arrival, horizon);
		case STRIPE_REFUND:
			account = Lookup(cx, STRIPE_T_PAYMENTS, ev->charge);
			if (account == 0)
				return Wait(cx, ev, ev->charge, arrival);	/* for its charge */
			return ApplyRefund(cx, ev, &ev->refunds[0], ev->charge, account, ev->rank, arrival);
		default:
			break;
	}
	if (ev->customer[0] == '\0')
		return STRIPE_IGNORED;	/* a charge without a customer: no account */
	account = Lookup(cx, STRIPE_T_ACCOUNTS, ev->customer);
	if (account == 0)
		return Wait(cx, ev, ev->customer, arrival);	/* for its customer's mapping */
	switch (ev->kind)
	{
		case STRIPE_SUBSCRIPTION:
			return ApplySubscription(cx, ev, account, arrival);
		case STRIPE_INVOICE:
			return ApplyInvoice(cx, ev, account, arrival);
		case STRIPE_CHARGE:
			return ApplyCharge(cx, ev, account, arrival, horizon);
		default:
			elog(ERROR, "unexpected Stripe event kind %d", (int) ev->kind);
	}
	return STRIPE_IGNORED;		/* keep compiler quiet */
}

StripeOutcome
StripeIngest(StripeCtx *cx, const StripeEvent *ev, const char *payload, size_t len)
{
	StripeDirectRel *dr = StripeDirectOpen(cx, STRIPE_T_EVENTS);
	Row			r;
	int64		arrival;

	SetText(&r, 0, ev->id);
	SetText(&r, 1, ev->type);
	SetOptText(&r, 2, ev->object_id);
	SetOptText(&r, 3, ev->kind == STRIPE_REFUND ? ev->charge : ev->customer);
	r.v[4] = TimestampTzGetDatum(UnixTime(ev->created));
	r.n[4] = false;
	r.v[STRIPE_EV_PAYLOAD] = PointerGetDatum(cstring_to_text_with_len(payload, len));
	r.n[STRIPE_EV_PAYLOAD] = false;
	arrival = dr != NULL ? StripeDirectLedgerInsert(cx, dr, r.v, r.n) : StripeSqlLedgerInsert(cx, r.v, r.n);
	if (arrival == 0)
		return STRIPE_DUPLICATE;
	return StripeApply(cx, ev, arrival, arrival);
}
