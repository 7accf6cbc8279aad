-- Stripe webhooks: signatures, the ledger, ordering, replay
\set SHOW_CONTEXT never
SET timezone = 'UTC';
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;

-- sign a body as Stripe does: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))
CREATE FUNCTION pg_temp.sign(body text, secret text, t bigint DEFAULT floor(extract(epoch FROM now()))::bigint)
RETURNS text LANGUAGE sql AS $$
SELECT 't=' || t || ',v1=' || encode(hmac(convert_to(t || '.' || body, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex')
$$;

--
-- 1. dogdb_stripe_verify_signature
--
\set body '{"id":"evt_1","object":"event"}'
SELECT pg_temp.sign(:'body', 'whsec_test', 1700000000) AS good \gset
-- a known vector (computed independently): HMAC-SHA256("whsec_test", "1700000000.{\"id\":\"evt_1\"}")
SELECT dogdb_stripe_verify_signature('{"id":"evt_1"}',
	't=1700000000,v1=c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925',
	ARRAY['whsec_test'], at => to_timestamp(1700000000)) AS known_vector;
SELECT dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], at => to_timestamp(1700000000)) AS ok_now,
	   dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], at => to_timestamp(1700000300)) AS ok_300s_later,
	   dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], at => to_timestamp(1700000301)) AS too_old,
	   dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], at => to_timestamp(1699999700)) AS ok_300s_earlier,
	   dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], at => to_timestamp(1699999699)) AS too_far_ahead,
	   dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], '1 hour', to_timestamp(1700003000)) AS wider_tolerance;
-- rotation: any v1 against any secret
SELECT dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_other', 'whsec_test'], at => to_timestamp(1700000000)) AS second_secret,
	   dogdb_stripe_verify_signature(:'body', 't=1700000000,v1=' || repeat('0', 64) || ',' || substr(:'good', 14),
									 ARRAY['whsec_test'], at => to_timestamp(1700000000)) AS second_v1,
	   dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_other'], at => to_timestamp(1700000000)) AS wrong_secret,
	   dogdb_stripe_verify_signature(:'body' || ' ', :'good', ARRAY['whsec_test'], at => to_timestamp(1700000000)) AS body_changed;
-- a backend keeps keyed HMAC contexts for four secrets (src/stripe_hmac.c):
-- twelve in turn, twice, each against its own secret and another one
-- (whsec_k1 and whsec_k10: one a prefix of the other)
SELECT count(*) FILTER (WHERE dogdb_stripe_verify_signature(:'body', pg_temp.sign(:'body', 'whsec_k' || i, 1700000000),
							ARRAY['whsec_k' || i], at => to_timestamp(1700000000))) AS own_secret,
	   count(*) FILTER (WHERE dogdb_stripe_verify_signature(:'body', pg_temp.sign(:'body', 'whsec_k' || i, 1700000000),
							ARRAY['whsec_k' || (i + 8) % 12 + 1], at => to_timestamp(1700000000))) AS other_secret
  FROM generate_series(1, 2) r, generate_series(1, 12) i;
-- v0 and unknown schemes are ignored; malformed headers are false, never an error
SELECT label, dogdb_stripe_verify_signature(:'body', h, ARRAY['whsec_test'], at => to_timestamp(1700000000)) AS valid
  FROM (VALUES
	('v0 first', 'v0=' || substr(:'good', 17) || ',' || :'good'),
	('unknown schemes after', :'good' || ',v0=abc,scheme=x'),
	('v0 only', 't=1700000000,v0=' || substr(:'good', 17)),
	('no t', substr(:'good', 14)),
	('two t', 't=1700000000,t=1700000000' || substr(:'good', 13)),
	('non-numeric t', 't=17000000x0' || substr(:'good', 13)),
	('space before v1', 't=1700000000, v1=' || substr(:'good', 17)),
	('leading space', ' ' || :'good'),
	('trailing comma', :'good' || ','),
	('upper-case hex', 't=1700000000,v1=' || upper(substr(:'good', 17))),
	('v1 without value', 't=1700000000,v1'),
	('empty', ''),
	('garbage', 'garbage'),
	('8 kB of t', repeat('t=1,', 2000) || :'good')) v(label, h);
SELECT dogdb_stripe_verify_signature(:'body', NULL, ARRAY['whsec_test']) AS no_header;
-- argument errors
SELECT dogdb_stripe_verify_signature(NULL, :'good', ARRAY['whsec_test']);
SELECT dogdb_stripe_verify_signature(:'body', :'good', NULL);
SELECT dogdb_stripe_verify_signature(:'body', :'good', '{}');
SELECT dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test', NULL]);
SELECT dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], '-1 second');
SELECT dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], '1 month');
SELECT dogdb_stripe_verify_signature(:'body', :'good', ARRAY['whsec_test'], '5 minutes', 'infinity');

--
-- 2. the ledger: dogdb_ingest_stripe_event and dogdb_stripe_replay
--
TRUNCATE dogdb.stripe_events, dogdb.stripe_customer_accounts, dogdb.stripe_customers,
	dogdb.stripe_subscriptions, dogdb.stripe_subscription_versions, dogdb.stripe_invoices,
	dogdb.stripe_payments, dogdb.stripe_refunds, dogdb.stripe_webhook_secrets;
-- the fixtures: one raw body per line, in delivery order (test/fixtures/stripe/make_fixtures.py)
CREATE TEMP TABLE fixture (delivery serial, body text);
\copy fixture (body) FROM 'test/fixtures/stripe/events.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
SELECT count(*) AS deliveries, count(DISTINCT body::jsonb->>'id') AS events FROM fixture;

-- a secret being rolled: the first half is signed with the old one
INSERT INTO dogdb.stripe_webhook_secrets (secret, note) VALUES ('whsec_old', 'rolled'), ('whsec_new', NULL);
SELECT f.delivery, i.*
  FROM fixture f, dogdb_ingest_stripe_event(f.body,
		pg_temp.sign(f.body, CASE WHEN f.delivery <= 28 THEN 'whsec_old' ELSE 'whsec_new' END)) i
 ORDER BY f.delivery;
SELECT count(*) AS ledger_rows FROM dogdb.stripe_events;
-- the ledger keeps every body as delivered: written compressed (lz4 when the
-- server has it) and read back byte for byte, never stored larger
SELECT count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM fixture f WHERE f.body = e.payload)) AS bodies_changed,
	   count(*) FILTER (WHERE pg_column_size(e.payload) > octet_length(e.payload) + 4) AS stored_larger,
	   count(*) FILTER (WHERE pg_column_compression(e.payload) = 'lz4') > 0
		OR NOT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' AND 'lz4' = ANY (enumvals))
		   AS compressed_if_lz4
  FROM dogdb.stripe_events e;

-- the facts
SELECT * FROM dogdb.stripe_customer_accounts ORDER BY customer_id;
SELECT account_id, customer_id, email, deleted, created_at FROM dogdb.stripe_customers ORDER BY 1, 2;
SELECT account_id, subscription_id, status, currency, mrr_cents, price_id, quantity, "interval",
	   discount_percent_off, started_at, canceled_at, ended_at, event_rank
  FROM dogdb.stripe_subscriptions ORDER BY 1, 2;
SELECT account_id, subscription_id, event_created, event_rank, status, mrr_cents
  FROM dogdb.stripe_subscription_versions ORDER BY 1, 2, 3, 4;
SELECT account_id, invoice_id, subscription_id, status, currency, total_cents, amount_paid_cents
  FROM dogdb.stripe_invoices ORDER BY 1, 2;
SELECT account_id, charge_id, invoice_id, status, currency, amount_cents, amount_refunded_cents, created_at
  FROM dogdb.stripe_payments ORDER BY 1, 2;
SELECT account_id, refund_id, charge_id, status, amount_cents, event_rank FROM dogdb.stripe_refunds ORDER BY 1, 2;

-- replay rebuilds the same facts
CREATE TEMP TABLE before_replay AS
SELECT 'customers' AS t, to_jsonb(c) AS r FROM dogdb.stripe_customers c
UNION ALL SELECT 'subscriptions', to_jsonb(s) FROM dogdb.stripe_subscriptions s
UNION ALL SELECT 'versions', to_jsonb(v) FROM dogdb.stripe_subscription_versions v
UNION ALL SELECT 'invoices', to_jsonb(i) FROM dogdb.stripe_invoices i
UNION ALL SELECT 'payments', to_jsonb(p) FROM dogdb.stripe_payments p
UNION ALL SELECT 'refunds', to_jsonb(r) FROM dogdb.stripe_refunds r
UNION ALL SELECT 'mapping', to_jsonb(m) FROM dogdb.stripe_customer_accounts m;
SELECT * FROM dogdb_stripe_replay();
SELECT (SELECT count(*) FROM before_replay) AS fact_rows,
	   (SELECT count(*) FROM (
		SELECT * FROM before_replay EXCEPT ALL (
			SELECT 'customers', to_jsonb(c) FROM dogdb.stripe_customers c
			UNION ALL SELECT 'subscriptions', to_jsonb(s) FROM dogdb.stripe_subscriptions s
			UNION ALL SELECT 'versions', to_jsonb(v) FROM dogdb.stripe_subscription_versions v
			UNION ALL SELECT 'invoices', to_jsonb(i) FROM dogdb.stripe_invoices i
			UNION ALL SELECT 'payments', to_jsonb(p) FROM dogdb.stripe_payments p
			UNION ALL SELECT 'refunds', to_jsonb(r) FROM dogdb.stripe_refunds r
			UNION ALL SELECT 'mapping', to_jsonb(m) FROM dogdb.stripe_customer_accounts m)) d) AS differ_after_replay;

-- refused: forged, stale, future, unsigned, malformed; nothing written
\set ev '{"id":"evt_x1","object":"event","type":"charge.succeeded","created":1625097600,"data":{"object":{"id":"ch_X","object":"charge","customer":"cus_A101","amount":999,"amount_refunded":0,"currency":"usd","status":"succeeded","created":1625097600}}}'
SELECT dogdb_ingest_stripe_event(:'ev', pg_temp.sign(:'ev', 'whsec_forged'));
SELECT dogdb_ingest_stripe_event(:'ev', pg_temp.sign(:'ev', 'whsec_new', floor(extract(epoch FROM now()))::bigint - 310));
SELECT dogdb_ingest_stripe_event(:'ev', pg_temp.sign(:'ev', 'whsec_new', floor(extract(epoch FROM now()))::bigint + 310));
SELECT dogdb_ingest_stripe_event(:'ev', NULL);
SELECT dogdb_ingest_stripe_event(:'ev', 't=1,v1=zz');
SELECT dogdb_ingest_stripe_event(:'ev' || ' ', pg_temp.sign(:'ev', 'whsec_new'));
\set bad '{"id":"evt_x2","type":"charge.succeeded","created":1625097600,"data":{"object":{"id":"ch_Y","customer":"cus_A101","currency":"usd","status":"succeeded","created":1625097600}}}'
SELECT dogdb_ingest_stripe_event(:'bad', pg_temp.sign(:'bad', 'whsec_new'));
SELECT dogdb_ingest_stripe_event('{"id":"evt_x3", "type":', pg_temp.sign('{"id":"evt_x3", "type":', 'whsec_new'));
\set bad '{"id":"evt_x4","type":"customer.subscription.created","created":1,"data":{"object":{"id":"sub_X","customer":"cus_A101","status":"active","created":1,"items":{"data":[{"price":{"id":"p","unit_amount":"100","currency":"usd","recurring":{"interval":"month"}}}]}}}}'
SELECT dogdb_ingest_stripe_event(:'bad', pg_temp.sign(:'bad', 'whsec_new'));
SELECT dogdb_ingest_stripe_event(repeat(' ', 1024 * 1024) || :'ev', pg_temp.sign(repeat(' ', 1024 * 1024) || :'ev', 'whsec_new'));
SELECT dogdb_ingest_stripe_event(NULL, NULL);
SELECT count(*) AS ledger_rows, count(*) FILTER (WHERE event_id LIKE 'evt_x%') AS refused_written FROM dogdb.stripe_events;
-- the same event signed right: applied once, then a duplicate
SELECT * FROM dogdb_ingest_stripe_event(:'ev', pg_temp.sign(:'ev', 'whsec_new'));
SELECT * FROM dogdb_ingest_stripe_event(:'ev', pg_temp.sign(:'ev', 'whsec_old'));

-- the ingest role may call ingest and nothing else
SET ROLE dogdb_ingest;
SELECT event_id, outcome FROM dogdb_ingest_stripe_event(:'ev', pg_temp.sign(:'ev', 'whsec_new'));
SELECT count(*) FROM dogdb.stripe_webhook_secrets;
SELECT count(*) FROM dogdb.stripe_events;
SELECT * FROM dogdb_stripe_replay();
RESET ROLE;

-- ties: on the same second an event that comes later in the object's life
-- wins (above: deleted over updated, stripe/sync-engine issue 268); with
-- the same rank too, the later arrival wins
BEGIN;
SELECT v.b::jsonb->>'id' AS event_id, i.outcome
  FROM (VALUES
	('{"id":"evt_t1","type":"customer.created","created":1625097600,"data":{"object":{"id":"cus_T","metadata":{"account_id":"900"}}}}'),
	('{"id":"evt_t2","type":"customer.subscription.updated","created":1625097700,"data":{"object":{"id":"sub_T","customer":"cus_T","status":"active","created":1625097600,"items":{"data":[{"quantity":5,"price":{"id":"p","unit_amount":100,"currency":"usd","recurring":{"interval":"month"}}}]}}}}'),
	('{"id":"evt_t3","type":"customer.subscription.updated","created":1625097700,"data":{"object":{"id":"sub_T","customer":"cus_T","status":"active","created":1625097600,"items":{"data":[{"quantity":2,"price":{"id":"p","unit_amount":100,"currency":"usd","recurring":{"interval":"month"}}}]}}}}'),
	('{"id":"evt_t4","type":"customer.subscription.created","created":1625097700,"data":{"object":{"id":"sub_T","customer":"cus_T","status":"incomplete","created":1625097600,"items":{"data":[{"quantity":1,"price":{"id":"p","unit_amount":100,"currency":"usd","recurring":{"interval":"month"}}}]}}}}')) v(b),
	   dogdb_ingest_stripe_event(v.b, pg_temp.sign(v.b, 'whsec_new')) i;
SELECT subscription_id, quantity, mrr_cents, event_id FROM dogdb.stripe_subscriptions WHERE account_id = 900;
ROLLBACK;
-- a secret changed in this session takes effect in the next statement (the
-- secrets are read per statement, and the keyed HMAC contexts a backend
-- keeps, src/stripe_hmac.c, go by the secret's bytes): the replaced one is
-- refused, its successor accepted
BEGIN;
UPDATE dogdb.stripe_webhook_secrets SET secret = 'whsec_newer' WHERE secret = 'whsec_new';
\set ev_k '{"id":"evt_k1","type":"customer.created","created":1625097600,"data":{"object":{"id":"cus_K","metadata":{"account_id":"901"}}}}'
SAVEPOINT replaced;
SELECT * FROM dogdb_ingest_stripe_event(:'ev_k', pg_temp.sign(:'ev_k', 'whsec_new'));
ROLLBACK TO replaced;
SELECT * FROM dogdb_ingest_stripe_event(:'ev_k', pg_temp.sign(:'ev_k', 'whsec_newer'));
ROLLBACK;
DELETE FROM dogdb.stripe_webhook_secrets;

--
-- 3. MRR movements, LTV and cohorts on the fixtures (the story in
-- test/fixtures/stripe/make_fixtures.py; evt_x1 above added a payment)
--
SELECT * FROM dogdb_mrr_movements('2021-01-01', '2021-07-01');
SELECT * FROM dogdb_stripe_account_mrr('2021-03-01', '2021-04-01') ORDER BY 1, 2, 3;
SELECT * FROM dogdb_customer_ltv('2021-07-10');
SELECT * FROM dogdb_cohort_retention('2021-01-01', '2021-06-01');
SELECT * FROM dogdb_cohort_retention('2021-01-01', '2021-06-01', 'revenue') WHERE cohort_month = '2021-01-01';
-- months before any data: nothing
SELECT count(*) FROM dogdb_mrr_movements('2020-01-01', '2020-12-01');
-- argument errors
SELECT * FROM dogdb_mrr_movements('2021-01-15', '2021-06-01');
SELECT * FROM dogdb_mrr_movements(NULL, '2021-06-01');
SELECT * FROM dogdb_mrr_movements('2021-06-01', '2021-01-01');
SELECT * FROM dogdb_stripe_account_mrr('2021-01-01', 'infinity');
SELECT * FROM dogdb_customer_ltv(NULL);
SELECT * FROM dogdb_customer_ltv('infinity');
SELECT * FROM dogdb_cohort_retention('2021-01-01', '2021-06-01', 'logos');
SELECT * FROM dogdb_cohort_retention('2021-01-01', '2021-06-01', NULL);
SELECT * FROM dogdb_cohort_retention('2021-01-01', NULL);
SELECT * FROM dogdb_cohort_retention('2021-06-01', '2021-01-01');

--
-- 4. The write routes.  Ingestion writes with heap and index calls; a
-- table with a user trigger, and every table outside READ COMMITTED, is
-- written through SQL instead, with the same results.
--
\set ev_rr '{"id":"evt_rr1","type":"charge.succeeded","created":1625097600,"data":{"object":{"id":"ch_RR","customer":"cus_A101","amount":700,"currency":"usd","status":"succeeded","created":1625097600}}}'
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM dogdb_ingest_stripe_event(:'ev_rr', NULL);
SELECT * FROM dogdb_ingest_stripe_event(:'ev_rr', NULL);
SELECT account_id, charge_id, amount_cents FROM dogdb.stripe_payments WHERE charge_id = 'ch_RR';
ROLLBACK;
-- a read-only transaction is refused as SQL refuses it
BEGIN READ ONLY;
SELECT * FROM dogdb_ingest_stripe_event(:'ev_rr', NULL);
ROLLBACK;
-- a user trigger on the payments fires (that table goes through SQL)
CREATE TABLE stripe_trigger_log (charge_id text, amount_cents bigint);
CREATE FUNCTION stripe_log_payment() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.stripe_trigger_log VALUES (NEW.charge_id, NEW.amount_cents);
	RETURN NEW;
END $$;
CREATE TRIGGER log_payment AFTER INSERT ON dogdb.stripe_payments FOR EACH ROW EXECUTE FUNCTION stripe_log_payment();
SELECT * FROM dogdb_ingest_stripe_event(:'ev_rr', NULL);
SELECT * FROM dogdb_ingest_stripe_event(:'ev_rr', NULL);
SELECT * FROM stripe_trigger_log;
DROP TRIGGER log_payment ON dogdb.stripe_payments;
-- and without it the next payment is written directly: the trigger is gone
SELECT * FROM dogdb_ingest_stripe_event(replace(replace(:'ev_rr', 'evt_rr1', 'evt_rr2'), 'ch_RR', 'ch_RR2'), NULL);
SELECT count(*) AS logged FROM stripe_trigger_log;
SELECT charge_id, amount_cents FROM dogdb.stripe_payments WHERE charge_id LIKE 'ch_RR%' ORDER BY 1;
DROP TABLE stripe_trigger_log;
DROP FUNCTION stripe_log_payment();
