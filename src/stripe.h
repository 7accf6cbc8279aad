/*-------------------------------------------------------------------------
 *
 * stripe.h
 *	  Stripe webhooks into the payments ledger (backend side).
 *
 *	  stripe.c        dogdb_stripe_verify_signature(), the webhook secrets,
 *	                  dogdb_ingest_stripe_event(), dogdb_stripe_replay()
 *	  stripe_apply.c  one event into the ledger and the facts (SPI)
 *
 *	  Pure cores: stripe_sig.[ch] (header, constant-time compare) and
 *	  stripe_core.[ch] (event JSON, ranks, MRR).
 *
 *-------------------------------------------------------------------------
 */
#ifndef DOGDB_STRIPE_H
#define DOGDB_STRIPE_H

#include "postgres.h"

#include "stripe_core.h"

/* what became of an event */
typedef enum StripeOutcome
{
	STRIPE_APPLIED,
	STRIPE_DUPLICATE,
	STRIPE_STALE,
	STRIPE_IGNORED
} StripeOutcome;

extern const char *const stripe_outcome_names[];

/* raise 22P02 / 54000 for a parse error of an event */
extern void StripeReportParseError(StripeParseStatus st, const StripeEvent *ev);

/*
 * Insert the event into the ledger (unless it is there: DUPLICATE) and
 * apply it to the facts.  Caller is connected to SPI with search_path
 * pinned.
 */
extern StripeOutcome StripeIngest(const StripeEvent *ev, const char *payload, size_t len);

/*
 * Apply an event already in the ledger (arrival number given) to the
 * facts: replay, and events waiting for their customer or charge.  Events
 * that waited are applied if they arrived before horizon (the arrival of
 * the event being ingested or replayed).
 */
extern StripeOutcome StripeApply(const StripeEvent *ev, int64 arrival, int64 horizon);

#endif							/* DOGDB_STRIPE_H */
