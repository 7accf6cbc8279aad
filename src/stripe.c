/*-------------------------------------------------------------------------
 *
 * stripe.c
 *	  SQL-callable Stripe functions: dogdb_stripe_verify_signature(),
 *	  dogdb_ingest_stripe_event() and dogdb_stripe_replay().
 *
 * The HMAC-SHA256 is OpenSSL's or the server's own (stripe_hmac.c); the
 * header parsing and constant-time comparison are in stripe_sig.c, the
 * event JSON in stripe_core.c, the rules of the writes in stripe_apply.c,
 * the writes themselves in stripe_direct.c (heap and index calls) or
 * stripe_sql.c (SQL, for a table the direct writer refuses; see
 * stripe_store.c).
 *
 * Per call: no SPI unless a table takes the SQL route (then SPI is
 * connected and search_path pinned for the rest of the call); the secrets
 * are read once per statement, the result row descriptor once per backend.
 *
 * Secrets: the table dogdb.stripe_webhook_secrets, which only superusers
 * can read or write.  dogdb_ingest_stripe_event() runs as its caller but
 * writes for its owner, as SECURITY DEFINER would, without its per-call
 * cost (a GUC nest level and search_path set and reset each call): the
 * direct writer checks the owner's privileges and writes with heap and
 * index calls, which resolve no names (so the caller's search_path is
 * never used); the SQL route switches to the owner and pins search_path
 * (stripe_store.c).  So its caller needs only EXECUTE.
 * With no secret configured, events are taken unsigned (development); with
 * at least one, an event must be signed by one of them within
 * STRIPE_TOLERANCE_SECONDS of the server's clock.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "miscadmin.h"
#include "funcapi.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/inval.h"
#include "commands/trigger.h"
#include "utils/syscache.h"
#include "catalog/pg_proc.h"
#include "access/xact.h"

#include "common.h"
#include "stripe.h"
#include "stripe_sig.h"

/* Stripe's own libraries default to 300 s */
#define STRIPE_TOLERANCE_SECONDS 300

PG_FUNCTION_INFO_V1(dogdb_stripe_verify_signature);
PG_FUNCTION_INFO_V1(dogdb_ingest_stripe_event);
PG_FUNCTION_INFO_V1(dogdb_stripe_replay);
PG_FUNCTION_INFO_V1(dogdb_stripe_cache_reset);

void
StripeReportParseError(StripeParseStatus st, const StripeEvent *ev)
{
	if (st == STRIPE_PARSE_LIMIT)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Stripe event exceeds a limit at %s: %s", ev->error_path, ev->error),
				 errdetail("An event may have at most %d bytes, %d subscription items, %d refunds per charge and ids of %d bytes.",
						   STRIPE_MAX_PAYLOAD, STRIPE_MAX_ITEMS, STRIPE_MAX_REFUNDS, STRIPE_MAX_ID - 1)));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid Stripe event at %s: %s", ev->error_path, ev->error),
			 errdetail("Nothing was written.")));
}

/* seconds in an interval without months; false if it has months or is negative */
static bool
IntervalSeconds(Interval *iv, int64 *secs)
{
	if (iv->month != 0 || iv->day < 0 || iv->time < 0)
		return false;
	*secs = (int64) iv->day * SECS_PER_DAY + iv->time / USECS_PER_SEC;
	return true;
}

/* a timestamptz as unix seconds */
static int64
UnixSeconds(TimestampTz t)
{
	return t / USECS_PER_SEC + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY;
}

/*
 * True if the header is well formed, its time within tolerance of now and
 * one of its v1 signatures made with one of the secrets.
 */
static bool
VerifySignature(const char *payload, size_t plen, const char *header, size_t hlen,
				char **secrets, size_t *secret_lens, int nsecrets,
				int64 tolerance, int64 now)
{
	StripeSigHeader h;
	bool		found = false;
	int			i;

	if (!stripe_sig_parse(header, hlen, &h) || !stripe_sig_time_ok(h.t, now, tolerance))
		return false;
	/* every secret is tried: the time taken does not say which matched */
	for (i = 0; i < nsecrets; i++)
	{
		uint8		mac[STRIPE_SIG_MAC_LEN];

		StripeHmac(secrets[i], secret_lens[i], h.t_text, h.t_len, payload, plen, mac);
		found |= stripe_sig_match(&h, mac);
	}
	return found;
}

static void
RefuseArgument(const char *msg, const char *hint)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", msg),
			 hint ? errhint("%s", hint) : 0));
}

/*
 * dogdb_stripe_verify_signature(payload text, signature_header text,
 *     secrets text[], tolerance interval, at timestamptz) returns boolean
 */
Datum
dogdb_stripe_verify_signature(PG_FUNCTION_ARGS)
{
	text	   *payload;
	ArrayType  *arr;
	Datum	   *elems;
	bool	   *enulls;
	int			nelems;
	char	  **secrets;
	size_t	   *lens;
	int64		tolerance;
	TimestampTz at;
	int			i;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("payload must not be NULL")));
	if (PG_ARGISNULL(2))
		RefuseArgument("secrets must not be NULL", "Pass the endpoint's signing secrets, such as ARRAY['whsec_...'].");
	if (PG_ARGISNULL(3) || !IntervalSeconds(PG_GETARG_INTERVAL_P(3), &tolerance))
		RefuseArgument("tolerance must be a non-negative interval without months or years",
					   "Stripe's libraries use interval '5 minutes'.");
	if (PG_ARGISNULL(4) || TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(4)))
		RefuseArgument("at must be a finite timestamptz", NULL);
	at = PG_GETARG_TIMESTAMPTZ(4);

	arr = PG_GETARG_ARRAYTYPE_P(2);
	if (ARR_NDIM(arr) > 1)
		RefuseArgument("secrets must be a one-dimensional array", NULL);
	deconstruct_array(arr, TEXTOID, -1, false, TYPALIGN_INT, &elems, &enulls, &nelems);
	if (nelems == 0)
		RefuseArgument("secrets must not be empty", "Pass the endpoint's signing secrets, such as ARRAY['whsec_...'].");
	secrets = palloc(nelems * sizeof(char *));
	lens = palloc(nelems * sizeof(size_t));
	for (i = 0; i < nelems; i++)
	{
		if (enulls[i] || VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i])) == 0)
			RefuseArgument("secrets must not contain NULL or empty strings", NULL);
		secrets[i] = VARDATA_ANY(DatumGetPointer(elems[i]));
		lens[i] = VARSIZE_ANY_EXHDR(DatumGetPointer(elems[i]));
	}

	/* a missing header is not a valid signature */
	if (PG_ARGISNULL(1))
		PG_RETURN_BOOL(false);
	payload = PG_GETARG_TEXT_PP(0);
	{
		text	   *header = PG_GETARG_TEXT_PP(1);

		PG_RETURN_BOOL(VerifySignature(VARDATA_ANY(payload), VARSIZE_ANY_EXHDR(payload),
									   VARDATA_ANY(header), VARSIZE_ANY_EXHDR(header),
									   secrets, lens, nelems, tolerance, UnixSeconds(at)));
	}
}

/*
 * The configured secrets.  Kept by the backend until the table's next
 * relcache invalidation when its reset trigger is in place (a change to
 * the secrets fires it; the invalidation reaches this backend at its next
 * transaction start, or at once in the transaction that made the change,
 * and is also sent by any DDL on the table, such as disabling the
 * trigger); otherwise read once per statement.  Read with a fresh
 * snapshot: what was committed when it was read, or written by this
 * transaction (undone by the invalidation a rollback applies here; a
 * PREPARE drops it, see SecretsXactCallback()).
 */
typedef struct SecretCache
{
	MemoryContext cxt;
	bool		durable;		/* valid while generation is unchanged */
	uint64		generation;
	LocalTransactionId lxid;
	TimestampTz stmt_start;
	int			n;
	char	  **secrets;
	size_t	   *lens;
} SecretCache;

static SecretCache secret_cache;

/*
 * A transaction prepared for two-phase commit may have changed the
 * secrets this backend then read: ROLLBACK PREPARED sends no
 * invalidation, so they are read again.
 */
static void
SecretsXactCallback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_PREPARE)
	{
		secret_cache.durable = false;
		secret_cache.lxid = InvalidLocalTransactionId;
	}
}

static void
LoadSecrets(StripeCtx *cx)
{
	static bool registered = false;
	uint64		generation = StripeTableGeneration(STRIPE_T_SECRETS);

	if (!registered)
	{
		RegisterXactCallback(SecretsXactCallback, NULL);
		registered = true;
	}

	if (secret_cache.cxt != NULL &&
		(secret_cache.durable ? secret_cache.generation == generation :
		 secret_cache.lxid == MyProc->lxid &&
		 secret_cache.stmt_start == GetCurrentStatementStartTimestamp()))
		return;
	if (secret_cache.cxt == NULL)
		secret_cache.cxt = AllocSetContextCreate(TopMemoryContext, "dogdb Stripe secrets",
												 ALLOCSET_SMALL_SIZES);
	MemoryContextReset(secret_cache.cxt);
	secret_cache.durable = false;
	secret_cache.lxid = InvalidLocalTransactionId;
	if (!StripeDirectSecrets(cx, &secret_cache.n, &secret_cache.secrets, &secret_cache.lens,
							 secret_cache.cxt, &secret_cache.durable))
		StripeSqlSecrets(cx, &secret_cache.n, &secret_cache.secrets, &secret_cache.lens,
						 secret_cache.cxt);
	/* an invalidation while reading (generation moved on) is not missed */
	secret_cache.generation = generation;
	secret_cache.lxid = MyProc->lxid;
	secret_cache.stmt_start = GetCurrentStatementStartTimestamp();
}

/*
 * dogdb_internal.stripe_cache_reset(): statement trigger, a relcache
 * invalidation of its table, sent to every backend at commit (and applied
 * at once in this one), which makes them drop what they keep of it
 */
Datum
dogdb_stripe_cache_reset(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("function \"%s\" was not called by trigger manager", "stripe_cache_reset")));
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * The owner of the function being called, kept per backend until pg_proc
 * changes (ALTER FUNCTION ... OWNER TO sends a syscache invalidation).
 */
static Oid	owner_fn = InvalidOid;
static Oid	owner_of_fn = InvalidOid;

static void
ProcCallback(Datum arg, int cacheid, uint32 hashvalue)
{
	owner_fn = InvalidOid;
}

static Oid
FunctionOwner(Oid fn_oid)
{
	static bool registered = false;
	HeapTuple	tup;

	if (owner_fn == fn_oid)
		return owner_of_fn;
	if (!registered)
	{
		CacheRegisterSyscacheCallback(PROCOID, ProcCallback, (Datum) 0);
		registered = true;
	}
	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	owner_of_fn = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	owner_fn = fn_oid;
	return owner_of_fn;
}

/*
 * A row (event_id, event_type, outcome).  The blessed descriptor is kept
 * for the life of the backend (one per function OID): a record type's
 * typmod stays registered in the backend, and the function's OUT columns
 * cannot change without a new function (a new OID).  Blessing it per query
 * cost a catalog lookup and a hash probe per pgbench transaction.
 */
static Oid	outcome_fn = InvalidOid;
static TupleDesc outcome_desc = NULL;

static Datum
OutcomeRow(FunctionCallInfo fcinfo, const StripeEvent *ev, StripeOutcome out)
{
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	if (outcome_desc == NULL || outcome_fn != fcinfo->flinfo->fn_oid)
	{
		TupleDesc	desc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		old = MemoryContextSwitchTo(TopMemoryContext);
		desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
		if (outcome_desc != NULL)
			FreeTupleDesc(outcome_desc);
		outcome_desc = desc;
		outcome_fn = fcinfo->flinfo->fn_oid;
	}
	values[0] = CStringGetTextDatum(ev->id);
	values[1] = CStringGetTextDatum(ev->type);
	values[2] = CStringGetTextDatum(stripe_outcome_names[out]);
	return HeapTupleGetDatum(heap_form_tuple(outcome_desc, values, nulls));
}

/*
 * dogdb_ingest_stripe_event(payload text, signature_header text,
 *     OUT event_id text, OUT event_type text, OUT outcome text)
 */
Datum
dogdb_ingest_stripe_event(PG_FUNCTION_ARGS)
{
	text	   *payload;
	const char *data;
	size_t		len;
	StripeEvent *ev;
	StripeParseStatus st;
	StripeOutcome out;
	StripeCtx	cx;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED), errmsg("payload must not be NULL")));
	payload = PG_GETARG_TEXT_PP(0);
	data = VARDATA_ANY(payload);
	len = VARSIZE_ANY_EXHDR(payload);
	if (len > STRIPE_MAX_PAYLOAD)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("Stripe event of %zu bytes exceeds the limit of %d bytes", len, STRIPE_MAX_PAYLOAD),
				 errdetail("Nothing was written.")));

	StripeCtxBegin(&cx, false, FunctionOwner(fcinfo->flinfo->fn_oid));
	LoadSecrets(&cx);
	if (secret_cache.n > 0)
	{
		bool		good = false;

		if (!PG_ARGISNULL(1))
		{
			text	   *header = PG_GETARG_TEXT_PP(1);

			good = VerifySignature(data, len, VARDATA_ANY(header), VARSIZE_ANY_EXHDR(header),
								   secret_cache.secrets, secret_cache.lens, secret_cache.n,
								   STRIPE_TOLERANCE_SECONDS, UnixSeconds(GetCurrentTimestamp()));
		}
		if (!good)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
					 errmsg("Stripe signature verification failed"),
					 errdetail("The Stripe-Signature header is missing, malformed, older or newer than %d seconds, or not made with a configured secret; nothing was written.",
							   STRIPE_TOLERANCE_SECONDS)));
	}
	ev = palloc(sizeof(StripeEvent));
	st = stripe_event_parse(data, len, ev);
	if (st != STRIPE_PARSE_OK)
		StripeReportParseError(st, ev);
	out = StripeIngest(&cx, ev, data, len);
	StripeCtxEnd(&cx);
	PG_RETURN_DATUM(OutcomeRow(fcinfo, ev, out));
}

/*
 * dogdb_stripe_replay(OUT events bigint, OUT applied bigint, OUT stale
 *     bigint, OUT ignored bigint): rebuild every fact from the ledger.
 */
Datum
dogdb_stripe_replay(PG_FUNCTION_ARGS)
{
	int			save_nestlevel = DogdbPinSearchPath();
	int64		counts[4] = {0, 0, 0, 0};
	int64		events = 0;
	MemoryContext callcxt = CurrentMemoryContext;
	MemoryContext loopcxt;
	StripeEvent *ev;
	Portal		portal;
	SPIPlanPtr	plan;
	TupleDesc	desc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	StripeCtx	cx;

	DogdbSpiConnect();
	/* no event arrives while the facts are rebuilt */
	DogdbSpiExecute("LOCK TABLE dogdb.stripe_events IN EXCLUSIVE MODE", false, 0, SPI_OK_UTILITY);
	DogdbSpiExecute("TRUNCATE dogdb.stripe_customers, dogdb.stripe_subscriptions,"
					" dogdb.stripe_subscription_versions, dogdb.stripe_invoices,"
					" dogdb.stripe_payments, dogdb.stripe_refunds, dogdb_internal.stripe_waiting",
					false, 0, SPI_OK_UTILITY);
	DogdbSpiExecute("DELETE FROM dogdb.stripe_customer_accounts WHERE source = 'metadata'",
					false, 0, SPI_OK_DELETE);

	ev = palloc(sizeof(StripeEvent));
	StripeCtxBegin(&cx, true, GetUserId());
	loopcxt = AllocSetContextCreate(CurrentMemoryContext, "dogdb Stripe replay", ALLOCSET_DEFAULT_SIZES);
	plan = DogdbSpiPrepare("SELECT arrival, payload FROM dogdb.stripe_events ORDER BY arrival", 0, NULL);
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	for (;;)
	{
		uint64		n;
		SPITupleTable *tt;
		uint64		j;

		SPI_cursor_fetch(portal, true, 1000);
		n = SPI_processed;
		tt = SPI_tuptable;
		if (n == 0)
			break;
		for (j = 0; j < n; j++)
		{
			bool		isnull;
			int64		arrival = DatumGetInt64(SPI_getbinval(tt->vals[j], tt->tupdesc, 1, &isnull));
			MemoryContext old = MemoryContextSwitchTo(loopcxt);
			text	   *p = DatumGetTextPP(SPI_getbinval(tt->vals[j], tt->tupdesc, 2, &isnull));
			StripeParseStatus st = stripe_event_parse(VARDATA_ANY(p), VARSIZE_ANY_EXHDR(p), ev);

			CHECK_FOR_INTERRUPTS();
			if (st != STRIPE_PARSE_OK)
				StripeReportParseError(st, ev);
			counts[StripeApply(&cx, ev, arrival, arrival)]++;
			events++;
			MemoryContextSwitchTo(old);
			MemoryContextReset(loopcxt);
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
	StripeCtxEnd(&cx);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(save_nestlevel);

	MemoryContextSwitchTo(callcxt);
	{
		TupleDesc	d;

		if (get_call_result_type(fcinfo, NULL, &d) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		desc = BlessTupleDesc(d);
	}
	/* columns: events, applied, stale, ignored (no duplicates in a replay) */
	values[0] = Int64GetDatum(events);
	values[1] = Int64GetDatum(counts[STRIPE_APPLIED]);
	values[2] = Int64GetDatum(counts[STRIPE_STALE]);
	values[3] = Int64GetDatum(counts[STRIPE_IGNORED]);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
