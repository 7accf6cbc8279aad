-- pgTAP: what a backend keeps between Stripe deliveries (src/stripe.c,
-- src/stripe_cache.c) follows every change made elsewhere: the webhook
-- secrets (read once per backend, reset by the table's trigger) and the
-- customer mapping (kept per customer).  A login ingesting over TCP (as
-- dogdb_ingest would) keeps them; this session changes the tables,
-- committed, in a database of its own, dropped at the end.
\ir setup_committed.psql
DROP DATABASE IF EXISTS dogdb_stripe_cache_test;
DROP ROLE IF EXISTS tap_cache_ingest;
CREATE DATABASE dogdb_stripe_cache_test;
\c dogdb_stripe_cache_test
SET client_min_messages = warning;
CREATE EXTENSION dogdb_analytics CASCADE;
CREATE EXTENSION pgtap;
CREATE EXTENSION dblink;
CREATE EXTENSION pgcrypto;
CREATE ROLE tap_cache_ingest LOGIN PASSWORD 'tap-cache-ingest-pw' IN ROLE dogdb_ingest;
SELECT set_config('dogdb_test.port', :'port', false) \g /dev/null

-- a delivery signed now with secret (NULL: unsigned)
CREATE FUNCTION pg_temp.header(body text, secret text) RETURNS text LANGUAGE sql AS $$
SELECT CASE WHEN secret IS NOT NULL THEN 't=' || t || ',v1=' ||
	   encode(hmac(convert_to(t || '.' || body, 'UTF8'), convert_to(secret, 'UTF8'), 'sha256'), 'hex') END
  FROM (SELECT floor(extract(epoch FROM now()))::bigint AS t) x
$$;
-- the outcome of ingesting a delivery in the login's backend (or the SQLSTATE)
CREATE FUNCTION pg_temp.ingest(body text, secret text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	IF NOT coalesce('w' = ANY (dblink_get_connections()), false) THEN
		PERFORM dblink_connect('w', format('host=127.0.0.1 port=%s dbname=dogdb_stripe_cache_test user=tap_cache_ingest password=tap-cache-ingest-pw',
										   current_setting('dogdb_test.port')));
	END IF;
	SELECT o INTO r FROM dblink('w', format('SELECT outcome FROM dogdb_ingest_stripe_event(%L, %L)',
											 body, pg_temp.header(body, secret))) AS t(o text);
	RETURN r;
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
-- a statement run in the login's backend: 'ok' or its SQLSTATE
CREATE FUNCTION pg_temp.w(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM dblink_exec('w', q);
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
CREATE FUNCTION pg_temp.customer(id text, account int) RETURNS text LANGUAGE sql AS $$
SELECT format('{"id":"evt_%s_%s","type":"customer.created","created":1617235200,"data":{"object":{"id":"%s","metadata":{"account_id":"%s"}}}}',
			  id, account, id, account)
$$;
CREATE FUNCTION pg_temp.charge(id text, customer text) RETURNS text LANGUAGE sql AS $$
SELECT format('{"id":"evt_%s","type":"charge.succeeded","created":1617235400,"data":{"object":{"id":"%s","customer":"%s","amount":100,"currency":"usd","status":"succeeded","created":1617235400}}}',
			  id, id, customer)
$$;
CREATE FUNCTION pg_temp.account_of(charge text) RETURNS bigint LANGUAGE sql AS $$
SELECT account_id FROM dogdb.stripe_payments WHERE charge_id = charge
$$;

-- no transaction: what this session commits, the login must see
SELECT plan(22);

--
-- the secrets
--
SELECT is((SELECT count(*) FROM pg_trigger WHERE tgname IN ('stripe_webhook_secrets_cache_reset', 'stripe_customer_accounts_cache_reset')
			AND tgenabled = 'A'), 2::bigint, 'the secrets and the mapping have their reset trigger, enabled ALWAYS');
INSERT INTO dogdb.stripe_webhook_secrets (secret) VALUES ('whsec_a');
SELECT is(pg_temp.ingest(pg_temp.charge('c1', 'cus_none'), 'whsec_a'), 'applied', 'signed with the secret: applied (the login keeps the secrets)');
DELETE FROM dogdb.stripe_webhook_secrets;
INSERT INTO dogdb.stripe_webhook_secrets (secret) VALUES ('whsec_b');
SELECT is(pg_temp.ingest(pg_temp.charge('c2', 'cus_none'), 'whsec_a'), '28000', 'the secret removed elsewhere is refused at once');
SELECT is(pg_temp.ingest(pg_temp.charge('c3', 'cus_none'), 'whsec_b'), 'applied', 'the secret added elsewhere is taken at once');
SET session_replication_role = replica;
UPDATE dogdb.stripe_webhook_secrets SET secret = 'whsec_c';
RESET session_replication_role;
SELECT is(pg_temp.ingest(pg_temp.charge('c4', 'cus_none'), 'whsec_b'), '28000', 'a change under session_replication_role = replica resets it too (old secret refused)');
SELECT is(pg_temp.ingest(pg_temp.charge('c5', 'cus_none'), 'whsec_c'), 'applied', '... and the new one taken');
ALTER TABLE dogdb.stripe_webhook_secrets DISABLE TRIGGER stripe_webhook_secrets_cache_reset;
SELECT is(pg_temp.ingest(pg_temp.charge('c6', 'cus_none'), 'whsec_c'), 'applied', 'with the trigger disabled the secrets are read per statement');
UPDATE dogdb.stripe_webhook_secrets SET secret = 'whsec_d';
SELECT is(pg_temp.ingest(pg_temp.charge('c7', 'cus_none'), 'whsec_c'), '28000', '... so a change is still seen (old secret refused)');
SELECT is(pg_temp.ingest(pg_temp.charge('c8', 'cus_none'), 'whsec_d'), 'applied', '... and the new one taken');
ALTER TABLE dogdb.stripe_webhook_secrets ENABLE ALWAYS TRIGGER stripe_webhook_secrets_cache_reset;
TRUNCATE dogdb.stripe_webhook_secrets;
SELECT is(pg_temp.ingest(pg_temp.charge('c9', 'cus_none'), NULL), 'applied', 'TRUNCATE resets it: no secret, unsigned events are taken');
-- in one session: the change is seen by the next statement, and undone by a rollback
BEGIN;
INSERT INTO dogdb.stripe_webhook_secrets (secret) VALUES ('whsec_e');
SELECT throws_ok($$SELECT * FROM dogdb_ingest_stripe_event(pg_temp.charge('c10', 'cus_none'), NULL)$$, '28000', NULL,
				 'a secret added in this transaction is required by its next statement');
ROLLBACK;
SELECT is((SELECT outcome FROM dogdb_ingest_stripe_event(pg_temp.charge('c11', 'cus_none'), NULL)), 'applied',
		  'after the rollback no secret is configured again');

--
-- the customer mapping
--
SELECT is(pg_temp.ingest(pg_temp.customer('cus_x', 5), NULL), 'applied', 'cus_x mapped to account 5 by its metadata');
SELECT is(pg_temp.ingest(pg_temp.charge('cx1', 'cus_x'), NULL) || ' ' || pg_temp.account_of('cx1'), 'applied 5',
		  'its charge goes to account 5');
UPDATE dogdb.stripe_customer_accounts SET account_id = 6 WHERE customer_id = 'cus_x';
SELECT is(pg_temp.ingest(pg_temp.charge('cx2', 'cus_x'), NULL) || ' ' || pg_temp.account_of('cx2'), 'applied 6',
		  'the mapping changed elsewhere is used at once');
DELETE FROM dogdb.stripe_customer_accounts WHERE customer_id = 'cus_x';
SELECT is(pg_temp.ingest(pg_temp.charge('cx3', 'cus_x'), NULL) || ' ' || coalesce(pg_temp.account_of('cx3')::text, 'waits'),
		  'applied waits', 'the mapping deleted elsewhere is gone at once: the charge waits');
-- a mapping written by a transaction that rolls back is not kept (the
-- mapping written since by another backend's ingestion fires no trigger)
SELECT is(pg_temp.w('BEGIN') || pg_temp.ingest(pg_temp.customer('cus_y', 7), NULL) || pg_temp.w('ROLLBACK'), 'okappliedok',
		  'cus_y mapped to 7 in a transaction rolled back');
SELECT is((SELECT outcome FROM dogdb_ingest_stripe_event(pg_temp.customer('cus_y', 8), NULL)), 'applied',
		  'cus_y mapped to 8 by this session');
SELECT is(pg_temp.ingest(pg_temp.charge('cy1', 'cus_y'), NULL) || ' ' || pg_temp.account_of('cy1'), 'applied 8',
		  'its charge goes to account 8, not to the rolled back 7');
SELECT is(pg_temp.w('BEGIN') || pg_temp.w('SAVEPOINT s') || pg_temp.ingest(pg_temp.customer('cus_z', 9), NULL)
		  || pg_temp.w('ROLLBACK TO s') || pg_temp.w('COMMIT'), 'okokappliedokok',
		  'cus_z mapped to 9 in a subtransaction rolled back');
SELECT is((SELECT outcome FROM dogdb_ingest_stripe_event(pg_temp.customer('cus_z', 10), NULL)), 'applied',
		  'cus_z mapped to 10 by this session');
SELECT is(pg_temp.ingest(pg_temp.charge('cz1', 'cus_z'), NULL) || ' ' || pg_temp.account_of('cz1'), 'applied 10',
		  'its charge goes to account 10, not to the rolled back 9');

SELECT * FROM finish();

SELECT dblink_disconnect(c) FROM unnest(dblink_get_connections()) c \g /dev/null
\c :home_db
DROP DATABASE dogdb_stripe_cache_test WITH (FORCE);
DROP ROLE tap_cache_ingest;
