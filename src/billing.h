/*-------------------------------------------------------------------------
 *
 * billing.h
 *	  Plans and prices as the proration core needs them, loaded from the
 *	  extension's tables; shared by invoices (invoice.c) and the revenue
 *	  KPI (kpi.c).
 *
 *-------------------------------------------------------------------------
 */
#ifndef BILLING_H
#define BILLING_H

#include "utils/date.h"

#include "proration.h"

/* a plan: its name and price history */
typedef struct BillingPlan
{
	ProrationPlan plan;
	char	   *name;
} BillingPlan;

/*
 * Every plan with its prices, sorted by plan_id (SPI must be connected).
 * lock_plans: lock them FOR KEY SHARE.
 */
extern BillingPlan *LoadBillingPlans(MemoryContext cxt, bool lock_plans, int *nplans);
/* the plan, which must exist */
extern BillingPlan *FindBillingPlan(BillingPlan *plans, int nplans, int32 plan_id);
/* raise the error of a failed proration of an account's month */
extern void ReportProrationError(ProrationStatus status, const ProrationResult *r,
								 BillingPlan *plans, int nplans, int64 account_id, DateADT month);

#endif							/* BILLING_H */
