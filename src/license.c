/*-------------------------------------------------------------------------
 *
 * license.c
 *	  SQL-callable license parsing: dogdb_parse_license() and the scalar
 *	  accessors dogdb_license_id/role/status/error().
 *
 * Design note: a query that wants all three fields calls three accessors
 * per row.  To parse each row once, the accessors share a one-entry cache
 * of the last input parsed in this backend: the next accessor compares the
 * bytes (a memcmp, far cheaper than a parse) and reuses the result.  The
 * functions are IMMUTABLE, so equal bytes always mean an equal result.
 * The cache lives in its own memory context under TopMemoryContext; inputs
 * over 64 kB are parsed but not kept.
 *
 * Memory: the full parser (jansson) allocates through palloc in a context
 * of its own, "dogdb license parser", which is reset after every parse,
 * even one that fails; its allocation hook checks for interrupts, so a
 * long parse can be cancelled (statement_timeout, pg_cancel_backend), and
 * refuses to grow the context past LICENSE_PARSE_MEMORY_LIMIT: a blob
 * that needs more (tens of MB of nested arrays, say) is "too complex"
 * rather than exhausting the server's memory: the accessors raise 54000,
 * dogdb_license_error() says so (so the import quarantines the row).  Rows of the usual flat
 * shape never reach jansson (license_scan()).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "miscadmin.h"

#include "license.h"

/* inputs larger than this are parsed but not kept in the cache */
#define LICENSE_CACHE_MAX_INPUT (64 * 1024)

/* most memory the full parser may hold for one license blob (README) */
#define LICENSE_PARSE_MEMORY_LIMIT ((Size) 256 * 1024 * 1024)

typedef struct LicenseCache
{
	MemoryContext cxt;
	bool		valid;
	char	   *input;			/* copy of the last input */
	size_t		input_len;
	size_t		input_cap;
	char	   *values;			/* decoded values, when not in input */
	size_t		values_cap;
	LicenseResult result;		/* value[] points into input or values */
} LicenseCache;

static LicenseCache cache;

/* the full parser's context, and whether its last parse hit the limit */
static MemoryContext parse_cxt = NULL;
static bool parse_limit_hit = false;

PG_FUNCTION_INFO_V1(dogdb_parse_license);
PG_FUNCTION_INFO_V1(dogdb_license_id);
PG_FUNCTION_INFO_V1(dogdb_license_role);
PG_FUNCTION_INFO_V1(dogdb_license_status);
PG_FUNCTION_INFO_V1(dogdb_license_error);

/* Make sure *buf holds at least need bytes in the cache context */
static char *
EnsureCapacity(char *buf, size_t *cap, size_t need)
{
	if (buf != NULL && *cap >= need && (*cap <= LICENSE_CACHE_MAX_INPUT || need > *cap / 4))
		return buf;
	if (buf != NULL)
		pfree(buf);
	*cap = Max(need, 128);
	return MemoryContextAllocHuge(cache.cxt, *cap);
}

/* allocation hook of the full parser: palloc in parse_cxt, bounded */
static void *
ParseAlloc(size_t size)
{
	CHECK_FOR_INTERRUPTS();
	if (size > LICENSE_PARSE_MEMORY_LIMIT ||
		MemoryContextMemAllocated(parse_cxt, false) > LICENSE_PARSE_MEMORY_LIMIT - size)
	{
		parse_limit_hit = true;
		return NULL;			/* the parser reports "out of memory" */
	}
	return MemoryContextAllocExtended(parse_cxt, Max(size, 1), MCXT_ALLOC_HUGE | MCXT_ALLOC_NO_OOM);
}

/* free hook: every pointer jansson frees came from ParseAlloc */
static void
ParseFree(void *ptr)
{
	if (ptr != NULL)
		pfree(ptr);
}

/*
 * license_parse() with the full parser's memory in parse_cxt; the caller
 * copies what it keeps and resets the context.  A blob that hits
 * LICENSE_PARSE_MEMORY_LIMIT comes back as LICENSE_OUT_OF_MEMORY ("too
 * complex": dogdb_license_error() explains it, the accessors raise 54000);
 * a real allocation failure raises an error here.
 */
static void
ParseBounded(const char *data, size_t len, LicenseResult *res)
{
	if (parse_cxt == NULL)
		parse_cxt = AllocSetContextCreate(TopMemoryContext,
										  "dogdb license parser",
										  ALLOCSET_DEFAULT_SIZES);
	parse_limit_hit = false;
	license_set_alloc_funcs(ParseAlloc, ParseFree);
	PG_TRY();
	{
		license_parse(data, len, res);
	}
	PG_CATCH();
	{
		license_set_alloc_funcs(NULL, NULL);
		MemoryContextReset(parse_cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	license_set_alloc_funcs(NULL, NULL);

	if (parse_limit_hit)
	{
		res->status = LICENSE_OUT_OF_MEMORY;
		res->position = 0;
		res->owned = NULL;
		MemoryContextReset(parse_cxt);
	}
	else if (res->status == LICENSE_OUT_OF_MEMORY)
	{
		MemoryContextReset(parse_cxt);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory"),
				 errdetail("Failed while parsing license data of %zu bytes.", len)));
	}
}

/*
 * Parse a license blob, reusing the previous result when the bytes are the
 * same.  The returned result is valid until the next call.
 */
const LicenseResult *
LicenseParseCached(text *t)
{
	const char *data = VARDATA_ANY(t);
	size_t		len = VARSIZE_ANY_EXHDR(t);
	LicenseResult res;
	size_t		total = 0;
	bool		keep = len <= LICENSE_CACHE_MAX_INPUT;

	if (cache.valid && cache.input_len == len &&
		memcmp(cache.input, data, len) == 0)
		return &cache.result;

	if (cache.cxt == NULL)
		cache.cxt = AllocSetContextCreate(TopMemoryContext,
										  "dogdb license cache",
										  ALLOCSET_SMALL_SIZES);
	cache.valid = false;

	ParseBounded(data, len, &res);

	/*
	 * Keep a copy of a small input for the next call; the values the scanner
	 * found then point into the copy.  A large input is not copied: its
	 * values point into the caller's datum, good for this call only.
	 */
	if (keep)
	{
		cache.input = EnsureCapacity(cache.input, &cache.input_cap, Max(len, 1));
		memcpy(cache.input, data, len);
		cache.input_len = len;
	}
	if (res.status == LICENSE_OK)
	{
		if (res.owned == NULL)
		{
			if (keep)
				for (int i = 0; i < LICENSE_NFIELDS; i++)
					res.value[i] = cache.input + (res.value[i] - data);
		}
		else
		{
			char	   *dst;

			for (int i = 0; i < LICENSE_NFIELDS; i++)
				total += res.length[i];
			cache.values = EnsureCapacity(cache.values, &cache.values_cap,
										  Max(total, 1));
			dst = cache.values;
			for (int i = 0; i < LICENSE_NFIELDS; i++)
			{
				memcpy(dst, res.value[i], res.length[i]);
				res.value[i] = dst;
				dst += res.length[i];
			}
			res.owned = NULL;	/* in parse_cxt, reset below */
		}
	}
	if (parse_cxt != NULL)
		MemoryContextReset(parse_cxt);
	cache.result = res;
	cache.valid = keep;
	return &cache.result;
}

/*
 * The error of a failed parse as one line, for dogdb_license_error() and
 * the import's rejects: the same text as the error's message.
 */
char *
LicenseErrorText(const LicenseResult *res)
{
	if (res->status == LICENSE_OUT_OF_MEMORY)
		return psprintf("license data is too complex to parse: it would need more than %zu MB of memory",
						LICENSE_PARSE_MEMORY_LIMIT / (1024 * 1024));
	if (res->position > 0)
		return psprintf("invalid license data at character %ld: %s",
						res->position, res->message);
	return psprintf("invalid license data: %s", res->message);
}

/* Parse, raising an error for malformed input */
static const LicenseResult *
ParseLicenseOrError(text *t)
{
	const LicenseResult *res = LicenseParseCached(t);

	if (res->status == LICENSE_OK)
		return res;
	if (res->status == LICENSE_OUT_OF_MEMORY)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("license data is too complex to parse"),
				 errdetail("Parsing these %zu bytes would need more than %zu MB of memory.",
						   (size_t) VARSIZE_ANY_EXHDR(t), LICENSE_PARSE_MEMORY_LIMIT / (1024 * 1024))));
	if (res->position > 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
				 errmsg("invalid license data at character %ld: %s",
						res->position, res->message),
				 errhint("License data must be a JSON object with the string keys \"license_id\", \"role\" and \"status\"; strings may be delimited by ASCII or curly quotes.")));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_TEXT_REPRESENTATION),
			 errmsg("invalid license data: %s", res->message),
			 errhint("License data must be a JSON object with the string keys \"license_id\", \"role\" and \"status\"; strings may be delimited by ASCII or curly quotes.")));
	return NULL;				/* keep the compiler quiet */
}

static inline Datum
LicenseField(FunctionCallInfo fcinfo, int field)
{
	const LicenseResult *res = ParseLicenseOrError(PG_GETARG_TEXT_PP(0));

	PG_RETURN_TEXT_P(cstring_to_text_with_len(res->value[field],
											  res->length[field]));
}

/* dogdb_license_id(text) returns text */
Datum
dogdb_license_id(PG_FUNCTION_ARGS)
{
	return LicenseField(fcinfo, LICENSE_FIELD_ID);
}

/* dogdb_license_role(text) returns text */
Datum
dogdb_license_role(PG_FUNCTION_ARGS)
{
	return LicenseField(fcinfo, LICENSE_FIELD_ROLE);
}

/* dogdb_license_status(text) returns text */
Datum
dogdb_license_status(PG_FUNCTION_ARGS)
{
	return LicenseField(fcinfo, LICENSE_FIELD_STATUS);
}

/* dogdb_license_error(text) returns text: NULL when the blob is valid */
Datum
dogdb_license_error(PG_FUNCTION_ARGS)
{
	const LicenseResult *res = LicenseParseCached(PG_GETARG_TEXT_PP(0));

	if (res->status == LICENSE_OK)
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(LicenseErrorText(res)));
}

/*
 * dogdb_parse_license(text) returns record (license_id, role, status)
 *
 * The blessed result descriptor is kept in fn_extra across calls.
 */
Datum
dogdb_parse_license(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc = (TupleDesc) fcinfo->flinfo->fn_extra;
	const LicenseResult *res;
	Datum		values[LICENSE_NFIELDS];
	bool		nulls[LICENSE_NFIELDS] = {false, false, false};

	if (tupdesc == NULL)
	{
		MemoryContext oldcxt;

		if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		oldcxt = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
		tupdesc = BlessTupleDesc(CreateTupleDescCopy(tupdesc));
		MemoryContextSwitchTo(oldcxt);
		fcinfo->flinfo->fn_extra = tupdesc;
	}

	res = ParseLicenseOrError(PG_GETARG_TEXT_PP(0));
	for (int i = 0; i < LICENSE_NFIELDS; i++)
		values[i] = PointerGetDatum(cstring_to_text_with_len(res->value[i],
															 res->length[i]));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}
