-- Independent plain-SQL computation of the Stripe MRR figures straight from
-- the raw ledger (dogdb.stripe_events payloads as jsonb), sharing no code
-- with the extension: included (\ir) by test/pgtap/stripe.sql.
--
-- pg_temp.ref_account_months(to_month): account, currency, month, MRR at
-- the month end, customer flag (rows where either holds);
-- pg_temp.ref_movements(from_month, to_month): the movements per month and
-- currency; pg_temp.ref_first_payments(): cohort of each account.

-- billing periods per year (exact for interval_count 1, all the data here has)
CREATE FUNCTION pg_temp.ref_factor(iv text, n numeric) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$
SELECT CASE iv WHEN 'month' THEN 12 WHEN 'year' THEN 1 WHEN 'week' THEN 52 WHEN 'day' THEN 365 END / n
$$;

CREATE FUNCTION pg_temp.ref_account_months(to_month date)
RETURNS TABLE (account_id bigint, currency text, month date, mrr_cents bigint, active boolean)
LANGUAGE sql AS $$
WITH ev AS (
	SELECT e.arrival, e.payload::jsonb AS p FROM dogdb.stripe_events e
), mapping AS (		-- the first customer event (by arrival) carrying metadata.account_id
	SELECT DISTINCT ON (p #>> '{data,object,id}') p #>> '{data,object,id}' AS customer,
		   (p #>> '{data,object,metadata,account_id}')::bigint AS account_id
	  FROM ev
	 WHERE p ->> 'type' IN ('customer.created', 'customer.updated', 'customer.deleted')
	   AND p #>> '{data,object,metadata,account_id}' IS NOT NULL
	 ORDER BY 1, arrival
), versions AS (
	SELECT m.account_id, o ->> 'id' AS sub, (p ->> 'created')::bigint AS created,
		   CASE p ->> 'type' WHEN 'customer.subscription.created' THEN 1
				WHEN 'customer.subscription.updated' THEN 2 ELSE 3 END AS rnk,
		   ev.arrival, o ->> 'status' AS status, o
	  FROM ev CROSS JOIN LATERAL (SELECT p #> '{data,object}' AS o) x
	  JOIN mapping m ON m.customer = o ->> 'customer'
	 WHERE p ->> 'type' IN ('customer.subscription.created', 'customer.subscription.updated',
							'customer.subscription.deleted')
), priced AS (
	SELECT v.*, it.currency, it.base, it.first_factor,
		   CASE WHEN jsonb_typeof(v.o -> 'discount') = 'object'
					 AND (v.o #>> '{discount,end}' IS NULL OR (v.o #>> '{discount,end}')::bigint > v.created)
				THEN true ELSE false END AS discounted
	  FROM versions v,
		   LATERAL (SELECT min(i #>> '{price,currency}') AS currency,
						   sum((i #>> '{price,unit_amount}')::numeric * coalesce((i ->> 'quantity')::numeric, 1)
							   * pg_temp.ref_factor(i #>> '{price,recurring,interval}',
													coalesce((i #>> '{price,recurring,interval_count}')::numeric, 1))) AS base,
						   min(pg_temp.ref_factor(i #>> '{price,recurring,interval}',
												  coalesce((i #>> '{price,recurring,interval_count}')::numeric, 1)))
							   FILTER (WHERE n = 1) AS first_factor
					  FROM jsonb_array_elements(v.o #> '{items,data}') WITH ORDINALITY j(i, n)) it
), mrr AS (
	SELECT p.account_id, p.sub, p.created, p.rnk, p.arrival, p.currency,
		   p.status IN ('active', 'past_due') AS active,
		   CASE WHEN p.status NOT IN ('active', 'past_due') THEN 0
				WHEN NOT p.discounted THEN round(p.base / 12)
				ELSE greatest(0, round((p.base * (100 - coalesce((p.o #>> '{discount,coupon,percent_off}')::numeric, 0)) / 100
										- coalesce((p.o #>> '{discount,coupon,amount_off}')::numeric, 0) * p.first_factor) / 12))
		   END::bigint AS mrr_cents
	  FROM priced p
), grid AS (
	SELECT g::date AS month
	  FROM generate_series((SELECT date_trunc('month', to_timestamp(min(created)) AT TIME ZONE 'UTC') FROM mrr),
						   to_month, interval '1 month') g
), at_end AS (		-- each subscription at each month end: its newest version by then
	SELECT DISTINCT ON (m.account_id, m.sub, g.month) m.account_id, m.currency, m.sub, g.month, m.mrr_cents, m.active
	  FROM mrr m JOIN grid g ON to_timestamp(m.created) < ((g.month + interval '1 month')::timestamp AT TIME ZONE 'UTC')
	 ORDER BY m.account_id, m.sub, g.month, m.created DESC, m.rnk DESC, m.arrival DESC
)
SELECT a.account_id, a.currency, a.month, sum(a.mrr_cents)::bigint, bool_or(a.active)
  FROM at_end a
 GROUP BY 1, 2, 3
HAVING bool_or(a.active) OR sum(a.mrr_cents) > 0
$$;

CREATE FUNCTION pg_temp.ref_movements(from_month date, to_month date)
RETURNS TABLE (month date, currency text, mrr_start_cents bigint, new_cents bigint, expansion_cents bigint,
			   contraction_cents bigint, churned_cents bigint, reactivation_cents bigint, mrr_end_cents bigint,
			   customers_start bigint, new_customers bigint, reactivated_customers bigint,
			   churned_customers bigint, customers_end bigint)
LANGUAGE sql AS $$
WITH am AS (SELECT * FROM pg_temp.ref_account_months(to_month)),
grid AS (
	SELECT g::date AS month FROM generate_series((SELECT min(month) FROM am), to_month, interval '1 month') g
), full_am AS (
	SELECT k.account_id, k.currency, g.month, coalesce(a.mrr_cents, 0) AS mrr, coalesce(a.active, false) AS active
	  FROM (SELECT DISTINCT account_id, currency FROM am) k CROSS JOIN grid g
	  LEFT JOIN am a ON a.account_id = k.account_id AND a.currency = k.currency AND a.month = g.month
), w AS (
	SELECT f.*, lag(f.mrr, 1, 0::bigint) OVER o AS prev_mrr, lag(f.active, 1, false) OVER o AS prev_active,
		   coalesce(bool_or(f.active) OVER (o ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false) AS ever
	  FROM full_am f
	WINDOW o AS (PARTITION BY f.account_id, f.currency ORDER BY f.month)
)
SELECT w.month, w.currency, sum(w.prev_mrr)::bigint,
	   coalesce(sum(w.mrr) FILTER (WHERE w.active AND NOT w.prev_active AND NOT w.ever), 0)::bigint,
	   coalesce(sum(w.mrr - w.prev_mrr) FILTER (WHERE w.active AND w.prev_active AND w.mrr > w.prev_mrr), 0)::bigint,
	   coalesce(sum(w.mrr - w.prev_mrr) FILTER (WHERE w.active AND w.prev_active AND w.mrr < w.prev_mrr), 0)::bigint,
	   coalesce(sum(-w.prev_mrr) FILTER (WHERE w.prev_active AND NOT w.active), 0)::bigint,
	   coalesce(sum(w.mrr) FILTER (WHERE w.active AND NOT w.prev_active AND w.ever), 0)::bigint,
	   sum(w.mrr)::bigint,
	   count(*) FILTER (WHERE w.prev_active), count(*) FILTER (WHERE w.active AND NOT w.prev_active AND NOT w.ever),
	   count(*) FILTER (WHERE w.active AND NOT w.prev_active AND w.ever),
	   count(*) FILTER (WHERE w.prev_active AND NOT w.active), count(*) FILTER (WHERE w.active)
  FROM w
 WHERE w.month BETWEEN from_month AND to_month
 GROUP BY 1, 2
$$;

-- per account: first succeeded charge (month, currency) and net payments, from the raw charge
-- and refund events (each object as of its newest event)
CREATE FUNCTION pg_temp.ref_payments(as_of date)
RETURNS TABLE (account_id bigint, currency text, cohort date, first_payment_at timestamptz, net_cents bigint)
LANGUAGE sql AS $$
WITH ev AS (SELECT e.arrival, e.payload::jsonb AS p FROM dogdb.stripe_events e),
mapping AS (
	SELECT DISTINCT ON (p #>> '{data,object,id}') p #>> '{data,object,id}' AS customer,
		   (p #>> '{data,object,metadata,account_id}')::bigint AS account_id
	  FROM ev WHERE p ->> 'type' IN ('customer.created', 'customer.updated', 'customer.deleted')
	   AND p #>> '{data,object,metadata,account_id}' IS NOT NULL
	 ORDER BY 1, arrival
), charges AS (
	SELECT DISTINCT ON (p #>> '{data,object,id}') m.account_id, p #>> '{data,object,id}' AS charge,
		   p #>> '{data,object,currency}' AS currency, p #>> '{data,object,status}' AS status,
		   (p #>> '{data,object,amount}')::bigint AS amount, to_timestamp((p #>> '{data,object,created}')::bigint) AS created
	  FROM ev JOIN mapping m ON m.customer = p #>> '{data,object,customer}'
	 WHERE p ->> 'type' IN ('charge.succeeded', 'charge.failed', 'charge.refunded')
	 ORDER BY p #>> '{data,object,id}', (p ->> 'created')::bigint DESC,
			  CASE p ->> 'type' WHEN 'charge.refunded' THEN 2 ELSE 1 END DESC, arrival DESC
), refunds AS (
	SELECT DISTINCT ON (r ->> 'id') c.account_id, r ->> 'status' AS status, (r ->> 'amount')::bigint AS amount,
		   to_timestamp((r ->> 'created')::bigint) AS created, c.currency
	  FROM (SELECT ev.*, r, CASE WHEN p ->> 'type' = 'charge.refund.updated' THEN 2 ELSE 1 END AS rnk
			  FROM ev, LATERAL (SELECT p #> '{data,object}' AS r WHERE p ->> 'type' = 'charge.refund.updated'
								UNION ALL
								SELECT x FROM jsonb_array_elements(CASE WHEN p ->> 'type' = 'charge.refunded'
											THEN p #> '{data,object,refunds,data}' ELSE '[]' END) x) l) e
	  JOIN charges c ON c.charge = e.r ->> 'charge'
	 ORDER BY r ->> 'id', (e.p ->> 'created')::bigint DESC, e.rnk DESC, e.arrival DESC
)
SELECT c.account_id, c.currency,
	   date_trunc('month', min(c.created) AT TIME ZONE 'UTC')::date, min(c.created),
	   (sum(c.amount) FILTER (WHERE c.created < ((as_of + 1)::timestamp AT TIME ZONE 'UTC'))
		- coalesce((SELECT sum(r.amount) FROM refunds r WHERE r.account_id = c.account_id AND r.currency = c.currency
					   AND r.status = 'succeeded' AND r.created < ((as_of + 1)::timestamp AT TIME ZONE 'UTC')), 0))::bigint
  FROM charges c WHERE c.status = 'succeeded'
 GROUP BY 1, 2
$$;

-- generated Stripe traffic: pg_temp.gen_stripe(accounts, seed) fills
-- pg_temp.gen (n, body) in a random delivery order with 5% redeliveries:
-- customers with 1-2 subscriptions (monthly, yearly or weekly prices,
-- quantities, percent or amount discounts that may end, trials, past_due,
-- cancellations, same-second update/delete pairs) and monthly charges
CREATE FUNCTION pg_temp.gen_sub(id text, cus text, created bigint, status text, amount int, qty int,
								iv text, cur text, pct int, amt int, dend bigint) RETURNS jsonb
LANGUAGE sql AS $$
SELECT jsonb_build_object('id', id, 'object', 'subscription', 'customer', cus, 'created', created, 'status', status,
	'items', jsonb_build_object('object', 'list', 'data', jsonb_build_array(jsonb_build_object('quantity', qty,
		'price', jsonb_build_object('id', 'price_' || iv || amount, 'unit_amount', amount, 'currency', cur,
									'recurring', jsonb_build_object('interval', iv, 'interval_count', 1))))),
	'discount', CASE WHEN pct > 0 OR amt > 0 THEN jsonb_build_object('coupon',
					jsonb_build_object('percent_off', nullif(pct, 0), 'amount_off', nullif(amt, 0)), 'end', dend) END)
$$;

CREATE FUNCTION pg_temp.gen_stripe(accounts int, seed float8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t0 bigint;
	ts bigint;
	cur text;
	iv text;
	amount int;
	qty int;
	pct int;
	amt int;
	dend bigint;
	status text;
	nupd int;
	k int := 0;
	cus text;
	sid text;
BEGIN
	PERFORM setseed(seed);
	CREATE TEMP TABLE IF NOT EXISTS gen (n serial, body text);
	TRUNCATE gen;
	CREATE TEMP TABLE gen_ev (body text) ON COMMIT DROP;
	FOR a IN 1..accounts LOOP
		t0 := extract(epoch FROM timestamptz '2021-01-01Z')::bigint + (random() * 540 * 86400)::bigint;
		cur := CASE WHEN random() < 0.1 THEN 'eur' ELSE 'usd' END;
		cus := 'cus_g' || a;
		INSERT INTO gen_ev SELECT jsonb_build_object('id', 'evt_gc' || a, 'type', 'customer.created', 'created', t0,
			'data', jsonb_build_object('object', jsonb_build_object('id', cus, 'email', 'g' || a || '@x.example',
				'metadata', jsonb_build_object('account_id', (5000 + a)::text))))::text;
		FOR s IN 1..(1 + (random() < 0.3)::int) LOOP
			sid := 'sub_g' || a || '_' || s;
			ts := t0 + s * 3600 + (random() * 60 * 86400)::bigint;
			iv := CASE WHEN random() < 0.7 THEN 'month' WHEN random() < 0.67 THEN 'year' ELSE 'week' END;
			amount := (10 + floor(random() * 190))::int * 100 + CASE WHEN random() < 0.3 THEN 99 ELSE 0 END;
			qty := 1 + floor(random() * 5)::int;
			pct := CASE WHEN random() < 0.2 THEN (ARRAY[10, 25, 50, 33])[1 + floor(random() * 4)::int] ELSE 0 END;
			amt := CASE WHEN pct = 0 AND random() < 0.05 THEN 500 ELSE 0 END;
			dend := CASE WHEN random() < 0.5 THEN ts + 90 * 86400 END;
			status := CASE WHEN random() < 0.1 THEN 'trialing' ELSE 'active' END;
			k := k + 1;
			INSERT INTO gen_ev SELECT jsonb_build_object('id', 'evt_gs' || k, 'type', 'customer.subscription.created',
				'created', ts, 'data', jsonb_build_object('object',
				pg_temp.gen_sub(sid, cus, ts, status, amount, qty, iv, cur, pct, amt, dend)))::text;
			nupd := floor(random() * 4)::int;
			FOR u IN 1..nupd LOOP
				ts := ts + (random() * 100 * 86400)::bigint;
				IF random() < 0.5 THEN
					qty := greatest(1, qty + (ARRAY[-2, -1, 1, 2])[1 + floor(random() * 4)::int]);
				ELSE
					status := (ARRAY['active', 'past_due', 'active'])[1 + floor(random() * 3)::int];
				END IF;
				k := k + 1;
				INSERT INTO gen_ev SELECT jsonb_build_object('id', 'evt_gs' || k, 'type', 'customer.subscription.updated',
					'created', ts, 'data', jsonb_build_object('object',
					pg_temp.gen_sub(sid, cus, ts, status, amount, qty, iv, cur, pct, amt, dend)))::text;
			END LOOP;
			IF random() < 0.35 THEN		-- canceled, sometimes in the same second as the last update
				ts := ts + CASE WHEN random() < 0.3 THEN 0 ELSE (random() * 120 * 86400)::bigint END;
				k := k + 1;
				INSERT INTO gen_ev SELECT jsonb_build_object('id', 'evt_gs' || k, 'type', 'customer.subscription.deleted',
					'created', ts, 'data', jsonb_build_object('object',
					pg_temp.gen_sub(sid, cus, ts, 'canceled', amount, qty, iv, cur, pct, amt, dend)))::text;
			END IF;
		END LOOP;
		FOR m IN 0..floor(random() * 14)::int LOOP
			ts := t0 + 7200 + m * 30 * 86400;
			INSERT INTO gen_ev SELECT jsonb_build_object('id', 'evt_gp' || a || '_' || m,
				'type', CASE WHEN random() < 0.9 THEN 'charge.succeeded' ELSE 'charge.failed' END, 'created', ts,
				'data', jsonb_build_object('object', jsonb_build_object('id', 'ch_g' || a || '_' || m, 'customer', cus,
					'amount', 1000 + floor(random() * 9000)::int, 'currency', cur, 'created', ts,
					'status', 'pending')))::text;
		END LOOP;
	END LOOP;
	-- charge status follows the event type
	UPDATE gen_ev SET body = jsonb_set(body::jsonb, '{data,object,status}',
		to_jsonb(CASE WHEN body::jsonb ->> 'type' = 'charge.succeeded' THEN 'succeeded' ELSE 'failed' END))::text
	 WHERE body::jsonb ->> 'type' LIKE 'charge.%';
	INSERT INTO gen (body)
	SELECT body FROM (SELECT body FROM gen_ev UNION ALL SELECT body FROM gen_ev WHERE random() < 0.05) x
	 ORDER BY random();
END $$;

CREATE FUNCTION pg_temp.ref_cohorts(from_month date, to_month date, basis text)
RETURNS TABLE (cohort_month date, months_since integer, cohort_size bigint, retained bigint,
			   retention_rate numeric, revenue_cents bigint, currency text)
LANGUAGE sql AS $$
WITH c AS (SELECT * FROM pg_temp.ref_payments('9999-12-30') p WHERE p.cohort BETWEEN from_month AND to_month),
am AS (SELECT * FROM pg_temp.ref_account_months(to_month)),
cells AS (
	SELECT c.cohort, c.currency, k, count(*) AS size,
		   count(*) FILTER (WHERE a.active) AS kept, coalesce(sum(a.mrr_cents), 0)::bigint AS mrr
	  FROM c CROSS JOIN LATERAL generate_series(0, (SELECT count(*)::int - 1
				FROM generate_series(c.cohort, to_month, interval '1 month'))) k
	  LEFT JOIN am a ON a.account_id = c.account_id AND a.currency = c.currency
					AND a.month = (c.cohort + k * interval '1 month')::date
	 GROUP BY 1, 2, 3
)
SELECT x.cohort, x.k, x.size, x.kept,
	   CASE basis WHEN 'logo' THEN round(x.kept::numeric / x.size, 4)
			ELSE round(x.mrr::numeric / nullif((SELECT y.mrr FROM cells y WHERE y.cohort = x.cohort
													AND y.currency = x.currency AND y.k = 0), 0), 4) END,
	   x.mrr, x.currency
  FROM cells x
$$;

CREATE FUNCTION pg_temp.ref_ltv(as_of date)
RETURNS TABLE (account_id bigint, currency text, first_payment_at timestamptz, months_active integer,
			   realized_ltv_cents bigint, mrr_cents bigint, arpa_cents numeric,
			   customer_churn_rate numeric, predicted_ltv_cents bigint)
LANGUAGE sql AS $$
WITH last AS (SELECT (date_trunc('month', as_of) - interval '1 month')::date AS m),
am AS (SELECT * FROM pg_temp.ref_account_months((SELECT m FROM last))),
mv AS (SELECT * FROM pg_temp.ref_movements((date_trunc('month', as_of) - interval '6 months')::date, (SELECT m FROM last))),
rates AS (
	SELECT mv.currency,
		   round(sum(mv.mrr_end_cents) FILTER (WHERE mv.month = (SELECT m FROM last))::numeric
				 / nullif(sum(mv.customers_end) FILTER (WHERE mv.month = (SELECT m FROM last)), 0), 2) AS arpa,
		   avg(mv.churned_customers::numeric / nullif(mv.customers_start, 0)) AS churn
	  FROM mv GROUP BY 1
), acc AS (
	SELECT a.account_id, a.currency, count(*) FILTER (WHERE a.active)::int AS months_active,
		   coalesce(sum(a.mrr_cents) FILTER (WHERE a.month = (SELECT m FROM last)), 0)::bigint AS mrr
	  FROM am a GROUP BY 1, 2
), pay AS (SELECT * FROM pg_temp.ref_payments(as_of)),
keys AS (SELECT account_id, currency FROM acc UNION SELECT account_id, currency FROM pay)
SELECT k.account_id, k.currency, p.first_payment_at, coalesce(a.months_active, 0), coalesce(p.net_cents, 0),
	   coalesce(a.mrr, 0), r.arpa, round(r.churn, 4), CASE WHEN r.churn > 0 THEN round(r.arpa / r.churn)::bigint END
  FROM keys k LEFT JOIN acc a USING (account_id, currency) LEFT JOIN pay p USING (account_id, currency)
  LEFT JOIN rates r ON r.currency = k.currency
$$;
