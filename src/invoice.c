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
 * the price history, which is loaded once (billing.c).
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
 * On Citus (README "Running on Citus") the same code runs on the
 * coordinator: the scan is a distributed query, the bulk writer sends each
 * batch as one INSERT that Citus routes to the shards (lines after their
 * invoices), the shards check the foreign keys, the counter row sits in a
 * reference table, and runs serialize on the LOCK TABLE, which is taken on
 * the coordinator where they run (the lab checks two concurrent runs).
 *
 * Privileges: dogdb_generate_invoices() is SECURITY DEFINER (the SQL
 * script), so a billing role needs EXECUTE on it and no privilege on the
 * tables; it can issue invoices but not change them.  The preview runs as
 * its caller, who needs SELECT on the tables it reads.
 *
 * Both functions run their queries with search_path pinned to pg_catalog,
 * pg_temp (common.h), and the queries name the catalog's operators and
 * functions explicitly: nothing of the caller's schemas runs in them.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/datetime.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "billing.h"
#include "bulk_insert.h"
#include "common.h"
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
	MemoryContext account_cxt;	/* reset after each account is emitted */
} BillingPass;

/* emits one billed account (pass->account_id, pass->result) */
typedef void (*EmitAccount) (BillingPass *pass, void *arg);

static const BulkInsertColumn invoice_columns[] = {
	{"invoice_id", INT8OID}, {"invoice_number", TEXTOID}, {"account_id", INT8OID},
	{"period_start", DATEOID}, {"total_cents", INT8OID}, {"currency", TEXTOID},
	{"issued_at", TIMESTAMPTZOID}
};
static const BulkInsertColumn line_columns[] = {
	{"invoice_id", INT8OID}, {"line_no", INT2OID}, {"plan_id", INT2OID}, {"line_start", DATEOID},
	{"line_end", DATEOID}, {"days", INT4OID}, {"unit_price_cents", INT8OID}, {"amount_cents", INT8OID},
	{"account_id", INT8OID}
};

/*
 * The subscriptions that may cover a day of the month [$1, $2), in account
 * order.  Operators are named in pg_catalog, as in every query below.
 */
#define SUBSCRIPTIONS_OF_MONTH \
	"SELECT s.account_id, s.plan_id, s.valid_from, s.valid_to FROM dogdb.subscriptions s" \
	" WHERE s.valid_from OPERATOR(pg_catalog.<) $2" \
	"   AND (s.valid_to IS NULL OR s.valid_to OPERATOR(pg_catalog.>) $1)"
#define SUBSCRIPTIONS_ORDER " ORDER BY s.account_id, s.valid_from"

/* the month argument (billing_month, validated by DogdbMonthArg) */
static void
GetBillingMonth(FunctionCallInfo fcinfo, BillingMonth *month)
{
	DateADT		date = DogdbMonthArg(fcinfo, 0, "billing_month");
	int			year,
				mon,
				mday;
	int			overflow = 0;

	j2date(date + POSTGRES_EPOCH_JDATE, &year, &mon, &mday);
	month->start = date;
	month->end = (mon == 12 ? date2j(year + 1, 1, 1) : date2j(year, mon + 1, 1)) - POSTGRES_EPOCH_JDATE;
	month->year = year;
	/* midnight UTC: timestamp without time zone has the same value */
	month->start_ts = date2timestamp_opt_overflow(month->start, &overflow);
	if (overflow == 0)
		month->end_ts = date2timestamp_opt_overflow(month->end, &overflow);
	if (overflow != 0)			/* years 1..9999 fit */
		elog(ERROR, "billing month %d-%02d out of range for type timestamp with time zone", year, mon);
}

static const char *
PlanName(BillingPass *pass, int16 plan_id)
{
	return FindBillingPlan(pass->plans, pass->nplans, plan_id)->name;
}

/*
 * Bill the gathered account into pass->result (raising what cannot be
 * billed), emit it unless its total is zero, and start the next account.
 * What emit() allocates is freed with the account.
 */
static void
FinishGatheredAccount(BillingPass *pass, EmitAccount emit, void *arg)
{
	ProrationStatus status = prorate_account(pass->month.start, pass->month.end,
											 pass->spans, pass->nspans, &pass->result);

	if (status != PRORATION_OK)
		ReportProrationError(status, &pass->result, pass->plans, pass->nplans,
							 pass->account_id, pass->month.start);
	if (pass->result.total_cents != 0)
	{
		MemoryContext old = MemoryContextSwitchTo(pass->account_cxt);

		emit(pass, arg);
		MemoryContextSwitchTo(old);
		MemoryContextReset(pass->account_cxt);
	}
	pass->nspans = 0;
}

/* add one cursor row (account_id, plan_id, valid_from, valid_to) */
static void
GatherSubscription(BillingPass *pass, HeapTuple tup, TupleDesc desc)
{
	bool		isnull[3];
	bool		open_ended;
	Datum		plan_id = SPI_getbinval(tup, desc, 2, &isnull[0]);
	Datum		valid_from = SPI_getbinval(tup, desc, 3, &isnull[1]);
	Datum		valid_to = SPI_getbinval(tup, desc, 4, &open_ended);

	if (isnull[0] || isnull[1])	/* NOT NULL columns */
		elog(ERROR, "unexpected null plan_id or valid_from in dogdb.subscriptions");
	if (pass->nspans == pass->maxspans)
	{
		pass->maxspans *= 2;
		pass->spans = repalloc(pass->spans, sizeof(ProrationSpan) * pass->maxspans);
	}
	pass->spans[pass->nspans++] =
		SubscriptionSpan(pass->plans, pass->nplans, DatumGetInt16(plan_id),
						 DatumGetTimestampTz(valid_from), open_ended, DatumGetTimestampTz(valid_to));
}

/*
 * One pass over the month's subscriptions in account order (query: with
 * the month as $1, $2 and its first day as $3): calls emit(pass, arg) with
 * pass->result for every account whose total is not zero.
 */
static void
BillingScan(BillingPass *pass, const char *query, bool read_only, EmitAccount emit, void *arg)
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
	pass->account_cxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb billed account",
											  ALLOCSET_SMALL_SIZES);
	portal = SPI_cursor_open_with_args(NULL, query, 3, argtypes, args, NULL, read_only,
									   CURSOR_OPT_NO_SCROLL);
	if (portal == NULL)
		elog(ERROR, "SPI_cursor_open_with_args of \"%s\" failed: %s",
			 query, SPI_result_code_string(SPI_result));
	for (;;)
	{
		SPITupleTable *tt;
		uint64		n;

		/* emit() may run SPI queries: keep this batch's table and count */
		SPI_cursor_fetch(portal, true, FETCH_BATCH);
		tt = SPI_tuptable;
		n = SPI_processed;
		if (tt == NULL)
			elog(ERROR, "SPI_cursor_fetch of \"%s\" returned no tuple table", query);
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
	MemoryContextDelete(pass->account_cxt);
}

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
	int			nestlevel;

	GetBillingMonth(fcinfo, &pass.month);
	SetSingleFuncCall(fcinfo, 0);
	ps.store = rsinfo->setResult;
	ps.desc = rsinfo->setDesc;

	/* every row is in the tuplestore before the search_path comes back */
	nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();
	pass.plans = LoadBillingPlans(CurrentMemoryContext, false, &pass.nplans);
	BillingScan(&pass, SUBSCRIPTIONS_OF_MONTH SUBSCRIPTIONS_ORDER, true, EmitPreviewLines, &ps);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);
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
	DogdbSpiCheck(SPI_execute_plan(gs->lock_plan, &arg, NULL, false, 0), SPI_OK_SELECT,
				  "lock the accounts being invoiced");
	if (SPI_processed != 1)
		elog(ERROR, "locking the accounts being invoiced returned %llu rows",
			 (unsigned long long) SPI_processed);
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
	Datum		values[9];
	bool		nulls[9] = {0};

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

	for (int i = 0; i < r->nlines; i++)
	{
		ProrationLine *line = &r->lines[i];

		values[0] = Int64GetDatum(invoice_id);
		values[1] = Int16GetDatum((int16) (i + 1));
		values[2] = Int16GetDatum(line->plan_id);
		values[3] = DateADTGetDatum((DateADT) line->first_day);
		values[4] = DateADTGetDatum((DateADT) line->last_day);
		values[5] = Int32GetDatum(line->days);
		values[6] = Int64GetDatum(line->unit_price_cents);
		values[7] = Int64GetDatum(line->amount_cents);
		values[8] = Int64GetDatum(pass->account_id);
		BulkInsertRow(gs->lines, values, nulls);
	}

	gs->lock_ids[gs->nlock++] = pass->account_id;
	if (gs->nlock == BULK_INSERT_BATCH)
		LockInvoicedAccounts(gs);
	gs->created++;
}

/*
 * Lock the year's invoice-number counter row (creating it if need be) and
 * return its last number.  Under REPEATABLE READ, a concurrent run that
 * committed after our snapshot makes this fail with a serialization failure
 * instead of later duplicate keys.
 */
static int64
LockInvoiceCounter(int year)
{
	Oid			argtype = INT4OID;
	Datum		arg = Int32GetDatum(year);
	bool		isnull;

	if (DogdbSpiExecuteWithArgs("INSERT INTO dogdb.invoice_number_counters AS c (year, last_number)"
								" VALUES ($1, 0) ON CONFLICT (year) DO UPDATE SET last_number = c.last_number"
								" RETURNING last_number",
								1, &argtype, &arg, NULL, false, 0, SPI_OK_INSERT_RETURNING) != 1)
		elog(ERROR, "could not lock the invoice number counter of year %d", year);
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/* store the year's last invoice number (its row is locked) */
static void
StoreInvoiceCounter(int year, int64 last_number)
{
	Oid			argtypes[2] = {INT4OID, INT8OID};
	Datum		args[2];

	args[0] = Int32GetDatum(year);
	args[1] = Int64GetDatum(last_number);
	if (DogdbSpiExecuteWithArgs("UPDATE dogdb.invoice_number_counters SET last_number = $2"
								" WHERE year OPERATOR(pg_catalog.=) $1",
								2, argtypes, args, NULL, false, 0, SPI_OK_UPDATE) != 1)
		elog(ERROR, "could not update the invoice number counter of year %d", year);
}

/* open the bulk writers of both tables and prepare the account lock */
static void
BeginInvoiceWrite(GenerateState *gs)
{
	Oid			invoices_rel = DogdbRelationId("invoices");
	BulkInsertForeignKey invoice_refs[1];
	BulkInsertForeignKey line_refs[2];
	Oid			argtype = INT8ARRAYOID;

	invoice_refs[0] = (BulkInsertForeignKey) {"account_id", DogdbRelationId("accounts"), "account_id"};
	line_refs[0] = (BulkInsertForeignKey) {"account_id,invoice_id", invoices_rel, "account_id,invoice_id"};
	line_refs[1] = (BulkInsertForeignKey) {"plan_id", DogdbRelationId("pricing_plans"), "plan_id"};
	gs->invoices = BulkInsertBegin(invoices_rel, invoice_columns, lengthof(invoice_columns),
								   invoice_refs, lengthof(invoice_refs), NULL, 0);
	gs->lines = BulkInsertBegin(DogdbRelationId("invoice_lines"), line_columns, lengthof(line_columns),
								line_refs, lengthof(line_refs), NULL, 0);
	BulkInsertAfter(gs->lines, gs->invoices);
	gs->invoice_seq = getIdentitySequence(invoices_rel, 1, false);

	/*
	 * On Citus the shards check invoices.account_id themselves (and refuse
	 * FOR KEY SHARE across shards): the count only finds vanished accounts
	 * early.  (Every target list has a column: Citus refuses empty ones.)
	 */
	gs->lock_plan = DogdbSpiPrepare(DogdbIsDistributed(invoices_rel) ?
									"SELECT pg_catalog.count(*) FROM (SELECT 1 FROM dogdb.accounts"
									" WHERE account_id OPERATOR(pg_catalog.=) ANY ($1)) a" :
									"SELECT pg_catalog.count(*) FROM (SELECT 1 FROM dogdb.accounts"
									" WHERE account_id OPERATOR(pg_catalog.=) ANY ($1) FOR KEY SHARE) a",
									1, &argtype);
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
	int			nestlevel;

	GetBillingMonth(fcinfo, &pass.month);
	SetSingleFuncCall(fcinfo, 0);
	gs.store = rsinfo->setResult;
	gs.desc = rsinfo->setDesc;

	nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();

	/* one run at a time; taken before any read, so a waiting run sees the winner's rows */
	DogdbSpiExecute("LOCK TABLE dogdb.invoices IN SHARE ROW EXCLUSIVE MODE", false, 0, SPI_OK_UTILITY);

	pass.plans = LoadBillingPlans(CurrentMemoryContext, true, &pass.nplans);
	gs.last_number = LockInvoiceCounter(pass.month.year);
	BeginInvoiceWrite(&gs);
	gs.issued_at = GetCurrentTransactionStartTimestamp();
	gs.currency = CStringGetTextDatum("USD");
	gs.period_start = DateADTGetDatum(pass.month.start);

	BillingScan(&pass, SUBSCRIPTIONS_OF_MONTH
				" AND NOT EXISTS (SELECT 1 FROM dogdb.invoices i"
				"                 WHERE i.account_id OPERATOR(pg_catalog.=) s.account_id"
				"                   AND i.period_start OPERATOR(pg_catalog.=) $3)"
				SUBSCRIPTIONS_ORDER,
				false, EmitInvoice, &gs);
	LockInvoicedAccounts(&gs);
	BulkInsertEnd(gs.lines);	/* first: on Citus it flushes the invoices first */
	BulkInsertEnd(gs.invoices);
	if (gs.created > 0)
		StoreInvoiceCounter(pass.month.year, gs.last_number);

	DogdbSpiFinish();
	DogdbRestoreSearchPath(nestlevel);
	return (Datum) 0;
}
