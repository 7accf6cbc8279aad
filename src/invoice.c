/*-------------------------------------------------------------------------
 *
 * invoice.c
 *	  Invoice generation: dogdb_preview_invoice_lines() and
 *	  dogdb_generate_invoices().
 *
 * Design note: both functions make one streaming pass over the month's
 * subscriptions in account order (an SPI cursor fetched in batches, so
 * accounts are never all in memory), gather one account's subscriptions,
 * and hand them to the allocation-free proration core (proration.c) with
 * the price history, which is loaded once.
 *
 * dogdb_generate_invoices() writes through bulk_insert.c: batched heap
 * inserts, no per-row foreign-key triggers.  It guarantees the foreign
 * keys itself, more cheaply and just as strongly:
 *	- invoice_lines.invoice_id: every line's invoice is inserted by this
 *	  same call, invisible to other transactions until commit, so nobody
 *	  can delete it in between;
 *	- invoice_lines.plan_id: all plans are locked FOR KEY SHARE up front
 *	  (what the trigger would do, once instead of per line);
 *	- invoices.account_id: the invoiced accounts are locked FOR KEY SHARE
 *	  in batches of BULK_INSERT_BATCH; one that has vanished meanwhile
 *	  aborts the run with a serialization failure.
 * Concurrent runs serialize on a SHARE ROW EXCLUSIVE lock on
 * dogdb.invoices taken before anything is read; in READ COMMITTED the
 * second run then sees the first one's invoices and skips those accounts.
 * Invoice numbers come from dogdb.invoice_number_counters, updated in the
 * same transaction, so they are gapless.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "billing.h"
#include "bulk_insert.h"
#include "proration.h"

PG_FUNCTION_INFO_V1(dogdb_preview_invoice_lines);
PG_FUNCTION_INFO_V1(dogdb_generate_invoices);

/* subscriptions fetched from the cursor at a time */
#define FETCH_BATCH 10000

/* a billing month: [start, end) as dates and as UTC timestamps */
typedef struct BillingMonth
{
	DateADT		start;
	DateADT		end;
	TimestampTz start_ts;
	TimestampTz end_ts;
	int			year;
} BillingMonth;

/* state of one pass over the month's subscriptions */
typedef struct BillingPass
{
	BillingMonth month;
	BillingPlan *plans;			/* sorted by plan_id */
	int			nplans;
	int64		account_id;		/* account being gathered */
	ProrationSpan *spans;		/* its subscriptions */
	int			nspans;
	int			maxspans;
	ProrationResult result;		/* its bill */
} BillingPass;

static const BulkInsertColumn invoice_columns[] = {
	{"invoice_id", INT8OID}, {"invoice_number", TEXTOID}, {"account_id", INT8OID},
	{"period_start", DATEOID}, {"total_cents", INT8OID}, {"currency", TEXTOID},
	{"issued_at", TIMESTAMPTZOID}
};
static const BulkInsertColumn line_columns[] = {
	{"invoice_id", INT8OID}, {"line_no", INT2OID}, {"plan_id", INT2OID}, {"line_start", DATEOID},
	{"line_end", DATEOID}, {"days", INT4OID}, {"unit_price_cents", INT8OID}, {"amount_cents", INT8OID}
};

/* the month argument: first day of a month, else 22023 */
static void
GetBillingMonth(FunctionCallInfo fcinfo, BillingMonth *month)
{
	DateADT		date;
	int			year,
				mon,
				mday;
	int			overflow = 0;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("billing month must not be null"),
				 errhint("Pass the first day of a month, such as date '2021-03-01'.")));
	date = PG_GETARG_DATEADT(0);
	if (DATE_NOT_FINITE(date))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("billing month must be finite"),
				 errhint("Pass the first day of a month, such as date '2021-03-01'.")));
	j2date(date + POSTGRES_EPOCH_JDATE, &year, &mon, &mday);
	if (mday != 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("billing month must be the first day of a month: %s",
						DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum(date)))),
				 errhint("Use date_trunc('month', ...)::date, such as date '%04d-%02d-01'.",
						 year, mon)));
	month->start = date;
	month->end = (mon == 12 ? date2j(year + 1, 1, 1) : date2j(year, mon + 1, 1)) - POSTGRES_EPOCH_JDATE;
	month->year = year;
	month->start_ts = date2timestamp_opt_overflow(month->start, &overflow);
	if (overflow == 0)
		month->end_ts = date2timestamp_opt_overflow(month->end, &overflow);
	if (overflow != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("billing month is out of range for type timestamp with time zone")));
}

/*
 * Load the plans and their price history (SPI must be connected).  lock_plans: lock every plan
 * FOR KEY SHARE, standing in for the foreign-key checks of invoice lines.
 */
BillingPlan *
LoadBillingPlans(MemoryContext cxt, bool lock_plans, int *nplans_out)
{
	MemoryContext old;
	uint64		nprices;
	SPITupleTable *tt;
	BillingPlan *plans;
	int			nplans;

	SPI_execute(lock_plans ?
				"SELECT plan_id, name FROM dogdb.pricing_plans ORDER BY plan_id FOR KEY SHARE" :
				"SELECT plan_id, name FROM dogdb.pricing_plans ORDER BY plan_id",
				!lock_plans, 0);
	tt = SPI_tuptable;
	old = MemoryContextSwitchTo(cxt);
	nplans = (int) SPI_processed;
	plans = palloc0(sizeof(BillingPlan) * Max(nplans, 1));
	for (int i = 0; i < nplans; i++)
	{
		bool		isnull;

		plans[i].plan.plan_id = DatumGetInt16(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
		plans[i].name = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(tt);

	SPI_execute("SELECT plan_id, monthly_price_cents, effective_from FROM dogdb.plan_prices"
				" ORDER BY plan_id, effective_from", true, 0);
	tt = SPI_tuptable;
	nprices = SPI_processed;
	old = MemoryContextSwitchTo(cxt);
	for (uint64 i = 0, k = 0; i < (uint64) nplans; i++)
	{
		BillingPlan *bp = &plans[i];
		ProrationPrice *prices = palloc(sizeof(ProrationPrice) * Max(nprices, 1));
		int			n = 0;
		bool		isnull;

		/* both lists are in plan_id order */
		for (; k < nprices; k++)
		{
			HeapTuple	tup = tt->vals[k];
			int16		plan_id = DatumGetInt16(SPI_getbinval(tup, tt->tupdesc, 1, &isnull));

			if (plan_id != bp->plan.plan_id)
				break;
			prices[n].price_cents = DatumGetInt64(SPI_getbinval(tup, tt->tupdesc, 2, &isnull));
			prices[n].effective_day = DatumGetDateADT(SPI_getbinval(tup, tt->tupdesc, 3, &isnull));
			n++;
		}
		bp->plan.prices = prices;
		bp->plan.nprices = n;
	}
	MemoryContextSwitchTo(old);
	SPI_freetuptable(tt);
	*nplans_out = nplans;
	return plans;
}

static int
ComparePlanId(const void *key, const void *elem)
{
	int32		id = *(const int32 *) key;
	int32		other = ((const BillingPlan *) elem)->plan.plan_id;

	return (id > other) - (id < other);
}

BillingPlan *
FindBillingPlan(BillingPlan *plans, int nplans, int32 plan_id)
{
	BillingPlan *bp = bsearch(&plan_id, plans, nplans, sizeof(BillingPlan), ComparePlanId);

	if (bp == NULL)				/* subscriptions.plan_id has a foreign key */
		elog(ERROR, "plan %d of a subscription is not in dogdb.pricing_plans", plan_id);
	return bp;
}

static const char *
PlanName(BillingPass *pass, int32 plan_id)
{
	return FindBillingPlan(pass->plans, pass->nplans, plan_id)->name;
}

static char *
DayToString(int64 day)
{
	return DatumGetCString(DirectFunctionCall1(date_out, DateADTGetDatum((DateADT) day)));
}

/* raise the error of a proration that failed */
void
ReportProrationError(ProrationStatus status, const ProrationResult *r,
					 BillingPlan *plans, int nplans, int64 account_id, DateADT month)
{
	switch (status)
	{
		case PRORATION_OK:
			break;
		case PRORATION_NO_PRICE:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("no price in force for plan \"%s\" on %s",
							FindBillingPlan(plans, nplans, r->error_plan_id)->name,
							DayToString(r->error_day)),
					 errdetail("Account %lld is subscribed to that plan on that day.",
							   (long long) account_id),
					 errhint("Add a row to dogdb.plan_prices for plan_id %d with effective_from on or before %s.",
							 r->error_plan_id, DayToString(r->error_day))));
			break;
		case PRORATION_OVERFLOW:
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("invoice amount out of range for type bigint"),
					 errdetail("Account %lld, month %s.", (long long) account_id, DayToString(month))));
			break;
		case PRORATION_OVERLAP:
			ereport(ERROR,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("subscriptions of account %lld overlap in %s",
							(long long) account_id, DayToString(month)),
					 errhint("Restore the constraint subscriptions_no_overlap on dogdb.subscriptions.")));
			break;
	}
}

/*
 * Bill the gathered account into pass->result (raising what cannot be
 * billed), emit it unless its total is zero, and start the next account
 */
static void
FinishGatheredAccount(BillingPass *pass, void (*emit) (BillingPass *pass, void *arg), void *arg)
{
	ProrationStatus status = prorate_account(pass->month.start, pass->month.end,
											 pass->spans, pass->nspans, &pass->result);

	if (status != PRORATION_OK)
		ReportProrationError(status, &pass->result, pass->plans, pass->nplans,
							 pass->account_id, pass->month.start);
	if (pass->result.total_cents != 0)
		emit(pass, arg);
	pass->nspans = 0;
}

/* the UTC days a subscription covers: [date of valid_from, date of valid_to) */
ProrationSpan
SubscriptionSpan(BillingPlan *plans, int nplans, int16 plan_id, TimestampTz valid_from,
				 bool open_ended, TimestampTz valid_to)
{
	ProrationSpan span;

	span.plan = &FindBillingPlan(plans, nplans, plan_id)->plan;
	span.first_day = proration_day_of_timestamp(valid_from);
	span.end_day = open_ended ? INT64_MAX : proration_day_of_timestamp(valid_to);
	return span;
}

/* add one cursor row (account_id, plan_id, valid_from, valid_to) */
static void
GatherSubscription(BillingPass *pass, HeapTuple tup, TupleDesc desc)
{
	bool		isnull;
	bool		open_ended;
	Datum		valid_to = SPI_getbinval(tup, desc, 4, &open_ended);

	if (pass->nspans == pass->maxspans)
	{
		pass->maxspans *= 2;
		pass->spans = repalloc(pass->spans, sizeof(ProrationSpan) * pass->maxspans);
	}
	pass->spans[pass->nspans++] =
		SubscriptionSpan(pass->plans, pass->nplans, DatumGetInt16(SPI_getbinval(tup, desc, 2, &isnull)),
						 DatumGetTimestampTz(SPI_getbinval(tup, desc, 3, &isnull)),
						 open_ended, DatumGetTimestampTz(valid_to));
}

/*
 * One pass over the month's subscriptions in account order: calls
 * emit(pass, arg) with pass->result for every account whose total is not
 * zero.
 */
static void
BillingScan(BillingPass *pass, const char *query, bool read_only,
			void (*emit) (BillingPass *pass, void *arg), void *arg)
{
	Oid			argtypes[3] = {TIMESTAMPTZOID, TIMESTAMPTZOID, DATEOID};
	Datum		args[3];
	Portal		portal;
	bool		have_account = false;

	args[0] = TimestampTzGetDatum(pass->month.start_ts);
	args[1] = TimestampTzGetDatum(pass->month.end_ts);
	args[2] = DateADTGetDatum(pass->month.start);
	pass->maxspans = 16;
	pass->spans = palloc(sizeof(ProrationSpan) * pass->maxspans);
	portal = SPI_cursor_open_with_args(NULL, query, 3, argtypes, args, NULL, read_only,
									   CURSOR_OPT_NO_SCROLL);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		n;

		/* emit() may run SPI queries: keep this batch's table and count */
		SPI_cursor_fetch(portal, true, FETCH_BATCH);
		tt = SPI_tuptable;
		n = SPI_processed;
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;
			int64		account_id = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));

			if (have_account && account_id != pass->account_id)
				FinishGatheredAccount(pass, emit, arg);
			pass->account_id = account_id;
			have_account = true;
			GatherSubscription(pass, tt->vals[i], tt->tupdesc);
		}
		SPI_freetuptable(tt);
		if (n == 0)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	if (have_account)
		FinishGatheredAccount(pass, emit, arg);
}

/* the subscriptions that may cover a day of the month, in account order */
#define SUBSCRIPTIONS_OF_MONTH \
	"SELECT s.account_id, s.plan_id, s.valid_from, s.valid_to FROM dogdb.subscriptions s" \
	" WHERE s.valid_from < $2 AND (s.valid_to IS NULL OR s.valid_to > $1)"

/*
 * Preview
 */
typedef struct PreviewState
{
	Tuplestorestate *store;
	TupleDesc	desc;
} PreviewState;

static void
EmitPreviewLines(BillingPass *pass, void *arg)
{
	PreviewState *ps = arg;

	for (int i = 0; i < pass->result.nlines; i++)
	{
		ProrationLine *line = &pass->result.lines[i];
		Datum		values[7];
		bool		nulls[7] = {0};

		values[0] = Int64GetDatum(pass->account_id);
		values[1] = CStringGetTextDatum(PlanName(pass, line->plan_id));
		values[2] = DateADTGetDatum((DateADT) line->first_day);
		values[3] = DateADTGetDatum((DateADT) line->last_day);
		values[4] = Int32GetDatum(line->days);
		values[5] = Int64GetDatum(line->unit_price_cents);
		values[6] = Int64GetDatum(line->amount_cents);
		tuplestore_putvalues(ps->store, ps->desc, values, nulls);
		pfree(DatumGetPointer(values[1]));
	}
}

/*
 * dogdb_preview_invoice_lines(billing_month date): the lines every account
 * would be billed for that month, from the subscriptions and prices as they
 * are now, whether or not invoices were issued.  Writes nothing.
 */
Datum
dogdb_preview_invoice_lines(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BillingPass pass = {0};
	PreviewState ps;

	GetBillingMonth(fcinfo, &pass.month);
	SetSingleFuncCall(fcinfo, 0);
	ps.store = rsinfo->setResult;
	ps.desc = rsinfo->setDesc;

	SPI_connect();
	pass.plans = LoadBillingPlans(CurrentMemoryContext, false, &pass.nplans);
	BillingScan(&pass, SUBSCRIPTIONS_OF_MONTH " ORDER BY s.account_id, s.valid_from",
				true, EmitPreviewLines, &ps);
	SPI_finish();
	return (Datum) 0;
}

/*
 * Generate
 */
typedef struct GenerateState
{
	Tuplestorestate *store;
	TupleDesc	desc;
	BulkInsert *invoices;
	BulkInsert *lines;
	Oid			invoice_seq;
	int64		last_number;
	TimestampTz issued_at;
	Datum		currency;
	Datum		period_start;
	SPIPlanPtr	lock_plan;		/* locks a batch of accounts FOR KEY SHARE */
	int			nlock;
	int64		lock_ids[BULK_INSERT_BATCH];
	int64		created;
} GenerateState;

/* lock the queued accounts FOR KEY SHARE; a vanished one aborts the run */
static void
LockInvoicedAccounts(GenerateState *gs)
{
	Datum		arg;
	int64		locked;
	bool		isnull;

	if (gs->nlock == 0)
		return;
	arg = PointerGetDatum(construct_array((Datum *) gs->lock_ids, gs->nlock, INT8OID,
										  sizeof(int64), FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	if (SPI_execute_plan(gs->lock_plan, &arg, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not lock the accounts being invoiced");
	locked = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_freetuptable(SPI_tuptable);
	if (locked != gs->nlock)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
				 errmsg("could not generate invoices because an account was deleted concurrently"),
				 errdetail("%lld of %d accounts of this batch no longer exist.",
						   (long long) (gs->nlock - locked), gs->nlock),
				 errhint("Run dogdb_generate_invoices() again.")));
	pfree(DatumGetPointer(arg));
	gs->nlock = 0;
}

static void
EmitInvoice(BillingPass *pass, void *arg)
{
	GenerateState *gs = arg;
	ProrationResult *r = &pass->result;
	int64		invoice_id = nextval_internal(gs->invoice_seq, false);
	char		number[64];
	Datum		values[8];
	bool		nulls[8] = {0};

	snprintf(number, sizeof(number), "INV-%04d-%06lld", pass->month.year,
			 (long long) ++gs->last_number);
	values[0] = Int64GetDatum(invoice_id);
	values[1] = CStringGetTextDatum(number);
	values[2] = Int64GetDatum(pass->account_id);
	values[3] = gs->period_start;
	values[4] = Int64GetDatum(r->total_cents);
	values[5] = gs->currency;
	values[6] = TimestampTzGetDatum(gs->issued_at);
	BulkInsertRow(gs->invoices, values, nulls);

	/* the returned row: (invoice_id, invoice_number, account_id, total_cents) */
	values[3] = values[4];
	tuplestore_putvalues(gs->store, gs->desc, values, nulls);
	pfree(DatumGetPointer(values[1]));

	for (int i = 0; i < r->nlines; i++)
	{
		ProrationLine *line = &r->lines[i];

		values[0] = Int64GetDatum(invoice_id);
		values[1] = Int16GetDatum((int16) (i + 1));
		values[2] = Int16GetDatum((int16) line->plan_id);
		values[3] = DateADTGetDatum((DateADT) line->first_day);
		values[4] = DateADTGetDatum((DateADT) line->last_day);
		values[5] = Int32GetDatum(line->days);
		values[6] = Int64GetDatum(line->unit_price_cents);
		values[7] = Int64GetDatum(line->amount_cents);
		BulkInsertRow(gs->lines, values, nulls);
	}

	gs->lock_ids[gs->nlock++] = pass->account_id;
	if (gs->nlock == BULK_INSERT_BATCH)
		LockInvoicedAccounts(gs);
	gs->created++;
}

/*
 * dogdb_generate_invoices(billing_month date): issue the month's invoices
 * to every account that has none yet for it and a non-zero total; returns
 * the invoices created.
 */
Datum
dogdb_generate_invoices(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	BillingPass pass = {0};
	GenerateState gs = {0};
	Oid			invoices_rel,
				lines_rel;
	BulkInsertForeignKey invoice_refs[1];
	BulkInsertForeignKey line_refs[2];
	Oid			argtype = INT4OID;
	Datum		arg;
	Datum		args[2];
	Oid			argtypes[2] = {INT4OID, INT8OID};

	GetBillingMonth(fcinfo, &pass.month);
	SetSingleFuncCall(fcinfo, 0);
	gs.store = rsinfo->setResult;
	gs.desc = rsinfo->setDesc;

	SPI_connect();

	/* one run at a time; taken before any read, so a waiting run sees the winner's rows */
	SPI_execute("LOCK TABLE dogdb.invoices IN SHARE ROW EXCLUSIVE MODE", false, 0);

	pass.plans = LoadBillingPlans(CurrentMemoryContext, true, &pass.nplans);

	/*
	 * Lock the year's counter row (creating it if need be).  Under
	 * REPEATABLE READ, a concurrent run that committed after our snapshot
	 * makes this fail with a serialization failure instead of later
	 * duplicate keys.
	 */
	arg = Int32GetDatum(pass.month.year);
	SPI_execute_with_args("INSERT INTO dogdb.invoice_number_counters AS c (year, last_number) VALUES ($1, 0)"
						  " ON CONFLICT (year) DO UPDATE SET last_number = c.last_number RETURNING last_number",
						  1, &argtype, &arg, NULL, false, 1);
	if (SPI_processed != 1)
		elog(ERROR, "could not lock the invoice number counter of %d", pass.month.year);
	else
	{
		bool		isnull;

		gs.last_number = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}

	invoices_rel = get_relname_relid("invoices", get_namespace_oid("dogdb", false));
	lines_rel = get_relname_relid("invoice_lines", get_namespace_oid("dogdb", false));
	invoice_refs[0] = (BulkInsertForeignKey) {"account_id", get_relname_relid("accounts", get_namespace_oid("dogdb", false)), "account_id"};
	line_refs[0] = (BulkInsertForeignKey) {"invoice_id", invoices_rel, "invoice_id"};
	line_refs[1] = (BulkInsertForeignKey) {"plan_id", get_relname_relid("pricing_plans", get_namespace_oid("dogdb", false)), "plan_id"};
	gs.invoices = BulkInsertBegin(invoices_rel, invoice_columns, lengthof(invoice_columns),
								  invoice_refs, lengthof(invoice_refs), NULL, 0);
	gs.lines = BulkInsertBegin(lines_rel, line_columns, lengthof(line_columns),
							   line_refs, lengthof(line_refs), NULL, 0);
	gs.invoice_seq = getIdentitySequence(invoices_rel, 1, false);
	gs.issued_at = GetCurrentTransactionStartTimestamp();
	gs.currency = CStringGetTextDatum("USD");
	gs.period_start = DateADTGetDatum(pass.month.start);
	argtype = INT8ARRAYOID;
	gs.lock_plan = SPI_prepare("SELECT count(*) FROM (SELECT FROM dogdb.accounts"
							   " WHERE account_id = ANY ($1) FOR KEY SHARE) a", 1, &argtype);
	if (gs.lock_plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));

	BillingScan(&pass, SUBSCRIPTIONS_OF_MONTH
				" AND NOT EXISTS (SELECT FROM dogdb.invoices i"
				"                 WHERE i.account_id = s.account_id AND i.period_start = $3)"
				" ORDER BY s.account_id, s.valid_from",
				false, EmitInvoice, &gs);
	LockInvoicedAccounts(&gs);
	BulkInsertEnd(gs.invoices);
	BulkInsertEnd(gs.lines);

	if (gs.created > 0)
	{
		args[0] = Int32GetDatum(pass.month.year);
		args[1] = Int64GetDatum(gs.last_number);
		SPI_execute_with_args("UPDATE dogdb.invoice_number_counters SET last_number = $2 WHERE year = $1",
							  2, argtypes, args, NULL, false, 0);
	}
	SPI_finish();
	return (Datum) 0;
}
