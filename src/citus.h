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
#include "nodes/execnodes.h"

/*
 * dogdb_internal.kpi_update_facts() on Citus: the facts of the blocks of
 * accounts that changed (all if full) recomputed by pushed-down queries
 * (dogdb_internal.kpi_citus_refresh()); returns the function's result row
 * (described by desc).
 */
extern Datum DogdbKpiUpdateFactsOnCitus(TupleDesc desc, bool full);

/*
 * dogdb_import_legacy() on Citus (import_citus.c): whether its tables are
 * Citus tables, and the import of the legacy tables relids (in import.c's
 * order) into rsinfo's tuplestore, inside the caller's SPI connection,
 * after import.c has locked dogdb.import_rejects and checked the tables.
 */
extern bool DogdbImportOnCitus(void);
extern void DogdbImportLegacyOnCitus(ReturnSetInfo *rsinfo, const Oid *relids, int ntables,
									 const char *extschema);

#endif							/* DOGDB_CITUS_H */
