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
#include "utils/guc.h"

#include "churn.h"
#include "funnel_path.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

/* at load: settings, planner hooks */
void
_PG_init(void)
{
	ChurnPathInit();			/* dogdb_analytics.enable_grouped_scan, the grouped scan */
	FunnelPathInit();			/* dogdb_analytics.enable_funnel_scan, the funnel scan */
	MarkGUCPrefixReserved("dogdb_analytics");
}
