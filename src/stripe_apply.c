/*-------------------------------------------------------------------------
 *
 * stripe_apply.c
 *	  One Stripe event into the ledger and the facts: one SPI statement per
 *	  event, prepared once per backend.
 *
 * Design note.  The ledger dogdb.stripe_events keeps every accepted event
 * raw, keyed by event id (a global key without account_id: the ledger is
 * the dedup table, see sql/dogdb_analytics.sql).  Facts are derived from
 * it: each fact row remembers the (created, rank, arrival) of the event it
 * came from, and an upsert replaces it only by a greater one, so the
 * facts do not depend on arrival order except for exact ties, which go to
 * the later arrival.  Subscriptions also keep every version (MRR history).
 *
 * Each event is one statement of data-modifying CTEs: l inserts into the
 * ledger (ON CONFLICT DO NOTHING: nothing more happens for a duplicate;
 * when applying an event already in the ledger, l just yields its arrival),
 * m finds the account (customer mapping, or the charge of a refund; a
 * customer event may create the mapping), u upserts the fact newest-wins.
 * The statement returns the arrival, the account, whether u wrote and
 * whether it inserted, so one executor run decides the outcome.
 *
 * An event whose customer is not yet mapped to an account (or a refund
 * whose charge is not yet known) changes no fact: it waits in the ledger,
 * found by its link_id (customer or charge id), and is applied when its
 * customer gets mapped or its charge arrives.  Re-applying an event is
 * harmless: its own (created, rank, arrival) is never greater than itself.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "datatype/timestamp.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "common.h"
#include "stripe.h"

const char *const stripe_outcome_names[] = {"applied", "duplicate", "stale", "ignored"};

#define T TEXTOID
#define TS TIMESTAMPTZOID
#define I8 INT8OID
#define I2 INT2OID
#define B BOOLOID
#define F8 FLOAT8OID

/*
 * Parameters every event statement takes: $1 event id, $2 event created,
 * $3 rank, $4 arrival (apply mode), $5 event type, $6 object id, $7 link
 * (customer, or charge of a refund), $8 payload (ingest mode), $9 horizon
 * (apply mode); the kind's own from $10.
 */
#define NCOMMON 9
static const Oid common_types[NCOMMON] = {T, TS, I2, I8, T, T, T, T, I8};

#define L_INGEST \
	"WITH l AS (INSERT INTO dogdb.stripe_events (event_id, event_type, object_id, link_id, created, payload)" \
	" VALUES ($1, $5, $6, $7, $2, $8) ON CONFLICT (event_id) DO NOTHING RETURNING arrival)"
#define L_APPLY "WITH l AS (SELECT $4::bigint AS arrival)"
#define M_CUSTOMER_OF_LINK \
	", m AS (SELECT account_id FROM dogdb.stripe_customer_accounts WHERE customer_id = $7)"
#define NEWER_WINS \
	" WHERE (t.event_created, t.event_rank, t.event_arrival)" \
	" < (excluded.event_created, excluded.event_rank, excluded.event_arrival)" \
	" RETURNING (t.xmax = 0) AS inserted)"
#define SET_EVENT_COLS \
	"event_id = excluded.event_id, event_created = excluded.event_created," \
	" event_rank = excluded.event_rank, event_arrival = excluded.event_arrival"
#define EVENT_COLS "event_id, event_created, event_rank, event_arrival"
#define EVENT_VALS "$1, $2, $3, l.arrival"
#define FINAL(extra) \
	" SELECT (SELECT arrival FROM l), (SELECT account_id FROM m LIMIT 1)," \
	" (SELECT bool_or(inserted) FROM u), " extra

typedef struct KindDef
{
	const char *ctes;			/* after l: m, u and more */
	const char *extra;			/* fourth output column */
	int			nargs;			/* the kind's own */
	Oid			types[16];
} KindDef;

static const KindDef kind_defs[] = {
	[STRIPE_CUSTOMER] = {
		", mp AS (INSERT INTO dogdb.stripe_customer_accounts (customer_id, account_id, source)"
		" SELECT $6, $10, 'metadata' FROM l WHERE $10 > 0 AND NOT EXISTS"
		" (SELECT FROM dogdb.stripe_customer_accounts WHERE customer_id = $6)"
		" ON CONFLICT (customer_id) DO NOTHING RETURNING account_id)"
		", m AS (SELECT account_id FROM dogdb.stripe_customer_accounts WHERE customer_id = $6"
		" UNION ALL SELECT account_id FROM mp)"
		", u AS (INSERT INTO dogdb.stripe_customers AS t (account_id, customer_id, email, deleted, created_at, "
		EVENT_COLS ") SELECT m.account_id, $6, $11, $12, $13, " EVENT_VALS
		" FROM l, (SELECT account_id FROM m LIMIT 1) m"
		" ON CONFLICT (account_id, customer_id) DO UPDATE SET email = excluded.email,"
		" deleted = excluded.deleted, created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
		"EXISTS (SELECT FROM mp)",
	4, {I8, T, B, TS}},
	[STRIPE_SUBSCRIPTION] = {
		M_CUSTOMER_OF_LINK
		", v AS (INSERT INTO dogdb.stripe_subscription_versions (account_id, subscription_id, status, currency,"
		" mrr_cents, " EVENT_COLS ") SELECT m.account_id, $6, $10, $11, $12, " EVENT_VALS " FROM l, m"
		" ON CONFLICT (account_id, subscription_id, event_id) DO NOTHING)"
		", u AS (INSERT INTO dogdb.stripe_subscriptions AS t (account_id, subscription_id, customer_id, status,"
		" currency, mrr_cents, price_id, quantity, \"interval\", interval_count, discount_percent_off,"
		" discount_amount_off_cents, discount_end, started_at, canceled_at, ended_at, " EVENT_COLS ")"
		" SELECT m.account_id, $6, $7, $10, $11, $12, $13, $14, $15, $16, $17::numeric, $18, $19, $20, $21, $22, "
		EVENT_VALS " FROM l, m"
		" ON CONFLICT (account_id, subscription_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" status = excluded.status, currency = excluded.currency, mrr_cents = excluded.mrr_cents,"
		" price_id = excluded.price_id, quantity = excluded.quantity, \"interval\" = excluded.\"interval\","
		" interval_count = excluded.interval_count, discount_percent_off = excluded.discount_percent_off,"
		" discount_amount_off_cents = excluded.discount_amount_off_cents,"
		" discount_end = excluded.discount_end, started_at = excluded.started_at,"
		" canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, " SET_EVENT_COLS NEWER_WINS,
		"NULL::boolean",
	13, {T, T, I8, T, I8, T, I8, F8, I8, TS, TS, TS, TS}},
	[STRIPE_INVOICE] = {
		M_CUSTOMER_OF_LINK
		", u AS (INSERT INTO dogdb.stripe_invoices AS t (account_id, invoice_id, customer_id, subscription_id,"
		" status, currency, total_cents, tax_cents, amount_paid_cents, created_at, " EVENT_COLS ")"
		" SELECT m.account_id, $6, $7, $10, $11, $12, $13, $14, $15, $16, " EVENT_VALS " FROM l, m"
		" ON CONFLICT (account_id, invoice_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" subscription_id = excluded.subscription_id, status = excluded.status,"
		" currency = excluded.currency, total_cents = excluded.total_cents,"
		" tax_cents = excluded.tax_cents, amount_paid_cents = excluded.amount_paid_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
		"NULL::boolean",
	7, {T, T, T, I8, I8, I8, TS}},
	[STRIPE_CHARGE] = {
		M_CUSTOMER_OF_LINK
		", u AS (INSERT INTO dogdb.stripe_payments AS t (account_id, charge_id, customer_id, invoice_id, status,"
		" currency, amount_cents, amount_refunded_cents, created_at, " EVENT_COLS ")"
		" SELECT m.account_id, $6, $7, $10, $11, $12, $13, $14, $15, " EVENT_VALS " FROM l, m"
		" ON CONFLICT (account_id, charge_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" invoice_id = excluded.invoice_id, status = excluded.status, currency = excluded.currency,"
		" amount_cents = excluded.amount_cents, amount_refunded_cents = excluded.amount_refunded_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
		/* refunds of this charge waiting in the ledger */
		"EXISTS (SELECT FROM dogdb.stripe_events e, l WHERE e.link_id = $6"
		" AND e.arrival < coalesce($9, l.arrival))",
	6, {T, T, T, I8, I8, TS}},
	[STRIPE_REFUND] = {
		", m AS (SELECT account_id FROM dogdb.stripe_payments WHERE charge_id = $7 LIMIT 1)"
		", u AS (INSERT INTO dogdb.stripe_refunds AS t (account_id, refund_id, charge_id, status, currency,"
		" amount_cents, created_at, " EVENT_COLS ")"
		" SELECT m.account_id, $6, $7, $10, $11, $12, $13, " EVENT_VALS " FROM l, m"
		" ON CONFLICT (account_id, refund_id) DO UPDATE SET charge_id = excluded.charge_id,"
		" status = excluded.status, currency = excluded.currency, amount_cents = excluded.amount_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
		"NULL::boolean",
	4, {T, T, I8, TS}},
};

#define NKINDS (STRIPE_REFUND + 1)

/* other statements */
typedef enum PlanId
{
	P_LEDGER,					/* an event that changes no fact */
	P_LINKED,					/* the events waiting for a customer or charge */
	P_LISTED_REFUND,			/* a refund listed by its charge, account known */
	P_COUNT
} PlanId;

static const struct
{
	const char *sql;
	int			nargs;
	Oid			types[12];
}			plan_defs[P_COUNT] = {
	[P_LEDGER] = {
		"INSERT INTO dogdb.stripe_events (event_id, event_type, object_id, link_id, created, payload)"
		" VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING arrival",
	6, {T, T, T, T, TS, T}},
	[P_LINKED] = {
		"SELECT arrival, payload FROM dogdb.stripe_events WHERE link_id = $1 AND arrival < $2"
		" ORDER BY arrival",
	2, {T, I8}},
	[P_LISTED_REFUND] = {
		"INSERT INTO dogdb.stripe_refunds AS t (account_id, refund_id, charge_id, status, currency,"
		" amount_cents, created_at, " EVENT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
		" ON CONFLICT (account_id, refund_id) DO UPDATE SET charge_id = excluded.charge_id,"
		" status = excluded.status, currency = excluded.currency, amount_cents = excluded.amount_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS
		" WHERE (t.event_created, t.event_rank, t.event_arrival)"
		" < (excluded.event_created, excluded.event_rank, excluded.event_arrival)",
	11, {I8, T, T, T, T, I8, TS, T, TS, I2, I8}},
};

static SPIPlanPtr plans[P_COUNT];
static SPIPlanPtr event_plans[NKINDS][2];	/* [kind][ingest?] */

static void
KeepPlan(SPIPlanPtr p)
{
	DogdbSpiCheck(SPI_keepplan(p), 0, "SPI_keepplan");
}

static SPIPlanPtr
GetPlan(PlanId id)
{
	if (plans[id] == NULL)
	{
		SPIPlanPtr	p = DogdbSpiPrepare(plan_defs[id].sql, plan_defs[id].nargs,
										(Oid *) plan_defs[id].types);

		KeepPlan(p);
		plans[id] = p;
	}
	return plans[id];
}

/* the one statement of an event kind, in ingest or apply mode */
static SPIPlanPtr
GetEventPlan(StripeKind kind, bool ingest)
{
	if (event_plans[kind][ingest] == NULL)
	{
		const KindDef *k = &kind_defs[kind];
		Oid			types[NCOMMON + 16];
		char	   *sql = psprintf("%s%s" FINAL("%s"), ingest ? L_INGEST : L_APPLY, k->ctes, k->extra);
		SPIPlanPtr	p;

		memcpy(types, common_types, sizeof(common_types));
		memcpy(types + NCOMMON, k->types, k->nargs * sizeof(Oid));
		p = DogdbSpiPrepare(sql, NCOMMON + k->nargs, types);
		KeepPlan(p);
		pfree(sql);
		event_plans[kind][ingest] = p;
	}
	return event_plans[kind][ingest];
}

static TimestampTz
UnixTime(int64 s)
{
	return (s - (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
}

static Datum
Text(const char *s)
{
	return CStringGetTextDatum(s);
}

/* a text argument: NULL when empty */
static void
OptText(Datum *v, char *n, const char *s)
{
	*v = s[0] ? CStringGetTextDatum(s) : (Datum) 0;
	*n = s[0] ? ' ' : 'n';
}

/* a time argument: NULL when 0 */
static void
OptTime(Datum *v, char *n, int64 s)
{
	*v = s ? TimestampTzGetDatum(UnixTime(s)) : (Datum) 0;
	*n = s ? ' ' : 'n';
}

static void ApplyLinked(const char *link, int64 horizon);

/* the kind's own parameters, from index NCOMMON on */
static void
KindArgs(const StripeEvent *ev, Datum *v, char *n)
{
	int			i;
	int64		quantity = 0;

	switch (ev->kind)
	{
		case STRIPE_CUSTOMER:
			v[0] = Int64GetDatum(ev->account_id);
			OptText(&v[1], &n[1], ev->email);
			v[2] = BoolGetDatum(ev->deleted);
			OptTime(&v[3], &n[3], ev->object_created);
			break;
		case STRIPE_SUBSCRIPTION:
			for (i = 0; i < ev->nitems; i++)
				quantity += ev->items[i].quantity;
			v[0] = Text(ev->status);
			v[1] = Text(ev->currency);
			v[2] = Int64GetDatum(ev->mrr_cents);
			v[3] = Text(ev->items[0].price_id);
			v[4] = Int64GetDatum(quantity);
			v[5] = Text(ev->items[0].interval);
			v[6] = Int64GetDatum(ev->items[0].interval_count);
			v[7] = Float8GetDatum(ev->percent_off);
			v[8] = Int64GetDatum(ev->amount_off);
			if (!ev->has_discount)
				n[7] = n[8] = 'n';
			OptTime(&v[9], &n[9], ev->discount_end);
			OptTime(&v[10], &n[10], ev->object_created);
			OptTime(&v[11], &n[11], ev->canceled_at);
			OptTime(&v[12], &n[12], ev->ended_at);
			break;
		case STRIPE_INVOICE:
			OptText(&v[0], &n[0], ev->subscription);
			v[1] = Text(ev->status);
			v[2] = Text(ev->currency);
			v[3] = Int64GetDatum(ev->total);
			v[4] = Int64GetDatum(ev->tax);
			v[5] = Int64GetDatum(ev->amount_paid);
			OptTime(&v[6], &n[6], ev->object_created);
			break;
		case STRIPE_CHARGE:
			OptText(&v[0], &n[0], ev->invoice);
			v[1] = Text(ev->status);
			v[2] = Text(ev->currency);
			v[3] = Int64GetDatum(ev->amount);
			v[4] = Int64GetDatum(ev->amount_refunded);
			OptTime(&v[5], &n[5], ev->object_created);
			break;
		case STRIPE_REFUND:
			v[0] = Text(ev->refunds[0].status);
			v[1] = Text(ev->refunds[0].currency);
			v[2] = Int64GetDatum(ev->refunds[0].amount);
			OptTime(&v[3], &n[3], ev->refunds[0].created);
			break;
		case STRIPE_OTHER:
			elog(ERROR, "unexpected Stripe event kind %d", (int) ev->kind);
	}
}

/* a refund listed by charge.refunded (rank 1), its account known */
static void
ApplyListedRefund(const StripeEvent *ev, const StripeRefund *rf, int64 account, int64 arrival)
{
	Datum		v[11];
	char		n[12] = "           ";

	v[0] = Int64GetDatum(account);
	v[1] = Text(rf->id);
	v[2] = Text(ev->object_id);
	v[3] = Text(rf->status);
	v[4] = Text(rf->currency);
	v[5] = Int64GetDatum(rf->amount);
	OptTime(&v[6], &n[6], rf->created);
	v[7] = Text(ev->id);
	v[8] = TimestampTzGetDatum(UnixTime(ev->created));
	v[9] = Int16GetDatum(1);
	v[10] = Int64GetDatum(arrival);
	DogdbSpiCheck(SPI_execute_plan(GetPlan(P_LISTED_REFUND), v, n, false, 0), SPI_OK_INSERT,
				  plan_defs[P_LISTED_REFUND].sql);
}

/*
 * Run the event's statement: in ingest mode (arrival < 0) it inserts the
 * event into the ledger first, else it applies the ledger's event with
 * that arrival.  Events waiting for what this one brings (a mapping, a
 * charge) are applied if they arrived before horizon (0: this event's own
 * arrival).
 */
static StripeOutcome
Apply(const StripeEvent *ev, const char *payload, size_t len, int64 arrival, int64 horizon)
{
	bool		ingest = arrival < 0;
	Datum		v[NCOMMON + 16];
	char		n[NCOMMON + 16 + 1];
	const char *link = ev->kind == STRIPE_REFUND ? ev->charge : ev->customer;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	int64		account;
	bool		inserted;
	bool		extra;
	bool		wrote;
	int			i;

	memset(n, ' ', sizeof(n) - 1);
	n[sizeof(n) - 1] = '\0';
	v[0] = Text(ev->id);
	v[1] = TimestampTzGetDatum(UnixTime(ev->created));
	v[2] = Int16GetDatum((int16) ev->rank);
	v[3] = Int64GetDatum(arrival);
	n[3] = ingest ? 'n' : ' ';
	v[4] = Text(ev->type);
	v[5] = Text(ev->object_id);
	OptText(&v[6], &n[6], link);
	v[7] = ingest ? PointerGetDatum(cstring_to_text_with_len(payload, len)) : (Datum) 0;
	n[7] = ingest ? ' ' : 'n';
	v[8] = Int64GetDatum(horizon);
	n[8] = horizon > 0 ? ' ' : 'n';
	KindArgs(ev, v + NCOMMON, n + NCOMMON);

	DogdbSpiCheck(SPI_execute_plan(GetEventPlan(ev->kind, ingest), v, n, false, 0),
				  SPI_OK_SELECT, "Stripe event statement");
	if (SPI_processed != 1)
		elog(ERROR, "Stripe event statement returned " UINT64_FORMAT " rows", SPI_processed);
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	arrival = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
	if (isnull)
		return STRIPE_DUPLICATE;
	if (horizon <= 0)
		horizon = arrival;
	account = DatumGetInt64(SPI_getbinval(tup, desc, 2, &isnull));
	if (isnull)
		return STRIPE_APPLIED;	/* waits for its customer's mapping or its charge */
	inserted = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
	wrote = !isnull;
	extra = DatumGetBool(SPI_getbinval(tup, desc, 4, &isnull));
	extra = extra && !isnull;

	if (ev->kind == STRIPE_CHARGE)
	{
		for (i = 0; i < ev->nrefunds; i++)
			ApplyListedRefund(ev, &ev->refunds[i], account, arrival);
		if (wrote && inserted && extra)
			ApplyLinked(ev->object_id, horizon);	/* refunds that came first */
	}
	else if (ev->kind == STRIPE_CUSTOMER && extra)
		ApplyLinked(ev->object_id, horizon);	/* events of a newly mapped customer */
	return wrote ? STRIPE_APPLIED : STRIPE_STALE;
}

/*
 * Apply the events that wait for a customer's mapping or a charge: those
 * linked to it that arrived before horizon (the arrival of the event being
 * ingested or replayed; later ones find the mapping or charge themselves).
 */
static void
ApplyLinked(const char *link, int64 horizon)
{
	Datum		args[2] = {Text(link), Int64GetDatum(horizon)};
	uint64		n;
	int64	   *arrivals;
	text	  **payloads;
	uint64		i;
	StripeEvent *ev;

	DogdbSpiCheck(SPI_execute_plan(GetPlan(P_LINKED), args, NULL, false, 0), SPI_OK_SELECT,
				  plan_defs[P_LINKED].sql);
	n = SPI_processed;
	if (n == 0)
		return;
	/* copy the rows out: the nested applies reuse SPI_tuptable */
	arrivals = palloc(n * sizeof(int64));
	payloads = palloc(n * sizeof(text *));
	for (i = 0; i < n; i++)
	{
		bool		isnull;

		arrivals[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		payloads[i] = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	ev = palloc(sizeof(StripeEvent));
	for (i = 0; i < n; i++)
	{
		StripeParseStatus st = stripe_event_parse(VARDATA_ANY(payloads[i]), VARSIZE_ANY_EXHDR(payloads[i]), ev);

		CHECK_FOR_INTERRUPTS();
		if (st != STRIPE_PARSE_OK)
			StripeReportParseError(st, ev); /* the ledger holds only valid events */
		(void) StripeApply(ev, arrivals[i], horizon);
	}
	pfree(ev);
}

/* kept in the ledger only: not modeled, or a charge without a customer */
static bool
LedgerOnly(const StripeEvent *ev)
{
	return ev->kind == STRIPE_OTHER || (ev->kind != STRIPE_REFUND && ev->customer[0] == '\0');
}

StripeOutcome
StripeApply(const StripeEvent *ev, int64 arrival, int64 horizon)
{
	if (LedgerOnly(ev))
		return STRIPE_IGNORED;
	return Apply(ev, NULL, 0, arrival, horizon);
}

StripeOutcome
StripeIngest(const StripeEvent *ev, const char *payload, size_t len)
{
	Datum		v[6];
	char		n[7] = "      ";

	if (!LedgerOnly(ev))
		return Apply(ev, payload, len, -1, 0);
	v[0] = Text(ev->id);
	v[1] = Text(ev->type);
	OptText(&v[2], &n[2], ev->object_id);
	OptText(&v[3], &n[3], ev->kind == STRIPE_REFUND ? ev->charge : ev->customer);
	v[4] = TimestampTzGetDatum(UnixTime(ev->created));
	v[5] = PointerGetDatum(cstring_to_text_with_len(payload, len));
	DogdbSpiCheck(SPI_execute_plan(GetPlan(P_LEDGER), v, n, false, 0), SPI_OK_INSERT_RETURNING,
				  plan_defs[P_LEDGER].sql);
	return SPI_processed == 0 ? STRIPE_DUPLICATE : STRIPE_IGNORED;
}
