/*
 * unit_license.c
 *	  Unit tests of the license parser core, outside the server (TAP output,
 *	  run by "make unit" through prove).
 */
#include "license_parse.h"
#include "tap.h"

#include <stdlib.h>
#include <string.h>

static long hook_calls = 0;
static long hook_live = 0;
static long hook_fail_after = -1;

static void *
counting_malloc(size_t size)
{
	if (hook_fail_after >= 0 && hook_calls >= hook_fail_after)
		return NULL;
	hook_calls++;
	hook_live++;
	return malloc(size);
}

static void
counting_free(void *p)
{
	if (p != NULL)
		hook_live--;
	free(p);
}

static int
field_is(const LicenseResult *r, int f, const char *want)
{
	return r->length[f] == strlen(want) && memcmp(r->value[f], want, r->length[f]) == 0;
}

/* Valid input: both parse paths give the expected values; scanner as told */
static void
expect_ok(const char *in, const char *id, const char *role, const char *status,
		  int scanner_accepts, const char *name)
{
	LicenseResult r;
	LicenseResult s;
	int			scanned = license_scan(in, strlen(in), &s);
	LicenseStatus st = license_parse_full(in, strlen(in), &r);
	int			good = st == LICENSE_OK &&
		field_is(&r, 0, id) && field_is(&r, 1, role) && field_is(&r, 2, status);

	if (scanned)
		good = good && field_is(&s, 0, id) && field_is(&s, 1, role) && field_is(&s, 2, status);
	if (!good)
		printf("# %s: status %d message \"%s\"\n", name, st, r.message);
	ok(good && scanned == scanner_accepts, name);
	license_result_free(&r);
}

/* Invalid input: the scanner declines; the error has this message/position */
static void
expect_error(const char *in, LicenseStatus status, long position,
			 const char *message_part, const char *name)
{
	LicenseResult r;
	size_t		len = strlen(in);
	int			scanned = license_scan(in, len, &r);
	LicenseStatus st = license_parse(in, len, &r);
	int			good = !scanned && st == status &&
		(position < 0 || r.position == position) &&
		strstr(r.message, message_part) != NULL;

	if (!good)
		printf("# %s: status %d position %ld message \"%s\"\n", name, st, r.position, r.message);
	ok(good, name);
	license_result_free(&r);
}

int
main(void)
{
	char	   *big;
	size_t		n;

	expect_ok("{“license_id”:“d17cb11cda9ba249c22f67e4aed65d0f65f1a80c”,“role”: “analyst”,“status”: “active”}",
			  "d17cb11cda9ba249c22f67e4aed65d0f65f1a80c", "analyst", "active", 1,
			  "legacy curly-quoted row");
	expect_ok("{\"license_id\":\"abc\",\"role\":\"admin\",\"status\":\"inactive\"}",
			  "abc", "admin", "inactive", 1, "standard JSON");
	expect_ok(" \n{ \"status\" :\t\"s\" , \"role\":\"r\",\r\n\"license_id\" : \"i\" }\n ",
			  "i", "r", "s", 1, "any key order and JSON whitespace");
	expect_ok("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",\"note\":\"x\",\"plan\":\"y\"}",
			  "i", "r", "s", 1, "extra string keys are ignored by the scanner");
	expect_ok("{\"license_id\":\"i\",\"seats\":25,\"role\":\"r\",\"status\":\"s\",\"meta\":{\"a\":[1,2,null]}}",
			  "i", "r", "s", 0, "extra keys of any type go to the full parser");
	expect_ok("{\"license_id\":\"a\\\"b\\\\c\\n\\u00e9\",\"role\":\"r\",\"status\":\"s\"}",
			  "a\"b\\c\n\xc3\xa9", "r", "s", 0, "escapes are decoded by the full parser");
	expect_ok("{“license_id”:“say \"hi\"”,“role”:“r”,“status”:“s”}",
			  "say \"hi\"", "r", "s", 1, "ASCII quote inside a curly string is a character");
	expect_ok("{“license_id”:“caf\xc3\xa9”,\"role\":\"r\",“status”:“s”}",
			  "caf\xc3\xa9", "r", "s", 0, "mixed delimiters and non-ASCII values");
	expect_ok("{\"license_id\":\"\",\"role\":\"r\",\"status\":\"s\"}",
			  "", "r", "s", 1, "empty values parse (the import rejects an empty id)");

	expect_error("{\"license_id\":\"i\",\"role\":\"r\"}", LICENSE_SEMANTIC_ERROR, 0,
				 "key \"status\" is missing", "missing key");
	expect_error("{\"license_id\":\"i\",\"role\":\"r\",\"status\":3}", LICENSE_SEMANTIC_ERROR, 0,
				 "\"status\" must be a string, not number", "non-string value");
	expect_error("{\"license_id\":null,\"role\":\"r\",\"status\":\"s\"}", LICENSE_SEMANTIC_ERROR, 0,
				 "\"license_id\" must be a string, not null", "null value");
	expect_error("[\"license_id\"]", LICENSE_SYNTAX_ERROR, 1,
				 "must be a JSON object, not array", "top level must be an object");
	expect_error("", LICENSE_SYNTAX_ERROR, 1, "expected", "empty input");
	expect_error("{\"license_id\":\"i\" \"role\":\"r\"}", LICENSE_SYNTAX_ERROR, 24,
				 "'}' expected near '\"role\"'", "missing comma, position at the token's end");
	expect_error("{“license_id”:“i”,“role”:“r”,“status”:“s”} x", LICENSE_SYNTAX_ERROR, 44,
				 "end of file expected", "trailing garbage, position in characters");
	expect_error("{“license_id”:“abc,“role”:“r”,“status”:“s”}", LICENSE_SYNTAX_ERROR, 26,
				 "expected near ':'", "unterminated curly string");
	expect_error("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",\"role\":\"x\"}",
				 LICENSE_SYNTAX_ERROR, -1, "duplicate object key", "duplicate key");
	expect_error("{\"license_id\":\"\\u0000\",\"role\":\"r\",\"status\":\"s\"}",
				 LICENSE_SYNTAX_ERROR, -1, "\\u0000 is not allowed", "NUL escape");
	expect_error("{\"license_id\":\"\xff\",\"role\":\"r\",\"status\":\"s\"}",
				 LICENSE_SYNTAX_ERROR, -1, "unable to decode byte", "invalid UTF-8");
	expect_error("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",}",
				 LICENSE_SYNTAX_ERROR, -1, "expected", "trailing comma");
	expect_error("{“license_id”:“i”,“role”:“r”,“status”:“s\\”}",
				 LICENSE_SYNTAX_ERROR, -1, "", "curly closing quote cannot be escaped");

	/* no invalid UTF-8 escapes the parser (issue 8 finding 3) */
	{
		static const char *const hostile[] = {
			"{“license_id”:“a\\”b”,“role”:“r”,“status”:“s”}",	/* escaped curly close */
			"{“license_id”:“a\\“b”,“role”:“r”,“status”:“s”}",	/* escaped curly open */
			"{\"license_id\":\"a\\\xe2\x80\x9d\",\"role\":\"r\",\"status\":\"s\"}",
			"{\"license_id\":\"\xe2\x80\",\"role\":\"r\",\"status\":\"s\"}",	/* truncated char */
			"{\"license_id\":\"\xff\xfe\",\"role\":\"r\",\"status\":\"s\"}",
			"{\"license_id\":\"\xed\xa0\x80\",\"role\":\"r\",\"status\":\"s\"}",	/* surrogate */
			"{\"license_id\":\"\xc0\xaf\",\"role\":\"r\",\"status\":\"s\"}",	/* overlong */
			"{\"license_id\":\"\\ud800\",\"role\":\"r\",\"status\":\"s\"}",	/* lone surrogate escape */
			"\xe2",
			"{\xe2\x80\x9c",
			"{“",
		};
		int			good = 1;

		for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++)
		{
			LicenseResult r;
			LicenseStatus st = license_parse(hostile[i], strlen(hostile[i]), &r);

			if (st == LICENSE_OK)
			{
				for (int f = 0; f < LICENSE_NFIELDS; f++)
					good &= license_valid_utf8(r.value[f], r.length[f]);
			}
			else if (!license_valid_utf8(r.message, strlen(r.message)))
			{
				printf("# input %zu: message \"%s\" is not UTF-8\n", i, r.message);
				good = 0;
			}
			license_result_free(&r);
		}
		ok(good, "hostile bytes and escapes: every message and value is valid UTF-8");
	}
	expect_error("{“license_id”:“a\\”b”,“role”:“r”,“status”:“s”}", LICENSE_SYNTAX_ERROR, -1,
				 "invalid escape near '\"a\\\\xE2'", "an escaped curly quote: the byte jansson stops at as \\xE2");
	expect_error("{\"license_id\":\"\xff\",\"role\":\"r\",\"status\":\"s\"}",
				 LICENSE_SYNTAX_ERROR, -1, "unable to decode byte 0xff", "an invalid byte is named, not copied");
	{
		/* a message longer than the buffer is cut between characters */
		char		in[600];
		LicenseResult r;

		strcpy(in, "{\"license_id\":\"\\");
		for (int i = 0; i < 150; i++)
			strcat(in, "é");
		strcat(in, "\"}");
		license_parse(in, strlen(in), &r);
		ok(r.status == LICENSE_SYNTAX_ERROR && license_valid_utf8(r.message, strlen(r.message)),
		   "a long quoted token is cut at a character boundary");
	}
	ok(license_valid_utf8("caf\xc3\xa9", 5) && !license_valid_utf8("\xe2\x80", 2) &&
	   !license_valid_utf8("a\0b", 3) && !license_valid_utf8("\xf4\x90\x80\x80", 4),
	   "the UTF-8 check: valid, truncated, NUL, past U+10FFFF");

	/* deep nesting: an error, not a stack overflow */
	n = 100000;
	big = malloc(n * 2 + 64);
	strcpy(big, "{\"license_id\":");
	memset(big + 14, '[', n);
	memset(big + 14 + n, ']', n);
	strcpy(big + 14 + 2 * n, "}");
	expect_error(big, LICENSE_SYNTAX_ERROR, -1, "maximum parsing depth",
				 "100000 levels of nesting");
	free(big);

	/* a 16 MB value parses on the fast path */
	n = 16 * 1024 * 1024;
	big = malloc(n + 64);
	strcpy(big, "{\"role\":\"r\",\"status\":\"s\",\"license_id\":\"");
	memset(big + strlen(big), 'x', n);
	strcpy(big + 39 + n, "\"}");
	{
		LicenseResult r;

		ok(license_parse(big, strlen(big), &r) == LICENSE_OK && r.owned == NULL &&
		   r.length[LICENSE_FIELD_ID] == n, "16 MB value");
	}
	free(big);

	/* the allocator hook: every allocation of a full parse goes through it */
	{
		LicenseResult r;

		hook_calls = 0;
		license_set_alloc_funcs(counting_malloc, counting_free);
		license_parse("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",\"n\":[1,[2]]}", strlen("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",\"n\":[1,[2]]}"), &r);
		license_result_free(&r);
		ok(r.status == LICENSE_OK && hook_calls > 3 && hook_live == 0, "full parse allocates through the hook, frees all");
		hook_fail_after = 5;
		license_parse("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",\"n\":[1,[2],[3],[4],[5]]}", strlen("{\"license_id\":\"i\",\"role\":\"r\",\"status\":\"s\",\"n\":[1,[2],[3],[4],[5]]}"), &r);
		ok(r.status == LICENSE_OUT_OF_MEMORY && hook_live == 0, "a failing allocator: out of memory, nothing leaked");
		license_set_alloc_funcs(NULL, NULL);
	}

	return done_testing();
}
