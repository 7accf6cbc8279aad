/*-------------------------------------------------------------------------
 *
 * churn_path.c
 *	  The grouped scan of dogdb_active_months(): the planner side.
 *
 * Design note: grouped by account, the aggregate costs what count(*) does
 * in the same plan: the executor's grouping (a hash table or a sort) and
 * expression evaluation are nearly all the time.  So the planner is offered
 * another plan for the one shape that matters,
 *
 *	  SELECT <exprs over k and the aggregates>
 *		FROM t GROUP BY k	-- k an int2/int4/int8 column of t
 *
 * where every aggregate is dogdb_active_months(<the same timestamptz
 * column of t>) with no FILTER, DISTINCT or ORDER BY, and t is a plain heap
 * table read whole: no WHERE (nor row-level security, which adds one), no
 * HAVING, no grouping sets, no inheritance or partitions, not distributed
 * (Citus).  The path is a CustomScan on the grouping relation, as
 * postgres_fdw pushes an aggregate into a ForeignScan: its custom_scan_tlist
 * holds the key Var and the Aggref, setrefs turns the target list's
 * references to them into INDEX_VAR Vars, and the node projects the rest
 * (the readers).  It runs one pass over the heap into a month bitmap per
 * key (churn_path_exec.c).  Its child (custom_plans) is the planner's best
 * standard plan without parallel workers (a Gather anywhere in the plan
 * puts the whole query in parallel mode, where the node cannot start
 * workers of its own), which the node runs instead when its memory bound
 * would be exceeded or a row holds what the aggregate rejects: then the
 * answer, errors included, is the standard plan's.
 *
 * Loading: the hook is installed by _PG_init, which runs when the library
 * is loaded.  The transition function has a support function (here): the
 * planner asks it for its cost (SupportRequestCost, get_agg_clause_costs)
 * before it builds the grouping paths, which loads the library in time in
 * a fresh session.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/table.h"
#include "catalog/dependency.h"
#include "catalog/pg_proc_d.h"
#include "catalog/pg_am_d.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "nodes/extensible.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/supportnodes.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "parser/parse_func.h"
#include "parser/parsetree.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/selfuncs.h"

#include "churn.h"
#include "common.h"

PG_FUNCTION_INFO_V1(dogdb_active_months_support);

/* per-key state the memory bound counts (hash entry and its slack) */
#define CHURN_PATH_GROUP_BYTES 80

static bool enable_grouped_scan = true;
static create_upper_paths_hook_type prev_upper_paths_hook = NULL;

static Plan *ChurnPlanPath(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
						   List *tlist, List *clauses, List *custom_plans);

static const CustomPathMethods ChurnPathMethods = {
	.CustomName = "DogdbGroupedScan",
	.PlanCustomPath = ChurnPlanPath,
};

static const CustomScanMethods ChurnScanMethods = {
	.CustomName = "DogdbGroupedScan",
	.CreateCustomScanState = ChurnPathCreateState,
};

/*
 * dogdb_active_months_support(internal): the transition function's support
 * function.  It answers nothing (the planner keeps its defaults); being
 * called loads the library, whose hook offers the grouped scan.
 */
Datum
dogdb_active_months_support(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(NULL);
}

/* whether aggfnoid is this extension's dogdb_active_months(timestamptz) */
static bool
IsActiveMonths(Oid aggfnoid)
{
	char	   *name = get_func_name(aggfnoid);
	Oid			ext;

	if (name == NULL || strcmp(name, "dogdb_active_months") != 0)
		return false;
	ext = get_extension_oid("dogdb_analytics", true);
	return OidIsValid(ext) && getExtensionOfObject(ProcedureRelationId, aggfnoid) == ext;
}

/* a Var of the plain column of the base relation relid, of a type in types */
static bool
IsColumnOf(Node *node, Index relid, const Oid *types, int ntypes)
{
	Var		   *var = (Var *) node;

	if (node == NULL || !IsA(node, Var) || var->varno != (int) relid || var->varlevelsup != 0 ||
		var->varattno <= 0)
		return false;
	for (int i = 0; i < ntypes; i++)
		if (var->vartype == types[i])
			return true;
	return false;
}

/* whether the base relation can be read whole by the node, as the standard plan would */
static bool
ScannableRelation(PlannerInfo *root, RelOptInfo *input_rel)
{
	RangeTblEntry *rte;
	Relation	rel;
	bool		heap;

	if (input_rel->reloptkind != RELOPT_BASEREL || input_rel->rtekind != RTE_RELATION ||
		input_rel->baserestrictinfo != NIL || IS_DUMMY_REL(input_rel) ||
		bms_membership(input_rel->relids) != BMS_SINGLETON)
		return false;
	rte = planner_rt_fetch(input_rel->relid, root);
	if (rte->relkind != RELKIND_RELATION || rte->inh || rte->tablesample != NULL ||
		rte->securityQuals != NIL)
		return false;
	rel = table_open(rte->relid, NoLock);	/* locked by the planner */
	heap = rel->rd_rel->relam == HEAP_TABLE_AM_OID;
	table_close(rel, NoLock);
	return heap && !DogdbIsDistributed(rte->relid);
}

/*
 * The scan target list (key Var, Aggref) if the grouping is of the
 * supported shape, else NIL.
 */
static List *
SupportedShape(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *output_rel,
			   GroupPathExtraData *extra)
{
	static const Oid key_types[] = {INT2OID, INT4OID, INT8OID};
	static const Oid time_types[] = {TIMESTAMPTZOID};
	Query	   *parse = root->parse;
	Node	   *key;
	Aggref	   *agg = NULL;
	List	   *vars;
	ListCell   *lc;

	if (parse->groupingSets != NIL || list_length(parse->groupClause) != 1 ||
		parse->havingQual != NULL || extra->havingQual != NULL || !parse->hasAggs ||
		extra->patype != PARTITIONWISE_AGGREGATE_NONE)
		return NIL;
	key = (Node *) get_sortgroupclause_expr(linitial_node(SortGroupClause, parse->groupClause),
											parse->targetList);
	if (!IsColumnOf(key, input_rel->relid, key_types, lengthof(key_types)))
		return NIL;

	/* every Var outside an aggregate is the key; every Aggref the same supported one */
	vars = pull_var_clause((Node *) output_rel->reltarget->exprs,
						   PVC_INCLUDE_AGGREGATES | PVC_INCLUDE_PLACEHOLDERS);
	foreach(lc, vars)
	{
		Node	   *node = lfirst(lc);

		if (IsA(node, Aggref))
		{
			Aggref	   *a = (Aggref *) node;

			if (a->aggfilter != NULL || a->aggdistinct != NIL || a->aggorder != NIL ||
				a->aggstar || a->aggvariadic || a->agglevelsup != 0 ||
				a->aggsplit != AGGSPLIT_SIMPLE || list_length(a->args) != 1 ||
				!IsColumnOf((Node *) linitial_node(TargetEntry, a->args)->expr, input_rel->relid,
							time_types, lengthof(time_types)))
				return NIL;
			if (agg == NULL)
				agg = a;
			else if (!equal(agg, a))
				return NIL;
		}
		else if (!equal(node, key))
			return NIL;
	}
	if (agg == NULL)
		return NIL;
	if (!IsActiveMonths(agg->aggfnoid))
		return NIL;
	if (!ScannableRelation(root, input_rel))
		return NIL;
	return list_make2(makeTargetEntry((Expr *) copyObject(key), 1, NULL, false),
					  makeTargetEntry((Expr *) copyObject(agg), 2, NULL, false));
}

/*
 * Whether a path may start parallel workers: a plan with a Gather runs the
 * whole query in parallel mode, where the node cannot start its own.
 */
static bool
MayGather(Path *path)
{
	switch (nodeTag(path))
	{
		case T_AggPath:
			return MayGather(((AggPath *) path)->subpath);
		case T_SortPath:
		case T_IncrementalSortPath:
			return MayGather(((SortPath *) path)->subpath);
		case T_ProjectionPath:
			return MayGather(((ProjectionPath *) path)->subpath);
		case T_Path:
		case T_IndexPath:
		case T_BitmapHeapPath:
			return path->parallel_aware;
		default:
			return true;		/* Gather, GatherMerge, anything else */
	}
}

/* the cheapest path of rel without parallel workers, or NULL */
static Path *
CheapestSerial(List *pathlist, bool agg)
{
	Path	   *best = NULL;
	ListCell   *lc;

	foreach(lc, pathlist)
	{
		Path	   *p = lfirst(lc);

		if ((!agg || IsA(p, AggPath)) && !MayGather(p) &&
			(best == NULL || p->total_cost < best->total_cost))
			best = p;
	}
	return best;
}

/*
 * The standard plan: the cheapest grouping path without parallel workers,
 * copied (add_path() may free the original), else a hash aggregate over
 * the cheapest such scan; NULL if neither exists.
 */
static Path *
StandardPath(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *output_rel,
			 GroupPathExtraData *extra, double groups)
{
	Path	   *best = CheapestSerial(output_rel->pathlist, true);
	AggPath    *copy;

	if (best == NULL)
	{
		Path	   *scan = CheapestSerial(input_rel->pathlist, false);

		if (scan == NULL)
			return NULL;
		return (Path *) create_agg_path(root, output_rel, scan, output_rel->reltarget, AGG_HASHED,
										AGGSPLIT_SIMPLE, root->parse->groupClause, NIL,
										&extra->agg_final_costs, groups);
	}
	copy = palloc(sizeof(AggPath));
	memcpy(copy, best, sizeof(AggPath));
	return (Path *) copy;
}

/* offer the grouped scan for the supported shape */
static void
AddGroupedScanPath(PlannerInfo *root, RelOptInfo *input_rel, RelOptInfo *output_rel,
				   GroupPathExtraData *extra)
{
	List	   *scan_tlist = SupportedShape(root, input_rel, output_rel, extra);
	Var		   *key;
	Aggref	   *agg;
	Path	   *standard;
	CustomPath *cp;
	double		groups;
	int			nworkers;
	double		divisor;
	Cost		run;

	if (scan_tlist == NIL)
		return;
	key = (Var *) linitial_node(TargetEntry, scan_tlist)->expr;
	agg = (Aggref *) lsecond_node(TargetEntry, scan_tlist)->expr;

	/* memory: not offered when the estimated keys would exceed the bound */
	groups = estimate_num_groups(root, list_make1(key), input_rel->rows, NULL, NULL);
	if (groups * CHURN_PATH_GROUP_BYTES > (double) ChurnMemoryLimit())
		return;
	if ((standard = StandardPath(root, input_rel, output_rel, extra, groups)) == NULL)
		return;

	/* workers as for a parallel sequential scan (none for temporary tables) */
	nworkers = 0;
	if (input_rel->consider_parallel && max_parallel_workers_per_gather > 0)
		nworkers = compute_parallel_worker(input_rel, input_rel->pages, -1, max_parallel_workers_per_gather);
	/* the leader scans too */
	divisor = nworkers + (nworkers > 0 ? Max(1.0 - 0.3 * nworkers, 0.0) : 1.0);

	cp = DogdbUpperCustomPath(output_rel, standard, groups, &ChurnPathMethods);
	/* one pass: pages, then per row the tuple and one bit; then per key its row */
	run = seq_page_cost * input_rel->pages +
		(cpu_tuple_cost + cpu_operator_cost) * input_rel->tuples / divisor;
	cp->path.startup_cost = run + output_rel->reltarget->cost.startup;
	cp->path.total_cost = cp->path.startup_cost +
		(cpu_tuple_cost + output_rel->reltarget->cost.per_tuple) * groups;
	cp->path.pathkeys = NIL;
	cp->custom_private = list_make3(makeInteger(key->varattno),
									makeInteger(((Var *) linitial_node(TargetEntry, agg->args)->expr)->varattno),
									makeInteger(nworkers));
	cp->custom_private = lappend(cp->custom_private, scan_tlist);
	add_path(output_rel, &cp->path);
}

/* the CustomScan: scanrelid the base relation, the scan tuple (key, bitmap) */
static Plan *
ChurnPlanPath(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
			  List *tlist, List *clauses, List *custom_plans)
{
	CustomScan *cscan = makeNode(CustomScan);
	List	   *scan_tlist = llast(best_path->custom_private);
	Var		   *key = (Var *) linitial_node(TargetEntry, scan_tlist)->expr;

	cscan->scan.plan.targetlist = tlist;
	cscan->scan.plan.qual = NIL;
	cscan->scan.scanrelid = key->varno;
	cscan->flags = best_path->flags;
	cscan->custom_plans = custom_plans;
	cscan->custom_exprs = NIL;
	cscan->custom_private = list_copy_head(best_path->custom_private, 3);
	cscan->custom_scan_tlist = scan_tlist;
	cscan->custom_relids = NULL;
	cscan->methods = &ChurnScanMethods;
	return &cscan->scan.plan;
}

/* create_upper_paths_hook: the grouped scan for UPPERREL_GROUP_AGG */
static void
ChurnUpperPaths(PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel,
				RelOptInfo *output_rel, void *extra)
{
	if (prev_upper_paths_hook)
		prev_upper_paths_hook(root, stage, input_rel, output_rel, extra);
	if (stage == UPPERREL_GROUP_AGG && enable_grouped_scan && extra != NULL)
		AddGroupedScanPath(root, input_rel, output_rel, (GroupPathExtraData *) extra);
}

void
ChurnPathInit(void)
{
	DefineCustomBoolVariable("dogdb_analytics.enable_grouped_scan",
							 "Enables the one-pass grouped scan of dogdb_active_months().",
							 "Off: a GROUP BY of dogdb_active_months() always runs as a standard aggregate plan.",
							 &enable_grouped_scan, true, PGC_USERSET, 0, NULL, NULL, NULL);
	MarkGUCPrefixReserved("dogdb_analytics");
	RegisterCustomScanMethods(&ChurnScanMethods);
	prev_upper_paths_hook = create_upper_paths_hook;
	create_upper_paths_hook = ChurnUpperPaths;
}
