/*-------------------------------------------------------------------------
 *
 * funnel_visit_parallel.c
 *	  Combine, serialize and deserialize functions of dogdb_funnel_visit,
 *	  so that the report's per-visitor aggregate runs in parallel workers.
 *
 * Combining appends the second state's events, renumbering their segment
 * tags into the first state's dictionary.  The serialized form is read
 * back with every length, count, flag and time checked before use: any
 * role can call the deserialize function with any bytea.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "libpq/pqformat.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

#include "funnel.h"

PG_FUNCTION_INFO_V1(dogdb_funnel_visit_combinefn);
PG_FUNCTION_INFO_V1(dogdb_funnel_visit_serialfn);
PG_FUNCTION_INFO_V1(dogdb_funnel_visit_deserialfn);

#define VISIT_STATE_MAGIC 0x44465631	/* "DFV1" */

static void
MismatchError(void)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("window, mode, steps, exclusions, from_ts and to_ts must be the same for every row of a group"),
			 errhint("Pass constants.")));
}

static bool
SameSettings(const VisitState *a, const VisitState *b)
{
	if (a->window != b->window || a->modes != b->modes || a->nsteps != b->nsteps ||
		a->nexcl != b->nexcl || a->from != b->from || a->to != b->to)
		return false;
	for (int i = 0; i < a->nsteps + a->nexcl; i++)
		if (a->lens[i] != b->lens[i] || memcmp(a->names[i], b->names[i], a->lens[i]) != 0)
			return false;
	return true;
}

/* a state with b's settings and nothing else, in cxt */
static VisitState *
CopySettings(MemoryContext cxt, const VisitState *b)
{
	VisitState *st = MemoryContextAllocZero(cxt, sizeof(VisitState));
	int			n = b->nsteps + b->nexcl;

	st->window = b->window;
	st->modes = b->modes;
	st->nsteps = b->nsteps;
	st->nexcl = b->nexcl;
	st->from = b->from;
	st->to = b->to;
	st->names = MemoryContextAlloc(cxt, sizeof(char *) * Max(n, 1));
	st->lens = MemoryContextAlloc(cxt, sizeof(int) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		st->lens[i] = b->lens[i];
		st->names[i] = MemoryContextAlloc(cxt, b->lens[i] + 1);
		memcpy(st->names[i], b->names[i], b->lens[i] + 1);
	}
	return st;
}

Datum
dogdb_funnel_visit_combinefn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcxt;
	VisitState *s1 = PG_ARGISNULL(0) ? NULL : (VisitState *) PG_GETARG_POINTER(0);
	VisitState *s2 = PG_ARGISNULL(1) ? NULL : (VisitState *) PG_GETARG_POINTER(1);
	int32	   *remap;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_funnel_visit_combinefn called in non-aggregate context");
	if (s2 == NULL)
	{
		if (s1 == NULL)
			PG_RETURN_NULL();
		PG_RETURN_POINTER(s1);
	}
	if (s1 == NULL)
		s1 = CopySettings(aggcxt, s2);
	else if (!SameSettings(s1, s2))
		MismatchError();

	remap = palloc(sizeof(int32) * Max(s2->nsegs, 1));
	for (int i = 0; i < s2->nsegs; i++)
		remap[i] = FunnelSegmentIndex(aggcxt, s1, s2->segs[i], s2->segs[i] ? (int) strlen(s2->segs[i]) : 0);
	for (int64 i = 0; i < s2->events.n; i++)
	{
		FunnelEvent e = s2->events.ev[i];

		if (e.mask & 1)
			e.tag = remap[e.tag];
		FunnelEventsAdd(aggcxt, &s1->events, &e);
	}
	if (s2->has_account &&
		(!s1->has_account || s2->account_ts > s1->account_ts ||
		 (s2->account_ts == s1->account_ts && s2->account_id < s1->account_id)))
	{
		s1->has_account = true;
		s1->account_ts = s2->account_ts;
		s1->account_id = s2->account_id;
	}
	PG_RETURN_POINTER(s1);
}

static void
SendString(StringInfo buf, const char *s, int len)
{
	pq_sendint32(buf, s ? len : -1);
	if (s)
		pq_sendbytes(buf, s, len);
}

Datum
dogdb_funnel_visit_serialfn(PG_FUNCTION_ARGS)
{
	VisitState *st = (VisitState *) PG_GETARG_POINTER(0);
	StringInfoData buf;

	if (!AggCheckCallContext(fcinfo, NULL))
		elog(ERROR, "dogdb_funnel_visit_serialfn called in non-aggregate context");
	pq_begintypsend(&buf);
	pq_sendint32(&buf, VISIT_STATE_MAGIC);
	pq_sendint64(&buf, st->window);
	pq_sendint32(&buf, st->modes);
	pq_sendint32(&buf, st->nsteps);
	pq_sendint32(&buf, st->nexcl);
	pq_sendint64(&buf, st->from);
	pq_sendint64(&buf, st->to);
	for (int i = 0; i < st->nsteps + st->nexcl; i++)
		SendString(&buf, st->names[i], st->lens[i]);
	pq_sendint32(&buf, st->nsegs);
	for (int i = 0; i < st->nsegs; i++)
		SendString(&buf, st->segs[i], st->segs[i] ? (int) strlen(st->segs[i]) : 0);
	pq_sendint8(&buf, st->has_account ? 1 : 0);
	pq_sendint64(&buf, st->account_ts);
	pq_sendint64(&buf, st->account_id);
	pq_sendint64(&buf, st->events.n);
	for (int64 i = 0; i < st->events.n; i++)
	{
		pq_sendint64(&buf, st->events.ev[i].ts);
		pq_sendint64(&buf, (int64) st->events.ev[i].mask);
		pq_sendint32(&buf, st->events.ev[i].tag);
		pq_sendint32(&buf, st->events.ev[i].flags);
	}
	PG_RETURN_BYTEA_P(pq_endtypsend(&buf));
}

/* ---- reading it back, every byte checked ---- */

typedef struct Reader
{
	const char *p;
	int64		left;
} Reader;

static void
Bad(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_BINARY_REPRESENTATION),
			 errmsg("invalid funnel-visit state"),
			 errdetail("%s", detail)));
}

static uint64
ReadInt(Reader *r, int bytes)
{
	uint64		v = 0;

	if (r->left < bytes)
		Bad("The state ends early.");
	for (int i = 0; i < bytes; i++)
		v = (v << 8) | (uint8) r->p[i];
	r->p += bytes;
	r->left -= bytes;
	return v;
}

/* a string of 0..maxlen bytes without NUL, or NULL (length -1) when allowed */
static char *
ReadString(MemoryContext cxt, Reader *r, int maxlen, bool null_ok, int *len)
{
	int32		n = (int32) ReadInt(r, 4);
	char	   *s;

	if (n == -1 && null_ok)
	{
		*len = 0;
		return NULL;
	}
	if (n < 0 || n > maxlen || n > r->left)
		Bad("A string length is out of range.");
	if (memchr(r->p, '\0', n) != NULL)
		Bad("A string contains a zero byte.");
	s = MemoryContextAlloc(cxt, n + 1);
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	r->left -= n;
	*len = n;
	return s;
}

static bool
ValidTime(int64 ts)
{
	return !TIMESTAMP_NOT_FINITE(ts) && IS_VALID_TIMESTAMP(ts);
}

Datum
dogdb_funnel_visit_deserialfn(PG_FUNCTION_ARGS)
{
	bytea	   *b = PG_GETARG_BYTEA_PP(0);
	MemoryContext aggcxt;
	VisitState *st;
	Reader		r;
	int			n;
	int64		nevents;
	uint64		allowed;

	if (!AggCheckCallContext(fcinfo, &aggcxt))
		elog(ERROR, "dogdb_funnel_visit_deserialfn called in non-aggregate context");
	r.p = VARDATA_ANY(b);
	r.left = VARSIZE_ANY_EXHDR(b);
	if ((uint32) ReadInt(&r, 4) != VISIT_STATE_MAGIC)
		Bad("The state does not start with the funnel-visit magic number.");
	st = MemoryContextAllocZero(aggcxt, sizeof(VisitState));
	st->window = (int64) ReadInt(&r, 8);
	st->modes = (int32) ReadInt(&r, 4);
	st->nsteps = (int32) ReadInt(&r, 4);
	st->nexcl = (int32) ReadInt(&r, 4);
	st->from = (int64) ReadInt(&r, 8);
	st->to = (int64) ReadInt(&r, 8);
	if (st->window <= 0 || st->window > USECS_PER_DAY * (int64) FUNNEL_MAX_WINDOW_DAYS)
		Bad("The window is out of range.");
	if (st->modes < 0 || (st->modes & ~FUNNEL_ALL_MODES) != 0)
		Bad("The mode flags are unknown.");
	if (st->nsteps < 1 || st->nsteps > FUNNEL_MAX_STEPS || st->nexcl < 0 || st->nexcl > MAX_EXCLUSIONS)
		Bad("The number of steps or exclusions is out of range.");
	if (!ValidTime(st->from) || !ValidTime(st->to) || st->from >= st->to ||
		!IS_VALID_TIMESTAMP(st->to + st->window))
		Bad("The range is invalid.");
	n = st->nsteps + st->nexcl;
	st->names = MemoryContextAlloc(aggcxt, sizeof(char *) * n);
	st->lens = MemoryContextAlloc(aggcxt, sizeof(int) * n);
	for (int i = 0; i < n; i++)
	{
		st->names[i] = ReadString(aggcxt, &r, MAX_NAME_LEN, false, &st->lens[i]);
		if (st->lens[i] == 0)
			Bad("A step or exclusion name is empty.");
	}
	st->nsegs = (int32) ReadInt(&r, 4);
	/* each segment takes at least its 4-byte length */
	if (st->nsegs < 0 || st->nsegs > r.left / 4)
		Bad("The number of segments is out of range.");
	st->maxsegs = Max(st->nsegs, 1);
	st->segs = MemoryContextAlloc(aggcxt, sizeof(char *) * st->maxsegs);
	for (int i = 0; i < st->nsegs; i++)
	{
		int			len;

		st->segs[i] = ReadString(aggcxt, &r, (int) Min(r.left, (int64) 1000000000), true, &len);
	}
	n = (int) ReadInt(&r, 1);
	if (n != 0 && n != 1)
		Bad("The account flag is not 0 or 1.");
	st->has_account = n == 1;
	st->account_ts = (int64) ReadInt(&r, 8);
	st->account_id = (int64) ReadInt(&r, 8);
	if (st->has_account && !ValidTime(st->account_ts))
		Bad("The account time is not a valid timestamp.");
	nevents = (int64) ReadInt(&r, 8);
	if (nevents < 0 || nevents != r.left / 24 || r.left % 24 != 0)
		Bad("The number of events does not match the length of the state.");
	allowed = st->nsteps == 64 ? PG_UINT64_MAX : (UINT64CONST(1) << st->nsteps) - 1;
	for (int64 i = 0; i < nevents; i++)
	{
		FunnelEvent e;

		e.ts = (int64) ReadInt(&r, 8);
		e.mask = ReadInt(&r, 8);
		e.tag = (int32) ReadInt(&r, 4);
		e.flags = (int32) ReadInt(&r, 4);
		if (!ValidTime(e.ts) || e.ts < st->from || e.ts - st->window > st->to)
			Bad("An event time is outside the range.");
		if ((e.mask & ~allowed) != 0 || (e.flags & ~EVENT_EXCLUSION) != 0 || (e.mask == 0 && e.flags == 0))
			Bad("An event matches a step beyond the number of steps, or nothing.");
		if ((e.mask & 1) ? (e.tag < 0 || e.tag >= st->nsegs || e.ts >= st->to) : e.tag != 0)
			Bad("An event's segment is out of range.");
		FunnelEventsAdd(aggcxt, &st->events, &e);
	}
	PG_RETURN_POINTER(st);
}
