/*-------------------------------------------------------------------------
 *
 * dogdb_analytics.c
 *	  Module entry point of the dogdb_analytics extension.
 *
 * Each subsystem lives in its own file (license.c, ...); this file only
 * carries the module magic block and _PG_init.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

#include "churn.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* the library's settings and hooks */
void
_PG_init(void)
{
	ChurnPathInit();
}
