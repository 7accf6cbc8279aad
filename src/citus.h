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
 * dogdb.kpi_update_facts() on Citus: the facts recomputed in full by the
 * pushed-down query dogdb_internal.kpi_facts_sql(); returns the function's
 * result row (described by desc).
 */
extern Datum DogdbKpiUpdateFactsOnCitus(TupleDesc desc);

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
