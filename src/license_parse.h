/*-------------------------------------------------------------------------
 *
 * license_parse.h
 *	  Parser for legacy DogDB license blobs, free of backend headers.
 *
 * A license blob is a JSON object with (at least) the string keys
 * "license_id", "role" and "status".  Legacy rows delimit strings with
 * Unicode curly quotes (U+201C opens, U+201D closes) instead of '"'.
 *
 * Two parsers share this interface:
 *
 *	- license_scan() is a single pass over the common flat shape: an object
 *	  whose values are all plain strings (no escapes, printable ASCII).  It
 *	  never reports an error; it either accepts and points into the input,
 *	  or declines and leaves the input to the full parser.
 *
 *	- license_parse_full() rewrites curly-quoted strings to standard JSON
 *	  and parses with jansson, which gives the full grammar (escapes,
 *	  nesting, any value type for ignored keys) and the error messages.
 *
 * license_parse() tries the scanner first and falls back to the full
 * parser.  Both must agree wherever the scanner accepts; the fuzz harness
 * in test/fuzz checks exactly that.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LICENSE_PARSE_H
#define LICENSE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

#define LICENSE_NFIELDS			3
#define LICENSE_FIELD_ID		0
#define LICENSE_FIELD_ROLE		1
#define LICENSE_FIELD_STATUS	2

#define LICENSE_ERRMSG_LEN		256

typedef enum LicenseStatus
{
	LICENSE_OK = 0,
	LICENSE_SYNTAX_ERROR,		/* not JSON, or not an object */
	LICENSE_SEMANTIC_ERROR,		/* valid JSON, but a key is missing or not a
								 * string */
	LICENSE_OUT_OF_MEMORY
} LicenseStatus;

typedef struct LicenseResult
{
	LicenseStatus status;

	/*
	 * On success, the decoded value of each field.  Points into the input
	 * when the scanner accepted it, or into "owned" (which the caller must
	 * release with license_result_free) after the full parser.
	 */
	const char *value[LICENSE_NFIELDS];
	size_t		length[LICENSE_NFIELDS];
	char	   *owned;

	/*
	 * On error: 1-based character (not byte) position, 0 if none, and the
	 * message, always valid UTF-8 (invalid bytes quoted from the input
	 * appear as \xHH), cut at a character boundary.
	 */
	long		position;
	char		message[LICENSE_ERRMSG_LEN];
} LicenseResult;

extern const char *const license_field_names[LICENSE_NFIELDS];

/*
 * The allocator of the full parser: its buffers, the decoded values
 * ("owned") and jansson's own allocations (json_set_alloc_funcs, so this
 * replaces jansson's allocator for the whole process; NULL, NULL restores
 * malloc and free).  The server routes them through a memory context it
 * resets after each parse; a malloc_fn may also throw (longjmp) out of a
 * parse, leaving only memory of that allocator behind.
 */
typedef void *(*license_malloc_t) (size_t size);
typedef void (*license_free_t) (void *ptr);
extern void license_set_alloc_funcs(license_malloc_t malloc_fn, license_free_t free_fn);

/* whether len bytes are well-formed UTF-8 without NUL (what the server takes) */
extern bool license_valid_utf8(const char *s, size_t len);

extern bool license_scan(const char *buf, size_t len, LicenseResult *result);
extern LicenseStatus license_parse_full(const char *buf, size_t len,
										LicenseResult *result);
extern LicenseStatus license_parse(const char *buf, size_t len,
								   LicenseResult *result);
extern void license_result_free(LicenseResult *result);

#endif							/* LICENSE_PARSE_H */
