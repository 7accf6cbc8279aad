-- pgTAP: Stripe ingestion in any order gives the same facts; the roles;
-- MRR movements, churn, LTV and cohorts against independent SQL
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
\ir ../stripe_reference.sql
SELECT plan(37);

-- facts without arrival numbers (they differ between orders by design)
CREATE FUNCTION pg_temp.facts() RETURNS text LANGUAGE sql AS $$
SELECT string_agg(r, E'\n' ORDER BY r) FROM (
	SELECT 'c ' || (to_jsonb(c) - 'event_arrival')::text AS r FROM dogdb.stripe_customers c
	UNION ALL SELECT 's ' || (to_jsonb(s) - 'event_arrival')::text FROM dogdb.stripe_subscriptions s
	UNION ALL SELECT 'v ' || (to_jsonb(v) - 'event_arrival')::text FROM dogdb.stripe_subscription_versions v
	UNION ALL SELECT 'i ' || (to_jsonb(i) - 'event_arrival')::text FROM dogdb.stripe_invoices i
	UNION ALL SELECT 'p ' || (to_jsonb(p) - 'event_arrival')::text FROM dogdb.stripe_payments p
	UNION ALL SELECT 'r ' || (to_jsonb(r) - 'event_arrival')::text FROM dogdb.stripe_refunds r
	UNION ALL SELECT 'm ' || to_jsonb(m)::text FROM dogdb.stripe_customer_accounts m) x
$$;
CREATE FUNCTION pg_temp.reset() RETURNS void LANGUAGE sql AS $$
DELETE FROM dogdb.stripe_events; DELETE FROM dogdb.stripe_customer_accounts;
DELETE FROM dogdb.stripe_customers; DELETE FROM dogdb.stripe_subscriptions;
DELETE FROM dogdb.stripe_subscription_versions; DELETE FROM dogdb.stripe_invoices;
DELETE FROM dogdb.stripe_payments; DELETE FROM dogdb.stripe_refunds;
DELETE FROM dogdb_internal.stripe_waiting;
$$;

-- a small event set touching every kind of wait and tie: a customer
-- mapped only by its update, a subscription created/updated/deleted with
-- updated and deleted in the same second, a charge, its refund listed by
-- charge.refunded and updated by charge.refund.updated, an invoice
-- finalized then paid in the same second
CREATE TEMP TABLE small_set (n int, body text);
INSERT INTO small_set VALUES
 (1, '{"id":"evt_p1","type":"customer.created","created":1617235200,"data":{"object":{"id":"cus_P","email":"p@x.example","metadata":{}}}}'),
 (2, '{"id":"evt_p2","type":"customer.updated","created":1617235300,"data":{"object":{"id":"cus_P","email":"p@x.example","metadata":{"account_id":"77"}}}}'),
 (3, '{"id":"evt_p3","type":"customer.subscription.created","created":1617235200,"data":{"object":{"id":"sub_P","customer":"cus_P","status":"active","created":1617235200,"items":{"data":[{"quantity":1,"price":{"id":"pr","unit_amount":1000,"currency":"usd","recurring":{"interval":"month"}}}]}}}}'),
 (4, '{"id":"evt_p4","type":"customer.subscription.updated","created":1619827200,"data":{"object":{"id":"sub_P","customer":"cus_P","status":"active","created":1617235200,"items":{"data":[{"quantity":4,"price":{"id":"pr","unit_amount":1000,"currency":"usd","recurring":{"interval":"month"}}}]}}}}'),
 (5, '{"id":"evt_p5","type":"customer.subscription.deleted","created":1619827200,"data":{"object":{"id":"sub_P","customer":"cus_P","status":"canceled","created":1617235200,"items":{"data":[{"quantity":4,"price":{"id":"pr","unit_amount":1000,"currency":"usd","recurring":{"interval":"month"}}}]}}}}'),
 (6, '{"id":"evt_p6","type":"charge.succeeded","created":1617235400,"data":{"object":{"id":"ch_P","customer":"cus_P","amount":1000,"currency":"usd","status":"succeeded","created":1617235400}}}'),
 (7, '{"id":"evt_p7","type":"charge.refunded","created":1617321600,"data":{"object":{"id":"ch_P","customer":"cus_P","amount":1000,"amount_refunded":400,"currency":"usd","status":"succeeded","created":1617235400,"refunds":{"data":[{"id":"re_P","charge":"ch_P","amount":400,"currency":"usd","status":"pending","created":1617321600}]}}}}'),
 (8, '{"id":"evt_p8","type":"charge.refund.updated","created":1617321600,"data":{"object":{"id":"re_P","charge":"ch_P","amount":400,"currency":"usd","status":"succeeded","created":1617321600}}}'),
 (9, '{"id":"evt_p9","type":"invoice.finalized","created":1617235400,"data":{"object":{"id":"in_P","customer":"cus_P","subscription":"sub_P","status":"open","currency":"usd","total":1000,"amount_paid":0,"created":1617235400}}}'),
 (10, '{"id":"evt_p10","type":"invoice.paid","created":1617235400,"data":{"object":{"id":"in_P","customer":"cus_P","subscription":"sub_P","status":"paid","currency":"usd","total":1000,"amount_paid":1000,"created":1617235400}}}');

-- in order, as the reference
SELECT pg_temp.reset() \g /dev/null
SELECT count(*) FROM small_set, dogdb_ingest_stripe_event(body, NULL) \g /dev/null
CREATE TEMP TABLE reference AS SELECT pg_temp.facts() AS f;
SELECT is((SELECT count(*) FROM unnest(string_to_array((SELECT f FROM reference), E'\n'))), 9::bigint,
		  'the small set yields 9 fact rows');
SELECT results_eq($$SELECT status, mrr_cents, event_rank FROM dogdb.stripe_subscriptions$$,
				  $$VALUES ('canceled', 0::bigint, 3::smallint)$$, 'deleted wins over updated in the same second');
SELECT results_eq($$SELECT status FROM dogdb.stripe_invoices UNION ALL SELECT status FROM dogdb.stripe_refunds$$,
				  $$VALUES ('paid'), ('succeeded')$$, 'paid wins over finalized; the refund update over the listed refund');

-- every permutation of 6 of the events (720 orders), and 200 random orders of all 10
CREATE TEMP TABLE orders (k int, ord int[]);
WITH RECURSIVE p(ord) AS (
	SELECT ARRAY[]::int[]
	UNION ALL
	SELECT p.ord || e FROM p, unnest(ARRAY[2, 3, 5, 6, 7, 8]) e WHERE NOT e = ANY (p.ord))
INSERT INTO orders SELECT row_number() OVER (), ord || ARRAY[1, 4, 9, 10] FROM p WHERE cardinality(ord) = 6;
SELECT setseed(0.14) \g /dev/null
INSERT INTO orders SELECT 1000 + g, (SELECT array_agg(n ORDER BY random()) FROM small_set) FROM generate_series(1, 200) g;
CREATE TEMP TABLE order_results (k int, same boolean, replay_same boolean);
DO $$
DECLARE
	o record;
	ref text := (SELECT f FROM reference);
	got text;
BEGIN
	FOR o IN SELECT * FROM orders ORDER BY k LOOP
		PERFORM pg_temp.reset();
		PERFORM dogdb_ingest_stripe_event(s.body, NULL)
		   FROM unnest(o.ord) WITH ORDINALITY u(n, i) JOIN small_set s USING (n) ORDER BY u.i;
		got := pg_temp.facts();
		IF o.k % 50 = 1 THEN	-- replay some of them
			PERFORM dogdb_stripe_replay();
			INSERT INTO order_results VALUES (o.k, got = ref, pg_temp.facts() = ref);
		ELSE
			INSERT INTO order_results VALUES (o.k, got = ref, NULL);
		END IF;
	END LOOP;
END $$;
SELECT is((SELECT count(*) FROM order_results WHERE k < 1000), 720::bigint, '720 permutations ran');
SELECT is((SELECT count(*) FROM order_results WHERE NOT same), 0::bigint,
		  'every permutation and random order gives the same facts');
SELECT is((SELECT count(*) FROM order_results WHERE replay_same), (SELECT count(*) FROM order_results WHERE replay_same IS NOT NULL),
		  'replay after any order gives the same facts');

--
-- The direct writer (heap and index calls) against the SQL route on the
-- same generated traffic: a trigger on a table sends that table's writes
-- through SQL (stripe_store.c), so with one on every table it is all SQL
--
CREATE FUNCTION pg_temp.ledger() RETURNS text LANGUAGE sql AS $$
SELECT string_agg(concat_ws('|', event_id, event_type, object_id, link_id, created, md5(payload)), E'\n' ORDER BY event_id)
  FROM dogdb.stripe_events
$$;
CREATE TEMP TABLE trig_log (tbl text, op text);
CREATE FUNCTION pg_temp.log_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO pg_temp.trig_log VALUES (TG_TABLE_NAME, TG_OP);
	RETURN NEW;
END $$;
CREATE FUNCTION pg_temp.set_triggers(tables text[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['stripe_events', 'stripe_customer_accounts', 'stripe_customers', 'stripe_subscriptions',
							 'stripe_subscription_versions', 'stripe_invoices', 'stripe_payments', 'stripe_refunds'] LOOP
		EXECUTE format('DROP TRIGGER IF EXISTS tap_log ON dogdb.%I', t);
		IF t = ANY (tables) THEN
			EXECUTE format('CREATE TRIGGER tap_log AFTER INSERT OR UPDATE ON dogdb.%I FOR EACH ROW EXECUTE FUNCTION pg_temp.log_row()', t);
		END IF;
	END LOOP;
END $$;
SELECT pg_temp.gen_stripe(150, 0.25) \g /dev/null
-- (the generated set plus the small set: refunds and invoices too)
CREATE TEMP TABLE route_in AS
SELECT n, body FROM pg_temp.gen UNION ALL SELECT 100000 + n, body FROM small_set;
DROP TABLE gen_ev;	-- (gen_stripe() runs again below, in this transaction)
CREATE TEMP TABLE route_runs (route text, outcomes text, facts text, ledger text);
CREATE FUNCTION pg_temp.route_run(route text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.reset();
	INSERT INTO route_runs
	SELECT route, string_agg(concat_ws('|', n, o.event_id, o.outcome), E'\n' ORDER BY n), pg_temp.facts(), pg_temp.ledger()
	  FROM (SELECT * FROM route_in ORDER BY n) r, LATERAL dogdb_ingest_stripe_event(r.body, NULL) o;
END $$;
SELECT pg_temp.route_run('direct') \g /dev/null
SELECT pg_temp.set_triggers(ARRAY['stripe_events', 'stripe_customer_accounts', 'stripe_customers', 'stripe_subscriptions',
								  'stripe_subscription_versions', 'stripe_invoices', 'stripe_payments', 'stripe_refunds']) \g /dev/null
SELECT pg_temp.route_run('sql') \g /dev/null
SELECT is((SELECT count(DISTINCT tbl) FROM trig_log), 8::bigint,
		  'with a user trigger on every table, every table is written through SQL (the triggers fire)');
SELECT is((SELECT count(*) FROM trig_log WHERE tbl = 'stripe_events'), (SELECT count(*) FROM dogdb.stripe_events),
		  'the ledger trigger fired once per ledger row');
SELECT ok((SELECT facts ~ '(^|\n)p ' AND facts ~ '(^|\n)r ' AND facts ~ '(^|\n)i ' AND facts ~ '(^|\n)v '
			  AND outcomes ~ '\|duplicate(\n|$)' AND outcomes ~ '\|stale(\n|$)'
			 FROM route_runs WHERE route = 'direct'),
		  'the traffic yields payments, refunds, invoices, versions, duplicates and stale events');
SELECT is((SELECT outcomes FROM route_runs WHERE route = 'sql'), (SELECT outcomes FROM route_runs WHERE route = 'direct'),
		  'direct writer and SQL route: the same outcome for every delivery (duplicates, stale, ignored)');
SELECT is((SELECT facts FROM route_runs WHERE route = 'sql'), (SELECT facts FROM route_runs WHERE route = 'direct'),
		  'direct writer and SQL route: the same facts');
SELECT is((SELECT ledger FROM route_runs WHERE route = 'sql'), (SELECT ledger FROM route_runs WHERE route = 'direct'),
		  'direct writer and SQL route: the same ledger');
-- one table through SQL, the others direct; then none: the triggers are gone
TRUNCATE trig_log;
SELECT pg_temp.set_triggers(ARRAY['stripe_payments']) \g /dev/null
SELECT pg_temp.route_run('mixed') \g /dev/null
SELECT pg_temp.set_triggers(ARRAY[]::text[]) \g /dev/null
SELECT pg_temp.route_run('direct again') \g /dev/null
SELECT ok((SELECT count(*) FROM trig_log WHERE tbl = 'stripe_payments') > 0
		  AND (SELECT count(*) FROM trig_log WHERE tbl <> 'stripe_payments') = 0
		  AND (SELECT count(DISTINCT (outcomes, facts, ledger)) FROM route_runs) = 1,
		  'a trigger on one table routes only that table through SQL, dropping it routes it back; the same results');
-- a redelivery in the same statement and in a later one: one ledger row
SELECT pg_temp.reset() \g /dev/null
SELECT is((SELECT array_agg(o.outcome ORDER BY k) FROM (VALUES (1), (2)) v(k),
				 LATERAL dogdb_ingest_stripe_event(CASE WHEN k > 0 THEN (SELECT body FROM small_set WHERE n = 6) END, NULL) o)
		  || (SELECT array_agg(outcome) FROM dogdb_ingest_stripe_event((SELECT body FROM small_set WHERE n = 6), NULL)),
		  ARRAY['applied', 'duplicate', 'duplicate'],
		  'a redelivery in the same statement or a later one is a duplicate');

-- the ingest role: EXECUTE on ingest and nothing else
SELECT ok(has_function_privilege('dogdb_ingest', 'dogdb_ingest_stripe_event(text, text)', 'EXECUTE'),
		  'dogdb_ingest may call dogdb_ingest_stripe_event');
SELECT is((SELECT array_agg(p.oid::regprocedure::text ORDER BY p.proname)
			 FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
			WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dogdb_analytics')
			  AND p.proname LIKE '%stripe%' AND has_function_privilege('dogdb_ingest', p.oid, 'EXECUTE')),
		  ARRAY['dogdb_ingest_stripe_event(text,text)', 'dogdb_stripe_verify_signature(text,text,text[],interval,timestamp with time zone)'],
		  'of the Stripe functions it may call only ingest (and the pure signature check)');
SELECT is((SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = 'dogdb' AND c.relkind IN ('r', 'v', 'm', 'S')
			  AND (has_table_privilege('dogdb_ingest', c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')
				   OR has_any_column_privilege('dogdb_ingest', c.oid, 'SELECT'))), 0::bigint,
		  'dogdb_ingest has no privilege on any table of dogdb');
SELECT ok(NOT has_table_privilege('dogdb_reader', 'dogdb.stripe_webhook_secrets', 'SELECT')
		  AND NOT has_table_privilege('dogdb_reader', 'dogdb.stripe_events', 'SELECT'),
		  'dogdb_reader cannot read the secrets or the raw ledger');
INSERT INTO dogdb.stripe_webhook_secrets (secret) VALUES ('whsec_tap');
SET LOCAL ROLE dogdb_ingest;
SELECT is((SELECT outcome FROM dogdb_ingest_stripe_event(b, 't=' || t || ',v1=' ||
				encode(public.hmac(convert_to(t || '.' || b, 'UTF8'), convert_to('whsec_tap', 'UTF8'), 'sha256'), 'hex'))),
		  'applied', 'as dogdb_ingest a signed event is applied')
  FROM (SELECT '{"id":"evt_role","type":"charge.succeeded","created":1617235400,"data":{"object":{"id":"ch_R","customer":"cus_P","amount":5,"currency":"usd","status":"succeeded","created":1617235400}}}'::text AS b,
			   floor(extract(epoch FROM now()))::bigint AS t) x;
SELECT throws_ok('SELECT * FROM dogdb.stripe_webhook_secrets', '42501', NULL, 'dogdb_ingest cannot read the secrets');
SELECT throws_ok('SELECT * FROM dogdb_stripe_replay()', '42501', NULL, 'dogdb_ingest cannot replay');
RESET ROLE;
SELECT is((SELECT (prosecdef, proconfig IS NULL) FROM pg_proc WHERE oid = 'dogdb_ingest_stripe_event(text, text)'::regprocedure),
		  (false, true), 'the ingest is not SECURITY DEFINER: it writes for its owner itself (no per-call GUC work)');

--
-- MRR, movements, LTV and cohorts against the independent computation
-- (test/stripe_reference.sql), on the fixtures and on generated traffic
--
DELETE FROM dogdb.stripe_webhook_secrets;
CREATE FUNCTION pg_temp.mrr_checks(from_month date, to_month date, as_of date, what text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
BEGIN
	RETURN NEXT set_eq(format('SELECT * FROM dogdb_stripe_account_mrr(%L, %L)', from_month, to_month),
					   format('SELECT * FROM pg_temp.ref_account_months(%L) WHERE month >= %L', to_month, from_month),
					   what || ': MRR per account and month');
	RETURN NEXT set_eq(format($q$SELECT month, currency, mrr_start_cents, new_cents, expansion_cents, contraction_cents,
									  churned_cents, reactivation_cents, mrr_end_cents, customers_start, new_customers,
									  reactivated_customers, churned_customers, customers_end
								 FROM dogdb_mrr_movements(%L, %L) m
								WHERE mrr_start_cents <> 0 OR mrr_end_cents <> 0 OR customers_start <> 0 OR customers_end <> 0$q$,
							  from_month, to_month),
					   format($q$SELECT * FROM pg_temp.ref_movements(%L, %L)
								WHERE mrr_start_cents <> 0 OR mrr_end_cents <> 0 OR customers_start <> 0 OR customers_end <> 0$q$,
							  from_month, to_month),
					   what || ': MRR movements');
	RETURN NEXT is((SELECT count(*) FROM dogdb_mrr_movements(from_month, to_month)
					 WHERE net_cents <> mrr_end_cents - mrr_start_cents
						OR gross_mrr_churn_rate IS DISTINCT FROM round(-(churned_cents + contraction_cents)::numeric / nullif(mrr_start_cents, 0), 4)
						OR customer_churn_rate IS DISTINCT FROM round(churned_customers::numeric / nullif(customers_start, 0), 4)), 0::bigint,
				   what || ': net = end - start; churn rates by their definitions');
	RETURN NEXT set_eq(format('SELECT * FROM dogdb_cohort_retention(%L, %L, %L)', from_month, to_month, 'logo'),
					   format('SELECT * FROM pg_temp.ref_cohorts(%L, %L, %L)', from_month, to_month, 'logo'),
					   what || ': logo cohorts');
	RETURN NEXT set_eq(format('SELECT * FROM dogdb_cohort_retention(%L, %L, %L)', from_month, to_month, 'Revenue'),
					   format('SELECT * FROM pg_temp.ref_cohorts(%L, %L, %L)', from_month, to_month, 'revenue'),
					   what || ': revenue cohorts');
	RETURN NEXT set_eq(format('SELECT account_id, currency, first_payment_at, months_active, realized_ltv_cents, mrr_cents,
									  arpa_cents, customer_churn_rate, predicted_ltv_cents FROM dogdb_customer_ltv(%L)', as_of),
					   format('SELECT * FROM pg_temp.ref_ltv(%L)', as_of),
					   what || ': LTV');
END $$;

SELECT pg_temp.reset() \g /dev/null
CREATE TEMP TABLE fixture (delivery serial, body text);
\copy fixture (body) FROM 'test/fixtures/stripe/events.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
SELECT count(*) FROM fixture, dogdb_ingest_stripe_event(body, NULL) \g /dev/null
SELECT * FROM pg_temp.mrr_checks('2021-01-01', '2021-08-01', '2021-07-10', 'fixtures');
SELECT results_eq($$SELECT month, new_cents, expansion_cents, contraction_cents, churned_cents, reactivation_cents
					  FROM dogdb_mrr_movements('2021-03-01', '2021-06-01') WHERE currency = 'usd'$$,
				  $$VALUES ('2021-03-01'::date, 0::bigint, 10000::bigint, 0::bigint, 0::bigint, 0::bigint),
						   ('2021-04-01', 1500, 0, 0, -8000, 0), ('2021-05-01', 0, 0, -2000, 0, 0),
						   ('2021-06-01', 0, 0, 0, 0, 3000)$$,
				  'fixtures: the story''s movements (expansion, new and churn, contraction, reactivation)');

SELECT pg_temp.gen_stripe(300, 0.5) \g /dev/null
SELECT pg_temp.reset() \g /dev/null
SELECT count(*) FROM pg_temp.gen, dogdb_ingest_stripe_event(body, NULL) \g /dev/null
SELECT * FROM pg_temp.mrr_checks('2021-01-01', '2022-12-01', '2022-09-20', 'generated');
SELECT ok(sum(new_cents) > 0 AND sum(expansion_cents) > 0 AND sum(contraction_cents) < 0
		  AND sum(churned_cents) < 0 AND sum(reactivation_cents) > 0,
		  format('generated: every kind of movement occurs (%s)', string_agg(DISTINCT currency, ', ')))
  FROM dogdb_mrr_movements('2021-01-01', '2022-12-01');

SET LOCAL ROLE dogdb_reader;
SELECT lives_ok($$SELECT FROM dogdb_mrr_movements('2021-01-01', '2022-12-01'), dogdb_customer_ltv('2022-01-01'),
					  dogdb_cohort_retention('2021-01-01', '2021-12-01')$$,
				'dogdb_reader runs the MRR, LTV and cohort reads');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
