-- pgTAP: Stripe ingestion across the update from 1.6 to 1.7: this library
-- ingests into a database still at 1.6 (events waiting in the ledger, as
-- 1.6 kept them), and the update lists those still waiting in
-- dogdb_internal.stripe_waiting, so that their customer's mapping or their
-- charge applies them afterwards, and a replay gives the same facts.
\ir setup.psql
CREATE EXTENSION btree_gist;
CREATE EXTENSION dogdb_analytics VERSION '1.6';
SELECT plan(7);

CREATE FUNCTION pg_temp.ingest(body text) RETURNS text LANGUAGE sql AS $$
SELECT outcome FROM dogdb_ingest_stripe_event(body, NULL)
$$;
-- (a volatile function: it sees what the ingestion in the same statement wrote)
CREATE FUNCTION pg_temp.q(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE sql INTO r;
	RETURN r;
END $$;
CREATE FUNCTION pg_temp.facts() RETURNS text LANGUAGE sql AS $$
SELECT string_agg(r, E'\n' ORDER BY r) FROM (
	SELECT 'p ' || (to_jsonb(p) - 'event_arrival')::text AS r FROM dogdb.stripe_payments p
	UNION ALL SELECT 'r ' || (to_jsonb(r) - 'event_arrival')::text FROM dogdb.stripe_refunds r
	UNION ALL SELECT 'm ' || to_jsonb(m)::text FROM dogdb.stripe_customer_accounts m) x
$$;

SELECT is(pg_temp.ingest('{"id":"evt_c1","type":"charge.succeeded","created":1617235400,"data":{"object":{"id":"ch_1","customer":"cus_W","amount":100,"currency":"usd","status":"succeeded","created":1617235400}}}')
		  || ' ' || pg_temp.ingest('{"id":"evt_r1","type":"charge.refund.updated","created":1617235500,"data":{"object":{"id":"re_1","charge":"ch_2","amount":50,"currency":"usd","status":"succeeded","created":1617235500}}}')
		  || ' ' || pg_temp.ingest('{"id":"evt_k1","type":"customer.created","created":1617235200,"data":{"object":{"id":"cus_M","metadata":{"account_id":"3"}}}}')
		  || ' ' || pg_temp.ingest('{"id":"evt_c3","type":"charge.succeeded","created":1617235400,"data":{"object":{"id":"ch_3","customer":"cus_M","amount":100,"currency":"usd","status":"succeeded","created":1617235400}}}'),
		  'applied applied applied applied', 'at 1.6: a charge of an unmapped customer and a refund of an unseen charge wait, a mapped charge is applied');
ALTER EXTENSION dogdb_analytics UPDATE TO '1.7';
SELECT is((SELECT string_agg(link_id || ' ' || event_id, ', ' ORDER BY arrival) FROM dogdb_internal.stripe_waiting),
		  'cus_W evt_c1, ch_2 evt_r1', 'the update lists the two events still waiting');
SELECT is((SELECT count(*) FROM pg_indexes WHERE schemaname = 'dogdb' AND tablename = 'stripe_events'), 1::bigint,
		  'the ledger keeps only its primary key');
SELECT is(pg_temp.ingest('{"id":"evt_k2","type":"customer.created","created":1617235200,"data":{"object":{"id":"cus_W","metadata":{"account_id":"4"}}}}')
		  || ' ' || pg_temp.q($$SELECT account_id FROM dogdb.stripe_payments WHERE charge_id = 'ch_1'$$), 'applied 4',
		  'the customer mapped after the update: its waiting charge is applied');
SELECT is(pg_temp.ingest('{"id":"evt_c2","type":"charge.succeeded","created":1617235400,"data":{"object":{"id":"ch_2","customer":"cus_W","amount":100,"currency":"usd","status":"succeeded","created":1617235400}}}')
		  || ' ' || pg_temp.q($$SELECT account_id || ' ' || charge_id FROM dogdb.stripe_refunds WHERE refund_id = 're_1'$$), 'applied 4 ch_2',
		  'the charge seen after the update: its waiting refund is applied');
CREATE TEMP TABLE before AS SELECT pg_temp.facts() AS f;
SELECT is((SELECT events FROM dogdb_stripe_replay()), 6::bigint, 'replay reads the 6 events');
SELECT is(pg_temp.facts(), (SELECT f FROM before), 'replay gives the same facts');

SELECT * FROM finish();
ROLLBACK;
