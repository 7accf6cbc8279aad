/*-------------------------------------------------------------------------
 *
 * license_parse.c
 *	  Scanner and jansson-based parser for legacy DogDB license blobs.
 *
 * No backend headers here: this file is linked alone into the unit tests
 * and the libFuzzer harness.  See license_parse.h for the design.
 *
 * Curly-quoted strings: U+201C (bytes E2 80 9C) opens a string and U+201D
 * (E2 80 9D) closes it.  Inside such a string an ASCII '"' is an ordinary
 * character; backslash escapes mean what they mean in JSON.  The full
 * parser rewrites curly strings to ASCII ones (escaping inner '"') and
 * hands the result to jansson; error positions are mapped back to the
 * caller's input by replaying that rewrite.
 *
 *-------------------------------------------------------------------------
 */
#include "license_parse.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* the allocator of the full parser and of jansson (license_set_alloc_funcs) */
static license_malloc_t parse_malloc = malloc;
static license_free_t parse_free = free;

void
license_set_alloc_funcs(license_malloc_t malloc_fn, license_free_t free_fn)
{
	parse_malloc = malloc_fn ? malloc_fn : malloc;
	parse_free = free_fn ? free_fn : free;
	json_set_alloc_funcs(parse_malloc, parse_free);
}

const char *const license_field_names[LICENSE_NFIELDS] = {
	"license_id", "role", "status"
};

/* most extra (ignored) keys the scanner tracks for duplicate detection */
#define SCAN_MAX_EXTRA_KEYS 16

#define IS_JSON_WS(c) ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r')

static inline bool
IsCurly(const unsigned char *p, const unsigned char *end, unsigned char third)
{
	return end - p >= 3 && p[0] == 0xE2 && p[1] == 0x80 && p[2] == third;
}

#define IS_CURLY_OPEN(p, end)	IsCurly((p), (end), 0x9C)
#define IS_CURLY_CLOSE(p, end)	IsCurly((p), (end), 0x9D)

static inline const unsigned char *
SkipWhitespace(const unsigned char *p, const unsigned char *end)
{
	while (p < end && IS_JSON_WS(*p))
		p++;
	return p;
}

/*
 * Scan one plain string (ASCII or curly delimited) starting at p.  Returns
 * the position after the closing delimiter, or NULL to decline: anything
 * that needs decoding (escapes, non-ASCII) or that is not a string.
 */
static const unsigned char *
ScanPlainString(const unsigned char *p, const unsigned char *end,
				const char **start, size_t *len)
{
	const unsigned char *s;

	if (p < end && *p == '"')
	{
		s = ++p;
		while (p < end && *p != '"')
		{
			if (*p < 0x20 || *p >= 0x80 || *p == '\\')
				return NULL;
			p++;
		}
		if (p == end)
			return NULL;
		*start = (const char *) s;
		*len = p - s;
		return p + 1;
	}
	if (IS_CURLY_OPEN(p, end))
	{
		s = p += 3;
		while (p < end && *p != 0xE2)
		{
			if (*p < 0x20 || *p >= 0x80 || *p == '\\')
				return NULL;
			p++;
		}
		if (!IS_CURLY_CLOSE(p, end))
			return NULL;
		*start = (const char *) s;
		*len = p - s;
		return p + 3;
	}
	return NULL;
}

/* Which required field a key names, or -1 */
static inline int
FieldIndex(const char *key, size_t len)
{
	for (int i = 0; i < LICENSE_NFIELDS; i++)
	{
		if (len == strlen(license_field_names[i]) &&
			memcmp(key, license_field_names[i], len) == 0)
			return i;
	}
	return -1;
}

/*
 * Single-pass scanner for the common flat shape.  Accepts only what the
 * full parser would accept with the same values; declines everything else.
 */
bool
license_scan(const char *buf, size_t len, LicenseResult *result)
{
	const unsigned char *p = (const unsigned char *) buf;
	const unsigned char *end = p + len;
	const char *extra_key[SCAN_MAX_EXTRA_KEYS];
	size_t		extra_len[SCAN_MAX_EXTRA_KEYS];
	int			nextra = 0;
	unsigned	seen = 0;

	p = SkipWhitespace(p, end);
	if (p == end || *p != '{')
		return false;
	p = SkipWhitespace(p + 1, end);

	for (;;)
	{
		const char *key;
		const char *val;
		size_t		klen;
		size_t		vlen;
		int			field;

		if ((p = ScanPlainString(p, end, &key, &klen)) == NULL)
			return false;
		p = SkipWhitespace(p, end);
		if (p == end || *p != ':')
			return false;
		p = SkipWhitespace(p + 1, end);
		if ((p = ScanPlainString(p, end, &val, &vlen)) == NULL)
			return false;

		field = FieldIndex(key, klen);
		if (field >= 0)
		{
			if (seen & (1u << field))
				return false;	/* duplicate: the full parser reports it */
			seen |= 1u << field;
			result->value[field] = val;
			result->length[field] = vlen;
		}
		else
		{
			if (nextra == SCAN_MAX_EXTRA_KEYS)
				return false;
			for (int i = 0; i < nextra; i++)
				if (extra_len[i] == klen && memcmp(extra_key[i], key, klen) == 0)
					return false;
			extra_key[nextra] = key;
			extra_len[nextra++] = klen;
		}

		p = SkipWhitespace(p, end);
		if (p == end)
			return false;
		if (*p == '}')
			break;
		if (*p != ',')
			return false;
		p = SkipWhitespace(p + 1, end);
	}

	if (SkipWhitespace(p + 1, end) != end)
		return false;
	if (seen != (1u << LICENSE_NFIELDS) - 1)
		return false;

	result->status = LICENSE_OK;
	result->owned = NULL;
	result->position = 0;
	result->message[0] = '\0';
	return true;
}

/*
 * Length of the well-formed UTF-8 sequence at p (as PostgreSQL accepts it:
 * no overlong forms, no surrogates, at most U+10FFFF), or 0 if there is
 * none.
 */
static size_t
Utf8Valid(const unsigned char *p, const unsigned char *end)
{
	size_t		n;

	if (p >= end)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF)
		n = 2;
	else if (p[0] >= 0xE0 && p[0] <= 0xEF)
		n = 3;
	else if (p[0] >= 0xF0 && p[0] <= 0xF4)
		n = 4;
	else
		return 0;
	if ((size_t) (end - p) < n)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xC0) != 0x80)
			return 0;
	if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) ||
		(p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))
		return 0;
	return n;
}

/* bytes of the character at p: a valid sequence, else one byte */
static size_t
Utf8SequenceLength(const unsigned char *p, const unsigned char *end)
{
	size_t		n = Utf8Valid(p, end);

	return n ? n : 1;
}

bool
license_valid_utf8(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	const unsigned char *end = p + len;

	while (p < end)
	{
		size_t		n = Utf8Valid(p, end);

		if (n == 0 || (n == 1 && *p == 0))
			return false;
		p += n;
	}
	return true;
}

/*
 * Make a NUL-terminated message valid UTF-8 in place: each byte that does
 * not start a valid sequence becomes the four characters \xHH, and the
 * message is cut at a character boundary to fit its buffer.
 */
static void
MakeValidUtf8(char *msg, size_t size)
{
	char		tmp[LICENSE_ERRMSG_LEN];
	const unsigned char *p = (const unsigned char *) msg;
	const unsigned char *end = p + strlen(msg);
	size_t		o = 0;

	while (p < end)
	{
		size_t		n = Utf8Valid(p, end);

		if (n > 0)
		{
			if (o + n >= size || o + n >= sizeof(tmp))
				break;
			memcpy(tmp + o, p, n);
			o += n;
			p += n;
		}
		else
		{
			if (o + 4 >= size || o + 4 >= sizeof(tmp))
				break;
			snprintf(tmp + o, 5, "\\x%02X", *p);
			o += 4;
			p++;
		}
	}
	tmp[o] = '\0';
	memcpy(msg, tmp, o + 1);
}

/*
 * Rewrite curly-quoted strings as standard JSON strings.
 *
 * With out == NULL, nothing is written: the function replays the rewrite
 * and returns the input offset at which stop_at output bytes have been
 * produced (used to map jansson's error offsets back).  Otherwise it
 * writes the rewritten text to out (which must hold 2 * len bytes) and
 * returns its length.
 */
static size_t
NormalizeQuotes(const unsigned char *in, size_t len, char *out, size_t stop_at)
{
	const unsigned char *end = in + len;
	const unsigned char *p = in;
	size_t		o = 0;
	enum
	{
		OUTSIDE, ASCII_STRING, CURLY_STRING
	}			state = OUTSIDE;

#define EMIT(c) do { char c_ = (char) (c); if (out) out[o] = c_; o++; } while (0)

	/*
	 * After a backslash, the escaped character is copied whole (all but its
	 * last byte here, the last by the common EMIT at the loop's end), so
	 * that no escape splits a character: jansson quotes the offending text
	 * in its message.
	 */
#define EMIT_CHAR_REST() \
	do { \
		size_t n_ = Utf8SequenceLength(p, end); \
		while (n_-- > 1) \
			EMIT(*p++); \
	} while (0)

	while (p < end)
	{
		if (out == NULL && o >= stop_at)
			return p - in;

		switch (state)
		{
			case OUTSIDE:
				if (IS_CURLY_OPEN(p, end))
				{
					EMIT('"');
					p += 3;
					state = CURLY_STRING;
					continue;
				}
				if (*p == '"')
					state = ASCII_STRING;
				break;
			case ASCII_STRING:
				if (*p == '\\' && p + 1 < end)
				{
					EMIT(*p++);
					EMIT_CHAR_REST();
				}
				else if (*p == '"')
					state = OUTSIDE;
				break;
			case CURLY_STRING:
				if (*p == '\\' && p + 1 < end)
				{
					EMIT(*p++);
					EMIT_CHAR_REST();
				}
				else if (*p == '"')
				{
					EMIT('\\');
				}
				else if (IS_CURLY_CLOSE(p, end))
				{
					EMIT('"');
					p += 3;
					state = OUTSIDE;
					continue;
				}
				break;
		}
		EMIT(*p++);
	}
#undef EMIT_CHAR_REST
#undef EMIT
	return out ? o : len;
}

/* Number of UTF-8 characters in the first nbytes of s */
static long
CharCount(const unsigned char *s, size_t nbytes)
{
	long		n = 0;

	for (size_t i = 0; i < nbytes; i++)
		if ((s[i] & 0xC0) != 0x80)
			n++;
	return n;
}

static const char *
JsonTypeName(const json_t *v)
{
	switch (json_typeof(v))
	{
		case JSON_OBJECT:
			return "object";
		case JSON_ARRAY:
			return "array";
		case JSON_STRING:
			return "string";
		case JSON_INTEGER:
		case JSON_REAL:
			return "number";
		case JSON_TRUE:
		case JSON_FALSE:
			return "boolean";
		case JSON_NULL:
			return "null";
	}
	return "unknown";
}

static LicenseStatus SetError(LicenseResult *result, LicenseStatus status, long position,
							  const char *fmt,...) __attribute__((format(printf, 4, 5)));

/* record an error; the message is made valid UTF-8 (it may quote input) */
static LicenseStatus
SetError(LicenseResult *result, LicenseStatus status, long position,
		 const char *fmt,...)
{
	va_list		ap;

	result->status = status;
	result->position = position;
	va_start(ap, fmt);
	vsnprintf(result->message, sizeof(result->message), fmt, ap);
	va_end(ap);
	MakeValidUtf8(result->message, sizeof(result->message));
	return status;
}

/*
 * Full parser: jansson over the quote-normalized text.
 */
LicenseStatus
license_parse_full(const char *buf, size_t len, LicenseResult *result)
{
	const unsigned char *in = (const unsigned char *) buf;
	char	   *norm;
	size_t		nlen;
	json_t	   *root;
	json_error_t jerr;
	const char *val[LICENSE_NFIELDS];
	size_t		vlen[LICENSE_NFIELDS];
	size_t		total = 0;
	char	   *dst;

	result->owned = NULL;
	result->position = 0;
	result->message[0] = '\0';

	if (len > ((size_t) -1) / 2 - 1 || (norm = parse_malloc(2 * len + 1)) == NULL)
		return SetError(result, LICENSE_OUT_OF_MEMORY, 0,
						"out of memory");
	nlen = NormalizeQuotes(in, len, norm, 0);

	root = json_loadb(norm, nlen,
					  JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL, &jerr);
	if (root == NULL)
	{
		size_t		at = jerr.position > 0 ? (size_t) jerr.position : 0;
		size_t		src;

		parse_free(norm);
		/* an allocation failure may leave jansson's message empty */
		if (json_error_code(&jerr) == json_error_out_of_memory || jerr.text[0] == '\0')
			return SetError(result, LICENSE_OUT_OF_MEMORY, 0,
							"out of memory");

		/*
		 * jansson reports the offset just past the offending token; point at
		 * its last character.
		 */
		src = NormalizeQuotes(in, len, NULL, at);
		return SetError(result, LICENSE_SYNTAX_ERROR,
						src > 0 ? CharCount(in, src) : 1,
						"%s", jerr.text);
	}
	parse_free(norm);

	if (!json_is_object(root))
	{
		SetError(result, LICENSE_SYNTAX_ERROR, 1,
				 "license data must be a JSON object, not %s",
				 JsonTypeName(root));
		json_decref(root);
		return result->status;
	}

	for (int i = 0; i < LICENSE_NFIELDS; i++)
	{
		json_t	   *v = json_object_get(root, license_field_names[i]);

		if (v == NULL)
		{
			SetError(result, LICENSE_SEMANTIC_ERROR, 0,
					 "key \"%s\" is missing", license_field_names[i]);
			json_decref(root);
			return result->status;
		}
		if (!json_is_string(v))
		{
			SetError(result, LICENSE_SEMANTIC_ERROR, 0,
					 "value of key \"%s\" must be a string, not %s",
					 license_field_names[i], JsonTypeName(v));
			json_decref(root);
			return result->status;
		}
		val[i] = json_string_value(v);
		vlen[i] = json_string_length(v);
		total += vlen[i] + 1;
	}

	if ((result->owned = parse_malloc(total)) == NULL)
	{
		json_decref(root);
		return SetError(result, LICENSE_OUT_OF_MEMORY, 0,
						"out of memory");
	}
	dst = result->owned;
	for (int i = 0; i < LICENSE_NFIELDS; i++)
	{
		memcpy(dst, val[i], vlen[i]);
		dst[vlen[i]] = '\0';
		result->value[i] = dst;
		result->length[i] = vlen[i];
		dst += vlen[i] + 1;
	}
	json_decref(root);
	result->status = LICENSE_OK;
	return LICENSE_OK;
}

/* Scanner first, full parser for whatever it declines */
LicenseStatus
license_parse(const char *buf, size_t len, LicenseResult *result)
{
	if (license_scan(buf, len, result))
		return LICENSE_OK;
	return license_parse_full(buf, len, result);
}

void
license_result_free(LicenseResult *result)
{
	if (result->owned != NULL)
		parse_free(result->owned);
	result->owned = NULL;
}
