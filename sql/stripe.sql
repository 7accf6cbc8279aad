-- Stripe webhooks: signatures, the ledger, ordering, replay
\set SHOW_CONTEXT never
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
RESET client_min_messages;

-- sign a body as Stripe does: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<body>"))
CREATE FUNCTION pg_temp.sign(body text, secret text, t bigint DEFAULT extract(epoch FROM now())::bigint)
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
