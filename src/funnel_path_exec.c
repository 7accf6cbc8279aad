/*-------------------------------------------------------------------------
 *
 * funnel_path_exec.c
 *	  The executor side of the funnel scan (funnel_path.h): reads the
 *	  child's rows sorted by the grouping column, groups consecutive equal
 *	  values (the column's equality operator, as GroupAggregate), collects
 *	  each aggregate's (time, step mask) events and evaluates them with the
 *	  same code and checks as the aggregates' final functions (funnel.c),
 *	  so the results and the errors are the aggregates'.
 *
 * The memo: when the step conditions (and the WHERE quals taken over from
 * the child) are immutable and read only columns other than the grouping
 * column and the times, their values depend only on those columns: the
 * step masks and the quals' outcome are kept in a hash table keyed by the
 * columns' bytes (equal bytes give equal results for immutable
 * expressions; equal values with different bytes only cost a second
 * entry).  Past FUNNEL_MEMO_MAX_ENTRIES entries a new combination is
 * evaluated per row.  The memo is emptied on rescan (a parameter may have
 * changed).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/nodeFuncs.h"
#include "optimizer/optimizer.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"

#include "funnel.h"
#include "funnel_path.h"

typedef struct FunnelAggExec
{
	int			kind;
	AttrNumber	tsattno;		/* in the child's output */
	Const	   *window;
	Const	   *mode;
	int			nsteps;
	ExprState **steps;
	int64		windowus;
	int			modes;
	FunnelRun  *run;
	FunnelEvents events;
} FunnelAggExec;

typedef struct MemoEntry
{
	uint32		hash;
	int			keylen;			/* -1: empty slot */
	char	   *key;
	bool		pass;
	uint64		masks[FLEXIBLE_ARRAY_MEMBER];
} MemoEntry;

/* one column's part of a memo key: a null flag, then a length and the bytes */
typedef struct KeyPart
{
	char		flag;			/* 'n' null, 'v' a value */
	int32		len;
	const char *p;
} KeyPart;

typedef struct FunnelScanState
{
	CustomScanState css;
	PlanState  *child;
	int			naggs;
	FunnelAggExec *aggs;
	AttrNumber	gattno;
	FmgrInfo	geq;
	Oid			gcoll;
	bool		gbyval;
	int16		glen;
	ExprState  *quals;			/* taken over (memoized), or NULL */
	int			flags;
	AttrNumber *memocols;
	int			nmemocols;
	KeyPart    *keyparts;		/* the row's key, a part per memo column */
	/* the memo: open addressing, a power of two of slots */
	MemoEntry **memo;
	int			memosize;
	int			memocount;
	MemoryContext memocxt;
	StringInfoData keybuf;
	/* the group being read */
	MemoryContext groupcxt;
	ExprContext *rowcxt;
	bool		pending;		/* pendslot holds the next group's first row */
	TupleTableSlot *pendslot;
	bool		done;
	bool		validated;
	Datum		gkey;
	bool		gkeynull;
	Datum		gout;
	bool		goutnull;
	bool		haspass;
	MemoEntry  *scratch;		/* an entry for rows the memo does not keep */
	MemoEntry  *last;			/* the previous row's entry (runs of one page) */
} FunnelScanState;

static void FunnelBegin(CustomScanState *node, EState *estate, int eflags);
static TupleTableSlot *FunnelExec(CustomScanState *node);
static void FunnelEnd(CustomScanState *node);
static void FunnelRescan(CustomScanState *node);
static void FunnelExplain(CustomScanState *node, List *ancestors, ExplainState *es);

static CustomExecMethods funnel_exec_methods = {
	.CustomName = FUNNEL_PATH_NAME,
	.BeginCustomScan = FunnelBegin,
	.ExecCustomScan = FunnelExec,
	.EndCustomScan = FunnelEnd,
	.ReScanCustomScan = FunnelRescan,
	.ExplainCustomScan = FunnelExplain,
};

Node *
FunnelCreateScanState(CustomScan *cscan)
{
	FunnelScanState *st = palloc0(sizeof(FunnelScanState));

	NodeSetTag(st, T_CustomScanState);
	st->css.methods = &funnel_exec_methods;
	return (Node *) st;
}

static void
AddMemoColumns(FunnelScanState *st, Node *e)
{
	List	   *vars = pull_var_clause(e, 0);
	ListCell   *lc;

	foreach(lc, vars)
	{
		AttrNumber	a = ((Var *) lfirst(lc))->varattno;
		bool		found = false;

		for (int i = 0; i < st->nmemocols; i++)
			found = found || st->memocols[i] == a;
		if (!found)
			st->memocols[st->nmemocols++] = a;
	}
}

static void
FunnelBegin(CustomScanState *node, EState *estate, int eflags)
{
	FunnelScanState *st = (FunnelScanState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	List	   *kinds = linitial(cscan->custom_private);
	List	   *eq = lthird(cscan->custom_private);
	ListCell   *lc = list_nth_cell(cscan->custom_exprs, 2);
	Var		   *gvar = linitial(cscan->custom_exprs);
	List	   *quals = lsecond(cscan->custom_exprs);
	int			i = 0;

	st->flags = intVal(lsecond(cscan->custom_private));
	st->child = ExecInitNode(linitial(cscan->custom_plans), estate, eflags);
	node->custom_ps = list_make1(st->child);
	st->gattno = gvar->varattno;
	fmgr_info(get_opcode(linitial_oid(eq)), &st->geq);
	st->gcoll = lsecond_oid(eq);
	get_typlenbyval(gvar->vartype, &st->glen, &st->gbyval);
	st->naggs = list_length(kinds);
	st->aggs = palloc0(sizeof(FunnelAggExec) * st->naggs);
	st->memocols = palloc(sizeof(AttrNumber) * (list_length(cscan->custom_scan_tlist) + 1));
	st->keyparts = palloc(sizeof(KeyPart) * (list_length(cscan->custom_scan_tlist) + 1));
	/* expressions run on the child's slot, outside any plan (no JIT, no slot assumptions) */
	if (quals != NIL)
	{
		st->quals = ExecInitQual(quals, NULL);
		AddMemoColumns(st, (Node *) quals);
	}
	for (i = 0; i < st->naggs; i++)
	{
		FunnelAggExec *a = &st->aggs[i];
		List	   *steps;
		int			k = 0;
		ListCell   *lc2;

		a->kind = list_nth_int(kinds, i);
		a->tsattno = ((Var *) lfirst(lc))->varattno;
		lc = lnext(cscan->custom_exprs, lc);
		a->window = lfirst(lc);
		lc = lnext(cscan->custom_exprs, lc);
		a->mode = lfirst(lc);
		lc = lnext(cscan->custom_exprs, lc);
		steps = lfirst(lc);
		lc = lnext(cscan->custom_exprs, lc);
		a->nsteps = list_length(steps);
		a->steps = palloc(sizeof(ExprState *) * a->nsteps);
		foreach(lc2, steps)
			a->steps[k++] = ExecInitExpr(lfirst(lc2), NULL);
		if (st->flags & FUNNEL_PATH_MEMO_STEPS)
			AddMemoColumns(st, (Node *) steps);
	}
	st->memocxt = AllocSetContextCreate(estate->es_query_cxt, "funnel scan memo", ALLOCSET_DEFAULT_SIZES);
	st->groupcxt = AllocSetContextCreate(estate->es_query_cxt, "funnel scan group", ALLOCSET_DEFAULT_SIZES);
	st->rowcxt = CreateExprContext(estate);
	initStringInfo(&st->keybuf);
	st->scratch = palloc0(offsetof(MemoEntry, masks) + sizeof(uint64) * st->naggs);
}

/* window and mode through the aggregate's own checks (same errors) */
static void
ValidateSettings(FunnelScanState *st)
{
	for (int i = 0; i < st->naggs; i++)
	{
		FunnelAggExec *a = &st->aggs[i];
		LOCAL_FCINFO(fcinfo, 3);

		fcinfo->args[1].value = a->window->constvalue;
		fcinfo->args[1].isnull = a->window->constisnull;
		fcinfo->args[2].value = a->mode->constvalue;
		fcinfo->args[2].isnull = a->mode->constisnull;
		a->windowus = FunnelWindowArg(fcinfo, 1);
		a->modes = FunnelModeArg(fcinfo, 2);
		if (a->run == NULL)
		{
			MemoryContext old = MemoryContextSwitchTo(st->css.ss.ps.state->es_query_cxt);

			a->run = funnel_run_create(a->nsteps, a->windowus, a->modes, a->kind == FUNNEL_PATH_TIMES,
									   FunnelPalloc, FunnelPfree);
			MemoryContextSwitchTo(old);
		}
	}
	st->validated = true;
}

/* evaluate the quals and the steps of the row in slot into e */
static void
EvaluateRow(FunnelScanState *st, TupleTableSlot *slot, MemoEntry *e, bool quals, bool steps)
{
	ExprContext *econtext = st->rowcxt;

	econtext->ecxt_scantuple = slot;
	if (quals)
		e->pass = st->quals == NULL || ExecQual(st->quals, econtext);
	if (steps && e->pass)
	{
		for (int i = 0; i < st->naggs; i++)
		{
			FunnelAggExec *a = &st->aggs[i];
			uint64		mask = 0;

			for (int k = 0; k < a->nsteps; k++)
			{
				bool		isnull;
				Datum		d = ExecEvalExpr(a->steps[k], econtext, &isnull);

				if (!isnull && DatumGetBool(d))
					mask |= UINT64CONST(1) << k;
			}
			e->masks[i] = mask;
		}
	}
	ResetExprContext(econtext);
}

/*
 * The parts of the row's memo key (st->nmemocols of them, in parts); the
 * key's length in bytes
 */
static int
KeyParts(FunnelScanState *st, TupleTableSlot *slot, KeyPart *parts)
{
	TupleDesc	desc = slot->tts_tupleDescriptor;
	int			total = 0;

	for (int i = 0; i < st->nmemocols; i++)
	{
		AttrNumber	att = st->memocols[i];
		Form_pg_attribute attr = TupleDescAttr(desc, att - 1);
		KeyPart    *k = &parts[i];

		total += 1;
		k->flag = slot->tts_isnull[att - 1] ? 'n' : 'v';
		if (k->flag == 'n')
			continue;
		if (attr->attbyval)
		{
			k->p = (const char *) &slot->tts_values[att - 1];
			k->len = sizeof(Datum);
		}
		else if (attr->attlen == -1)
		{
			struct varlena *v = (struct varlena *) DatumGetPointer(slot->tts_values[att - 1]);

			/* a compressed or out-of-line value is expanded in the row's memory */
			if (VARATT_IS_COMPRESSED(v) || VARATT_IS_EXTERNAL(v))
			{
				MemoryContext old = MemoryContextSwitchTo(st->rowcxt->ecxt_per_tuple_memory);

				v = pg_detoast_datum_packed(v);
				MemoryContextSwitchTo(old);
			}
			k->p = VARDATA_ANY(v);
			k->len = VARSIZE_ANY_EXHDR(v);
		}
		else
		{
			k->p = DatumGetPointer(slot->tts_values[att - 1]);
			k->len = attr->attlen > 0 ? (int32) attr->attlen : (int32) strlen(k->p) + 1;
		}
		total += sizeof(int32) + k->len;
	}
	return total;
}

/* is the key made of these parts (total bytes) the stored key of e? */
static bool
KeyEquals(const MemoEntry *e, const KeyPart *parts, int nparts, int total)
{
	const char *q = e->key;

	if (e->keylen != total)
		return false;
	for (int i = 0; i < nparts; i++)
	{
		if (*q++ != parts[i].flag)
			return false;
		if (parts[i].flag == 'n')
			continue;
		if (memcmp(q, &parts[i].len, sizeof(int32)) != 0 ||
			memcmp(q + sizeof(int32), parts[i].p, parts[i].len) != 0)
			return false;
		q += sizeof(int32) + parts[i].len;
	}
	return true;
}

/* the memo key of the row into st->keybuf: per column a null flag, a length and the bytes */
static void
BuildKey(FunnelScanState *st, const KeyPart *parts, int total)
{
	char	   *q;

	resetStringInfo(&st->keybuf);
	enlargeStringInfo(&st->keybuf, total);
	q = st->keybuf.data;
	for (int i = 0; i < st->nmemocols; i++)
	{
		*q++ = parts[i].flag;
		if (parts[i].flag == 'n')
			continue;
		memcpy(q, &parts[i].len, sizeof(int32));
		memcpy(q + sizeof(int32), parts[i].p, parts[i].len);
		q += sizeof(int32) + parts[i].len;
	}
	st->keybuf.len = total;
	st->keybuf.data[total] = '\0';
}

/*
 * The row's entry given its memo entry e: e itself when the memo holds the
 * quals and the steps, else the scratch entry with the rest evaluated for
 * the row
 */
static MemoEntry *
FromMemo(FunnelScanState *st, TupleTableSlot *slot, MemoEntry *e, bool mq, bool ms)
{
	if (mq && ms)
	{
		st->last = e;
		return e;
	}
	st->scratch->pass = e->pass;
	memcpy(st->scratch->masks, e->masks, sizeof(uint64) * st->naggs);
	EvaluateRow(st, slot, st->scratch, !mq, !ms);
	return st->scratch;
}

/* the row's quals and masks: from the memo, or evaluated (and kept) */
static MemoEntry *
RowEntry(FunnelScanState *st, TupleTableSlot *slot)
{
	uint32		h;
	int			i;
	int			total;
	KeyPart    *parts = st->keyparts;
	MemoEntry  *e;
	bool		mq = (st->flags & FUNNEL_PATH_MEMO_QUALS) != 0;
	bool		ms = (st->flags & FUNNEL_PATH_MEMO_STEPS) != 0;

	if (!mq && !ms)
	{
		EvaluateRow(st, slot, st->scratch, true, true);
		return st->scratch;
	}
	slot_getsomeattrs(slot, slot->tts_tupleDescriptor->natts);
	total = KeyParts(st, slot, parts);
	e = st->last;
	if (e != NULL && mq && ms && KeyEquals(e, parts, st->nmemocols, total))
	{
		ResetExprContext(st->rowcxt);	/* (cheap when nothing was expanded) */
		return e;
	}
	BuildKey(st, parts, total);
	ResetExprContext(st->rowcxt);
	h = hash_bytes((const unsigned char *) st->keybuf.data, st->keybuf.len);
	if (st->memo == NULL)
	{
		st->memosize = 256;
		st->memo = MemoryContextAllocZero(st->memocxt, sizeof(MemoEntry *) * st->memosize);
	}
	for (i = h & (st->memosize - 1);; i = (i + 1) & (st->memosize - 1))
	{
		e = st->memo[i];
		if (e == NULL)
			break;
		if (e->hash == h && e->keylen == st->keybuf.len && memcmp(e->key, st->keybuf.data, e->keylen) == 0)
			return FromMemo(st, slot, e, mq, ms);
	}
	if (st->memocount >= FUNNEL_MEMO_MAX_ENTRIES)
	{
		EvaluateRow(st, slot, st->scratch, true, true);
		return st->scratch;
	}
	/* a new combination: evaluate the memoized part and keep it */
	e = MemoryContextAllocZero(st->memocxt, offsetof(MemoEntry, masks) + sizeof(uint64) * st->naggs);
	e->hash = h;
	e->keylen = st->keybuf.len;
	e->key = MemoryContextAlloc(st->memocxt, e->keylen + 1);
	memcpy(e->key, st->keybuf.data, e->keylen);
	/* the steps only where the quals pass, as the aggregate evaluates them */
	e->pass = true;
	EvaluateRow(st, slot, e, mq, ms);
	st->memo[i] = e;
	if (++st->memocount * 2 > st->memosize)
	{
		int			newsize = st->memosize * 2;
		MemoEntry **n = MemoryContextAllocZero(st->memocxt, sizeof(MemoEntry *) * newsize);

		for (int j = 0; j < st->memosize; j++)
			if (st->memo[j] != NULL)
			{
				int			k;

				for (k = st->memo[j]->hash & (newsize - 1); n[k] != NULL; k = (k + 1) & (newsize - 1))
					;
				n[k] = st->memo[j];
			}
		pfree(st->memo);
		st->memo = n;
		st->memosize = newsize;
	}
	return FromMemo(st, slot, e, mq, ms);
}

/* add the row in slot to the current group */
static void
AddRow(FunnelScanState *st, TupleTableSlot *slot)
{
	MemoEntry  *e = RowEntry(st, slot);

	if (!e->pass)
		return;
	if (!st->haspass)
	{
		MemoryContext old = MemoryContextSwitchTo(st->groupcxt);

		st->haspass = true;
		st->gout = slot_getattr(slot, st->gattno, &st->goutnull);
		if (!st->goutnull)
			st->gout = datumCopy(st->gout, st->gbyval, st->glen);
		MemoryContextSwitchTo(old);
	}
	if (!st->validated)
		ValidateSettings(st);
	for (int i = 0; i < st->naggs; i++)
	{
		FunnelAggExec *a = &st->aggs[i];
		bool		isnull;
		Datum		ts = slot_getattr(slot, a->tsattno, &isnull);
		FunnelEvent ev;

		if (isnull)
			continue;
		ev.ts = DatumGetTimestampTz(ts);
		FunnelCheckFinite(ev.ts, "ts");
		if (e->masks[i] == 0)
			continue;
		ev.mask = e->masks[i];
		ev.tag = 0;
		ev.flags = 0;
		FunnelEventsAdd(st->groupcxt, &a->events, &ev);
	}
}

/* is the row's grouping value the group's? */
static bool
SameGroup(FunnelScanState *st, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, st->gattno, &isnull);

	if (isnull || st->gkeynull)
		return isnull && st->gkeynull;
	/* equal bytes are equal values (the common case: a visitor's next row) */
	if (datum_image_eq(st->gkey, d, st->gbyval, st->glen))
		return true;
	return DatumGetBool(FunctionCall2Coll(&st->geq, st->gcoll, st->gkey, d));
}

/* start a group at the row in slot */
static void
StartGroup(FunnelScanState *st, TupleTableSlot *slot)
{
	MemoryContext old;

	MemoryContextReset(st->groupcxt);
	for (int i = 0; i < st->naggs; i++)
		memset(&st->aggs[i].events, 0, sizeof(FunnelEvents));
	st->haspass = false;
	old = MemoryContextSwitchTo(st->groupcxt);
	st->gkey = slot_getattr(slot, st->gattno, &st->gkeynull);
	if (!st->gkeynull)
		st->gkey = datumCopy(st->gkey, st->gbyval, st->glen);
	MemoryContextSwitchTo(old);
}

/* the group's results into the scan slot, as the final functions compute them */
static TupleTableSlot *
FinishGroup(FunnelScanState *st)
{
	TupleTableSlot *out = st->css.ss.ss_ScanTupleSlot;
	int			natts = out->tts_tupleDescriptor->natts;
	int			first = natts - st->naggs;

	ExecClearTuple(out);
	for (int j = 0; j < natts; j++)
		out->tts_isnull[j] = true;
	out->tts_values[st->gattno - 1] = st->gout;
	out->tts_isnull[st->gattno - 1] = st->goutnull;
	for (int i = 0; i < st->naggs; i++)
	{
		FunnelAggExec *a = &st->aggs[i];
		MemoryContext old;
		int			level;

		funnel_run_reset(a->run);
		funnel_sort_events(a->events.ev, a->events.n);
		old = MemoryContextSwitchTo(st->css.ss.ps.state->es_query_cxt);
		for (int64 j = 0; j < a->events.n; j++)
		{
			if ((j & 0xFFFF) == 0)
				CHECK_FOR_INTERRUPTS();
			funnel_run_feed(a->run, a->events.ev[j].ts, a->events.ev[j].mask, 0);
		}
		level = funnel_run_level(a->run);
		MemoryContextSwitchTo(old);
		old = MemoryContextSwitchTo(st->groupcxt);
		if (a->kind == FUNNEL_PATH_LEVEL)
			out->tts_values[first + i] = Int32GetDatum(level);
		else
		{
			const int64_t *times = funnel_run_times(a->run);
			Datum	   *d = palloc(sizeof(Datum) * (level + 1));

			for (int k = 0; k < level; k++)
				d[k] = TimestampTzGetDatum(times[k]);
			out->tts_values[first + i] =
				PointerGetDatum(construct_array(d, level, TIMESTAMPTZOID, sizeof(TimestampTz),
												FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		}
		out->tts_isnull[first + i] = false;
		MemoryContextSwitchTo(old);
	}
	return ExecStoreVirtualTuple(out);
}

/* the next group with a row that passed the quals */
static TupleTableSlot *
FunnelNext(ScanState *ss)
{
	FunnelScanState *st = (FunnelScanState *) ss;
	TupleTableSlot *slot;

	for (;;)
	{
		if (st->done)
			return ExecClearTuple(ss->ss_ScanTupleSlot);
		if (st->pending)
			slot = st->pendslot;
		else
		{
			slot = ExecProcNode(st->child);
			if (TupIsNull(slot))
			{
				st->done = true;
				continue;
			}
		}
		st->pending = false;
		/* a group: this row and the following equal ones */
		StartGroup(st, slot);
		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			AddRow(st, slot);
			slot = ExecProcNode(st->child);
			if (TupIsNull(slot))
			{
				st->done = true;
				break;
			}
			if (!SameGroup(st, slot))
			{
				st->pending = true;
				st->pendslot = slot;
				break;
			}
		}
		if (st->haspass)
			return FinishGroup(st);
	}
}

static bool
FunnelRecheck(ScanState *ss, TupleTableSlot *slot)
{
	return true;
}

static TupleTableSlot *
FunnelExec(CustomScanState *node)
{
	return ExecScan(&node->ss, FunnelNext, FunnelRecheck);
}

static void
FunnelEnd(CustomScanState *node)
{
	FunnelScanState *st = (FunnelScanState *) node;

	ExecEndNode(st->child);
}

static void
FunnelRescan(CustomScanState *node)
{
	FunnelScanState *st = (FunnelScanState *) node;

	st->pending = false;
	st->done = false;
	st->memo = NULL;
	st->last = NULL;
	st->memosize = 0;
	st->memocount = 0;
	MemoryContextReset(st->memocxt);
	MemoryContextReset(st->groupcxt);
	if (node->ss.ps.chgParam != NULL)
		UpdateChangedParamSet(st->child, node->ss.ps.chgParam);
	if (st->child->chgParam == NULL)
		ExecReScan(st->child);
}

static void
FunnelExplain(CustomScanState *node, List *ancestors, ExplainState *es)
{
	FunnelScanState *st = (FunnelScanState *) node;
	CustomScan *cscan = (CustomScan *) node->ss.ps.plan;
	List	   *quals = lsecond(cscan->custom_exprs);
	List	   *context;

	ExplainPropertyText("Step Memo", (st->flags & FUNNEL_PATH_MEMO_STEPS) ? "on" : "off", es);
	if (quals != NIL)
	{
		context = set_deparse_context_plan(es->deparse_cxt, (Plan *) cscan, ancestors);
		ExplainPropertyText("Memoized Filter",
							deparse_expression((Node *) make_ands_explicit(quals), context,
											   false, false), es);
	}
}
