/*-------------------------------------------------------------------------
 *
 * billing.h
 *	  Plans and prices as the proration core needs them, loaded from the
 *	  extension's tables (billing.c); shared by invoices (invoice.c) and the
 *	  revenue KPI.
 *
 *-------------------------------------------------------------------------
 */
#ifndef BILLING_H
#define BILLING_H

#include "datatype/timestamp.h"
#include "utils/date.h"

#include "proration.h"

/* a plan: its name and price history; plan.plan_id is the smallint key */
typedef struct BillingPlan
{
	ProrationPlan plan;
	char	   *name;
} BillingPlan;

/*
 * Every plan with its prices, sorted by plan_id, allocated in cxt (SPI must
 * be connected).  lock_plans: lock them FOR KEY SHARE.
 */
extern BillingPlan *LoadBillingPlans(MemoryContext cxt, bool lock_plans, int *nplans);
/* the plan, which must exist */
extern BillingPlan *FindBillingPlan(BillingPlan *plans, int nplans, int16 plan_id);
/* the UTC days a subscription covers: [date of valid_from, date of valid_to) */
extern ProrationSpan SubscriptionSpan(BillingPlan *plans, int nplans, int16 plan_id,
									  TimestampTz valid_from, bool open_ended, TimestampTz valid_to);
/* raise the error of a failed proration of an account's month */
extern void ReportProrationError(ProrationStatus status, const ProrationResult *r,
								 BillingPlan *plans, int nplans, int64 account_id, DateADT month);

#endif							/* BILLING_H */
