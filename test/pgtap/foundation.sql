-- pgTAP: behaviour of the foundation (schema constraints, license parsing
-- errors and SQLSTATEs, import invariants)
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
SELECT plan(31);

-- layout: tables in dogdb, functions in the extension schema
SELECT tables_are('dogdb', ARRAY['pricing_plans', 'plan_prices', 'accounts', 'subscriptions',
	'service_reps', 'interactions', 'licenses', 'sessions', 'import_rejects',
	'invoices', 'invoice_lines', 'invoice_number_counters',
	'kpi_refresh_log', 'support_interactions',
	'web_events', 'stripe_events', 'stripe_webhook_secrets', 'stripe_customers', 'stripe_customer_accounts',
	'stripe_subscriptions', 'stripe_subscription_versions', 'stripe_invoices', 'stripe_payments', 'stripe_refunds']);
SELECT results_eq('SELECT name FROM dogdb.pricing_plans ORDER BY plan_id',
	ARRAY['free', 'medium', 'enterprise'], 'three seeded plans');
SELECT results_eq($$SELECT p.name, pp.monthly_price_cents FROM dogdb.plan_prices pp
	JOIN dogdb.pricing_plans p USING (plan_id) WHERE pp.effective_from = '2019-01-01' ORDER BY 2$$,
	$$VALUES ('free', 0::bigint), ('medium', 5000), ('enterprise', 50000)$$, 'seeded prices in cents');
SELECT col_type_is('dogdb', 'plan_prices', 'monthly_price_cents', 'bigint', 'money is bigint cents');
SELECT col_type_is('dogdb', 'subscriptions', 'valid_from', 'timestamp with time zone', 'times are timestamptz');

-- constraints
INSERT INTO dogdb.accounts (account_id, email, created_at) VALUES (1, 'a@x.example', '2021-01-01Z');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to)
	VALUES (1, 2, '2021-01-01Z', '2021-03-16 10:00Z');
SELECT lives_ok($$INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from)
	VALUES (1, 3, '2021-03-16 10:00Z')$$, 'adjacent subscription periods are fine');
SELECT throws_ok($$INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to)
	VALUES (1, 1, '2021-02-01Z', '2021-02-02Z')$$, '23P01', NULL, 'overlapping periods of one account are refused');
SELECT throws_ok($$INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to)
	VALUES (1, 1, '2021-02-01Z', '2021-01-01Z')$$, '23514', NULL, 'valid_to must follow valid_from');
SELECT throws_ok($$INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from)
	VALUES (99, 1, '2021-02-01Z')$$, '23503', NULL, 'subscriptions reference accounts');
SELECT throws_ok($$INSERT INTO dogdb.accounts (account_id, created_at, company_size)
	VALUES (2, now(), 'medium')$$, '23514', NULL, 'company_size is small or large');
SELECT throws_ok($$INSERT INTO dogdb.plan_prices VALUES (2, -1, '2022-01-01')$$, '23514', NULL,
	'prices are not negative');
SELECT throws_ok($$INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at)
	VALUES ('l', 7, 'r', 's', now())$$, '23503', NULL, 'licenses reference accounts');
SELECT throws_ok($$INSERT INTO dogdb.interactions (account_id, channel, status, created_at, completed_at)
	VALUES (1, 'email', 'closed', '2021-01-02Z', '2021-01-01Z')$$, '23514', NULL,
	'an interaction cannot complete before it starts');
SELECT throws_ok($$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (42, now())$$,
	'23503', NULL, 'sessions reference accounts');

-- license parsing: SQLSTATE 22P02 with what and where
SELECT throws_ok($$SELECT dogdb_parse_license('{“license_id”:“abc,“role”: “b”,“status”: “c”}')$$,
	'22P02', 'invalid license data at character 26: ''}'' expected near '':''',
	'unterminated curly string: 22P02 with the character position');
SELECT throws_ok($$SELECT dogdb_license_id('{"license_id":"i","role":"r"}')$$,
	'22P02', 'invalid license data: key "status" is missing', 'missing key');
SELECT throws_ok($$SELECT dogdb_license_status('{"license_id":"i","role":"r","status":true}')$$,
	'22P02', NULL, 'non-string value');
SELECT throws_ok($$SELECT dogdb_license_role('{"license_id":' || repeat('{"a":', 50000) || '1' || repeat('}', 50000) || '}')$$,
	'22P02', NULL, 'deep nesting is an error, not a crash');
SELECT is(dogdb_license_error('{“license_id”:“i”,“role”:“r”,“status”:“s”}'), NULL, 'valid blob has no error');
SELECT is((dogdb_parse_license(NULL)).license_id, NULL, 'NULL in, NULL out');

-- the accessors' shared cache never returns another row's fields
SELECT is(count(*), 0::bigint, 'accessors read the right row, one after another, 10000 rows')
  FROM (SELECT i, format('{“license_id”:“id%s”,“role”:“r%s”,“status”:“s%s”}', i, i % 7, i % 3) AS b
		  FROM generate_series(1, 10000) i) s
 WHERE dogdb_license_id(b) <> 'id' || i OR dogdb_license_role(b) <> 'r' || i % 7
    OR dogdb_license_status(b) <> 's' || i % 3;
SELECT is(count(*), 0::bigint, 'the C parser agrees with ::jsonb on 5000 blobs of assorted shapes')
  FROM (SELECT format('{"license_id":%s,"role":%s,%s"status":%s}',
				to_jsonb('a"\' || i), to_jsonb(E'r\n' || i), CASE WHEN i % 2 = 0 THEN '"x":[1,{"y":null}],' ELSE '' END,
				to_jsonb(chr(233) || i)) AS b
		  FROM generate_series(1, 5000) i) s
 WHERE (dogdb_license_id(b), dogdb_license_role(b), dogdb_license_status(b))
	   IS DISTINCT FROM (b::jsonb->>'license_id', b::jsonb->>'role', b::jsonb->>'status');

-- import: every source row in exactly one place, re-runs are no-ops
CREATE SCHEMA leg;
CREATE TABLE leg.customer_accounts (account_id int, email text, current_tier text, created_at timestamp, updated_at timestamp);
CREATE TABLE leg.customer_interactions (account_id int, channel text, category text, service_rep text, status text, created_at timestamp, completed_at timestamp);
CREATE TABLE leg.customer_licenses (account_id int, license_data text, created_at timestamp, updated_at timestamp);
INSERT INTO leg.customer_accounts
SELECT 100 + i % 300, 'u' || i || '@x.example', (ARRAY['Free', 'medium', 'ENTERPRISE', 'Gold', NULL])[1 + i % 5],
	   '2021-01-01'::timestamp + i * interval '1 hour', NULL
  FROM generate_series(1, 400) i;
INSERT INTO leg.customer_interactions
SELECT 100 + i % 350, 'chat', 'bug', (ARRAY['Ann', 'Bo', NULL])[1 + i % 3], 'open',
	   '2021-02-01'::timestamp + i * interval '1 minute', NULL
  FROM generate_series(1, 500) i;
INSERT INTO leg.customer_licenses
SELECT 100 + i % 320, CASE WHEN i % 17 = 0 THEN '{“license_id”:“broken' ELSE
	   format('{“license_id”:“L%s”,“role”:“viewer”,“status”:“active”}', i % 450) END,
	   '2021-03-01', NULL
  FROM generate_series(1, 500) i;
CREATE TEMP TABLE first_run AS SELECT * FROM dogdb_import_legacy('leg');
SELECT is(count(*), 0::bigint, 'first run: rows_read = imported + rejected, nothing skipped')
  FROM first_run WHERE rows_read <> imported + rejected OR skipped <> 0;
SELECT is((SELECT sum(rows_read)::bigint FROM first_run),
		  (SELECT count(*) FROM dogdb.import_rejects WHERE source_table LIKE 'customer_%')
		  + (SELECT count(*) FROM dogdb.accounts WHERE account_id >= 100)
		  + (SELECT count(*) FROM dogdb.interactions WHERE legacy_key IS NOT NULL)
		  + (SELECT count(*) FROM dogdb.licenses WHERE account_id >= 100),
		  'every source row is imported or quarantined, once');
SELECT is((SELECT count(*) FROM dogdb.import_rejects WHERE reason LIKE 'unknown tier%'),
		  (SELECT count(*) FROM leg.customer_accounts WHERE current_tier = 'Gold'), 'unknown tiers are quarantined');
SELECT ok((SELECT count(*) > 0 FROM dogdb.import_rejects WHERE reason LIKE 'invalid license data at character %'),
		  'unparseable blobs are quarantined with the parser''s message');
SELECT ok(NOT EXISTS (SELECT FROM dogdb.accounts a
					  WHERE NOT EXISTS (SELECT FROM dogdb.subscriptions s WHERE s.account_id = a.account_id)),
		  'each imported account has a subscription');
CREATE TEMP TABLE second_run AS SELECT * FROM dogdb_import_legacy('leg');
SELECT is(count(*), 0::bigint, 'second run imports and rejects nothing')
  FROM second_run WHERE imported <> 0 OR rejected <> 0 OR skipped <> rows_read;
SELECT throws_ok($$SELECT * FROM dogdb_import_legacy('nowhere')$$, '42P01', NULL, 'missing legacy tables');

-- declared properties
SELECT is(count(*), 0::bigint, 'every license function is IMMUTABLE STRICT PARALLEL SAFE')
  FROM pg_proc WHERE prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
   AND proname LIKE 'dogdb\_%license%' AND (provolatile <> 'i' OR NOT proisstrict OR proparallel <> 's');
SELECT is(count(*), 0::bigint, 'every extension function has a comment')
  FROM pg_depend d JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dogdb_analytics')
   AND obj_description(p.oid, 'pg_proc') IS NULL;

SELECT * FROM finish();
ROLLBACK;
