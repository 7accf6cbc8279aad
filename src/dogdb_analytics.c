/*-------------------------------------------------------------------------
 *
 * dogdb_analytics.c
 *	  Module entry point of the dogdb_analytics extension.
 *
 * Each subsystem lives in its own file (license.c, ...); this file only
 * carries the module magic block.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"

PG_MODULE_MAGIC;
