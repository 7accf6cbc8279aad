/*-------------------------------------------------------------------------
 *
 * web_events_demo.c
 *	  dogdb_internal.demo_web_events(visitors, start, days, seed): deterministic demo
 *	  web events for the signup funnel, as rows shaped like a staging table
 *	  of dogdb.web_events (dogdb_generate_demo_web_events() loads them).
 *
 * The flow: landing page '/' -> page '/signup' -> account_created ->
 * tier_selected -> deployment_configured -> page '/dashboard'.  Each
 * visitor arrives at a uniform time in [start, start + days), from one
 * client; each step continues with a probability that depends on the step
 * (tier_selected -> deployment_configured is the deliberate largest
 * drop-off) and on the client.  Page views are followed by page pings
 * every 10 seconds (for 70% of visitors) and sometimes by other pages
 * (noise); some visitors repeat the landing page, some take longer than a
 * day for a step (a gap beyond the window).  The data ends at start +
 * days (later events are not collected yet), so visitors arriving near the
 * end are still in progress, and a report over an earlier range has
 * visitors who finish after it.  Delivery is messy on
 * purpose: 2% of events come twice, one visitor in five arrives out of
 * order, and one event in a thousand is malformed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "random.h"

PG_FUNCTION_INFO_V1(dogdb_demo_web_events);

#define MAX_VISITORS 10000000
#define MAX_DAYS 3650
#define NSTEPS 6
#define NCLIENTS 4
#define MAX_EVENTS 512

static const char *const step_event[NSTEPS] = {
	"page_view", "page_view", "account_created", "tier_selected", "deployment_configured", "page_view"};
static const char *const step_path[NSTEPS] = {"/", "/signup", NULL, NULL, NULL, "/dashboard"};
/* per mille: the chance to go on from step k to k + 1 */
static const int step_continue[NSTEPS - 1] = {600, 700, 800, 350, 850};
static const char *const clients[NCLIENTS] = {"search", "partner", "social", "newsletter"};
/* per cent multiplier of each continue chance */
static const int client_factor[NCLIENTS] = {100, 115, 70, 95};
static const char *const noise_pages[] = {"/pricing", "/docs", "/blog", "/about"};
static const char *const devices[] = {"{\"device\": \"desktop\"}", "{\"device\": \"mobile\"}", "{\"device\": \"tablet\"}"};

typedef struct DemoEvent
{
	int64		ts;
	const char *name;
	const char *path;
	bool		signed_in;
	bool		malformed;
	int			session;
} DemoEvent;

typedef struct Gen
{
	DemoEvent	ev[MAX_EVENTS];
	int			n;
} Gen;

static void
Add(Gen *g, int64 ts, const char *name, const char *path, bool signed_in)
{
	if (g->n < MAX_EVENTS)
		g->ev[g->n++] = (DemoEvent) {ts, name, path, signed_in, false, 0};
}

/* a page view, then pings every 10 s while it stays open for `stay` seconds */
static void
AddPage(Gen *g, DemoRandom *r, int64 ts, const char *path, int stay, bool pings, bool signed_in)
{
	Add(g, ts, "page_view", path, signed_in);
	if (pings)
		for (int s = 10; s <= stay && s <= 60; s += 10)
			Add(g, ts + (int64) s * USECS_PER_SEC, "page_ping", path, signed_in);
}

Datum
dogdb_demo_web_events(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int32		nvisitors;
	int32		ndays;
	TimestampTz start;
	TimestampTz end;
	int64		seed;
	Datum		device_json[3];
	Gen		   *g;
	MemoryContext rowcxt,
				old;

	if (PG_ARGISNULL(0) || PG_GETARG_INT32(0) < 1 || PG_GETARG_INT32(0) > MAX_VISITORS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("visitors must be from 1 to %d", MAX_VISITORS),
				 errhint("Each visitor makes about ten events.")));
	if (PG_ARGISNULL(2) || PG_GETARG_INT32(2) < 1 || PG_GETARG_INT32(2) > MAX_DAYS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("days must be from 1 to %d", MAX_DAYS),
				 errhint("Visitors arrive uniformly over the days from start.")));
	if (PG_ARGISNULL(1) || TIMESTAMP_NOT_FINITE(PG_GETARG_TIMESTAMPTZ(1)) ||
		!IS_VALID_TIMESTAMP(PG_GETARG_TIMESTAMPTZ(1) + (int64) (PG_GETARG_INT32(2) + 10) * USECS_PER_DAY) ||
		PG_GETARG_TIMESTAMPTZ(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start must be a finite timestamp from 2000-01-01 with room for days plus ten after it"),
				 errhint("Use a time such as '2024-01-01 00:00+00'.")));
	if (PG_ARGISNULL(3))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("seed must not be NULL"),
				 errhint("Any bigint; the same seed gives the same events.")));
	nvisitors = PG_GETARG_INT32(0);
	start = PG_GETARG_TIMESTAMPTZ(1);
	ndays = PG_GETARG_INT32(2);
	seed = PG_GETARG_INT64(3);
	end = start + (int64) ndays * USECS_PER_DAY;

	SetSingleFuncCall(fcinfo, 0);
	for (int i = 0; i < 3; i++)
		device_json[i] = DirectFunctionCall1(jsonb_in, CStringGetDatum(devices[i]));
	g = palloc(sizeof(Gen));
	/* the text datums of one visitor; the tuplestore keeps copies */
	rowcxt = AllocSetContextCreate(CurrentMemoryContext, "demo web events", ALLOCSET_DEFAULT_SIZES);

	for (int32 v = 0; v < nvisitors; v++)
	{
		DemoRandom	r;
		int			client;
		bool		pings;
		bool		tracker;
		int			device;
		const char *campaign;
		int64		ts;
		char		anon[32];
		int			session = 0;
		int64		last_ts = 0;

		CHECK_FOR_INTERRUPTS();
		MemoryContextReset(rowcxt);
		old = MemoryContextSwitchTo(rowcxt);
		demo_random_seed(&r, (uint64) seed * UINT64CONST(0x9E3779B97F4A7C15) + (uint64) v);
		client = (int) demo_random_below(&r, NCLIENTS);
		pings = demo_random_chance(&r, 7, 10);
		tracker = demo_random_chance(&r, 6, 10);
		device = (int) demo_random_below(&r, 3);
		campaign = demo_random_chance(&r, 1, 3) ? "spring_launch" : demo_random_chance(&r, 1, 2) ? "brand" : NULL;
		ts = start + (int64) demo_random_below(&r, (uint64) ndays * 86400) * USECS_PER_SEC;
		snprintf(anon, sizeof(anon), "a%08d", v);
		g->n = 0;

		/* noise before the flow: a blog or docs page for one in four */
		if (demo_random_chance(&r, 1, 4))
		{
			AddPage(g, &r, ts, noise_pages[demo_random_below(&r, 4)], 30, pings, false);
			ts += (int64) (60 + demo_random_below(&r, 600)) * USECS_PER_SEC;
		}
		for (int k = 0; k < NSTEPS; k++)
		{
			int			stay = 20 + (int) demo_random_below(&r, 12 * (k + 1) * 10);
			bool		signed_in = k >= 2;

			if (step_path[k])
				AddPage(g, &r, ts, step_path[k], stay, pings, signed_in);
			else
				Add(g, ts, step_event[k], NULL, signed_in);
			/* a repeat of the landing page, or another page in between */
			if (k == 0 && demo_random_chance(&r, 1, 5))
				AddPage(g, &r, ts + (int64) stay * USECS_PER_SEC / 2, "/", stay / 2, pings, false);
			if (demo_random_chance(&r, 1, 6))
				AddPage(g, &r, ts + (int64) stay * USECS_PER_SEC, noise_pages[demo_random_below(&r, 4)],
						15, false, signed_in);
			if (k == NSTEPS - 1 ||
				!demo_random_chance(&r, Min(1000, step_continue[k] * client_factor[client] / 100), 1000))
				break;
			ts += (int64) (stay + 1 + (int) demo_random_below(&r, 30)) * USECS_PER_SEC;
			/* one in twenty-five takes more than a day for the next step */
			if (demo_random_chance(&r, 1, 25))
				ts += (int64) (86400 + demo_random_below(&r, 86400)) * USECS_PER_SEC;
		}

		/* tracker sessions: a new one after 30 minutes of inactivity */
		for (int i = 0; i < g->n; i++)
		{
			if (i == 0 || g->ev[i].ts - last_ts > 30 * USECS_PER_MINUTE)
				session++;
			last_ts = g->ev[i].ts;
			g->ev[i].session = session;
		}
		/* sometimes an event's clock is off: it comes just before the one before it */
		if (g->n > 2 && demo_random_chance(&r, 1, 20))
		{
			int			i = 1 + (int) demo_random_below(&r, g->n - 1);

			g->ev[i].ts = g->ev[i - 1].ts - USECS_PER_SEC;
		}
		/* a malformed event now and then */
		if (demo_random_chance(&r, 1, 100))
			g->ev[demo_random_below(&r, g->n)].malformed = true;

		/* arrival: one visitor in five out of order (reversed) */
		if (demo_random_chance(&r, 1, 5))
			for (int i = 0, j = g->n - 1; i < j; i++, j--)
			{
				DemoEvent	tmp = g->ev[i];

				g->ev[i] = g->ev[j];
				g->ev[j] = tmp;
			}

		for (int i = 0; i < g->n; i++)
		{
			DemoEvent  *e = &g->ev[i];
			Datum		values[11];
			bool		nulls[11] = {false};
			char		eid[48];
			char		sid[48];
			int			copies = demo_random_chance(&r, 1, 50) ? 2 : 1;

			/* the data ends at start + days: later events are not collected yet */
			if (e->ts >= end)
				continue;

			snprintf(eid, sizeof(eid), "%s-%d", anon, i);
			values[0] = CStringGetTextDatum(eid);
			values[1] = TimestampTzGetDatum(e->ts);
			values[2] = CStringGetTextDatum(anon);
			if (e->malformed)
				nulls[2] = true;
			if (tracker)
			{
				snprintf(sid, sizeof(sid), "s-%s-%d", anon, e->session);
				values[3] = CStringGetTextDatum(sid);
			}
			else
				nulls[3] = true;
			values[4] = Int64GetDatum((int64) 1000000000 + v);
			nulls[4] = !e->signed_in;
			values[5] = CStringGetTextDatum(e->name);
			if (e->path)
				values[6] = CStringGetTextDatum(e->path);
			else
				nulls[6] = true;
			values[7] = CStringGetTextDatum(i == 0 ? "https://www.google.com/" : "https://dogdb.example/");
			values[8] = CStringGetTextDatum(clients[client]);
			if (campaign)
				values[9] = CStringGetTextDatum(campaign);
			else
				nulls[9] = true;
			values[10] = device_json[device];
			for (int c = 0; c < copies; c++)
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
		MemoryContextSwitchTo(old);
	}
	MemoryContextDelete(rowcxt);
	return (Datum) 0;
}
