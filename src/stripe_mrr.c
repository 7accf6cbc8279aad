/*-------------------------------------------------------------------------
 *
 * stripe_mrr.c
 *	  MRR from the subscription history: per account and month, and the
 *	  monthly MRR movements (ChartMogul's definitions).
 *
 * Design note.  One ordered scan of dogdb.stripe_subscription_versions
 * (account, currency, subscription, then newest-wins order).  Per account
 * and currency, each subscription's versions are laid over an array of
 * months: the state at the end of a month is the last version created
 * before the month ended.  The account's MRR at a month end is the sum
 * over its subscriptions; it is a customer then if one of them is active
 * or past_due.  From two consecutive month ends, its movement:
 *
 *	  not a customer -> customer	new (never a customer before) or reactivation
 *	  customer -> not a customer	churned (no active subscription remains)
 *	  customer -> customer			expansion or contraction by the MRR change
 *
 * Amounts are signed (contraction and churn negative), in cents, per
 * currency (no conversion).  Months are UTC calendar months.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "calendar.h"
#include "common.h"
#include "stripe.h"

PG_FUNCTION_INFO_V1(dogdb_stripe_account_mrr);
PG_FUNCTION_INFO_V1(dogdb_stripe_mrr_movements);

/* the per-(account, currency) months being built */
typedef struct AccountMonths
{
	int32		lo;				/* month of index 0 */
	int32		n;				/* months lo .. lo + n - 1 */
	int64	   *mrr;
	bool	   *active;
} AccountMonths;

/* one currency's movement totals over the requested months */
typedef struct CurrencyTotals
{
	char		currency[8];
	int64	   *v;				/* [month][MOVE_COLS] */
} CurrencyTotals;

enum
{
	C_MRR_START, C_NEW, C_EXPANSION, C_CONTRACTION, C_CHURNED, C_REACTIVATION,
	C_MRR_END, C_CUST_START, C_CUST_NEW, C_CUST_REACTIVATED, C_CUST_CHURNED, C_CUST_END,
	MOVE_COLS
};

typedef void (*GroupCallback) (void *arg, int64 account, const char *currency, AccountMonths *am);

/* months since 2000-01 of a date that DogdbMonthArg() accepted */
static int32
MonthOfDate(DateADT d)
{
	return cal_month_of_day(d);
}

static DateADT
DateOfMonth(int32 m)
{
	return (DateADT) cal_month_first_day(m);
}

/* add one subscription's state over months [from, to] (clipped) */
static void
Fill(AccountMonths *am, int32 from, int32 to, int64 mrr, bool active)
{
	int32		m;

	if (from < am->lo)
		from = am->lo;
	if (to > am->lo + am->n - 1)
		to = am->lo + am->n - 1;
	for (m = from; m <= to; m++)
	{
		am->mrr[m - am->lo] += mrr;
		am->active[m - am->lo] |= active;
	}
}

/*
 * Scan the versions created before the end of month "to" and call cb once
 * per (account, currency) with its month-end MRR and customer flags over
 * months lo .. to, lo being the month of the first version of all.
 */
static void
ScanAccounts(int32 to, GroupCallback cb, void *arg)
{
	Datum		endarg = TimestampTzGetDatum((TimestampTz) cal_month_first_day(to + 1) * USECS_PER_DAY);
	Oid			argtype = TIMESTAMPTZOID;
	SPIPlanPtr	plan;
	Portal		portal;
	AccountMonths am = {0};
	int64		cur_account = 0;
	char		cur_currency[8] = "";
	char		cur_sub[STRIPE_MAX_ID] = "";
	bool		have_group = false;
	int32		sub_month = -1;
	int64		sub_mrr = 0;
	bool		sub_active = false;
	bool		isnull;

	/* the first month of all */
	DogdbSpiExecute("SELECT min(event_created) FROM dogdb.stripe_subscription_versions", false, 0, SPI_OK_SELECT);
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		if (isnull)
			return;
		am.lo = cal_month_of_timestamp(DatumGetTimestampTz(d));
	}
	if (am.lo > to)
		return;
	am.n = to - am.lo + 1;
	am.mrr = palloc(am.n * sizeof(int64));
	am.active = palloc(am.n * sizeof(bool));

	plan = DogdbSpiPrepare("SELECT account_id, currency, subscription_id, event_created, status, mrr_cents"
						   " FROM dogdb.stripe_subscription_versions WHERE event_created < $1"
						   " ORDER BY account_id, currency, subscription_id, event_created, event_rank, event_arrival",
						   1, &argtype);
	portal = SPI_cursor_open(NULL, plan, &endarg, NULL, true);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		i;
		uint64		n;

		SPI_cursor_fetch(portal, true, 10000);
		n = SPI_processed;
		tt = SPI_tuptable;
		for (i = 0; i <= n; i++)
		{
			int64		account = 0;
			char	   *currency = NULL;
			char	   *sub = NULL;
			bool		new_group;

			/* i == n on the last (empty) fetch closes the last group */
			if (i < n)
			{
				account = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 1, &isnull));
				currency = SPI_getvalue(tt->vals[i], tt->tupdesc, 2);
				sub = SPI_getvalue(tt->vals[i], tt->tupdesc, 3);
			}
			else if (n > 0)
				break;
			new_group = i == n || account != cur_account || strcmp(currency, cur_currency) != 0;
			/* the subscription before ends: it holds until month "to" */
			if (have_group && (new_group || strcmp(sub, cur_sub) != 0))
				Fill(&am, sub_month, to, sub_mrr, sub_active);
			if (have_group && new_group)
				cb(arg, cur_account, cur_currency, &am);
			if (i == n)
				break;
			if (new_group)
			{
				memset(am.mrr, 0, am.n * sizeof(int64));
				memset(am.active, 0, am.n * sizeof(bool));
				cur_account = account;
				strlcpy(cur_currency, currency, sizeof(cur_currency));
				have_group = true;
				cur_sub[0] = '\0';
			}
			if (strcmp(sub, cur_sub) != 0)
			{
				strlcpy(cur_sub, sub, sizeof(cur_sub));
				sub_month = -1;
			}
			{
				int32		m = cal_month_of_timestamp(DatumGetTimestampTz(SPI_getbinval(tt->vals[i], tt->tupdesc, 4, &isnull)));
				char	   *status = SPI_getvalue(tt->vals[i], tt->tupdesc, 5);

				/* the previous version holds until the month before this one */
				if (sub_month >= 0 && m > sub_month)
					Fill(&am, sub_month, m - 1, sub_mrr, sub_active);
				if (sub_month < 0 || m > sub_month)
					sub_month = m;
				sub_mrr = DatumGetInt64(SPI_getbinval(tt->vals[i], tt->tupdesc, 6, &isnull));
				sub_active = stripe_status_active(status);
				pfree(status);
			}
			pfree(currency);
			pfree(sub);
		}
		SPI_freetuptable(tt);
		CHECK_FOR_INTERRUPTS();
		if (n == 0)
			break;
	}
	SPI_cursor_close(portal);
}

/* dogdb.stripe_account_mrr(from_month, to_month): rows where a customer or MRR > 0 */
typedef struct AccountMrrState
{
	Tuplestorestate *store;
	TupleDesc	desc;
	int32		from;
	int32		to;
} AccountMrrState;

static void
EmitAccountMonths(void *arg, int64 account, const char *currency, AccountMonths *am)
{
	AccountMrrState *st = arg;
	int32		m;

	for (m = Max(st->from, am->lo); m <= st->to; m++)
	{
		Datum		values[5];
		bool		nulls[5] = {false, false, false, false, false};
		int32		k = m - am->lo;

		if (!am->active[k] && am->mrr[k] == 0)
			continue;
		values[0] = Int64GetDatum(account);
		values[1] = CStringGetTextDatum(currency);
		values[2] = DateADTGetDatum(DateOfMonth(m));
		values[3] = Int64GetDatum(am->mrr[k]);
		values[4] = BoolGetDatum(am->active[k]);
		tuplestore_putvalues(st->store, st->desc, values, nulls);
	}
}

static void
CheckRange(int32 from, int32 to)
{
	if (from > to)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("from_month must be on or before to_month"),
				 errhint("Both months are included.")));
}

Datum
dogdb_stripe_account_mrr(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	AccountMrrState st;
	int			save_nestlevel;

	st.from = MonthOfDate(DogdbMonthArg(fcinfo, 0, "from_month"));
	st.to = MonthOfDate(DogdbMonthArg(fcinfo, 1, "to_month"));
	CheckRange(st.from, st.to);
	SetSingleFuncCall(fcinfo, 0);
	st.store = rsinfo->setResult;
	st.desc = rsinfo->setDesc;
	save_nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();
	ScanAccounts(st.to, EmitAccountMonths, &st);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(save_nestlevel);
	return (Datum) 0;
}

/* the movements */
typedef struct MovementState
{
	int32		from;
	int32		to;
	List	   *currencies;		/* of CurrencyTotals */
	MemoryContext cxt;
} MovementState;

static int64 *
TotalsOf(MovementState *st, const char *currency)
{
	ListCell   *lc;
	CurrencyTotals *ct;
	MemoryContext old;

	foreach(lc, st->currencies)
	{
		ct = lfirst(lc);
		if (strcmp(ct->currency, currency) == 0)
			return ct->v;
	}
	old = MemoryContextSwitchTo(st->cxt);
	ct = palloc0(sizeof(CurrencyTotals));
	strlcpy(ct->currency, currency, sizeof(ct->currency));
	ct->v = palloc0((st->to - st->from + 1) * MOVE_COLS * sizeof(int64));
	st->currencies = lappend(st->currencies, ct);
	MemoryContextSwitchTo(old);
	return ct->v;
}

static void
AddMovements(void *arg, int64 account, const char *currency, AccountMonths *am)
{
	MovementState *st = arg;
	int64	   *v = TotalsOf(st, currency);
	bool		ever = false;
	int32		m;

	for (m = am->lo; m <= st->to; m++)
	{
		int32		k = m - am->lo;
		bool		prev_active = k > 0 && am->active[k - 1];
		int64		prev_mrr = k > 0 ? am->mrr[k - 1] : 0;
		bool		cur_active = am->active[k];
		int64		cur_mrr = am->mrr[k];

		if (m >= st->from)
		{
			int64	   *r = v + (m - st->from) * MOVE_COLS;

			r[C_MRR_START] += prev_mrr;
			r[C_MRR_END] += cur_mrr;
			r[C_CUST_START] += prev_active;
			r[C_CUST_END] += cur_active;
			if (!prev_active && cur_active)
			{
				/* MRR an inactive account had (none, by the status rule) is kept whole */
				r[ever ? C_REACTIVATION : C_NEW] += cur_mrr - prev_mrr;
				r[ever ? C_CUST_REACTIVATED : C_CUST_NEW] += 1;
			}
			else if (prev_active && !cur_active)
			{
				r[C_CHURNED] += cur_mrr - prev_mrr;
				r[C_CUST_CHURNED] += 1;
			}
			else if (cur_mrr > prev_mrr)
				r[C_EXPANSION] += cur_mrr - prev_mrr;
			else
				r[C_CONTRACTION] += cur_mrr - prev_mrr;
		}
		ever |= cur_active;
	}
}

Datum
dogdb_stripe_mrr_movements(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MovementState st = {0};
	int			save_nestlevel;
	ListCell   *lc;
	int32		m;

	st.from = MonthOfDate(DogdbMonthArg(fcinfo, 0, "from_month"));
	st.to = MonthOfDate(DogdbMonthArg(fcinfo, 1, "to_month"));
	CheckRange(st.from, st.to);
	SetSingleFuncCall(fcinfo, 0);
	st.cxt = CurrentMemoryContext;
	save_nestlevel = DogdbPinSearchPath();
	DogdbSpiConnect();
	ScanAccounts(st.to, AddMovements, &st);
	DogdbSpiFinish();
	DogdbRestoreSearchPath(save_nestlevel);

	/* one row per month and currency seen */
	foreach(lc, st.currencies)
	{
		CurrencyTotals *ct = lfirst(lc);

		for (m = st.from; m <= st.to; m++)
		{
			Datum		values[2 + MOVE_COLS];
			bool		nulls[2 + MOVE_COLS];
			int64	   *r = ct->v + (m - st.from) * MOVE_COLS;
			int			c;

			memset(nulls, 0, sizeof(nulls));
			values[0] = DateADTGetDatum(DateOfMonth(m));
			values[1] = CStringGetTextDatum(ct->currency);
			for (c = 0; c < MOVE_COLS; c++)
				values[2 + c] = Int64GetDatum(r[c]);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	return (Datum) 0;
}
