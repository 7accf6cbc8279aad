/*-------------------------------------------------------------------------
 *
 * stripe_core.h
 *	  A Stripe webhook event, without the backend: the fields the payments
 *	  ledger keeps, read from the raw JSON with jansson into a fixed-size
 *	  struct (no allocation survives the call: the document is freed before
 *	  returning), the ordering rank of each event type, and a subscription's
 *	  MRR.  Unit-tested and fuzzed outside the server.
 *
 *	  Ordering (stripe.c): per object the event with the greatest
 *	  (created, rank, arrival) wins.  The rank says what can only come later
 *	  in an object's life: created 1 < updated 2 < deleted 3 (customers,
 *	  subscriptions); finalized 1 < payment_failed 2 < paid = voided 3
 *	  (invoices); succeeded = failed 1 < refunded 2 (charges); a refund
 *	  listed by charge.refunded 1 < charge.refund.updated 2.
 *
 *-------------------------------------------------------------------------
 */
#ifndef STRIPE_CORE_H
#define STRIPE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* the documented limits of one event */
#define STRIPE_MAX_PAYLOAD (1024 * 1024)	/* bytes of raw JSON */
#define STRIPE_MAX_ID 256		/* bytes of an id, with the NUL */
#define STRIPE_MAX_ITEMS 32		/* subscription items */
#define STRIPE_MAX_REFUNDS 32	/* refunds listed in one charge */
#define STRIPE_MAX_EMAIL 321
#define STRIPE_MAX_LCM 1000		/* of the items' interval counts */

typedef enum StripeKind
{
	STRIPE_OTHER = 0,			/* a type the ledger keeps but does not model */
	STRIPE_CUSTOMER,
	STRIPE_SUBSCRIPTION,
	STRIPE_INVOICE,
	STRIPE_CHARGE,
	STRIPE_REFUND
} StripeKind;

typedef enum StripeParseStatus
{
	STRIPE_PARSE_OK = 0,
	STRIPE_PARSE_INVALID,		/* not JSON, or a required field missing/mistyped */
	STRIPE_PARSE_LIMIT			/* over a documented limit */
} StripeParseStatus;

typedef struct StripeItem
{
	char		price_id[STRIPE_MAX_ID];
	int64_t		unit_amount;	/* cents per interval per unit */
	int64_t		quantity;
	char		interval[16];	/* day, week, month, year */
	int64_t		interval_count;
	char		currency[8];
} StripeItem;

typedef struct StripeRefund
{
	char		id[STRIPE_MAX_ID];
	int64_t		amount;
	char		currency[8];
	char		status[32];
	int64_t		created;
} StripeRefund;

typedef struct StripeEvent
{
	/* the envelope */
	char		id[STRIPE_MAX_ID];
	char		type[64];
	int64_t		created;		/* unix seconds */
	StripeKind	kind;
	int			rank;
	/* data.object */
	char		object_id[STRIPE_MAX_ID];
	char		customer[STRIPE_MAX_ID];	/* "" if none */
	char		status[32];
	char		currency[8];
	int64_t		object_created;
	/* customer */
	char		email[STRIPE_MAX_EMAIL];
	bool		has_email;
	int64_t		account_id;		/* metadata.account_id, 0 if none */
	bool		deleted;
	/* subscription */
	int			nitems;
	StripeItem	items[STRIPE_MAX_ITEMS];
	bool		has_discount;
	double		percent_off;	/* 0..100 */
	int64_t		amount_off;		/* cents per billing period */
	int64_t		discount_end;	/* 0 if none */
	int64_t		canceled_at;	/* 0 if none */
	int64_t		ended_at;		/* 0 if none */
	int64_t		mrr_cents;		/* stripe_subscription_mrr() */
	/* invoice */
	char		subscription[STRIPE_MAX_ID];
	int64_t		total;
	int64_t		amount_paid;
	int64_t		tax;
	/* charge */
	int64_t		amount;
	int64_t		amount_refunded;
	char		invoice[STRIPE_MAX_ID];
	int			nrefunds;
	StripeRefund refunds[STRIPE_MAX_REFUNDS];
	/* refund: the charge it belongs to */
	char		charge[STRIPE_MAX_ID];
	/* on error: what and where ("$.data.object.id") */
	char		error[256];
	char		error_path[256];
} StripeEvent;

/*
 * Read an event.  On error returns INVALID or LIMIT with ev->error and
 * ev->error_path set.  An event of a type not modeled parses as
 * STRIPE_OTHER if its envelope (id, type, created, data.object) is valid.
 */
extern StripeParseStatus stripe_event_parse(const char *json, size_t len, StripeEvent *ev);

/* the kind and rank of an event type (kind STRIPE_OTHER: not modeled) */
extern StripeKind stripe_event_kind(const char *type, int *rank);

/*
 * Monthly recurring revenue of a subscription in cents at time "at":
 * every item's unit_amount x quantity normalized to a month (year / 12,
 * week x 52 / 12, day x 365 / 12, divided by interval_count), less the
 * discount while it lasts (percent off to 4 decimals, or amount off per
 * billing period of the first item normalized the same way), never below
 * 0; 0 unless the status counts as a customer (stripe_status_active).
 * Computed exactly and rounded once, half away from zero.
 */
extern int64_t stripe_subscription_mrr(const StripeEvent *ev, int64_t at);

/* lcm of the items' interval counts; 0 if over STRIPE_MAX_LCM */
extern int64_t stripe_interval_lcm(const StripeEvent *ev);

/* statuses of a subscription that count as a customer: active, past_due */
extern bool stripe_status_active(const char *status);

#endif							/* STRIPE_CORE_H */
