/*
 * fuzz_license.c
 *	  libFuzzer harness for the license parser core (built with ASan and
 *	  UBSan by "make fuzz").
 *
 * Differential: wherever the single-pass scanner accepts an input, the
 * jansson-based full parser must accept it too and decode the same three
 * values.  Everywhere else the parser must return a result (never crash),
 * and an error position must lie inside the input.  Whatever the input,
 * every value and message the parser produces is well-formed UTF-8 (the
 * server stores them as text), and a message fits its buffer.
 */
#include "license_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* abort unless everything r holds for the caller is valid UTF-8 */
static void
check_utf8(const LicenseResult *r, LicenseStatus st)
{
	if (st == LICENSE_OK)
	{
		for (int i = 0; i < LICENSE_NFIELDS; i++)
			if (!license_valid_utf8(r->value[i], r->length[i]))
				abort();
	}
	else if (strnlen(r->message, LICENSE_ERRMSG_LEN) == LICENSE_ERRMSG_LEN ||
			 !license_valid_utf8(r->message, strlen(r->message)))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* exact-size copy, so ASan sees any read past the end */
	char	   *buf = malloc(size ? size : 1);
	LicenseResult fast;
	LicenseResult full;
	LicenseStatus st;

	memcpy(buf, data, size);

	st = license_parse_full(buf, size, &full);
	check_utf8(&full, st);
	if (license_scan(buf, size, &fast))
	{
		check_utf8(&fast, LICENSE_OK);
		if (st != LICENSE_OK)
			abort();
		for (int i = 0; i < LICENSE_NFIELDS; i++)
			if (fast.length[i] != full.length[i] ||
				memcmp(fast.value[i], full.value[i], fast.length[i]) != 0)
				abort();
	}
	if (st == LICENSE_SYNTAX_ERROR && (full.position < 1 || (size_t) full.position > size + 1))
		abort();
	if (st != LICENSE_OK && full.message[0] == '\0')
		abort();
	license_result_free(&full);

	/* the combined entry point agrees with the full parser on the verdict */
	if (license_parse(buf, size, &fast) != st)
		abort();
	check_utf8(&fast, st);
	license_result_free(&fast);

	free(buf);
	return 0;
}
