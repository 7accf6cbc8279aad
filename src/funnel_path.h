/*-------------------------------------------------------------------------
 *
 * funnel_path.h
 *	  The funnel scan: a custom scan that replaces GroupAggregate for
 *	  SELECT g, dogdb_window_funnel(...)[, dogdb_window_funnel_times(...)]
 *	  FROM one table [WHERE ...] GROUP BY g [HAVING ...].
 *
 *	  funnel_path.c       the planner side: the upper-path hook, the
 *	                      support function that loads the library at
 *	                      plan time, the GUC, the plan node
 *	  funnel_path_exec.c  the executor side: grouping, the step memo,
 *	                      EXPLAIN
 *
 * The plan node (CustomScan, scanrelid 0) has one child, the table's rows
 * sorted by (g, ts).  Its custom_scan_tlist is the child's target list (plain
 * Vars of the table, in the child's order) followed by the Aggrefs, so that
 * after setrefs a Var of custom_exprs is INDEX_VAR with the attribute
 * number of the child's output column.  custom_exprs:
 *	  [0] the grouping Var
 *	  [1] the WHERE quals taken over from the child (a list, maybe empty)
 *	  then per aggregate: ts Var, window Const, mode Const (NULL text when
 *	  the aggregate has no mode), the list of step expressions.
 * custom_private: [0] kinds (an integer list: FUNNEL_PATH_LEVEL or
 * FUNNEL_PATH_TIMES per aggregate), [1] flags (an integer), [2] an OID
 * list: the grouping column's equality operator and collation.
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_FUNNEL_PATH_H
#define DOGDB_FUNNEL_PATH_H

#include "nodes/extensible.h"

#define FUNNEL_PATH_NAME "DogdbFunnelScan"

#define FUNNEL_PATH_LEVEL 0
#define FUNNEL_PATH_TIMES 1

/* flags */
#define FUNNEL_PATH_MEMO_STEPS	0x01	/* steps memoized by their columns */
#define FUNNEL_PATH_MEMO_QUALS	0x02	/* the quals taken over, memoized */
#define FUNNEL_PATH_TAKE_QUALS	0x04	/* (path) the scan's quals may be taken */

/* the bound of the memo: past it, new combinations are evaluated per row */
#define FUNNEL_MEMO_MAX_ENTRIES 65536

extern bool funnel_enable_scan;

/* funnel_path_exec.c */
extern Node *FunnelCreateScanState(CustomScan *cscan);

/* funnel_path.c: the GUC and the hook, from _PG_init */
extern void FunnelPathInit(void);

#endif							/* DOGDB_FUNNEL_PATH_H */
