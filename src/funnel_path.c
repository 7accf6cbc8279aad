/*-------------------------------------------------------------------------
 *
 * funnel_path.c
 *	  The planner side of the funnel scan (funnel_path.h): offered from
 *	  create_upper_paths_hook for the grouping of one plain table by one
 *	  column whose aggregates are all dogdb_window_funnel or
 *	  dogdb_window_funnel_times with constant window and mode and a Var
 *	  for the time.  Anything else is left to PostgreSQL's own paths.
 *
 * Loading at plan time: _PG_init (which installs the hook) runs when the
 * library is first loaded.  The funnel transition functions declare the
 * support function dogdb_funnel_planner_support; PostgreSQL 15 calls it
 * (get_agg_clause_costs -> add_function_cost, SupportRequestCost) while
 * costing the aggregates, before create_upper_paths_hook, so a fresh
 * session's first funnel query loads the library and gets the path.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_aggregate.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_language.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_type.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "nodes/supportnodes.h"
#include "optimizer/clauses.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/pathnode.h"
#include "optimizer/paths.h"
#include "optimizer/planner.h"
#include "optimizer/tlist.h"
#include "parser/parsetree.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/typcache.h"

#include "common.h"
#include "funnel_core.h"
#include "funnel_path.h"

PG_FUNCTION_INFO_V1(dogdb_funnel_planner_support);

bool		funnel_enable_scan = true;

static create_upper_paths_hook_type prev_upper_paths_hook = NULL;

static Plan *FunnelPlanPath(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
							List *tlist, List *clauses, List *custom_plans);

static CustomPathMethods funnel_path_methods = {
	.CustomName = FUNNEL_PATH_NAME,
	.PlanCustomPath = FunnelPlanPath,
};

static CustomScanMethods funnel_scan_methods = {
	.CustomName = FUNNEL_PATH_NAME,
	.CreateCustomScanState = FunnelCreateScanState,
};

/* what the hook learned about one aggregate */
typedef struct FunnelAggInfo
{
	Aggref	   *aggref;
	int			kind;
	Var		   *ts;
	Const	   *window;
	Const	   *mode;
	List	   *steps;
} FunnelAggInfo;

/*
 * The support function of the funnel transition functions: it answers no
 * request; being called loads the library (and so the hook) at plan time.
 */
Datum
dogdb_funnel_planner_support(PG_FUNCTION_ARGS)
{
	PG_RETURN_POINTER(NULL);
}

/* is the expression made only of Vars of relid (level 0), constants, params, operators and functions? */
static bool
PlainExprWalker(Node *node, Index *relid)
{
	if (node == NULL)
		return false;
	if (IsA(node, Var))
		return (Index) ((Var *) node)->varno != *relid || ((Var *) node)->varlevelsup != 0;
	if (IsA(node, Aggref) || IsA(node, GroupingFunc) || IsA(node, WindowFunc) ||
		IsA(node, PlaceHolderVar) || IsA(node, SubPlan) || IsA(node, AlternativeSubPlan) ||
		IsA(node, SubLink))
		return true;
	return expression_tree_walker(node, PlainExprWalker, relid);
}

static bool
IsPlainExpr(Node *node, Index relid)
{
	return !PlainExprWalker(node, &relid);
}

/* may e be memoized by its columns: immutable, no ts or grouping column */
static bool
Memoizable(Node *e, AttrNumber gattno, List *tsattnos)
{
	List	   *vars;
	ListCell   *lc;

	if (contain_mutable_functions(e) || contain_volatile_functions(e))
		return false;
	vars = pull_var_clause(e, 0);
	foreach(lc, vars)
	{
		Var		   *v = lfirst(lc);

		if (v->varattno == gattno || list_member_int(tsattnos, v->varattno) || v->varattno <= 0)
			return false;
	}
	return true;
}

/* is fnoid the C function symbol of this library? */
static bool
IsOurCFunction(Oid fnoid, const char *symbol)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fnoid));
	bool		ours = false;

	if (!HeapTupleIsValid(tup))
		return false;
	if (((Form_pg_proc) GETSTRUCT(tup))->prolang == ClanguageId)
	{
		bool		isnull;
		Datum		src = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_prosrc, &isnull);
		Datum		bin;

		if (!isnull && strcmp(TextDatumGetCString(src), symbol) == 0)
		{
			bin = SysCacheGetAttr(PROCOID, tup, Anum_pg_proc_probin, &isnull);
			ours = !isnull && strcmp(TextDatumGetCString(bin), "$libdir/dogdb_analytics") == 0;
		}
	}
	ReleaseSysCache(tup);
	return ours;
}

/*
 * The kind of the funnel aggregate aggfnoid, or -1: recognized by its
 * transition and final functions (this library's), not by name.
 */
static int
FunnelAggKind(Oid aggfnoid)
{
	HeapTuple	tup = SearchSysCache1(AGGFNOID, ObjectIdGetDatum(aggfnoid));
	Oid			transfn,
				finalfn;

	if (!HeapTupleIsValid(tup))
		return -1;
	transfn = ((Form_pg_aggregate) GETSTRUCT(tup))->aggtransfn;
	finalfn = ((Form_pg_aggregate) GETSTRUCT(tup))->aggfinalfn;
	ReleaseSysCache(tup);
	if (!IsOurCFunction(transfn, "dogdb_window_funnel_transfn"))
		return -1;
	if (IsOurCFunction(finalfn, "dogdb_window_funnel_finalfn"))
		return FUNNEL_PATH_LEVEL;
	if (IsOurCFunction(finalfn, "dogdb_window_funnel_times_finalfn"))
		return FUNNEL_PATH_TIMES;
	return -1;
}

/* fill info from aggref if it has the supported shape */
static bool
ReadAggref(Aggref *aggref, Index relid, FunnelAggInfo *info)
{
	int			nargs = list_length(aggref->args);
	List	   *args = NIL;
	ListCell   *lc;
	Node	   *last;

	info->kind = FunnelAggKind(aggref->aggfnoid);
	if (info->kind < 0 || aggref->aggfilter != NULL || aggref->aggdistinct != NIL ||
		aggref->aggorder != NIL || aggref->agglevelsup != 0 || aggref->aggkind != AGGKIND_NORMAL ||
		aggref->aggsplit != AGGSPLIT_SIMPLE || (nargs != 3 && nargs != 4))
		return false;
	foreach(lc, aggref->args)
		args = lappend(args, ((TargetEntry *) lfirst(lc))->expr);
	info->aggref = aggref;
	if (!IsA(linitial(args), Const) || exprType(linitial(args)) != INTERVALOID)
		return false;
	info->window = linitial(args);
	if (nargs == 4)
	{
		if (!IsA(lsecond(args), Const) || exprType(lsecond(args)) != TEXTOID)
			return false;
		info->mode = lsecond(args);
	}
	else
		info->mode = makeNullConst(TEXTOID, -1, DEFAULT_COLLATION_OID);
	if (!IsA(list_nth(args, nargs - 2), Var) || exprType(list_nth(args, nargs - 2)) != TIMESTAMPTZOID)
		return false;
	info->ts = list_nth(args, nargs - 2);
	if ((Index) info->ts->varno != relid || info->ts->varlevelsup != 0)
		return false;
	/* the steps as written, one boolean each (not VARIADIC array) */
	last = llast(args);
	if (!IsA(last, ArrayExpr) || ((ArrayExpr *) last)->multidims ||
		list_length(((ArrayExpr *) last)->elements) < 1 ||
		list_length(((ArrayExpr *) last)->elements) > FUNNEL_MAX_STEPS)
		return false;
	info->steps = ((ArrayExpr *) last)->elements;
	foreach(lc, info->steps)
		if (exprType(lfirst(lc)) != BOOLOID || !IsPlainExpr(lfirst(lc), relid))
			return false;
	return true;
}

/* the custom path over child (sorted by at least the grouping column) */
static CustomPath *
MakePath(PlannerInfo *root, RelOptInfo *grouped_rel, Path *child, double groups,
		 List *aggrefs, Node *having, int flags)
{
	CustomPath *cp = DogdbUpperCustomPath(grouped_rel, child, groups, &funnel_path_methods);
	double		rows = child->rows;

	cp->path.startup_cost = child->startup_cost;
	/* a hash probe per row (or the steps), a tuple per group */
	cp->path.total_cost = child->total_cost + rows * cpu_operator_cost +
		groups * cpu_tuple_cost + grouped_rel->reltarget->cost.per_tuple * groups;
	cp->path.pathkeys = root->group_pathkeys;
	cp->custom_private = list_make3(aggrefs, having, makeInteger(flags));
	return cp;
}

static void
FunnelUpperPaths(PlannerInfo *root, UpperRelationKind stage, RelOptInfo *input_rel,
				 RelOptInfo *output_rel, void *extra)
{
	Query	   *parse = root->parse;
	GroupPathExtraData *gextra = (GroupPathExtraData *) extra;
	RangeTblEntry *rte;
	Index		relid;
	SortGroupClause *sgc;
	TargetEntry *gtle;
	Var		   *gvar;
	List	   *exprs;
	List	   *aggrefs = NIL;
	List	   *tsattnos = NIL;
	Var		   *firstts = NULL;
	bool		memo = true;
	int			flags;
	ListCell   *lc;
	Path	   *sorted = NULL;
	List	   *pathkeys;
	double		groups;
	TypeCacheEntry *tce;

	if (prev_upper_paths_hook)
		prev_upper_paths_hook(root, stage, input_rel, output_rel, extra);
	if (!funnel_enable_scan || stage != UPPERREL_GROUP_AGG || extra == NULL)
		return;
	if (gextra->patype != PARTITIONWISE_AGGREGATE_NONE || parse->groupingSets != NIL ||
		list_length(parse->groupClause) != 1 || !parse->hasAggs || parse->hasTargetSRFs ||
		root->group_pathkeys == NIL || list_length(root->group_pathkeys) != 1)
		return;
	/* one plain table */
	if (input_rel->reloptkind != RELOPT_BASEREL || bms_membership(input_rel->relids) != BMS_SINGLETON)
		return;
	relid = bms_singleton_member(input_rel->relids);
	rte = planner_rt_fetch(relid, root);
	if (rte->rtekind != RTE_RELATION || rte->inh || rte->relkind != RELKIND_RELATION ||
		rte->tablesample != NULL)
		return;
	/* a plain grouping column */
	sgc = linitial(parse->groupClause);
	gtle = get_sortgroupclause_tle(sgc, parse->targetList);
	if (!IsA(gtle->expr, Var))
		return;
	gvar = (Var *) gtle->expr;
	if ((Index) gvar->varno != relid || gvar->varlevelsup != 0 || gvar->varattno <= 0)
		return;
	/* the target and HAVING: the grouping Var and funnel aggregates only */
	exprs = pull_var_clause((Node *) list_concat(list_copy(output_rel->reltarget->exprs),
												 list_make1(gextra->havingQual)),
							PVC_INCLUDE_AGGREGATES | PVC_RECURSE_PLACEHOLDERS |
							PVC_RECURSE_WINDOWFUNCS);
	foreach(lc, exprs)
	{
		Node	   *n = lfirst(lc);
		FunnelAggInfo info;

		if (IsA(n, Var))
		{
			if (((Var *) n)->varno != gvar->varno || ((Var *) n)->varattno != gvar->varattno ||
				((Var *) n)->varlevelsup != 0)
				return;
			continue;
		}
		if (!IsA(n, Aggref) || !ReadAggref((Aggref *) n, relid, &info))
			return;
		aggrefs = list_append_unique(aggrefs, n);
		tsattnos = lappend_int(tsattnos, info.ts->varattno);
		if (firstts == NULL)
			firstts = info.ts;
	}
	if (aggrefs == NIL)
		return;
	/* every input column a plain Var */
	foreach(lc, input_rel->reltarget->exprs)
		if (!IsA(lfirst(lc), Var))
			return;
	if (DogdbIsDistributed(rte->relid))
		return;
	foreach(lc, aggrefs)
	{
		FunnelAggInfo info;
		ListCell   *lc2;

		ReadAggref(lfirst(lc), relid, &info);
		foreach(lc2, info.steps)
			memo = memo && Memoizable(lfirst(lc2), gvar->varattno, tsattnos);
	}
	flags = memo ? FUNNEL_PATH_MEMO_STEPS : 0;
	/*
	 * Row security or a security-barrier view: the scan's quals stay where
	 * PostgreSQL ordered them (taking some would run others before them).
	 */
	flags |= FUNNEL_PATH_TAKE_QUALS;
	foreach(lc, input_rel->baserestrictinfo)
		if (((RestrictInfo *) lfirst(lc))->security_level > 0)
			flags &= ~FUNNEL_PATH_TAKE_QUALS;

	/* the number of groups, as PostgreSQL's own paths have it */
	if (output_rel->pathlist != NIL)
		groups = ((Path *) linitial(output_rel->pathlist))->rows;
	else
		groups = Max(1.0, input_rel->rows / 10);

	/* the child: sorted by (g, ts of the first aggregate) */
	tce = lookup_type_cache(TIMESTAMPTZOID, TYPECACHE_LT_OPR);
	pathkeys = list_copy(root->group_pathkeys);
	if (OidIsValid(tce->lt_opr))
		pathkeys = list_concat_unique_ptr(pathkeys,
										  build_expression_pathkey(root, (Expr *) firstts, NULL,
																   tce->lt_opr, input_rel->relids, true));
	foreach(lc, input_rel->pathlist)
	{
		Path	   *p = lfirst(lc);

		if (p->param_info != NULL || !pathkeys_contained_in(root->group_pathkeys, p->pathkeys))
			continue;
		if (sorted == NULL || p->total_cost < sorted->total_cost)
			sorted = p;
	}
	if (sorted != NULL)
		add_path(output_rel, (Path *) MakePath(root, output_rel, sorted, groups, aggrefs,
											   gextra->havingQual, flags));
	if (input_rel->cheapest_total_path != NULL && input_rel->cheapest_total_path != sorted &&
		input_rel->cheapest_total_path->param_info == NULL)
	{
		Path	   *child = (Path *) create_sort_path(root, input_rel, input_rel->cheapest_total_path,
													  pathkeys, -1.0);

		add_path(output_rel, (Path *) MakePath(root, output_rel, child, groups, aggrefs,
											   gextra->havingQual, flags));
	}
}

/* the position (1-based) of Var v in tlist of plain Vars, or 0 */
static AttrNumber
VarPosition(List *tlist, Var *v)
{
	ListCell   *lc;

	foreach(lc, tlist)
	{
		TargetEntry *tle = lfirst(lc);

		if (IsA(tle->expr, Var) && ((Var *) tle->expr)->varno == v->varno &&
			((Var *) tle->expr)->varattno == v->varattno && ((Var *) tle->expr)->varlevelsup == 0)
			return tle->resno;
	}
	return 0;
}

/* are all Vars of e in the child's target list? */
static bool
VarsInTlist(Node *e, List *tlist)
{
	List	   *vars = pull_var_clause(e, 0);
	ListCell   *lc;

	foreach(lc, vars)
		if (VarPosition(tlist, lfirst(lc)) == 0)
			return false;
	return true;
}

/*
 * The plan: custom_scan_tlist is the child's target list then the
 * Aggrefs; the memoizable quals of a scan child move into the node.
 */
static Plan *
FunnelPlanPath(PlannerInfo *root, RelOptInfo *rel, CustomPath *best_path,
			   List *tlist, List *clauses, List *custom_plans)
{
	CustomScan *cscan = makeNode(CustomScan);
	Plan	   *child = linitial(custom_plans);
	List	   *aggrefs = linitial(best_path->custom_private);
	Node	   *having = lsecond(best_path->custom_private);
	int			flags = intVal(lthird(best_path->custom_private));
	SortGroupClause *sgc = linitial(root->parse->groupClause);
	Var		   *gvar = (Var *) get_sortgroupclause_expr(sgc, root->parse->targetList);
	Index		relid = gvar->varno;
	List	   *scan_tlist = NIL;
	List	   *exprs = NIL;
	List	   *kinds = NIL;
	List	   *tsattnos = NIL;
	List	   *taken = NIL;
	ListCell   *lc;
	AttrNumber	resno = 0;

	foreach(lc, child->targetlist)
	{
		TargetEntry *tle = lfirst(lc);

		scan_tlist = lappend(scan_tlist, makeTargetEntry(copyObject(tle->expr), ++resno, NULL, false));
	}
	foreach(lc, aggrefs)
	{
		FunnelAggInfo info;

		scan_tlist = lappend(scan_tlist, makeTargetEntry(copyObject(lfirst(lc)), ++resno, NULL, false));
		if (!ReadAggref(lfirst(lc), relid, &info))
			elog(ERROR, "unexpected aggregate in a funnel scan");
		kinds = lappend_int(kinds, info.kind);
		tsattnos = lappend_int(tsattnos, info.ts->varattno);
		exprs = lappend(exprs, copyObject(info.ts));
		exprs = lappend(exprs, copyObject(info.window));
		exprs = lappend(exprs, copyObject(info.mode));
		exprs = lappend(exprs, copyObject(info.steps));
	}
	if (VarPosition(child->targetlist, gvar) == 0)
		elog(ERROR, "grouping column missing from a funnel scan's input");

	/* take the memoizable quals of a scan child */
	if ((flags & FUNNEL_PATH_TAKE_QUALS) &&
		(IsA(child, SeqScan) || IsA(child, IndexScan) || IsA(child, IndexOnlyScan) ||
		 IsA(child, BitmapHeapScan)))
	{
		List	   *kept = NIL;

		foreach(lc, child->qual)
		{
			Node	   *q = lfirst(lc);

			if (IsPlainExpr(q, relid) && Memoizable(q, gvar->varattno, tsattnos) &&
				VarsInTlist(q, child->targetlist))
				taken = lappend(taken, q);
			else
				kept = lappend(kept, q);
		}
		child->qual = kept;
		if (taken != NIL)
			flags |= FUNNEL_PATH_MEMO_QUALS;
	}

	cscan->scan.plan.targetlist = tlist;
	/* HAVING (preprocessed: an implicit-AND list) on the node's own output */
	if (having == NULL)
		cscan->scan.plan.qual = NIL;
	else if (IsA(having, List))
		cscan->scan.plan.qual = (List *) copyObject(having);
	else
		cscan->scan.plan.qual = make_ands_implicit((Expr *) copyObject(having));
	cscan->scan.scanrelid = 0;
	cscan->flags = best_path->flags;
	cscan->custom_plans = custom_plans;
	cscan->custom_exprs = lcons(copyObject(gvar), lcons(taken, exprs));
	cscan->custom_private = list_make3(kinds, makeInteger(flags),
									   list_make2_oid(sgc->eqop, exprCollation((Node *) gvar)));
	cscan->custom_scan_tlist = scan_tlist;
	cscan->custom_relids = NULL;
	cscan->methods = &funnel_scan_methods;
	return &cscan->scan.plan;
}

void
FunnelPathInit(void)
{
	DefineCustomBoolVariable("dogdb_analytics.enable_funnel_scan",
							 "Lets the planner read dogdb_window_funnel grouped by one column with the funnel scan.",
							 "The funnel scan groups the sorted rows itself and evaluates the step conditions and the WHERE once per distinct combination of the columns they read.",
							 &funnel_enable_scan, true, PGC_USERSET, 0, NULL, NULL, NULL);
	RegisterCustomScanMethods(&funnel_scan_methods);
	prev_upper_paths_hook = create_upper_paths_hook;
	create_upper_paths_hook = FunnelUpperPaths;
}
