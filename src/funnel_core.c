/*-------------------------------------------------------------------------
 *
 * funnel_core.c
 *	  The exact window funnel (see funnel_core.h for the definitions and the
 *	  design), free of backend headers so that the unit test and the fuzzer
 *	  link it alone.
 *
 *-------------------------------------------------------------------------
 */
#include "funnel_core.h"

#include <stdlib.h>
#include <string.h>

#define NONE INT64_MIN
/* rows of one timestamp kept for the matching: N per step suffice */
#define GROUP_COMPACT_AT 8192

struct FunnelRun
{
	int			nsteps;
	int64_t		window;
	int			modes;
	bool		track;
	FunnelAlloc alloc;
	FunnelFree	dealloc;

	int			maxlevel;
	int64_t		best[FUNNEL_MAX_STEPS + 1];	/* latest start alive at level c */
	int32_t		tag[FUNNEL_MAX_STEPS + 1];	/* its step-1 tag */
	int32_t		best_tag;		/* of the chain that first reached maxlevel */
	int64_t    *times;			/* (N + 1) x N: times of best[c]'s chain */
	int64_t    *best_times;		/* N: the chain that first reached maxlevel */

	/* the pending timestamp */
	bool		pending;
	int64_t		ts;
	uint64_t	unionmask;
	int32_t		start_tag;		/* smallest tag of its step-1 events */
	uint64_t   *rows;			/* its events' masks (strict_once only) */
	int			nrows;
	int			maxrows;

	/* scratch */
	int64_t		created[FUNNEL_MAX_STEPS + 1];
	int32_t		created_tag[FUNNEL_MAX_STEPS + 1];
	int			from[FUNNEL_MAX_STEPS + 1];
	int			reach[FUNNEL_MAX_STEPS + 1];
	int			matchL[FUNNEL_MAX_STEPS + 2];
	int		   *matchR;
	int		   *visited;
	int			visit_mark;
};

static inline bool
HasStep(uint64_t mask, int step)
{
	return step >= 1 && step <= 64 && (mask >> (step - 1)) & 1;
}

FunnelRun *
funnel_run_create(int nsteps, int64_t window, int modes, bool track_times,
				  FunnelAlloc alloc, FunnelFree dealloc)
{
	FunnelRun  *run = alloc(sizeof(FunnelRun));

	memset(run, 0, sizeof(FunnelRun));
	run->nsteps = nsteps;
	run->window = window;
	run->modes = modes;
	run->track = track_times;
	run->alloc = alloc;
	run->dealloc = dealloc;
	if (track_times)
	{
		run->times = alloc(sizeof(int64_t) * (nsteps + 1) * nsteps);
		run->best_times = alloc(sizeof(int64_t) * nsteps);
	}
	funnel_run_reset(run);
	return run;
}

void
funnel_run_reset(FunnelRun *run)
{
	run->maxlevel = 0;
	run->best_tag = 0;
	for (int c = 0; c <= run->nsteps; c++)
		run->best[c] = NONE;
	run->pending = false;
	run->unionmask = 0;
	run->nrows = 0;
}

void
funnel_run_destroy(FunnelRun *run)
{
	if (run->times)
		run->dealloc(run->times);
	if (run->best_times)
		run->dealloc(run->best_times);
	if (run->rows)
		run->dealloc(run->rows);
	if (run->matchR)
		run->dealloc(run->matchR);
	if (run->visited)
		run->dealloc(run->visited);
	run->dealloc(run);
}

/* keep, for each step, at most N rows containing it (preserves matchings) */
static void
CompactRows(FunnelRun *run)
{
	int			count[FUNNEL_MAX_STEPS + 1] = {0};
	int			kept = 0;

	for (int i = 0; i < run->nrows; i++)
	{
		uint64_t	m = run->rows[i];
		bool		keep = false;

		for (int j = 1; j <= run->nsteps && !keep; j++)
			if (HasStep(m, j) && count[j] < run->nsteps)
				keep = true;
		if (!keep)
			continue;
		for (int j = 1; j <= run->nsteps; j++)
			if (HasStep(m, j))
				count[j]++;
		run->rows[kept++] = m;
	}
	run->nrows = kept;
}

static void
AddRow(FunnelRun *run, uint64_t mask)
{
	if (run->nrows == run->maxrows)
	{
		if (run->nrows >= GROUP_COMPACT_AT)
			CompactRows(run);
		if (run->nrows == run->maxrows)
		{
			int			newmax = run->maxrows ? run->maxrows * 2 : 16;
			uint64_t   *rows = run->alloc(sizeof(uint64_t) * newmax);

			if (run->nrows)
				memcpy(rows, run->rows, sizeof(uint64_t) * run->nrows);
			if (run->rows)
				run->dealloc(run->rows);
			run->rows = rows;
			run->maxrows = newmax;
		}
	}
	run->rows[run->nrows++] = mask;
}

/* Kuhn's augmenting path from step j, steps limited to [lo, hi] */
static bool
Augment(FunnelRun *run, int j)
{
	for (int r = 0; r < run->nrows; r++)
	{
		if (!HasStep(run->rows[r], j) || run->visited[r] == run->visit_mark)
			continue;
		run->visited[r] = run->visit_mark;
		if (run->matchR[r] < 0 || Augment(run, run->matchR[r]))
		{
			run->matchR[r] = j;
			run->matchL[j] = r;
			return true;
		}
	}
	return false;
}

/*
 * reach[a]: the highest step a chain at level a entering this timestamp
 * can climb to with distinct events (steps a+1..reach[a] matched to
 * distinct rows).  reach is non-decreasing in a: two pointers.
 */
static void
ReachWithMatching(FunnelRun *run)
{
	int			n = run->nsteps;
	int			hi = 0;

	if (run->matchR)
		run->dealloc(run->matchR);
	if (run->visited)
		run->dealloc(run->visited);
	run->matchR = run->alloc(sizeof(int) * (run->nrows + 1));
	run->visited = run->alloc(sizeof(int) * (run->nrows + 1));
	for (int r = 0; r < run->nrows; r++)
	{
		run->matchR[r] = -1;
		run->visited[r] = 0;
	}
	run->visit_mark = 0;
	for (int j = 0; j <= n + 1; j++)
		run->matchL[j] = -1;

	for (int a = 0; a < n; a++)
	{
		if (a >= 1 && run->matchL[a] >= 0)
		{
			run->matchR[run->matchL[a]] = -1;
			run->matchL[a] = -1;
		}
		if (hi < a)
			hi = a;
		while (hi < n && HasStep(run->unionmask, hi + 1))
		{
			run->visit_mark++;
			if (!Augment(run, hi + 1))
				break;
			hi++;
		}
		run->reach[a] = hi;
	}
}

/*
 * No mode, no times: the events of the pending timestamp move the chains
 * step by step, lowest step first (the order of keys at one timestamp), so
 * a chain climbs every consecutive step present at it.  Same result as the
 * general path below (the unit tests and the fuzzer check both).
 */
static void
FlushGroupPlain(FunnelRun *run)
{
	int64_t		t = run->ts;
	uint64_t	u = run->unionmask;

	run->pending = false;
	run->unionmask = 0;
	run->nrows = 0;
	while (u != 0)
	{
		int			c = __builtin_ctzll(u) + 1;
		int64_t		s;
		int32_t		tag;

		u &= u - 1;
		if (c == 1)
		{
			s = t;
			tag = run->start_tag;
		}
		else
		{
			s = run->best[c - 1];
			tag = run->tag[c - 1];
			if (s == NONE || t - s > run->window)
				continue;
		}
		if (s > run->best[c])
		{
			run->best[c] = s;
			run->tag[c] = tag;
			if (c > run->maxlevel)
			{
				run->maxlevel = c;
				run->best_tag = tag;
			}
		}
	}
}

/* the events of the pending timestamp move the chains */
static void
FlushGroup(FunnelRun *run)
{
	int			n = run->nsteps;
	int64_t		t = run->ts;
	uint64_t	u = run->unionmask;
	int			modes = run->modes;
	bool		once = (modes & FUNNEL_STRICT_ONCE) && !(modes & FUNNEL_STRICT_INCREASE);

	if (!run->pending)
		return;
	if (modes == 0 && !run->track)
	{
		FlushGroupPlain(run);
		return;
	}
	run->pending = false;

	/* how far a chain entering at level a climbs at this timestamp */
	if (once && run->nrows > 1)
		ReachWithMatching(run);
	else
	{
		for (int a = n - 1; a >= 0; a--)
		{
			if (!HasStep(u, a + 1))
				run->reach[a] = a;
			else if ((modes & FUNNEL_STRICT_INCREASE) || once || a + 1 == n)
				run->reach[a] = a + 1;
			else
				run->reach[a] = run->reach[a + 1];
		}
	}

	/* chains created at this timestamp, from the latest start entering */
	for (int c = 1; c <= n; c++)
	{
		run->created[c] = NONE;
		run->from[c] = -1;
	}
	for (int a = 0; a < n; a++)
	{
		int64_t		s;
		int32_t		tag;

		if (run->reach[a] <= a)
			continue;
		if (a == 0)
		{
			s = t;
			tag = run->start_tag;
		}
		else
		{
			s = run->best[a];
			tag = run->tag[a];
			if (s == NONE || t - s > run->window)
				continue;
			/* killed before (t, a+1) by an occurrence at this timestamp? */
			if ((modes & FUNNEL_STRICT_DEDUP) && HasStep(u, a))
				continue;
			if ((modes & FUNNEL_STRICT_ORDER) && a >= 2 &&
				(u & ((UINT64_C(1) << (a - 1)) - 1)) != 0)
				continue;
		}
		for (int c = a + 1; c <= run->reach[a]; c++)
			if (s > run->created[c])
			{
				run->created[c] = s;
				run->created_tag[c] = tag;
				run->from[c] = a;
			}
	}

	/* new state per level, highest first (a chain's times read lower levels) */
	for (int c = n; c >= 1; c--)
	{
		int64_t		survivor = run->best[c];
		int64_t		created = run->created[c];

		if (created != NONE)
		{
			int			a = run->from[c];

			if (c > run->maxlevel)
			{
				run->maxlevel = c;
				run->best_tag = run->created_tag[c];
				if (run->track)
				{
					for (int k = 0; k < a; k++)
						run->best_times[k] = run->times[a * n + k];
					for (int k = a; k < c; k++)
						run->best_times[k] = t;
				}
			}
			/* a later key at this timestamp that ends the new chain */
			if ((modes & FUNNEL_STRICT_DEDUP) && HasStep(u, c + 1))
				created = NONE;
			if ((modes & FUNNEL_STRICT_ORDER) && c + 1 < 64 && (u >> (c + 1)) != 0)
				created = NONE;
		}
		if (survivor != NONE)
		{
			if ((modes & FUNNEL_STRICT_DEDUP) && (HasStep(u, c) || HasStep(u, c + 1)))
				survivor = NONE;
			if ((modes & FUNNEL_STRICT_ORDER))
			{
				uint64_t	own = (UINT64_C(1) << (c - 1));

				if (c < 64)
					own |= UINT64_C(1) << c;
				if ((u & ~own) != 0)
					survivor = NONE;
			}
		}
		if (created != NONE && created > survivor)
		{
			int			a = run->from[c];

			run->best[c] = created;
			run->tag[c] = run->created_tag[c];
			if (run->track)
			{
				for (int k = 0; k < a; k++)
					run->times[c * n + k] = run->times[a * n + k];
				for (int k = a; k < c; k++)
					run->times[c * n + k] = t;
			}
		}
		else
			run->best[c] = survivor;
	}
	run->unionmask = 0;
	run->nrows = 0;
}

bool
funnel_run_feed(FunnelRun *run, int64_t ts, uint64_t mask, int32_t tag)
{
	if (run->nsteps < 64)
		mask &= (UINT64_C(1) << run->nsteps) - 1;
	if (run->pending && ts < run->ts)
		return false;
	if (mask == 0)
		return true;
	if (run->pending && ts != run->ts)
		FlushGroup(run);
	if (!run->pending)
	{
		run->pending = true;
		run->ts = ts;
		run->start_tag = INT32_MAX;
	}
	run->unionmask |= mask;
	if ((mask & 1) && tag < run->start_tag)
		run->start_tag = tag;
	if ((run->modes & FUNNEL_STRICT_ONCE) && !(run->modes & FUNNEL_STRICT_INCREASE))
		AddRow(run, mask);
	return true;
}

int
funnel_run_level(FunnelRun *run)
{
	FlushGroup(run);
	return run->maxlevel;
}

const int64_t *
funnel_run_times(FunnelRun *run)
{
	FlushGroup(run);
	return run->best_times;
}

int32_t
funnel_run_tag(FunnelRun *run)
{
	FlushGroup(run);
	return run->best_tag;
}

static int
CompareEvents(const void *a, const void *b)
{
	const FunnelEvent *x = a;
	const FunnelEvent *y = b;

	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->mask != y->mask)
		return x->mask < y->mask ? -1 : 1;
	if (x->tag != y->tag)
		return x->tag < y->tag ? -1 : 1;
	return 0;
}

void
funnel_sort_events(FunnelEvent *events, size_t n)
{
	size_t		i;

	/* input read through an index arrives sorted: skip the sort */
	for (i = 1; i < n; i++)
		if (CompareEvents(&events[i - 1], &events[i]) > 0)
			break;
	if (i < n)
		qsort(events, n, sizeof(FunnelEvent), CompareEvents);
}

int
funnel_mask_bytes(int nsteps)
{
	return nsteps <= 8 ? 1 : nsteps <= 16 ? 2 : nsteps <= 32 ? 4 : 8;
}

static inline uint64_t
ReadBig(const unsigned char *p, int nbytes)
{
	uint64_t	v = 0;

	for (int i = 0; i < nbytes; i++)
		v = (v << 8) | p[i];
	return v;
}

static inline void
WriteBig(unsigned char *p, uint64_t v, int nbytes)
{
	for (int i = nbytes - 1; i >= 0; i--)
	{
		p[i] = (unsigned char) (v & 0xFF);
		v >>= 8;
	}
}

void
funnel_pack_events(const FunnelEvent *ev, int64_t n, int nsteps, unsigned char *out)
{
	int			mb = funnel_mask_bytes(nsteps);

	for (int64_t i = 0; i < n; i++)
	{
		WriteBig(out, (uint64_t) ev[i].ts, 8);
		WriteBig(out + 8, ev[i].mask, mb);
		out += 8 + mb;
	}
}

const char *
funnel_check_packed(const unsigned char *p, size_t len, int nsteps,
					int64_t min_ts, int64_t max_ts, int64_t *n, uint64_t *unionmask)
{
	int			mb;
	uint64_t	allowed,
				u = 0;
	size_t		count;

	if (nsteps < 1 || nsteps > FUNNEL_MAX_STEPS)
		return "The number of steps is out of range.";
	mb = funnel_mask_bytes(nsteps);
	allowed = nsteps == 64 ? UINT64_MAX : (UINT64_C(1) << nsteps) - 1;
	if (len % (size_t) (8 + mb) != 0)
		return "The events are not a whole number of events.";
	count = len / (size_t) (8 + mb);
	for (size_t i = 0; i < count; i++, p += 8 + mb)
	{
		int64_t		ts = (int64_t) ReadBig(p, 8);
		uint64_t	mask = ReadBig(p + 8, mb);

		if (ts < min_ts || ts > max_ts)
			return "An event time is not a finite timestamp.";
		if (mask == 0 || (mask & ~allowed) != 0)
			return "An event matches no step or a step beyond the number of steps.";
		u |= mask;
	}
	*n = (int64_t) count;
	*unionmask = u;
	return NULL;
}

void
funnel_unpack_events(const unsigned char *p, int64_t n, int nsteps, FunnelEvent *out)
{
	int			mb = funnel_mask_bytes(nsteps);

	for (int64_t i = 0; i < n; i++, p += 8 + mb)
	{
		out[i].ts = (int64_t) ReadBig(p, 8);
		out[i].mask = ReadBig(p + 8, mb);
		out[i].tag = 0;
		out[i].flags = 0;
	}
}

int
funnel_parse_modes(const char *text)
{
	static const struct
	{
		const char *name;
		int			flag;
	}			names[] = {
		{"strict_order", FUNNEL_STRICT_ORDER},
		{"strict_deduplication", FUNNEL_STRICT_DEDUP},
		{"strict_increase", FUNNEL_STRICT_INCREASE},
		{"strict_once", FUNNEL_STRICT_ONCE},
	};
	int			modes = 0;
	const char *p = text;

	for (;;)
	{
		const char *start,
				   *end;
		size_t		len;
		bool		found = false;

		while (*p == ' ' || *p == '\t')
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
			end--;
		len = (size_t) (end - start);
		if (len == 0)
		{
			/* "" means no mode; an empty item between commas is an error */
			if (*p == '\0' && start == text)
				return 0;
			return -1;
		}
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (strlen(names[i].name) == len && memcmp(names[i].name, start, len) == 0)
			{
				modes |= names[i].flag;
				found = true;
			}
		if (!found)
			return -1;
		if (*p == '\0')
			return modes;
		p++;
	}
}
