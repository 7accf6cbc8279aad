/*-------------------------------------------------------------------------
 *
 * license.h
 *	  What license.c offers other backend files: the parse the SQL
 *	  accessors use (one-entry cache, bounded full parser) and the text of a
 *	  parse error, for the legacy import (import_license.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_LICENSE_H
#define DOGDB_LICENSE_H

#include "postgres.h"

#include "license_parse.h"

/*
 * Parse license blob t, reusing the previous result when the bytes are the
 * same; never raises for malformed input (the result says why).  The result
 * and the values it points to are valid until the next call.
 */
extern const LicenseResult *LicenseParseCached(text *t);

/* the error of a failed parse as one line: dogdb_license_error()'s text */
extern char *LicenseErrorText(const LicenseResult *res);

#endif							/* DOGDB_LICENSE_H */
