/*-------------------------------------------------------------------------
 *
 * stripe_core.c
 *	  Reading a Stripe webhook event with jansson into a StripeEvent, the
 *	  rank of each event type, and a subscription's MRR (stripe_core.h).
 *	  No backend headers.  Memory: one jansson document of at most
 *	  STRIPE_MAX_PAYLOAD bytes, freed before every return.
 *
 *-------------------------------------------------------------------------
 */
#include "stripe_core.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* largest amount (cents) and quantity accepted: far above Stripe's own */
#define MAX_AMOUNT INT64_C(1000000000000)
#define MAX_QUANTITY INT64_C(10000000)

typedef struct TypeRank
{
	const char *type;
	StripeKind	kind;
	int			rank;
} TypeRank;

static const TypeRank type_ranks[] = {
	{"customer.created", STRIPE_CUSTOMER, 1},
	{"customer.updated", STRIPE_CUSTOMER, 2},
	{"customer.deleted", STRIPE_CUSTOMER, 3},
	{"customer.subscription.created", STRIPE_SUBSCRIPTION, 1},
	{"customer.subscription.updated", STRIPE_SUBSCRIPTION, 2},
	{"customer.subscription.deleted", STRIPE_SUBSCRIPTION, 3},
	{"invoice.finalized", STRIPE_INVOICE, 1},
	{"invoice.payment_failed", STRIPE_INVOICE, 2},
	{"invoice.paid", STRIPE_INVOICE, 3},
	{"invoice.voided", STRIPE_INVOICE, 3},
	{"charge.succeeded", STRIPE_CHARGE, 1},
	{"charge.failed", STRIPE_CHARGE, 1},
	{"charge.refunded", STRIPE_CHARGE, 2},
	{"charge.refund.updated", STRIPE_REFUND, 2},
};

StripeKind
stripe_event_kind(const char *type, int *rank)
{
	size_t		i;

	for (i = 0; i < sizeof(type_ranks) / sizeof(type_ranks[0]); i++)
		if (strcmp(type, type_ranks[i].type) == 0)
		{
			*rank = type_ranks[i].rank;
			return type_ranks[i].kind;
		}
	*rank = 0;
	return STRIPE_OTHER;
}

bool
stripe_status_active(const char *status)
{
	return strcmp(status, "active") == 0 || strcmp(status, "past_due") == 0;
}

/* the parse state: the event and the result of the first error */
typedef struct Reader
{
	StripeEvent *ev;
	StripeParseStatus status;
} Reader;

static bool Fail(Reader *r, StripeParseStatus st, const char *path, const char *fmt,...)
			__attribute__((format(printf, 4, 5)));

static bool
Fail(Reader *r, StripeParseStatus st, const char *path, const char *fmt,...)
{
	va_list		ap;

	if (r->status != STRIPE_PARSE_OK)
		return false;
	r->status = st;
	snprintf(r->ev->error_path, sizeof(r->ev->error_path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(r->ev->error, sizeof(r->ev->error), fmt, ap);
	va_end(ap);
	return false;
}

/* path + "." + key, into buf */
static const char *
Path(char *buf, size_t size, const char *path, const char *key)
{
	size_t		plen = strlen(path);
	size_t		klen = strlen(key);

	/* truncated if too long: the path is only for the message */
	if (plen > size - 1)
		plen = size - 1;
	memmove(buf, path, plen);
	if (plen + 1 < size)
		buf[plen++] = '.';
	if (klen > size - 1 - plen)
		klen = size - 1 - plen;
	memcpy(buf + plen, key, klen);
	buf[plen + klen] = '\0';
	return buf;
}

/*
 * A string member into dst (size bytes with the NUL).  Missing or null:
 * an error if required, else dst = "".
 */
static bool
GetString(Reader *r, json_t *obj, const char *path, const char *key,
		  char *dst, size_t size, bool required)
{
	json_t	   *v = json_object_get(obj, key);
	char		p[256];

	dst[0] = '\0';
	if (v == NULL || json_is_null(v))
	{
		if (required)
			return Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "required field is missing");
		return true;
	}
	if (!json_is_string(v))
		return Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "must be a string");
	if (json_string_length(v) >= size)
		return Fail(r, STRIPE_PARSE_LIMIT, Path(p, sizeof(p), path, key),
					"is longer than %zu bytes", size - 1);
	if (required && json_string_length(v) == 0)
		return Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "must not be empty");
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return true;
}

/* an integer member in [min, max]; missing or null: dflt unless required */
static bool
GetInt(Reader *r, json_t *obj, const char *path, const char *key, int64_t *dst,
	   int64_t min, int64_t max, bool required, int64_t dflt)
{
	json_t	   *v = json_object_get(obj, key);
	char		p[256];

	*dst = dflt;
	if (v == NULL || json_is_null(v))
	{
		if (required)
			return Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "required field is missing");
		return true;
	}
	if (!json_is_integer(v))
		return Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "must be an integer");
	if (json_integer_value(v) < min || json_integer_value(v) > max)
		return Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key),
					"is out of range (%lld to %lld)", (long long) min, (long long) max);
	*dst = (int64_t) json_integer_value(v);
	return true;
}

/* a member that must be an object (NULL with an error if not) */
static json_t *
GetObject(Reader *r, json_t *obj, const char *path, const char *key, bool required)
{
	json_t	   *v = json_object_get(obj, key);
	char		p[256];

	if (v == NULL || json_is_null(v))
	{
		if (required)
			Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "required field is missing");
		return NULL;
	}
	if (!json_is_object(v))
	{
		Fail(r, STRIPE_PARSE_INVALID, Path(p, sizeof(p), path, key), "must be an object");
		return NULL;
	}
	return v;
}

/* a list object's "data" array (obj.key.data), NULL if absent */
static json_t *
GetListData(Reader *r, json_t *obj, const char *path, const char *key, bool required,
			char *datapath, size_t size)
{
	json_t	   *list = GetObject(r, obj, path, key, required);
	json_t	   *data;
	char		p[256];

	if (list == NULL)
		return NULL;
	Path(p, sizeof(p), path, key);
	Path(datapath, size, p, "data");
	data = json_object_get(list, "data");
	if (data == NULL || !json_is_array(data))
	{
		Fail(r, STRIPE_PARSE_INVALID, datapath, data ? "must be an array" : "required field is missing");
		return NULL;
	}
	return data;
}

static const int64_t TIME_MAX = INT64_C(253402300799);	/* 9999-12-31 23:59:59 UTC */

/* customer: email, metadata.account_id, deleted */
static bool
ReadCustomer(Reader *r, json_t *o, const char *path)
{
	StripeEvent *ev = r->ev;
	json_t	   *meta;
	json_t	   *del = json_object_get(o, "deleted");
	char		mp[256];

	if (!GetString(r, o, path, "email", ev->email, sizeof(ev->email), false))
		return false;
	ev->has_email = ev->email[0] != '\0';
	ev->deleted = (del != NULL && json_is_true(del)) || strcmp(ev->type, "customer.deleted") == 0;
	if (!GetInt(r, o, path, "created", &ev->object_created, 0, TIME_MAX, false, ev->created))
		return false;
	meta = GetObject(r, o, path, "metadata", false);
	if (r->status != STRIPE_PARSE_OK)
		return false;
	if (meta != NULL)
	{
		json_t	   *a = json_object_get(meta, "account_id");

		Path(mp, sizeof(mp), path, "metadata.account_id");
		if (a != NULL && !json_is_null(a))
		{
			/* metadata values are strings in Stripe; an integer is taken too */
			if (json_is_integer(a))
				ev->account_id = (int64_t) json_integer_value(a);
			else if (json_is_string(a))
			{
				const char *s = json_string_value(a);
				size_t		i,
							n = json_string_length(a);

				if (n == 0 || n > 18)
					return Fail(r, STRIPE_PARSE_INVALID, mp, "must be a positive integer");
				for (i = 0; i < n; i++)
				{
					if (s[i] < '0' || s[i] > '9')
						return Fail(r, STRIPE_PARSE_INVALID, mp, "must be a positive integer");
					ev->account_id = ev->account_id * 10 + (s[i] - '0');
				}
			}
			else
				return Fail(r, STRIPE_PARSE_INVALID, mp, "must be a positive integer");
			if (ev->account_id <= 0)
				return Fail(r, STRIPE_PARSE_INVALID, mp, "must be a positive integer");
		}
	}
	return true;
}

/* subscription: status, items with their prices, discount, end times */
static bool
ReadSubscription(Reader *r, json_t *o, const char *path)
{
	StripeEvent *ev = r->ev;
	char		dp[256];
	char		ip[288];
	char		pp[256];
	json_t	   *data;
	json_t	   *disc;
	size_t		i;

	if (!GetString(r, o, path, "customer", ev->customer, sizeof(ev->customer), true) ||
		!GetString(r, o, path, "status", ev->status, sizeof(ev->status), true) ||
		!GetInt(r, o, path, "created", &ev->object_created, 0, TIME_MAX, true, 0) ||
		!GetInt(r, o, path, "canceled_at", &ev->canceled_at, 0, TIME_MAX, false, 0) ||
		!GetInt(r, o, path, "ended_at", &ev->ended_at, 0, TIME_MAX, false, 0))
		return false;
	data = GetListData(r, o, path, "items", true, dp, sizeof(dp));
	if (data == NULL)
		return false;
	if (json_array_size(data) > STRIPE_MAX_ITEMS)
		return Fail(r, STRIPE_PARSE_LIMIT, dp, "has more than %d items", STRIPE_MAX_ITEMS);
	for (i = 0; i < json_array_size(data); i++)
	{
		json_t	   *item = json_array_get(data, i);
		json_t	   *price;
		json_t	   *rec;
		StripeItem *it = &ev->items[ev->nitems];

		memset(it, 0, sizeof(*it));
		snprintf(ip, sizeof(ip), "%s[%zu]", dp, i);
		if (!json_is_object(item))
			return Fail(r, STRIPE_PARSE_INVALID, ip, "must be an object");
		if (!GetInt(r, item, ip, "quantity", &it->quantity, 0, MAX_QUANTITY, false, 1))
			return false;
		price = GetObject(r, item, ip, "price", true);
		if (price == NULL)
			return false;
		Path(pp, sizeof(pp), ip, "price");
		if (!GetString(r, price, pp, "id", it->price_id, sizeof(it->price_id), true) ||
			!GetInt(r, price, pp, "unit_amount", &it->unit_amount, 0, MAX_AMOUNT, true, 0) ||
			!GetString(r, price, pp, "currency", it->currency, sizeof(it->currency), true))
			return false;
		rec = GetObject(r, price, pp, "recurring", true);
		if (rec == NULL)
			return false;
		Path(ip, sizeof(ip), pp, "recurring");
		if (!GetString(r, rec, ip, "interval", it->interval, sizeof(it->interval), true) ||
			!GetInt(r, rec, ip, "interval_count", &it->interval_count, 1, 1000, false, 1))
			return false;
		if (strcmp(it->interval, "day") != 0 && strcmp(it->interval, "week") != 0 &&
			strcmp(it->interval, "month") != 0 && strcmp(it->interval, "year") != 0)
			return Fail(r, STRIPE_PARSE_INVALID, Path(pp, sizeof(pp), ip, "interval"),
						"must be day, week, month or year");
		if (ev->nitems > 0 && strcmp(it->currency, ev->items[0].currency) != 0)
			return Fail(r, STRIPE_PARSE_INVALID, Path(ip, sizeof(ip), pp, "currency"),
						"differs from the first item's currency");
		ev->nitems++;
	}
	if (ev->nitems == 0)
		return Fail(r, STRIPE_PARSE_INVALID, dp, "must not be empty");
	if (stripe_interval_lcm(ev) == 0)
		return Fail(r, STRIPE_PARSE_LIMIT, dp, "interval counts have a common multiple over %d", STRIPE_MAX_LCM);
	memcpy(ev->currency, ev->items[0].currency, sizeof(ev->currency));

	disc = GetObject(r, o, path, "discount", false);
	if (r->status != STRIPE_PARSE_OK)
		return false;
	if (disc != NULL)
	{
		json_t	   *coupon;
		json_t	   *pct;

		Path(dp, sizeof(dp), path, "discount");
		coupon = GetObject(r, disc, dp, "coupon", true);
		if (coupon == NULL)
			return false;
		if (!GetInt(r, disc, dp, "end", &ev->discount_end, 0, TIME_MAX, false, 0))
			return false;
		Path(ip, sizeof(ip), dp, "coupon");
		if (!GetInt(r, coupon, ip, "amount_off", &ev->amount_off, 0, MAX_AMOUNT, false, 0))
			return false;
		pct = json_object_get(coupon, "percent_off");
		if (pct != NULL && !json_is_null(pct))
		{
			if (!json_is_number(pct) || json_number_value(pct) < 0 || json_number_value(pct) > 100)
				return Fail(r, STRIPE_PARSE_INVALID, Path(pp, sizeof(pp), ip, "percent_off"),
							"must be a number from 0 to 100");
			ev->percent_off = json_number_value(pct);
		}
		ev->has_discount = true;
	}
	ev->mrr_cents = stripe_subscription_mrr(ev, ev->created);
	return true;
}

static bool
ReadInvoice(Reader *r, json_t *o, const char *path)
{
	StripeEvent *ev = r->ev;

	return GetString(r, o, path, "customer", ev->customer, sizeof(ev->customer), true) &&
		GetString(r, o, path, "status", ev->status, sizeof(ev->status), true) &&
		GetString(r, o, path, "currency", ev->currency, sizeof(ev->currency), true) &&
		GetString(r, o, path, "subscription", ev->subscription, sizeof(ev->subscription), false) &&
		GetInt(r, o, path, "created", &ev->object_created, 0, TIME_MAX, true, 0) &&
		GetInt(r, o, path, "total", &ev->total, -MAX_AMOUNT, MAX_AMOUNT, true, 0) &&
		GetInt(r, o, path, "amount_paid", &ev->amount_paid, 0, MAX_AMOUNT, true, 0) &&
		GetInt(r, o, path, "tax", &ev->tax, -MAX_AMOUNT, MAX_AMOUNT, false, 0);
}

/* a refund object at path (in a charge's list, or an event's object) */
static bool
ReadRefund(Reader *r, json_t *o, const char *path, StripeRefund *rf, char *charge, size_t chargesize)
{
	return GetString(r, o, path, "id", rf->id, sizeof(rf->id), true) &&
		GetInt(r, o, path, "amount", &rf->amount, 0, MAX_AMOUNT, true, 0) &&
		GetString(r, o, path, "currency", rf->currency, sizeof(rf->currency), true) &&
		GetString(r, o, path, "status", rf->status, sizeof(rf->status), true) &&
		GetInt(r, o, path, "created", &rf->created, 0, TIME_MAX, true, 0) &&
		GetString(r, o, path, "charge", charge, chargesize, charge != NULL);
}

static bool
ReadCharge(Reader *r, json_t *o, const char *path)
{
	StripeEvent *ev = r->ev;
	json_t	   *data;
	char		dp[256];
	char		ip[288];
	char		unused[STRIPE_MAX_ID];
	size_t		i;

	if (!GetString(r, o, path, "customer", ev->customer, sizeof(ev->customer), false) ||
		!GetString(r, o, path, "status", ev->status, sizeof(ev->status), true) ||
		!GetString(r, o, path, "currency", ev->currency, sizeof(ev->currency), true) ||
		!GetString(r, o, path, "invoice", ev->invoice, sizeof(ev->invoice), false) ||
		!GetInt(r, o, path, "created", &ev->object_created, 0, TIME_MAX, true, 0) ||
		!GetInt(r, o, path, "amount", &ev->amount, 0, MAX_AMOUNT, true, 0) ||
		!GetInt(r, o, path, "amount_refunded", &ev->amount_refunded, 0, ev->amount, false, 0))
		return false;
	data = GetListData(r, o, path, "refunds", false, dp, sizeof(dp));
	if (r->status != STRIPE_PARSE_OK)
		return false;
	if (data == NULL)
		return true;
	if (json_array_size(data) > STRIPE_MAX_REFUNDS)
		return Fail(r, STRIPE_PARSE_LIMIT, dp, "has more than %d refunds", STRIPE_MAX_REFUNDS);
	for (i = 0; i < json_array_size(data); i++)
	{
		json_t	   *rf = json_array_get(data, i);

		snprintf(ip, sizeof(ip), "%s[%zu]", dp, i);
		if (!json_is_object(rf))
			return Fail(r, STRIPE_PARSE_INVALID, ip, "must be an object");
		memset(&ev->refunds[ev->nrefunds], 0, sizeof(StripeRefund));
		if (!ReadRefund(r, rf, ip, &ev->refunds[ev->nrefunds], unused, sizeof(unused)))
			return false;
		ev->nrefunds++;
	}
	return true;
}

/*
 * jansson's allocations during stripe_event_parse() come from a 256 kB
 * arena kept for the life of the process and reset per event: a document
 * is many small objects, and malloc/free of each cost more than parsing.
 * Outside stripe_event_parse() (the license parser), and when the arena is
 * full, allocation falls through to malloc; free() ignores arena pointers.
 */
#define ARENA_SIZE (256 * 1024)
static char *arena;
static size_t arena_used;
static bool arena_active;

static void *
ArenaMalloc(size_t n)
{
	if (arena_active)
	{
		size_t		need = (n + 15) & ~(size_t) 15;

		if (need <= ARENA_SIZE - arena_used)
		{
			void	   *p = arena + arena_used;

			arena_used += need;
			return p;
		}
	}
	return malloc(n);
}

static void
ArenaFree(void *p)
{
	if (p != NULL && arena != NULL && (char *) p >= arena && (char *) p < arena + ARENA_SIZE)
		return;
	free(p);
}

/* start using the arena (false if it could not be allocated) */
static void
ArenaBegin(void)
{
	if (arena == NULL)
	{
		arena = malloc(ARENA_SIZE);
		if (arena == NULL)
			return;
		json_set_alloc_funcs(ArenaMalloc, ArenaFree);
	}
	arena_used = 0;
	arena_active = true;
}

/*
 * Zero an event but its item and refund arrays beyond the first of each
 * (about 19 kB of the struct's 22 kB), which the readers zero as they fill
 * them: a memset of the whole struct was a visible part of an event's cost.
 */
static void
ZeroEvent(StripeEvent *ev)
{
	char	   *p = (char *) ev;
	size_t		mid = offsetof(StripeEvent, has_discount);
	size_t		tail = offsetof(StripeEvent, charge);

	memset(p, 0, offsetof(StripeEvent, items) + sizeof(StripeItem));
	memset(p + mid, 0, offsetof(StripeEvent, refunds) + sizeof(StripeRefund) - mid);
	memset(p + tail, 0, sizeof(StripeEvent) - tail);
}

StripeParseStatus
stripe_event_parse(const char *json, size_t len, StripeEvent *ev)
{
	Reader		r = {ev, STRIPE_PARSE_OK};
	json_error_t jerr;
	json_t	   *root;
	json_t	   *data;
	json_t	   *o = NULL;
	const char *op = "$.data.object";

	ZeroEvent(ev);
	if (len > STRIPE_MAX_PAYLOAD)
	{
		Fail(&r, STRIPE_PARSE_LIMIT, "$", "payload is longer than %d bytes", STRIPE_MAX_PAYLOAD);
		return r.status;
	}
	ArenaBegin();
	root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL)
	{
		arena_active = false;
		Fail(&r, STRIPE_PARSE_INVALID, "$", "%s at character %d", jerr.text, jerr.position);
		return r.status;
	}
	if (!json_is_object(root))
		Fail(&r, STRIPE_PARSE_INVALID, "$", "must be an object");
	else if (GetString(&r, root, "$", "id", ev->id, sizeof(ev->id), true) &&
			 GetString(&r, root, "$", "type", ev->type, sizeof(ev->type), true) &&
			 GetInt(&r, root, "$", "created", &ev->created, 0, TIME_MAX, true, 0) &&
			 (data = GetObject(&r, root, "$", "data", true)) != NULL &&
			 (o = GetObject(&r, data, "$.data", "object", true)) != NULL)
	{
		ev->kind = stripe_event_kind(ev->type, &ev->rank);
		if (ev->kind != STRIPE_OTHER &&
			GetString(&r, o, op, "id", ev->object_id, sizeof(ev->object_id), true))
		{
			switch (ev->kind)
			{
				case STRIPE_CUSTOMER:
					memcpy(ev->customer, ev->object_id, sizeof(ev->customer));
					ReadCustomer(&r, o, op);
					break;
				case STRIPE_SUBSCRIPTION:
					ReadSubscription(&r, o, op);
					break;
				case STRIPE_INVOICE:
					ReadInvoice(&r, o, op);
					break;
				case STRIPE_CHARGE:
					ReadCharge(&r, o, op);
					break;
				case STRIPE_REFUND:
					if (ReadRefund(&r, o, op, &ev->refunds[0], ev->charge, sizeof(ev->charge)))
					{
						ev->nrefunds = 1;
						memcpy(ev->status, ev->refunds[0].status, sizeof(ev->status));
						memcpy(ev->currency, ev->refunds[0].currency, sizeof(ev->currency));
						ev->amount = ev->refunds[0].amount;
						ev->object_created = ev->refunds[0].created;
					}
					break;
				case STRIPE_OTHER:
					break;
			}
		}
	}
	json_decref(root);
	arena_active = false;
	return r.status;
}

/* billing periods per year of an item's interval (before interval_count) */
static int64_t
PeriodsPerYear(const StripeItem *it)
{
	if (strcmp(it->interval, "day") == 0)
		return 365;
	if (strcmp(it->interval, "week") == 0)
		return 52;
	if (strcmp(it->interval, "month") == 0)
		return 12;
	return 1;
}

static int64_t
Gcd(int64_t a, int64_t b)
{
	while (b != 0)
	{
		int64_t		t = a % b;

		a = b;
		b = t;
	}
	return a;
}

/* the least common multiple of the items' interval counts, 0 if over STRIPE_MAX_LCM */
int64_t
stripe_interval_lcm(const StripeEvent *ev)
{
	int64_t		lcm = 1;
	int			i;

	for (i = 0; i < ev->nitems; i++)
	{
		lcm = lcm / Gcd(lcm, ev->items[i].interval_count) * ev->items[i].interval_count;
		if (lcm > STRIPE_MAX_LCM)
			return 0;
	}
	return lcm;
}

/*
 * Exact: MRR = (sum of unit_amount x quantity x periods per year /
 * interval_count, less the discount) / 12, rounded half away from zero
 * once, with 128-bit numerators over the denominator 12 x lcm x 10^6 (the
 * percentage is taken to 4 decimals).
 */
int64_t
stripe_subscription_mrr(const StripeEvent *ev, int64_t at)
{
	__int128	num = 0;
	__int128	den;
	int64_t		lcm = stripe_interval_lcm(ev);
	int			i;

	if (!stripe_status_active(ev->status) || ev->nitems == 0 || lcm == 0)
		return 0;
	for (i = 0; i < ev->nitems; i++)
		num += (__int128) ev->items[i].unit_amount * ev->items[i].quantity *
			PeriodsPerYear(&ev->items[i]) * (lcm / ev->items[i].interval_count);
	num *= 1000000;
	den = (__int128) 12 * lcm * 1000000;
	if (ev->has_discount && (ev->discount_end == 0 || ev->discount_end > at))
	{
		int64_t		pct = llround(ev->percent_off * 10000);	/* 0 .. 1,000,000 */

		num = num / 1000000 * (1000000 - pct);
		num -= (__int128) ev->amount_off * PeriodsPerYear(&ev->items[0]) *
			(lcm / ev->items[0].interval_count) * 1000000;
	}
	if (num <= 0)
		return 0;
	return (int64_t) ((2 * num + den) / (2 * den));
}
