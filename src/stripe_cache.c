/*-------------------------------------------------------------------------
 *
 * stripe_cache.c
 *	  The customer mapping (Stripe customer id -> DogDB account) as this
 *	  backend last saw it, so that most events skip the mapping's index
 *	  scan.
 *
 * Design note.  A mapping row is written once and changed only by hand or
 * by a replay (UPDATE, DELETE, TRUNCATE), and every such statement fires
 * the table's reset trigger (dogdb_internal.stripe_cache_reset(), ALWAYS):
 * a relcache invalidation of the table, which every backend applies at its
 * next transaction start (the one that made the change at its next
 * command), and which also follows any DDL on the table.  So an entry is
 * kept only while the table's invalidation count is the one it was read
 * under, and only if the table had that trigger (stripe_store.c checks it;
 * dropping or disabling it is DDL, an invalidation).  Entries come from
 * what the direct writer read or wrote: rows committed, or written by this
 * transaction, which are dropped with everything else if it or one of its
 * subtransactions rolls back, or if it is prepared for two-phase commit
 * (ROLLBACK PREPARED sends no invalidation).  Only mappings found are
 * kept, never an absence.  At most CACHE_MAX entries (then it starts again
 * empty).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

#include "stripe.h"

#define CACHE_MAX 100000
#define CACHE_KEY 64			/* longer customer ids are not kept */

typedef struct MapEntry
{
	char		customer[CACHE_KEY];
	int64		account;
} MapEntry;

static HTAB *map = NULL;
static uint64 map_generation;
static bool added_in_xact = false;
static bool callbacks = false;

static void
Clear(void)
{
	if (map != NULL)
		hash_destroy(map);
	map = NULL;
	added_in_xact = false;
}

static void
MapXactCallback(XactEvent event, void *arg)
{
	/* a prepared transaction too: ROLLBACK PREPARED would send no invalidation */
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT || event == XACT_EVENT_PREPARE)
	{
		if (added_in_xact)
			Clear();
	}
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT)
		added_in_xact = false;
}

static void
MapSubXactCallback(SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid, void *arg)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && added_in_xact)
		Clear();
}

/* the account of a customer if kept (and still valid) */
bool
StripeMapCacheGet(const char *customer, int64 *account)
{
	MapEntry   *e;

	if (map == NULL || strlen(customer) >= CACHE_KEY)
		return false;
	if (map_generation != StripeTableGeneration(STRIPE_T_ACCOUNTS))
	{
		Clear();
		return false;
	}
	e = hash_search(map, customer, HASH_FIND, NULL);
	if (e == NULL)
		return false;
	*account = e->account;
	return true;
}

/*
 * Keep a mapping the direct writer read or wrote; reset_ok: the table has
 * its reset trigger (else nothing is kept).  generation: the table's
 * invalidation count before the row was read or written.
 */
void
StripeMapCachePut(const char *customer, int64 account, bool reset_ok, uint64 generation)
{
	MapEntry   *e;

	if (!reset_ok || account <= 0 || strlen(customer) >= CACHE_KEY ||
		generation != StripeTableGeneration(STRIPE_T_ACCOUNTS))
		return;
	if (!callbacks)
	{
		RegisterXactCallback(MapXactCallback, NULL);
		RegisterSubXactCallback(MapSubXactCallback, NULL);
		callbacks = true;
	}
	if (map != NULL && (map_generation != generation || hash_get_num_entries(map) >= CACHE_MAX))
		Clear();
	if (map == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = CACHE_KEY;
		ctl.entrysize = sizeof(MapEntry);
		ctl.hcxt = TopMemoryContext;
		map = hash_create("dogdb Stripe customer mapping", 1024, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
		map_generation = generation;
	}
	e = hash_search(map, customer, HASH_ENTER, NULL);
	e->account = account;
	if (IsTransactionState())
		added_in_xact = true;
}
