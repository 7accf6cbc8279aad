-- Benchmark: Stripe webhook ingestion and MRR movements, C against plain
-- SQL on the same data in the same run.
--  (a) 100,000 signed deliveries (~1.5 kB each: customers, subscription
--      updates, charges; 5% redeliveries) through dogdb_ingest_stripe_event()
--      against a PL/pgSQL + jsonb implementation of the same work with
--      pgcrypto's hmac(): parse the header, verify, ::jsonb, ledger insert
--      ON CONFLICT DO NOTHING, newest-wins upserts.  Set-based loop.
--  (b) the same with pgbench, one delivery per transaction, 2 clients,
--      50,000 deliveries, synchronous_commit off and on (test/bench/stripe_pgbench.sh).
--  (c) MRR movements for 100,000 accounts x 24 months against the best
--      plain-SQL computation.
\ir helpers.psql
CREATE EXTENSION IF NOT EXISTS pgcrypto;
DROP SCHEMA IF EXISTS bench_stripe CASCADE;
CREATE SCHEMA bench_stripe;

-- the deliveries: n is the delivery order
SELECT setseed(0.7);
CREATE TABLE bench_stripe.deliveries (n int PRIMARY KEY, payload text NOT NULL, header text);
WITH base AS (
	SELECT g AS k,
		   CASE WHEN g <= 15000 THEN 'customer.created' WHEN g <= 20000 THEN 'customer.updated'
				WHEN g <= 35000 THEN 'customer.subscription.created'
				WHEN g <= 45000 THEN 'customer.subscription.updated' ELSE 'charge.succeeded' END AS type,
		   1 + (g::bigint * 7919) % 15000 AS acct
	  FROM generate_series(1, 95000) g
), ev AS (
	SELECT k, type, acct,
		   -- customers first, then subscriptions, then updates and charges spread over a month
		   1700000000 + CASE type WHEN 'customer.created' THEN acct WHEN 'customer.subscription.created' THEN 20000 + acct
								  ELSE 40000 + (k::bigint * 104729) % 2592000 END AS created
	  FROM base
), bodies AS (
	SELECT k, created, jsonb_build_object(
		'id', 'evt_bench' || k, 'object', 'event', 'api_version', '2022-11-15', 'created', created,
		'livemode', true, 'pending_webhooks', 1, 'type', type,
		'request', jsonb_build_object('id', 'req_' || md5(k::text), 'idempotency_key', md5('i' || k)),
		'data', jsonb_build_object('object', CASE
		WHEN type LIKE 'customer.subscription.%' THEN jsonb_build_object(
			'id', 'sub_b' || acct, 'object', 'subscription', 'customer', 'cus_b' || acct, 'created', created,
			'status', CASE WHEN k % 13 = 0 THEN 'past_due' ELSE 'active' END,
			'collection_method', 'charge_automatically', 'cancel_at_period_end', false,
			'current_period_start', created, 'current_period_end', created + 2592000,
			'default_payment_method', 'pm_' || md5('pm' || acct), 'latest_invoice', 'in_' || md5('in' || k),
			'items', jsonb_build_object('object', 'list', 'has_more', false, 'url', '/v1/subscription_items?subscription=sub_b' || acct,
				'data', jsonb_build_array(jsonb_build_object('id', 'si_' || md5('si' || acct), 'object', 'subscription_item',
					'created', created, 'quantity', 1 + k % 5, 'metadata', '{}'::jsonb,
					'price', jsonb_build_object('id', 'price_' || (acct % 7), 'object', 'price', 'active', true,
						'billing_scheme', 'per_unit', 'currency', 'usd', 'unit_amount', 1000 * (1 + acct % 7),
						'unit_amount_decimal', (1000 * (1 + acct % 7))::text, 'livemode', true,
						'nickname', 'DogDB plan ' || (acct % 7), 'product', 'prod_' || md5('prod' || acct % 7),
						'recurring', jsonb_build_object('interval', CASE WHEN acct % 5 = 0 THEN 'year' ELSE 'month' END,
							'interval_count', 1, 'usage_type', 'licensed', 'aggregate_usage', null),
						'tax_behavior', 'exclusive', 'type', 'recurring')))),
			'discount', CASE WHEN acct % 11 = 0 THEN jsonb_build_object('coupon', jsonb_build_object('id', 'LAUNCH',
				'percent_off', 20, 'duration', 'forever'), 'end', null) END,
			'metadata', jsonb_build_object('account_id', acct::text, 'source', 'web'))
		WHEN type LIKE 'customer.%' THEN jsonb_build_object(
			'id', 'cus_b' || acct, 'object', 'customer', 'created', 1700000000 + acct,
			'email', 'billing+' || acct || '@customer' || acct || '.example', 'name', 'Customer ' || acct || ' GmbH',
			'phone', '+49 30 ' || (1000000 + acct), 'currency', 'usd', 'delinquent', false, 'livemode', true,
			'balance', 0, 'description', 'DogDB customer ' || acct, 'invoice_prefix', upper(substr(md5('p' || acct), 1, 8)),
			'address', jsonb_build_object('city', 'Berlin', 'country', 'DE', 'line1', 'Hauptstrasse ' || acct % 200,
				'line2', null, 'postal_code', (10115 + acct % 500)::text, 'state', null),
			'invoice_settings', jsonb_build_object('custom_fields', null, 'default_payment_method', 'pm_' || md5('pm' || acct),
				'footer', 'Thank you for using DogDB', 'rendering_options', null),
			'preferred_locales', jsonb_build_array('de', 'en'), 'tax_exempt', 'none',
			'metadata', jsonb_build_object('account_id', acct::text, 'crm_id', md5('crm' || acct), 'segment', 'smb'))
		ELSE jsonb_build_object(
			'id', 'ch_' || md5('ch' || k), 'object', 'charge', 'customer', 'cus_b' || acct, 'created', created,
			'amount', 1000 * (1 + acct % 7), 'amount_captured', 1000 * (1 + acct % 7), 'amount_refunded', 0,
			'currency', 'usd', 'status', 'succeeded', 'paid', true, 'captured', true, 'refunded', false,
			'balance_transaction', 'txn_' || md5('t' || k), 'invoice', 'in_' || md5('in' || k),
			'payment_intent', 'pi_' || md5('pi' || k), 'payment_method', 'pm_' || md5('pm' || acct),
			'description', 'Subscription update', 'statement_descriptor', 'DOGDB', 'livemode', true,
			'receipt_url', 'https://pay.stripe.com/receipts/invoices/' || md5('r' || k) || md5('s' || k) || '?s=ap',
			'billing_details', jsonb_build_object('email', 'billing+' || acct || '@customer' || acct || '.example',
				'name', 'Customer ' || acct || ' GmbH', 'phone', null, 'address', jsonb_build_object('city', 'Berlin',
				'country', 'DE', 'line1', 'Hauptstrasse ' || acct % 200, 'postal_code', (10115 + acct % 500)::text)),
			'outcome', jsonb_build_object('network_status', 'approved_by_network', 'reason', null, 'risk_level', 'normal',
				'risk_score', k % 100, 'seller_message', 'Payment complete.', 'type', 'authorized'),
			'payment_method_details', jsonb_build_object('type', 'card', 'card', jsonb_build_object('brand', 'visa',
				'checks', jsonb_build_object('address_line1_check', 'pass', 'address_postal_code_check', 'pass', 'cvc_check', 'pass'),
				'country', 'DE', 'exp_month', 1 + k % 12, 'exp_year', 2027, 'fingerprint', substr(md5('f' || acct), 1, 16),
				'funding', 'credit', 'last4', lpad((k % 10000)::text, 4, '0'), 'network', 'visa', 'three_d_secure', null)),
			'metadata', jsonb_build_object('account_id', acct::text, 'order', md5('o' || k)))
		END))::text AS payload
	  FROM ev
)
INSERT INTO bench_stripe.deliveries (n, payload)
SELECT row_number() OVER (ORDER BY created, r), payload
  FROM (SELECT created, random() AS r, payload FROM bodies
		UNION ALL		-- 5,000 redeliveries, a little later
		(SELECT created + 1 + (random() * 3600)::int, random(), payload FROM bodies ORDER BY random() LIMIT 5000)) x;
SELECT count(*) AS deliveries, count(DISTINCT payload) AS events, round(avg(length(payload))) AS avg_bytes
  FROM bench_stripe.deliveries;

-- signed now (re-signed before every run: the tolerance is 5 minutes; the
-- runs read the deliveries ORDER BY n, the UPDATE moves rows)
CREATE FUNCTION bench_stripe.sign_all() RETURNS void LANGUAGE sql AS $$
UPDATE bench_stripe.deliveries SET header = 't=' || t || ',v1=' ||
	   encode(hmac(convert_to(t || '.' || payload, 'UTF8'), convert_to('whsec_bench', 'UTF8'), 'sha256'), 'hex')
  FROM (SELECT floor(extract(epoch FROM clock_timestamp()))::bigint AS t) s;
$$;
TRUNCATE dogdb.stripe_webhook_secrets;
INSERT INTO dogdb.stripe_webhook_secrets (secret) VALUES ('whsec_bench');

--
-- The plain PL/pgSQL + jsonb implementation of the same work
--
CREATE TABLE bench_stripe.secrets (secret text PRIMARY KEY);
INSERT INTO bench_stripe.secrets VALUES ('whsec_bench');
CREATE TABLE bench_stripe.events (event_id text PRIMARY KEY, event_type text NOT NULL, object_id text, link_id text,
	created timestamptz NOT NULL, arrival bigint GENERATED ALWAYS AS IDENTITY,
	received_at timestamptz NOT NULL DEFAULT now(), payload text NOT NULL);
CREATE INDEX ON bench_stripe.events (link_id);
CREATE TABLE bench_stripe.customer_accounts (customer_id text PRIMARY KEY, account_id bigint NOT NULL);
CREATE TABLE bench_stripe.customers (account_id bigint, customer_id text, email text, deleted boolean,
	created_at timestamptz, event_id text, event_created timestamptz, event_rank smallint, event_arrival bigint,
	PRIMARY KEY (account_id, customer_id));
CREATE TABLE bench_stripe.subscriptions (account_id bigint, subscription_id text, customer_id text, status text,
	currency text, mrr_cents bigint, quantity bigint, event_id text, event_created timestamptz, event_rank smallint,
	event_arrival bigint, PRIMARY KEY (account_id, subscription_id));
CREATE TABLE bench_stripe.subscription_versions (account_id bigint, subscription_id text, event_id text,
	event_created timestamptz, event_rank smallint, event_arrival bigint, status text, currency text, mrr_cents bigint,
	PRIMARY KEY (account_id, subscription_id, event_id));
CREATE TABLE bench_stripe.payments (account_id bigint, charge_id text, customer_id text, status text, currency text,
	amount_cents bigint, amount_refunded_cents bigint, created_at timestamptz, event_id text,
	event_created timestamptz, event_rank smallint, event_arrival bigint, PRIMARY KEY (account_id, charge_id));

CREATE FUNCTION bench_stripe.ingest(payload text, header text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $fn$
DECLARE
	t text;
	v1 text[] := '{}';
	kv text[];
	el text;
	good boolean := false;
	j jsonb;
	o jsonb;
	typ text;
	created timestamptz;
	rnk smallint;
	arr bigint;
	acct bigint;
	mrr bigint;
BEGIN
	-- the header
	FOREACH el IN ARRAY string_to_array(header, ',') LOOP
		kv := regexp_split_to_array(el, '=');
		IF kv[1] = 't' THEN
			IF t IS NOT NULL THEN RAISE EXCEPTION 'bad header' USING ERRCODE = '28000'; END IF;
			t := kv[2];
		ELSIF kv[1] = 'v1' THEN
			v1 := v1 || kv[2];
		END IF;
	END LOOP;
	IF t IS NULL OR t !~ '^[0-9]{1,18}$' OR abs(extract(epoch FROM clock_timestamp()) - t::bigint) > 300 THEN
		RAISE EXCEPTION 'bad or stale signature' USING ERRCODE = '28000';
	END IF;
	SELECT bool_or(encode(hmac(convert_to(t || '.' || payload, 'UTF8'), convert_to(s.secret, 'UTF8'), 'sha256'), 'hex') = ANY (v1))
	  INTO good FROM bench_stripe.secrets s;
	IF NOT coalesce(good, false) THEN
		RAISE EXCEPTION 'bad signature' USING ERRCODE = '28000';
	END IF;
	j := payload::jsonb;
	typ := j->>'type';
	o := j->'data'->'object';
	created := to_timestamp((j->>'created')::bigint);
	rnk := CASE WHEN typ LIKE '%.created' OR typ = 'charge.succeeded' THEN 1 WHEN typ LIKE '%.updated' THEN 2 ELSE 3 END;
	INSERT INTO bench_stripe.events (event_id, event_type, object_id, link_id, created, payload)
	VALUES (j->>'id', typ, o->>'id', CASE WHEN typ LIKE 'customer.%' AND typ NOT LIKE 'customer.subscription.%'
										  THEN o->>'id' ELSE o->>'customer' END, created, payload)
	ON CONFLICT (event_id) DO NOTHING
	RETURNING arrival INTO arr;
	IF arr IS NULL THEN
		RETURN 'duplicate';
	END IF;
	IF typ IN ('customer.created', 'customer.updated', 'customer.deleted') THEN
		IF o->'metadata'->>'account_id' IS NOT NULL THEN
			INSERT INTO bench_stripe.customer_accounts VALUES (o->>'id', (o->'metadata'->>'account_id')::bigint)
			ON CONFLICT DO NOTHING;
		END IF;
		SELECT account_id INTO acct FROM bench_stripe.customer_accounts WHERE customer_id = o->>'id';
		INSERT INTO bench_stripe.customers AS c VALUES (acct, o->>'id', o->>'email', typ = 'customer.deleted',
			to_timestamp((o->>'created')::bigint), j->>'id', created, rnk, arr)
		ON CONFLICT (account_id, customer_id) DO UPDATE SET email = excluded.email, deleted = excluded.deleted,
			event_id = excluded.event_id, event_created = excluded.event_created, event_rank = excluded.event_rank,
			event_arrival = excluded.event_arrival
		WHERE (c.event_created, c.event_rank, c.event_arrival) < (excluded.event_created, excluded.event_rank, excluded.event_arrival);
	ELSIF typ LIKE 'customer.subscription.%' THEN
		SELECT account_id INTO acct FROM bench_stripe.customer_accounts WHERE customer_id = o->>'customer';
		SELECT CASE WHEN o->>'status' IN ('active', 'past_due') THEN greatest(0, round(
					sum((i->'price'->>'unit_amount')::numeric * coalesce((i->>'quantity')::numeric, 1)
						* CASE i->'price'->'recurring'->>'interval' WHEN 'year' THEN 1 WHEN 'month' THEN 12 WHEN 'week' THEN 52 ELSE 365 END)
					* (100 - coalesce((o->'discount'->'coupon'->>'percent_off')::numeric, 0)) / 100 / 12)) ELSE 0 END
		  INTO mrr FROM jsonb_array_elements(o->'items'->'data') i;
		INSERT INTO bench_stripe.subscription_versions VALUES (acct, o->>'id', j->>'id', created, rnk, arr,
			o->>'status', o->'items'->'data'->0->'price'->>'currency', mrr) ON CONFLICT DO NOTHING;
		INSERT INTO bench_stripe.subscriptions AS s VALUES (acct, o->>'id', o->>'customer', o->>'status',
			o->'items'->'data'->0->'price'->>'currency', mrr, (o->'items'->'data'->0->>'quantity')::bigint,
			j->>'id', created, rnk, arr)
		ON CONFLICT (account_id, subscription_id) DO UPDATE SET status = excluded.status, mrr_cents = excluded.mrr_cents,
			quantity = excluded.quantity, event_id = excluded.event_id, event_created = excluded.event_created,
			event_rank = excluded.event_rank, event_arrival = excluded.event_arrival
		WHERE (s.event_created, s.event_rank, s.event_arrival) < (excluded.event_created, excluded.event_rank, excluded.event_arrival);
	ELSIF typ LIKE 'charge.%' THEN
		SELECT account_id INTO acct FROM bench_stripe.customer_accounts WHERE customer_id = o->>'customer';
		INSERT INTO bench_stripe.payments AS p VALUES (acct, o->>'id', o->>'customer', o->>'status', o->>'currency',
			(o->>'amount')::bigint, coalesce((o->>'amount_refunded')::bigint, 0), to_timestamp((o->>'created')::bigint),
			j->>'id', created, rnk, arr)
		ON CONFLICT (account_id, charge_id) DO UPDATE SET status = excluded.status, amount_cents = excluded.amount_cents,
			amount_refunded_cents = excluded.amount_refunded_cents, event_id = excluded.event_id,
			event_created = excluded.event_created, event_rank = excluded.event_rank, event_arrival = excluded.event_arrival
		WHERE (p.event_created, p.event_rank, p.event_arrival) < (excluded.event_created, excluded.event_rank, excluded.event_arrival);
	ELSE
		RETURN 'ignored';
	END IF;
	RETURN 'applied';
END
$fn$;

-- (in bench_stripe: test/bench/stripe_pgbench.sh calls them too)
CREATE SEQUENCE bench_stripe.seq;
CREATE FUNCTION bench_stripe.reset_c() RETURNS void LANGUAGE sql AS $$
TRUNCATE dogdb.stripe_events, dogdb.stripe_customer_accounts, dogdb.stripe_customers, dogdb.stripe_subscriptions,
	dogdb.stripe_subscription_versions, dogdb.stripe_invoices, dogdb.stripe_payments, dogdb.stripe_refunds;
SELECT bench_stripe.sign_all();
SELECT setval('bench_stripe.seq', 1, false);
CHECKPOINT;
$$;
CREATE FUNCTION bench_stripe.reset_sql() RETURNS void LANGUAGE sql AS $$
TRUNCATE bench_stripe.events, bench_stripe.customer_accounts, bench_stripe.customers, bench_stripe.subscriptions,
	bench_stripe.subscription_versions, bench_stripe.payments;
SELECT bench_stripe.sign_all();
SELECT setval('bench_stripe.seq', 1, false);
CHECKPOINT;
$$;

-- (a) set-based
INSERT INTO results
SELECT 'ingest 100k deliveries, set-based (a)',
	   pg_temp.best_ms('SELECT count(dogdb_ingest_stripe_event(payload, header)) FROM (SELECT * FROM bench_stripe.deliveries ORDER BY n) d', 3,
					   'SELECT bench_stripe.reset_c()'),
	   pg_temp.best_ms('SELECT count(bench_stripe.ingest(payload, header)) FROM (SELECT * FROM bench_stripe.deliveries ORDER BY n) d', 3,
					   'SELECT bench_stripe.reset_sql()'), 2;
-- the same facts
SELECT (SELECT count(*) FROM dogdb.stripe_events) AS "C ledger rows", (SELECT count(*) FROM bench_stripe.events) AS "SQL ledger rows",
	   (SELECT count(*) FROM dogdb.stripe_payments) AS "C payments", (SELECT count(*) FROM bench_stripe.payments) AS "SQL payments",
	   (SELECT count(*) FROM (SELECT account_id, subscription_id, status, mrr_cents FROM dogdb.stripe_subscriptions
							  EXCEPT SELECT account_id, subscription_id, status, mrr_cents FROM bench_stripe.subscriptions) d)
		   AS "subscriptions that differ";
-- for information: where the PL/pgSQL time goes
INSERT INTO results
SELECT 'plain SQL: ::jsonb of every delivery alone (info)',
	   (SELECT c_ms FROM results WHERE bench LIKE 'ingest 100k%'),
	   pg_temp.best_ms('SELECT count(payload::jsonb) FROM bench_stripe.deliveries', 3), NULL;
INSERT INTO results
SELECT 'plain SQL: the HMAC of every delivery alone (info)',
	   (SELECT c_ms FROM results WHERE bench LIKE 'ingest 100k%'),
	   pg_temp.best_ms($$SELECT count(hmac(convert_to('1700000000.' || payload, 'UTF8'), '\x01'::bytea, 'sha256')) FROM bench_stripe.deliveries$$, 3), NULL;

SELECT * FROM pg_temp.report();

-- (b) pgbench: one delivery per transaction, 2 clients
\! test/bench/stripe_pgbench.sh

--
-- (c) MRR movements: 100,000 accounts x 24 months of subscription history
--
TRUNCATE dogdb.stripe_subscription_versions;
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '23 months')::date AS start_month,
	   date_trunc('month', now() AT TIME ZONE 'UTC')::date AS this_month \gset
SELECT setseed(0.3);
-- per account 1-2 subscriptions; each: created, 0-3 updates (quantity or
-- status), maybe canceled; usd or eur
INSERT INTO dogdb.stripe_subscription_versions
	(account_id, subscription_id, event_id, event_created, event_rank, event_arrival, status, currency, mrr_cents)
SELECT a, 'sub_' || a || '_' || s, 'evt_' || a || '_' || s || '_' || v,
	   :'start_month'::timestamp AT TIME ZONE 'UTC' + (a * 37 % 400) * interval '1 day' + (s * 50 + v * (20 + a % 90)) * interval '1 day',
	   CASE WHEN v = 0 THEN 1 WHEN v = nv AND canceled THEN 3 ELSE 2 END, a * 10 + v,
	   CASE WHEN v = nv AND canceled THEN 'canceled' WHEN (a + v) % 9 = 0 THEN 'past_due' ELSE 'active' END,
	   CASE WHEN a % 10 = 0 THEN 'eur' ELSE 'usd' END,
	   CASE WHEN v = nv AND canceled THEN 0 ELSE 1000 * (1 + (a + v) % 7) * (1 + (a * v) % 3) END
  FROM generate_series(1, 100000) a,
	   LATERAL (SELECT s, floor(random() * 4)::int AS nv, random() < 0.35 AS canceled
				  FROM generate_series(1, 1 + (a % 3 = 0)::int) s) x,
	   LATERAL generate_series(0, x.nv) v;
VACUUM ANALYZE dogdb.stripe_subscription_versions;
SELECT count(*) AS versions, count(DISTINCT account_id) AS accounts FROM dogdb.stripe_subscription_versions;

-- the best plain SQL found: the last version of each subscription per
-- month, spans to the next one, expanded over the months, summed per
-- account, then lag over the months and a FILTERed aggregate
CREATE FUNCTION pg_temp.movements_sql(from_month date, to_month date)
RETURNS TABLE (month date, currency text, mrr_start_cents bigint, new_cents bigint, expansion_cents bigint,
			   contraction_cents bigint, churned_cents bigint, reactivation_cents bigint, mrr_end_cents bigint,
			   customers_start bigint, new_customers bigint, reactivated_customers bigint,
			   churned_customers bigint, customers_end bigint)
LANGUAGE sql STABLE AS $$
WITH v AS (
	SELECT DISTINCT ON (account_id, subscription_id, m) account_id, subscription_id, currency, m, mrr_cents,
		   status IN ('active', 'past_due') AS active
	  FROM (SELECT *, date_trunc('month', event_created AT TIME ZONE 'UTC')::date AS m
			  FROM dogdb.stripe_subscription_versions
			 WHERE event_created < (to_month + interval '1 month')::timestamp AT TIME ZONE 'UTC') x
	 ORDER BY account_id, subscription_id, m, event_created DESC, event_rank DESC, event_arrival DESC
), spans AS (
	SELECT v.*, coalesce((lead(m) OVER (PARTITION BY account_id, subscription_id ORDER BY m) - interval '1 month')::date,
						 to_month) AS last_m
	  FROM v
), am AS (
	SELECT s.account_id, s.currency, g::date AS month, sum(s.mrr_cents) AS mrr, bool_or(s.active) AS active
	  FROM spans s, generate_series(s.m, s.last_m, interval '1 month') g
	 GROUP BY 1, 2, 3
), w AS (
	SELECT am.*, lag(mrr, 1, 0::numeric) OVER o AS prev_mrr, lag(active, 1, false) OVER o AS prev_active,
		   coalesce(bool_or(active) OVER (o ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false) AS ever
	  FROM am WINDOW o AS (PARTITION BY account_id, currency ORDER BY month)
)
SELECT w.month, w.currency, sum(prev_mrr)::bigint,
	   coalesce(sum(mrr) FILTER (WHERE active AND NOT prev_active AND NOT ever), 0)::bigint,
	   coalesce(sum(mrr - prev_mrr) FILTER (WHERE active AND prev_active AND mrr > prev_mrr), 0)::bigint,
	   coalesce(sum(mrr - prev_mrr) FILTER (WHERE active AND prev_active AND mrr < prev_mrr), 0)::bigint,
	   coalesce(sum(-prev_mrr) FILTER (WHERE prev_active AND NOT active), 0)::bigint,
	   coalesce(sum(mrr) FILTER (WHERE active AND NOT prev_active AND ever), 0)::bigint,
	   sum(mrr)::bigint, count(*) FILTER (WHERE prev_active),
	   count(*) FILTER (WHERE active AND NOT prev_active AND NOT ever),
	   count(*) FILTER (WHERE active AND NOT prev_active AND ever),
	   count(*) FILTER (WHERE prev_active AND NOT active), count(*) FILTER (WHERE active)
  FROM w WHERE w.month BETWEEN from_month AND to_month
 GROUP BY 1, 2
$$;
-- (rows of months before any data are all zeros in C and absent in SQL)
CREATE TEMP VIEW movements_c AS
SELECT month, currency, mrr_start_cents, new_cents, expansion_cents, contraction_cents, churned_cents,
	   reactivation_cents, mrr_end_cents, customers_start, new_customers, reactivated_customers,
	   churned_customers, customers_end
  FROM dogdb_mrr_movements(:'start_month', :'this_month')
 WHERE mrr_start_cents <> 0 OR mrr_end_cents <> 0 OR customers_start <> 0 OR customers_end <> 0;
SELECT (SELECT count(*) FROM (SELECT * FROM movements_c EXCEPT ALL SELECT * FROM pg_temp.movements_sql(:'start_month', :'this_month')) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.movements_sql(:'start_month', :'this_month') EXCEPT ALL SELECT * FROM movements_c) d)
	   AS "movement rows that differ", (SELECT count(*) FROM movements_c) AS "movement rows";
INSERT INTO results
SELECT 'MRR movements, 100k accounts x 24 months (c)',
	   pg_temp.best_ms(format('SELECT count(*) FROM dogdb_mrr_movements(%L, %L)', :'start_month', :'this_month')),
	   pg_temp.best_ms(format('SELECT count(*) FROM pg_temp.movements_sql(%L, %L)', :'start_month', :'this_month')), 3;

SELECT * FROM pg_temp.report();
TRUNCATE dogdb.stripe_events, dogdb.stripe_customer_accounts, dogdb.stripe_customers, dogdb.stripe_subscriptions,
	dogdb.stripe_subscription_versions, dogdb.stripe_invoices, dogdb.stripe_payments, dogdb.stripe_refunds,
	dogdb.stripe_webhook_secrets;
DROP SCHEMA bench_stripe CASCADE;
