/*-------------------------------------------------------------------------
 *
 * stripe_apply.c
 *	  One Stripe event into the ledger and the facts, through SPI plans
 *	  prepared once per backend.
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

/* the columns every fact row has, and the newest-wins rule */
#define EVENT_COLS "event_id, event_created, event_rank, event_arrival"
#define NEWER_WINS \
	" WHERE (t.event_created, t.event_rank, t.event_arrival)" \
	" < (excluded.event_created, excluded.event_rank, excluded.event_arrival)" \
	" RETURNING (t.xmax = 0)"
#define SET_EVENT_COLS \
	"event_id = excluded.event_id, event_created = excluded.event_created," \
	" event_rank = excluded.event_rank, event_arrival = excluded.event_arrival"

typedef enum PlanId
{
	P_LEDGER,
	P_MAP_GET,
	P_MAP_PUT,
	P_CHARGE_ACCOUNT,
	P_LINKED,
	P_CUSTOMER,
	P_SUBSCRIPTION,
	P_VERSION,
	P_INVOICE,
	P_PAYMENT,
	P_REFUND,
	P_COUNT
} PlanId;

typedef struct PlanDef
{
	const char *sql;
	int			nargs;
	Oid			types[20];
} PlanDef;

#define T TEXTOID
#define TS TIMESTAMPTZOID
#define I8 INT8OID
#define I2 INT2OID
#define B BOOLOID
#define F8 FLOAT8OID

static const PlanDef plan_defs[P_COUNT] = {
	[P_LEDGER] = {
		"INSERT INTO dogdb.stripe_events (event_id, event_type, object_id, link_id, created, payload)"
		" VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING arrival",
	6, {T, T, T, T, TS, T}},
	[P_MAP_GET] = {
		"SELECT account_id FROM dogdb.stripe_customer_accounts WHERE customer_id = $1",
	1, {T}},
	[P_MAP_PUT] = {
		"INSERT INTO dogdb.stripe_customer_accounts (customer_id, account_id, source)"
		" VALUES ($1, $2, 'metadata') ON CONFLICT (customer_id) DO NOTHING",
	2, {T, I8}},
	[P_CHARGE_ACCOUNT] = {
		"SELECT account_id FROM dogdb.stripe_payments WHERE charge_id = $1 LIMIT 1",
	1, {T}},
	[P_LINKED] = {
		"SELECT arrival, payload FROM dogdb.stripe_events WHERE link_id = $1 AND arrival < $2"
		" ORDER BY arrival",
	2, {T, I8}},
	[P_CUSTOMER] = {
		"INSERT INTO dogdb.stripe_customers AS t (account_id, customer_id, email, deleted, created_at, "
		EVENT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
		" ON CONFLICT (account_id, customer_id) DO UPDATE SET email = excluded.email,"
		" deleted = excluded.deleted, created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
	9, {I8, T, T, B, TS, T, TS, I2, I8}},
	[P_SUBSCRIPTION] = {
		"INSERT INTO dogdb.stripe_subscriptions AS t (account_id, subscription_id, customer_id, status,"
		" currency, mrr_cents, price_id, quantity, \"interval\", interval_count, discount_percent_off,"
		" discount_amount_off_cents, discount_end, started_at, canceled_at, ended_at, " EVENT_COLS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::numeric, $12, $13, $14, $15, $16,"
		" $17, $18, $19, $20)"
		" ON CONFLICT (account_id, subscription_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" status = excluded.status, currency = excluded.currency, mrr_cents = excluded.mrr_cents,"
		" price_id = excluded.price_id, quantity = excluded.quantity, \"interval\" = excluded.\"interval\","
		" interval_count = excluded.interval_count, discount_percent_off = excluded.discount_percent_off,"
		" discount_amount_off_cents = excluded.discount_amount_off_cents,"
		" discount_end = excluded.discount_end, started_at = excluded.started_at,"
		" canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, " SET_EVENT_COLS NEWER_WINS,
	20, {I8, T, T, T, T, I8, T, I8, T, I8, F8, I8, TS, TS, TS, TS, T, TS, I2, I8}},
	[P_VERSION] = {
		"INSERT INTO dogdb.stripe_subscription_versions (account_id, subscription_id, status, currency,"
		" mrr_cents, " EVENT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
		" ON CONFLICT (account_id, subscription_id, event_id) DO NOTHING",
	9, {I8, T, T, T, I8, T, TS, I2, I8}},
	[P_INVOICE] = {
		"INSERT INTO dogdb.stripe_invoices AS t (account_id, invoice_id, customer_id, subscription_id,"
		" status, currency, total_cents, tax_cents, amount_paid_cents, created_at, " EVENT_COLS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
		" ON CONFLICT (account_id, invoice_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" subscription_id = excluded.subscription_id, status = excluded.status,"
		" currency = excluded.currency, total_cents = excluded.total_cents,"
		" tax_cents = excluded.tax_cents, amount_paid_cents = excluded.amount_paid_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
	14, {I8, T, T, T, T, T, I8, I8, I8, TS, T, TS, I2, I8}},
	[P_PAYMENT] = {
		"INSERT INTO dogdb.stripe_payments AS t (account_id, charge_id, customer_id, invoice_id, status,"
		" currency, amount_cents, amount_refunded_cents, created_at, " EVENT_COLS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
		" ON CONFLICT (account_id, charge_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" invoice_id = excluded.invoice_id, status = excluded.status, currency = excluded.currency,"
		" amount_cents = excluded.amount_cents, amount_refunded_cents = excluded.amount_refunded_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
	13, {I8, T, T, T, T, T, I8, I8, TS, T, TS, I2, I8}},
	[P_REFUND] = {
		"INSERT INTO dogdb.stripe_refunds AS t (account_id, refund_id, charge_id, status, currency,"
		" amount_cents, created_at, " EVENT_COLS ")"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
		" ON CONFLICT (account_id, refund_id) DO UPDATE SET charge_id = excluded.charge_id,"
		" status = excluded.status, currency = excluded.currency, amount_cents = excluded.amount_cents,"
		" created_at = excluded.created_at, " SET_EVENT_COLS NEWER_WINS,
	11, {I8, T, T, T, T, I8, TS, T, TS, I2, I8}},
};

static SPIPlanPtr plans[P_COUNT];

/* the prepared plan of a statement, made once per backend */
static SPIPlanPtr
GetPlan(PlanId id)
{
	if (plans[id] == NULL)
	{
		SPIPlanPtr	p = DogdbSpiPrepare(plan_defs[id].sql, plan_defs[id].nargs,
										(Oid *) plan_defs[id].types);

		DogdbSpiCheck(SPI_keepplan(p), 0, "SPI_keepplan");
		plans[id] = p;
	}
	return plans[id];
}

/*
 * Run a plan; the number of rows it returned.  Never read-only: a read
 * must see what this statement wrote before (a mapping, a charge).
 */
static uint64
Run(PlanId id, Datum *values, const char *nulls, bool is_select)
{
	int			rc = SPI_execute_plan(GetPlan(id), values, nulls, false, 0);
	int			expected = is_select ? SPI_OK_SELECT :
		(id == P_MAP_PUT || id == P_VERSION) ? SPI_OK_INSERT : SPI_OK_INSERT_RETURNING;

	DogdbSpiCheck(rc, expected, plan_defs[id].sql);
	return SPI_processed;
}

/* the first column of the first row returned (which must exist) */
static Datum
FirstValue(bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
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

/* the account of a customer id, 0 if not mapped */
static int64
MappedAccount(const char *customer)
{
	Datum		v = Text(customer);
	bool		isnull;

	if (Run(P_MAP_GET, &v, NULL, true) == 0)
		return 0;
	return DatumGetInt64(FirstValue(&isnull));
}

/* the account of a known charge, 0 if not known yet */
static int64
ChargeAccount(const char *charge)
{
	Datum		v = Text(charge);
	bool		isnull;

	if (Run(P_CHARGE_ACCOUNT, &v, NULL, true) == 0)
		return 0;
	return DatumGetInt64(FirstValue(&isnull));
}

/* fill the four event columns from index i on */
static void
EventCols(Datum *v, const StripeEvent *ev, int rank, int64 arrival, int i)
{
	v[i] = Text(ev->id);
	v[i + 1] = TimestampTzGetDatum(UnixTime(ev->created));
	v[i + 2] = Int16GetDatum((int16) rank);
	v[i + 3] = Int64GetDatum(arrival);
}

/* run an upsert; APPLIED if it wrote, else STALE; *inserted if new */
static StripeOutcome
Upsert(PlanId id, Datum *v, const char *n, bool *inserted)
{
	bool		isnull;

	if (Run(id, v, n, false) == 0)
		return STRIPE_STALE;
	if (inserted)
		*inserted = DatumGetBool(FirstValue(&isnull));
	return STRIPE_APPLIED;
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
	uint64		n = Run(P_LINKED, args, NULL, true);
	int64	   *arrivals;
	text	  **payloads;
	uint64		i;
	StripeEvent *ev;

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

static StripeOutcome
ApplyCustomer(const StripeEvent *ev, int64 arrival, int64 horizon)
{
	int64		account = MappedAccount(ev->object_id);
	bool		newly = false;
	Datum		v[9];
	char		n[10] = "         ";
	StripeOutcome out;

	if (account == 0 && ev->account_id > 0)
	{
		Datum		args[2] = {Text(ev->object_id), Int64GetDatum(ev->account_id)};

		Run(P_MAP_PUT, args, NULL, false);
		account = MappedAccount(ev->object_id);
		newly = true;
	}
	if (account == 0)
		return STRIPE_APPLIED;	/* waits for a mapping */
	v[0] = Int64GetDatum(account);
	v[1] = Text(ev->object_id);
	OptText(&v[2], &n[2], ev->email);
	v[3] = BoolGetDatum(ev->deleted);
	OptTime(&v[4], &n[4], ev->object_created);
	EventCols(v, ev, ev->rank, arrival, 5);
	out = Upsert(P_CUSTOMER, v, n, NULL);
	if (newly)
		ApplyLinked(ev->object_id, horizon);
	return out;
}

static StripeOutcome
ApplySubscription(const StripeEvent *ev, int64 account, int64 arrival)
{
	Datum		v[20];
	char		n[21] = "                    ";
	const StripeItem *it = &ev->items[0];
	int64		quantity = 0;
	int			i;

	for (i = 0; i < ev->nitems; i++)
		quantity += ev->items[i].quantity;
	v[0] = Int64GetDatum(account);
	v[1] = Text(ev->object_id);
	v[2] = Text(ev->customer);
	v[3] = Text(ev->status);
	v[4] = Text(ev->currency);
	v[5] = Int64GetDatum(ev->mrr_cents);
	v[6] = Text(it->price_id);
	v[7] = Int64GetDatum(quantity);
	v[8] = Text(it->interval);
	v[9] = Int64GetDatum(it->interval_count);
	v[10] = Float8GetDatum(ev->percent_off);
	v[11] = Int64GetDatum(ev->amount_off);
	if (!ev->has_discount)
		n[10] = n[11] = 'n';
	OptTime(&v[12], &n[12], ev->discount_end);
	OptTime(&v[13], &n[13], ev->object_created);
	OptTime(&v[14], &n[14], ev->canceled_at);
	OptTime(&v[15], &n[15], ev->ended_at);
	EventCols(v, ev, ev->rank, arrival, 16);

	/* the version first: every event is part of the MRR history */
	{
		Datum		w[9] = {v[0], v[1], v[3], v[4], v[5], v[16], v[17], v[18], v[19]};

		Run(P_VERSION, w, NULL, false);
	}
	return Upsert(P_SUBSCRIPTION, v, n, NULL);
}

static StripeOutcome
ApplyInvoice(const StripeEvent *ev, int64 account, int64 arrival)
{
	Datum		v[14];
	char		n[15] = "              ";

	v[0] = Int64GetDatum(account);
	v[1] = Text(ev->object_id);
	v[2] = Text(ev->customer);
	OptText(&v[3], &n[3], ev->subscription);
	v[4] = Text(ev->status);
	v[5] = Text(ev->currency);
	v[6] = Int64GetDatum(ev->total);
	v[7] = Int64GetDatum(ev->tax);
	v[8] = Int64GetDatum(ev->amount_paid);
	OptTime(&v[9], &n[9], ev->object_created);
	EventCols(v, ev, ev->rank, arrival, 10);
	return Upsert(P_INVOICE, v, n, NULL);
}

/* one refund (rank: 1 when listed by its charge, 2 from charge.refund.updated) */
static StripeOutcome
ApplyRefund(const StripeEvent *ev, const StripeRefund *rf, const char *charge,
			int64 account, int rank, int64 arrival)
{
	Datum		v[11];
	char		n[12] = "           ";

	v[0] = Int64GetDatum(account);
	v[1] = Text(rf->id);
	v[2] = Text(charge);
	v[3] = Text(rf->status);
	v[4] = Text(rf->currency);
	v[5] = Int64GetDatum(rf->amount);
	OptTime(&v[6], &n[6], rf->created);
	EventCols(v, ev, rank, arrival, 7);
	return Upsert(P_REFUND, v, n, NULL);
}

static StripeOutcome
ApplyCharge(const StripeEvent *ev, int64 account, int64 arrival, int64 horizon)
{
	Datum		v[13];
	char		n[14] = "             ";
	bool		inserted = false;
	StripeOutcome out;
	int			i;

	v[0] = Int64GetDatum(account);
	v[1] = Text(ev->object_id);
	v[2] = Text(ev->customer);
	OptText(&v[3], &n[3], ev->invoice);
	v[4] = Text(ev->status);
	v[5] = Text(ev->currency);
	v[6] = Int64GetDatum(ev->amount);
	v[7] = Int64GetDatum(ev->amount_refunded);
	OptTime(&v[8], &n[8], ev->object_created);
	EventCols(v, ev, ev->rank, arrival, 9);
	out = Upsert(P_PAYMENT, v, n, &inserted);
	for (i = 0; i < ev->nrefunds; i++)
		(void) ApplyRefund(ev, &ev->refunds[i], ev->object_id, account, 1, arrival);
	if (inserted)
		ApplyLinked(ev->object_id, horizon);	/* refunds that came first */
	return out;
}

StripeOutcome
StripeApply(const StripeEvent *ev, int64 arrival, int64 horizon)
{
	int64		account;

	switch (ev->kind)
	{
		case STRIPE_OTHER:
			return STRIPE_IGNORED;
		case STRIPE_CUSTOMER:
			return ApplyCustomer(ev, arrival, horizon);
		case STRIPE_REFUND:
			account = ChargeAccount(ev->charge);
			if (account == 0)
				return STRIPE_APPLIED;	/* waits for its charge */
			return ApplyRefund(ev, &ev->refunds[0], ev->charge, account, ev->rank, arrival);
		default:
			break;
	}
	if (ev->customer[0] == '\0')
		return STRIPE_IGNORED;	/* a charge without a customer: no account */
	account = MappedAccount(ev->customer);
	if (account == 0)
		return STRIPE_APPLIED;	/* waits for its customer's mapping */
	switch (ev->kind)
	{
		case STRIPE_SUBSCRIPTION:
			return ApplySubscription(ev, account, arrival);
		case STRIPE_INVOICE:
			return ApplyInvoice(ev, account, arrival);
		case STRIPE_CHARGE:
			return ApplyCharge(ev, account, arrival, horizon);
		default:
			elog(ERROR, "unexpected Stripe event kind %d", (int) ev->kind);
	}
	return STRIPE_IGNORED;		/* keep compiler quiet */
}

StripeOutcome
StripeIngest(const StripeEvent *ev, const char *payload, size_t len)
{
	Datum		v[6];
	char		n[7] = "      ";
	const char *link;
	bool		isnull;
	int64		arrival;

	link = ev->kind == STRIPE_REFUND ? ev->charge : ev->customer;
	v[0] = Text(ev->id);
	v[1] = Text(ev->type);
	OptText(&v[2], &n[2], ev->object_id);
	OptText(&v[3], &n[3], link);
	v[4] = TimestampTzGetDatum(UnixTime(ev->created));
	v[5] = PointerGetDatum(cstring_to_text_with_len(payload, len));
	if (Run(P_LEDGER, v, n, false) == 0)
		return STRIPE_DUPLICATE;
	arrival = DatumGetInt64(FirstValue(&isnull));
	return StripeApply(ev, arrival, arrival);
}
