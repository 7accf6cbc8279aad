/*-------------------------------------------------------------------------
 *
 * citus.h
 *	  What the extension does differently when its tables are distributed
 *	  by Citus (README "Running on Citus").  Whether a table is a Citus
 *	  table is DogdbIsDistributed() (common.h).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_CITUS_H
#define DOGDB_CITUS_H

#include "fmgr.h"
#include "access/tupdesc.h"

/*
 * dogdb.kpi_update_facts() on Citus: the facts recomputed in full by the
 * pushed-down query dogdb_internal.kpi_facts_sql(); returns the function's
 * result row (described by desc).
 */
extern Datum DogdbKpiUpdateFactsOnCitus(TupleDesc desc);

#endif							/* DOGDB_CITUS_H */
