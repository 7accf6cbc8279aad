/*
 * fuzz_license.c
 *	  libFuzzer harness for the license parser core (built with ASan and
 *	  UBSan by "make fuzz").
 *
 * Differential: wherever the single-pass scanner accepts an input, the
 * jansson-based full parser must accept it too and decode the same three
 * values.  Everywhere else the parser must return a result (never crash),
 * and an error position must lie inside the input.
 */
#include "license_parse.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
	if (license_scan(buf, size, &fast))
	{
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
	license_result_free(&fast);

	free(buf);
	return 0;
}
