/*-------------------------------------------------------------------------
 *
 * churn_groups.c
 *	  The grouped scan's per-key month bitmaps (churn.h): one participant's
 *	  pass over its share of the heap, the merge of another participant's
 *	  records, and each key's bitmap as the aggregate returns it.
 *
 * Design note: each key holds its months in one 64-bit word of 64 months
 * (the chunk of its first row); months of other chunks, rare, go to a
 * second table keyed by (key, chunk).  Keys are usually compact (account
 * ids), so they live in a directly indexed window of keys that grows while
 * it stays at least 1/8 full, as dogdb_account_churn's dense array does;
 * keys outside it go to a hash table (a key the window later covers moves
 * into it).  The group of the previous row is remembered: rows of one key
 * often follow each other.  All of it stays within a memory bound: a table
 * that would grow past it makes the pass give up (the node then runs the
 * standard plan).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/heapam.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "miscadmin.h"
#include "port/pg_bitutils.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "churn.h"
#include "common.h"
#include "month_bitmap.h"

/* chunk of a window slot no key has used */
#define CHURN_ABSENT (-2)

/* the 64-bit finalizer of MurmurHash3 */
static inline uint64
HashKey(uint64 k)
{
	k ^= k >> 33;
	k *= UINT64CONST(0xff51afd7ed558ccd);
	k ^= k >> 33;
	k *= UINT64CONST(0xc4ceb9fe1a85ec53);
	k ^= k >> 33;
	return k;
}

/* one key's months: the chunk of 64 months of its first row, more in ChurnOver */
typedef struct ChurnGroup
{
	int64		key;
	int32		chunk;			/* -1: no month yet (only NULL times) */
	char		status;			/* simplehash */
	uint64		bits;
	int32		olo;			/* other chunks in ChurnOver: olo..ohi */
	int32		ohi;
} ChurnGroup;

#define SH_PREFIX churn_groups
#define SH_ELEMENT_TYPE ChurnGroup
#define SH_KEY_TYPE int64
#define SH_KEY key
#define SH_HASH_KEY(tb, k) HashKey((uint64) (k))
#define SH_EQUAL(tb, a, b) ((a) == (b))
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

typedef struct ChurnOverKey
{
	int64		key;
	int32		chunk;
	int32		isnull;
} ChurnOverKey;

typedef struct ChurnOver
{
	ChurnOverKey k;
	char		status;
	uint64		bits;
} ChurnOver;

#define SH_PREFIX churn_over
#define SH_ELEMENT_TYPE ChurnOver
#define SH_KEY_TYPE ChurnOverKey
#define SH_KEY k
#define SH_HASH_KEY(tb, x) hash_combine64(HashKey((uint64) (x).key), (uint64) (x).chunk * 2 + (x).isnull)
#define SH_EQUAL(tb, a, b) ((a).key == (b).key && (a).chunk == (b).chunk && (a).isnull == (b).isnull)
#define SH_SCOPE static inline
#define SH_DECLARE
#define SH_DEFINE
#include "lib/simplehash.h"

struct ChurnGroups
{
	MemoryContext cxt;
	ChurnGroup *dense;			/* keys dense_lo .. dense_lo + dense_n - 1 */
	int64		dense_lo;
	uint64		dense_n;
	uint64		dense_members;
	churn_groups_hash *main;	/* the other keys */
	churn_over_hash *over;
	bool		has_null;
	ChurnGroup	null_group;
	ChurnGroup *last;			/* the group of the previous row */
	Size		limit;
};

static void
InitGroup(ChurnGroup *grp, int64 key)
{
	grp->key = key;
	grp->chunk = -1;
	grp->bits = 0;
	grp->olo = PG_INT32_MAX;
	grp->ohi = PG_INT32_MIN;
}

ChurnGroups *
ChurnGroupsCreate(MemoryContext cxt, Size limit)
{
	ChurnGroups *g = MemoryContextAllocZero(cxt, sizeof(ChurnGroups));

	g->cxt = cxt;
	g->main = churn_groups_create(cxt, 256, NULL);
	g->over = churn_over_create(cxt, 16, NULL);
	InitGroup(&g->null_group, 0);
	g->limit = limit;
	return g;
}

/* bytes the tables take, plus extra */
static inline bool
WithinLimit(const ChurnGroups *g, uint64 extra)
{
	return g->dense_n * sizeof(ChurnGroup) + g->main->size * sizeof(ChurnGroup) +
		g->over->size * sizeof(ChurnOver) + extra <= g->limit;
}

/*
 * Grow the window to cover key, if it stays 1/8 full and within the
 * memory bound; keys of the hash table it now covers move into it.
 */
static bool
DenseExtend(ChurnGroups *g, int64 key)
{
	uint64		maxspan = (g->dense_members + g->main->members + 1) * 8 + 1024;
	int64		lo = key,
				hi = key;		/* the new window, inclusive */
	uint64		span,
				want;
	ChurnGroup *dense;

	if (g->dense_n > 0)
	{
		lo = Min(key, g->dense_lo);
		hi = Max(key, g->dense_lo + (int64) (g->dense_n - 1));
	}
	span = (uint64) hi - (uint64) lo + 1;
	if (span == 0 || span > maxspan)
		return false;
	/* room for more: double it, on the side that grew */
	want = Min(Max(span * 2, 1024), maxspan);
	if (key >= hi && (uint64) PG_INT64_MAX - (uint64) hi >= want - span)
		hi += (int64) (want - span);
	else if (key <= lo && (uint64) lo - (uint64) PG_INT64_MIN >= want - span)
		lo -= (int64) (want - span);
	span = (uint64) hi - (uint64) lo + 1;
	if (!WithinLimit(g, span * sizeof(ChurnGroup)))
		return false;

	dense = MemoryContextAllocHuge(g->cxt, span * sizeof(ChurnGroup));
	for (uint64 i = 0; i < span; i++)
		dense[i].chunk = CHURN_ABSENT;
	if (g->dense_n > 0)
	{
		memcpy(dense + ((uint64) g->dense_lo - (uint64) lo), g->dense, g->dense_n * sizeof(ChurnGroup));
		pfree(g->dense);
	}
	g->dense = dense;
	g->dense_lo = lo;
	g->dense_n = span;
	g->last = NULL;

	/* keys of the hash table now in the window move into it */
	if (g->main->members > 0)
	{
		churn_groups_iterator it;
		ChurnGroup *grp;

		churn_groups_start_iterate(g->main, &it);
		while ((grp = churn_groups_iterate(g->main, &it)) != NULL)
		{
			if (grp->key < lo || grp->key > hi)
				continue;
			dense[(uint64) grp->key - (uint64) lo] = *grp;
			g->dense_members++;
			churn_groups_delete_item(g->main, grp);
		}
	}
	return true;
}

/* the group of a key, created if new; NULL at the memory bound */
static inline ChurnGroup *
GroupsFind(ChurnGroups *g, int64 key, bool isnull)
{
	ChurnGroup *grp;
	uint64		off;
	bool		found;

	if (isnull)
	{
		g->has_null = true;
		return &g->null_group;
	}
	if (g->last != NULL && g->last->key == key)
		return g->last;
	off = (uint64) key - (uint64) g->dense_lo;
	if (off < g->dense_n || (DenseExtend(g, key) && (off = (uint64) key - (uint64) g->dense_lo) < g->dense_n))
	{
		grp = &g->dense[off];
		if (grp->chunk == CHURN_ABSENT)
		{
			InitGroup(grp, key);
			g->dense_members++;
		}
	}
	else
	{
		if (g->main->members >= g->main->grow_threshold &&
			!WithinLimit(g, g->main->size * sizeof(ChurnGroup) * 2))
			return NULL;
		grp = churn_groups_insert(g->main, key, &found);
		if (!found)
			InitGroup(grp, key);
	}
	g->last = grp;
	return grp;
}

/* OR bits into the group's chunk; false at the memory bound */
static inline bool
GroupAdd(ChurnGroups *g, ChurnGroup *grp, bool isnull, int32 chunk, uint64 bits)
{
	ChurnOverKey k = {0};
	ChurnOver  *o;
	bool		found;

	if (grp->chunk == chunk)
	{
		grp->bits |= bits;
		return true;
	}
	if (grp->chunk < 0)
	{
		grp->chunk = chunk;
		grp->bits = bits;
		return true;
	}
	if (g->over->members >= g->over->grow_threshold &&
		!WithinLimit(g, g->over->size * sizeof(ChurnOver) * 2))
		return false;
	k.key = grp->key;
	k.chunk = chunk;
	k.isnull = isnull;
	o = churn_over_insert(g->over, k, &found);
	o->bits = found ? o->bits | bits : bits;
	grp->olo = Min(grp->olo, chunk);
	grp->ohi = Max(grp->ohi, chunk);
	return true;
}

static inline int64
KeyOf(Datum d, Oid type)
{
	return type == INT8OID ? DatumGetInt64(d) : type == INT4OID ? DatumGetInt32(d) : DatumGetInt16(d);
}

bool
ChurnGroupsScan(ChurnGroups *g, Relation rel, TableScanDesc scan, AttrNumber key_att,
				AttrNumber time_att, Oid key_type, pg_atomic_uint32 *abandon)
{
	TupleDesc	desc = RelationGetDescr(rel);
	ChurnMonthCache mc = CHURN_MONTH_CACHE_INIT;
	uint64		n = 0;
	HeapTuple	tuple;

	while ((tuple = heap_getnext(scan, ForwardScanDirection)) != NULL)
	{
		ChurnGroup *grp;
		Datum		d;
		bool		isnull,
					keynull;
		int32		rel_month;

		if ((++n & 0xFFFF) == 0)
		{
			CHECK_FOR_INTERRUPTS();
			if (abandon != NULL && pg_atomic_read_u32(abandon) != 0)
				return false;
		}
		d = DogdbHeapGetAttr(tuple, key_att, desc, &keynull);
		grp = GroupsFind(g, keynull ? 0 : KeyOf(d, key_type), keynull);
		if (grp == NULL)
			return false;
		d = DogdbHeapGetAttr(tuple, time_att, desc, &isnull);
		if (isnull)
			continue;			/* the aggregate skips them */
		/* the aggregate's errors: the standard plan raises them */
		if (!ChurnMonthOf(&mc, DatumGetTimestampTz(d)))
			return false;
		rel_month = mc.month - MONTH_BITMAP_MIN_MONTH;
		if (!GroupAdd(g, grp, keynull, rel_month / 64, UINT64CONST(1) << (rel_month % 64)))
			return false;
	}
	return true;
}

bool
ChurnGroupsMerge(ChurnGroups *g, const ChurnRecord *records, int n)
{
	for (int i = 0; i < n; i++)
	{
		ChurnGroup *grp = GroupsFind(g, records[i].key, records[i].isnull);

		if (grp == NULL ||
			(records[i].chunk >= 0 && !GroupAdd(g, grp, records[i].isnull, records[i].chunk, records[i].bits)))
			return false;
	}
	return true;
}

/* the next group: the NULL key, the window, then the hash table */
static ChurnGroup *
NextGroup(ChurnGroups *g, ChurnGroupsCursor *c, bool *isnull)
{
	*isnull = false;
	if (c->phase == 0)
	{
		c->phase = 1;
		c->pos = 0;
		if (g->has_null)
		{
			*isnull = true;
			return &g->null_group;
		}
	}
	if (c->phase == 1)
	{
		while (c->pos < g->dense_n)
		{
			ChurnGroup *grp = &g->dense[c->pos++];

			if (grp->chunk != CHURN_ABSENT)
				return grp;
		}
		c->phase = 2;
		c->pos = 0;
	}
	while (c->phase == 2 && c->pos < g->main->size)
	{
		ChurnGroup *grp = &g->main->data[c->pos++];

		if (grp->status == churn_groups_SH_IN_USE)
			return grp;
	}
	c->phase = 3;
	return NULL;
}

bool
ChurnGroupsNextRecord(ChurnGroups *g, ChurnGroupsCursor *c, ChurnRecord *r)
{
	bool		isnull;
	ChurnGroup *grp;

	if (c->phase < 3 && (grp = NextGroup(g, c, &isnull)) != NULL)
	{
		r->key = grp->key;
		r->chunk = grp->chunk;
		r->isnull = isnull;
		r->bits = grp->bits;
		return true;
	}
	if (c->phase == 3)
	{
		c->phase = 4;
		c->pos = 0;
	}
	while (c->pos < g->over->size)
	{
		ChurnOver  *o = &g->over->data[c->pos++];

		if (o->status == churn_over_SH_IN_USE)
		{
			r->key = o->k.key;
			r->chunk = o->k.chunk;
			r->isnull = o->k.isnull;
			r->bits = o->bits;
			return true;
		}
	}
	return false;
}

/* the months of chunk into a bitmap */
static void
SetChunk(uint8 *bitmap, size_t len, int32 chunk, uint64 bits)
{
	while (bits != 0)
	{
		int32		month = MONTH_BITMAP_MIN_MONTH + chunk * 64 + pg_rightmost_one_pos64(bits);

		if (!month_bitmap_set(bitmap, len, month))
			elog(ERROR, "active-month bitmap misses month %d", month);
		bits &= bits - 1;
	}
}

/* another chunk of a group, or 0 */
static uint64
OverBits(ChurnGroups *g, const ChurnGroup *grp, bool isnull, int32 chunk)
{
	ChurnOverKey k = {0};
	ChurnOver  *o;

	k.key = grp->key;
	k.chunk = chunk;
	k.isnull = isnull;
	o = churn_over_lookup(g->over, k);
	return o != NULL ? o->bits : 0;
}

/* the aggregate's result for a group (see churn_path_exec.c), or NULL */
static bytea *
GroupBitmap(ChurnGroups *g, const ChurnGroup *grp, bool isnull)
{
	int32		lo_chunk = grp->chunk,
				hi_chunk = grp->chunk;
	uint64		lo_bits = grp->bits,
				hi_bits = grp->bits;
	int32		first,
				last;
	size_t		len;
	bytea	   *b;

	if (grp->chunk < 0)
		return NULL;
	if (grp->olo < lo_chunk)
		lo_bits = OverBits(g, grp, isnull, lo_chunk = grp->olo);
	if (grp->ohi > hi_chunk)
		hi_bits = OverBits(g, grp, isnull, hi_chunk = grp->ohi);
	first = MONTH_BITMAP_MIN_MONTH + lo_chunk * 64 + pg_rightmost_one_pos64(lo_bits);
	last = MONTH_BITMAP_MIN_MONTH + hi_chunk * 64 + pg_leftmost_one_pos64(hi_bits);
	/* as the aggregate: the first month rounded down to a multiple of 8, 96 months or more */
	first -= (int32) (((int64) first % 8 + 8) % 8);
	last = Max(last, Min(first + MONTH_BITMAP_INITIAL_MONTHS - 1, MONTH_BITMAP_MAX_MONTH));
	len = month_bitmap_size(first, last);
	b = palloc(VARHDRSZ + len);
	SET_VARSIZE(b, VARHDRSZ + len);
	month_bitmap_init((uint8 *) VARDATA(b), len, first);
	SetChunk((uint8 *) VARDATA(b), len, grp->chunk, grp->bits);
	for (int32 c = grp->olo; c <= grp->ohi; c++)
		SetChunk((uint8 *) VARDATA(b), len, c, OverBits(g, grp, isnull, c));
	return b;
}

bool
ChurnGroupsNext(ChurnGroups *g, ChurnGroupsCursor *c, int64 *key, bool *isnull, bytea **bitmap)
{
	ChurnGroup *grp = c->phase < 3 ? NextGroup(g, c, isnull) : NULL;

	if (grp == NULL)
		return false;
	*key = grp->key;
	*bitmap = GroupBitmap(g, grp, *isnull);
	return true;
}
