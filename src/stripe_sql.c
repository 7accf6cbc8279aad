/*-------------------------------------------------------------------------
 *
 * stripe_sql.c
 *	  The store operations of Stripe ingestion as SQL: SPI plans prepared
 *	  once per backend.  The route of a table the direct writer refuses
 *	  (stripe_store.c), and of every table outside READ COMMITTED.
 *
 *	  Values come in the table's column order (stripe_tables[]).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "common.h"
#include "stripe.h"

/* the newest-wins rule of the upserts */
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
	P_SECRETS,
	P_WAIT,
	P_EVENT,
	P_LINKED_LEDGER,
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
#define N NUMERICOID

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
		" VALUES ($1, $2, $3) ON CONFLICT (customer_id) DO NOTHING",
	3, {T, I8, T}},
	[P_CHARGE_ACCOUNT] = {
		"SELECT account_id FROM dogdb.stripe_payments WHERE charge_id = $1 LIMIT 1",
	1, {T}},
	[P_LINKED] = {
		"SELECT arrival, event_id FROM dogdb_internal.stripe_waiting WHERE link_id = $1 AND arrival < $2"
		" ORDER BY arrival",
	2, {T, I8}},
	[P_LINKED_LEDGER] = {
		"SELECT arrival, payload FROM dogdb.stripe_events WHERE link_id = $1 AND arrival < $2"
		" ORDER BY arrival",
	2, {T, I8}},
	[P_EVENT] = {
		"SELECT payload FROM dogdb.stripe_events WHERE event_id = $1 AND arrival = $2",
	2, {T, I8}},
	[P_WAIT] = {
		"INSERT INTO dogdb_internal.stripe_waiting (link_id, arrival, event_id) VALUES ($1, $2, $3)"
		" ON CONFLICT (link_id, arrival) DO NOTHING",
	3, {T, I8, T}},
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
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,"
		" $17, $18, $19, $20)"
		" ON CONFLICT (account_id, subscription_id) DO UPDATE SET customer_id = excluded.customer_id,"
		" status = excluded.status, currency = excluded.currency, mrr_cents = excluded.mrr_cents,"
		" price_id = excluded.price_id, quantity = excluded.quantity, \"interval\" = excluded.\"interval\","
		" interval_count = excluded.interval_count, discount_percent_off = excluded.discount_percent_off,"
		" discount_amount_off_cents = excluded.discount_amount_off_cents,"
		" discount_end = excluded.discount_end, started_at = excluded.started_at,"
		" canceled_at = excluded.canceled_at, ended_at = excluded.ended_at, " SET_EVENT_COLS NEWER_WINS,
	20, {I8, T, T, T, T, I8, T, I8, T, I8, N, I8, TS, TS, TS, TS, T, TS, I2, I8}},
	[P_VERSION] = {
		"INSERT INTO dogdb.stripe_subscription_versions (account_id, subscription_id, " EVENT_COLS
		", status, currency, mrr_cents) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
		" ON CONFLICT (account_id, subscription_id, event_id) DO NOTHING",
	9, {I8, T, T, TS, I2, I8, T, T, I8}},
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
	[P_SECRETS] = {"SELECT secret FROM dogdb.stripe_webhook_secrets", 0, {0}},
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
Run(StripeCtx *cx, PlanId id, Datum *values, const bool *isnull, int expected)
{
	char		nulls[20];
	int			rc;

	StripeSqlEnter(cx);
	for (int i = 0; i < plan_defs[id].nargs; i++)
		nulls[i] = isnull && isnull[i] ? 'n' : ' ';
	rc = SPI_execute_plan(GetPlan(id), values, nulls, false, 0);
	DogdbSpiCheck(rc, expected, plan_defs[id].sql);
	return SPI_processed;
}

/* the first column of the first row returned (which must exist) */
static Datum
FirstValue(bool *isnull)
{
	return SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
}

int64
StripeSqlLedgerInsert(StripeCtx *cx, Datum *v, bool *n)
{
	Datum		a[6] = {v[0], v[1], v[2], v[3], v[4], v[STRIPE_EV_PAYLOAD]};
	bool		an[6] = {n[0], n[1], n[2], n[3], n[4], n[STRIPE_EV_PAYLOAD]};
	bool		isnull;

	if (Run(cx, P_LEDGER, a, an, SPI_OK_INSERT_RETURNING) == 0)
		return 0;
	return DatumGetInt64(FirstValue(&isnull));
}

/* the account of a customer (STRIPE_T_ACCOUNTS) or charge (STRIPE_T_PAYMENTS); 0 if none */
int64
StripeSqlLookup(StripeCtx *cx, StripeTable t, const char *key)
{
	Datum		v = CStringGetTextDatum(key);
	bool		isnull;
	Datum		d;

	if (Run(cx, t == STRIPE_T_ACCOUNTS ? P_MAP_GET : P_CHARGE_ACCOUNT, &v, NULL, SPI_OK_SELECT) == 0)
		return 0;
	d = FirstValue(&isnull);
	return isnull ? 0 : DatumGetInt64(d);
}

bool
StripeSqlInsertIfAbsent(StripeCtx *cx, StripeTable t, Datum *v, bool *n)
{
	return Run(cx, t == STRIPE_T_ACCOUNTS ? P_MAP_PUT : t == STRIPE_T_WAITING ? P_WAIT : P_VERSION,
			   v, n, SPI_OK_INSERT) > 0;
}

StripeOutcome
StripeSqlUpsert(StripeCtx *cx, StripeTable t, Datum *v, bool *n, bool *inserted)
{
	PlanId		id;
	bool		isnull;

	switch (t)
	{
		case STRIPE_T_CUSTOMERS:
			id = P_CUSTOMER;
			break;
		case STRIPE_T_SUBSCRIPTIONS:
			id = P_SUBSCRIPTION;
			break;
		case STRIPE_T_INVOICES:
			id = P_INVOICE;
			break;
		case STRIPE_T_PAYMENTS:
			id = P_PAYMENT;
			break;
		case STRIPE_T_REFUNDS:
			id = P_REFUND;
			break;
		default:
			elog(ERROR, "no upsert for Stripe table %d", (int) t);
	}
	if (Run(cx, id, v, n, SPI_OK_INSERT_RETURNING) == 0)
		return STRIPE_STALE;
	*inserted = DatumGetBool(FirstValue(&isnull));
	return STRIPE_APPLIED;
}

/* as StripeDirectLinked(): two statements (the ledger may be a Citus table) */
int
StripeSqlLinked(StripeCtx *cx, const char *link, int64 horizon, int64 **arrivals, text ***payloads)
{
	Datum		args[2] = {CStringGetTextDatum(link), Int64GetDatum(horizon)};
	uint64		n = Run(cx, P_LINKED, args, NULL, SPI_OK_SELECT);
	Datum	   *ids;
	int			found = 0;

	if (n == 0)
		return 0;
	/* copied out: the next statements and the nested applies reuse SPI_tuptable */
	*arrivals = palloc(n * sizeof(int64));
	*payloads = palloc(n * sizeof(text *));
	ids = palloc(n * sizeof(Datum));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		(*arrivals)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		ids[i] = PointerGetDatum(DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)));
	}
	for (uint64 i = 0; i < n; i++)
	{
		Datum		a[2] = {ids[i], Int64GetDatum((*arrivals)[i])};
		bool		isnull;

		/* deleted from the ledger by hand (or since delivered again): nothing to apply */
		if (Run(cx, P_EVENT, a, NULL, SPI_OK_SELECT) == 0)
			continue;
		(*arrivals)[found] = (*arrivals)[i];
		(*payloads)[found++] = DatumGetTextPCopy(FirstValue(&isnull));
	}
	return found;
}

/*
 * The ledger's events linked to link that arrived before horizon, by
 * arrival: the waiting list of a database still at 1.6 (the ledger's
 * index on link_id, dropped by the update to 1.7)
 */
int
StripeSqlLinkedLedger(StripeCtx *cx, const char *link, int64 horizon, int64 **arrivals, text ***payloads)
{
	Datum		args[2] = {CStringGetTextDatum(link), Int64GetDatum(horizon)};
	uint64		n = Run(cx, P_LINKED_LEDGER, args, NULL, SPI_OK_SELECT);

	if (n == 0)
		return 0;
	*arrivals = palloc(n * sizeof(int64));
	*payloads = palloc(n * sizeof(text *));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;

		(*arrivals)[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		(*payloads)[i] = DatumGetTextPCopy(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
	}
	return (int) n;
}

void
StripeSqlSecrets(StripeCtx *cx, int *nsecrets, char ***secrets, size_t **lens, MemoryContext cxt)
{
	uint64		n = Run(cx, P_SECRETS, NULL, NULL, SPI_OK_SELECT);

	*nsecrets = (int) n;
	*secrets = MemoryContextAlloc(cxt, (n + 1) * sizeof(char *));
	*lens = MemoryContextAlloc(cxt, (n + 1) * sizeof(size_t));
	for (uint64 i = 0; i < n; i++)
	{
		bool		isnull;
		text	   *t = DatumGetTextPP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		(*lens)[i] = VARSIZE_ANY_EXHDR(t);
		(*secrets)[i] = MemoryContextAlloc(cxt, (*lens)[i] + 1);
		memcpy((*secrets)[i], VARDATA_ANY(t), (*lens)[i]);
		(*secrets)[i][(*lens)[i]] = '\0';
	}
}
