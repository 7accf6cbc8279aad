-- pgTAP: distributable by account on a single node (README "Running on
-- Citus"): the keys, the global guarantees kept without them, the error of
-- dogdb_distribute() without Citus, and the 1.3 -> 1.4 migration of
-- invoice_lines.  The 3-node run is test/citus/lab.sh.
\ir setup.psql
SELECT plan(28);
CREATE EXTENSION dogdb_analytics CASCADE;

-- no Citus here: a clear refusal, nothing changed
SELECT throws_ok('SELECT * FROM dogdb_distribute()', '0A000',
	'cannot distribute the dogdb tables: extension "citus" is not installed', 'without Citus: 0A000');
SELECT throws_ok('SELECT * FROM dogdb_distribute(8)', '0A000', NULL, 'with a shard count too');
SELECT is((SELECT count(*) FROM pg_constraint WHERE conname IN ('licenses_license_id_key', 'invoices_invoice_number_key')),
		  2::bigint, 'the refusal changed nothing (the global keys are still there)');

-- a trigger fires on a shard under the shard's name: no trigger function
-- of the extension may decide by TG_TABLE_NAME
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
				 WHERE d.deptype = 'e' AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dogdb_analytics')
				   AND p.prorettype = 'trigger'::regtype AND p.prosrc ~* 'tg_table_name'),
		  '{}'::text[], 'no trigger function reads TG_TABLE_NAME');

-- every primary and unique key of a distributed table has the
-- distribution column, but the two global keys Citus gives up
SELECT is(ARRAY(SELECT c.conrelid::regclass || '.' || c.conname
				  FROM dogdb_internal.distribution_plan() p
				  JOIN pg_constraint c ON c.conrelid = p.relation AND c.contype IN ('p', 'u', 'x')
				 WHERE p.column_name IS NOT NULL
				   AND NOT EXISTS (SELECT 1 FROM unnest(c.conkey) k
									WHERE k = (SELECT a.attnum FROM pg_attribute a
												WHERE a.attrelid = c.conrelid AND a.attname = p.column_name))
				 ORDER BY 1),
		  ARRAY['dogdb.invoices.invoices_invoice_number_key', 'dogdb.licenses.licenses_license_id_key'],
		  'every key of a distributed table has its distribution column, but the two global keys');
SELECT is(ARRAY(SELECT c.conrelid::regclass || ' ' || pg_get_constraintdef(c.oid)
				  FROM dogdb_internal.distribution_plan() p
				  JOIN pg_constraint c ON c.conrelid = p.relation AND c.contype = 'f'
				  JOIN dogdb_internal.distribution_plan() r ON r.relation = c.confrelid AND r.column_name IS NOT NULL
				 WHERE p.column_name IS NOT NULL
				   AND NOT (SELECT a.attnum FROM pg_attribute a
							 WHERE a.attrelid = c.conrelid AND a.attname = p.column_name) = ANY (c.conkey)),
		  '{}'::text[], 'every foreign key between distributed tables has the distribution column');
SELECT is((SELECT count(*) FROM dogdb_internal.distribution_plan()), 24::bigint, 'the 24 tables in the plan');
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
				 WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind = 'r'
				   AND c.oid NOT IN (SELECT relation FROM dogdb_internal.distribution_plan())
				 ORDER BY 1),
		  ARRAY(SELECT c.relname::text FROM pg_class c
				 WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind = 'r' AND c.relname LIKE 'kpi\_%'
				 ORDER BY 1),
		  'every table of dogdb is in the plan but the KPI engine''s state');

-- the global guarantees on a single node
INSERT INTO dogdb.accounts (account_id, email, created_at) VALUES (1, 'a@x.example', '2021-01-01Z'),
	(2, 'b@x.example', '2021-01-01Z');
INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at) VALUES ('L1', 1, 'admin', 'active', now());
SELECT throws_ok($$INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at)
				   VALUES ('L1', 2, 'admin', 'active', now())$$, '23505', NULL,
				 'a license id belongs to one account only');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (1, 2, '2021-01-01Z'), (2, 3, '2021-01-15Z');
SELECT is((SELECT array_agg(invoice_number ORDER BY invoice_number) FROM dogdb_generate_invoices('2021-02-01')),
		  ARRAY['INV-2021-000001', 'INV-2021-000002'], 'invoice numbers as before');
SELECT is((SELECT count(*) FROM dogdb.invoice_lines l JOIN dogdb.invoices i USING (account_id, invoice_id)),
		  (SELECT count(*) FROM dogdb.invoice_lines), 'each line carries its invoice''s account');
SELECT throws_ok($$UPDATE dogdb.invoice_lines SET account_id = 2 WHERE account_id = 1$$, '23503', NULL,
				 'a line cannot move to another account than its invoice''s');

-- the KPI facts of Citus (one pushed-down query) against the C engine's
TRUNCATE dogdb.accounts CASCADE;
SELECT dogdb_generate_demo_data(1200, 24, '2024-06-01', 5) \g /dev/null
UPDATE dogdb.accounts SET company_size = NULL WHERE account_id % 50 = 0;
INSERT INTO dogdb.plan_prices VALUES (2, 6000, '2025-03-01');
UPDATE dogdb.subscriptions SET valid_to = valid_from + interval '40 days 3 hours'
 WHERE account_id % 17 = 0 AND valid_to IS NULL;
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from)
SELECT account_id, 3, valid_to + interval '20 days' FROM dogdb.subscriptions WHERE account_id % 34 = 0 AND valid_to IS NOT NULL;
SELECT count(*) FROM dogdb_refresh_kpis(true) \g /dev/null
SELECT bag_eq('SELECT * FROM dogdb_internal.kpi_facts', 'SELECT * FROM dogdb_internal.kpi_facts_sql()',
			  'the KPI facts of the one-query path (Citus) equal the engine''s');
SELECT ok((SELECT count(*) FROM dogdb_internal.kpi_facts WHERE plan_id IS NULL OR company_size = 'unknown') > 0
		  AND (SELECT count(*) FROM dogdb_internal.kpi_facts WHERE churned_accounts > 0) > 0, '(with every kind of fact)');
SELECT bag_eq('SELECT * FROM dogdb_internal.kpi_block_facts_sql(ARRAY[1]::bigint[])',
			  'SELECT * FROM dogdb_internal.kpi_block_facts_sql(NULL) WHERE block = 1',
			  'the facts of one block of 1024 accounts computed alone equal its share of all');

-- the Citus refresh (change tracking by block fingerprints, no triggers) is
-- plain SQL: here it runs against the C engine, incremental = full
CREATE TEMP TABLE engine_facts AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT results_eq('SELECT rebuilt, changed FROM dogdb_internal.kpi_citus_refresh(false)', 'VALUES (true, true)',
				  'block-fingerprint refresh: the first one computes all');
SELECT bag_eq('SELECT * FROM dogdb_internal.kpi_facts', 'SELECT * FROM engine_facts', 'and equals the engine''s facts');
SELECT results_eq('SELECT rebuilt, changed FROM dogdb_internal.kpi_citus_refresh(false)', 'VALUES (false, false)',
				  'nothing changed: nothing recomputed');
INSERT INTO dogdb.sessions (account_id, created_at) SELECT 1100, now() - g * interval '9 days' FROM generate_series(1, 60) g;
DELETE FROM dogdb.sessions WHERE account_id = 1101;
UPDATE dogdb.accounts SET company_size = 'large' WHERE account_id = 1050 AND company_size IS DISTINCT FROM 'large';
UPDATE dogdb.subscriptions SET valid_to = valid_from + interval '3 days' WHERE account_id = 1030 AND valid_to IS NULL;
SELECT results_eq('SELECT rebuilt, changed FROM dogdb_internal.kpi_citus_refresh(false)', 'VALUES (false, true)',
				  'sessions added and deleted, an account and a subscription changed: no rebuild');
SELECT is((SELECT blocks_changed FROM dogdb_internal.citus_refresh_state WHERE consumer = 'kpi'), 1,
		  'only their block of 1024 accounts is recomputed');
CREATE TEMP TABLE citus_facts AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT count(*) FROM dogdb_refresh_kpis() \g /dev/null
SELECT bag_eq('SELECT * FROM citus_facts', 'SELECT * FROM dogdb_internal.kpi_facts',
			  'the block-incremental facts equal the engine''s incremental refresh');
SELECT ok(EXISTS (SELECT 1 FROM (TABLE engine_facts EXCEPT ALL TABLE citus_facts) d), '(the changes changed facts)');
UPDATE dogdb.plan_prices SET monthly_price_cents = monthly_price_cents + 100 WHERE plan_id = 2 AND effective_from = '2025-03-01';
SELECT results_eq('SELECT rebuilt FROM dogdb_internal.kpi_citus_refresh(false)', 'VALUES (true)',
				  'a price change (every block depends on it): a rebuild');
DROP TABLE citus_facts;
CREATE TEMP TABLE citus_facts AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT count(*) FROM dogdb_refresh_kpis() \g /dev/null
SELECT bag_eq('SELECT * FROM citus_facts', 'SELECT * FROM dogdb_internal.kpi_facts', 'and equals the engine''s facts');
SELECT is(dogdb_internal.support_citus_accounts(false), '{}'::bigint[], 'the support model''s Citus tracking: nothing on a single node');

-- 1.3 -> 1.4: the lines of existing invoices get their account
DROP EXTENSION dogdb_analytics;
CREATE EXTENSION dogdb_analytics VERSION '1.3';
INSERT INTO dogdb.accounts (account_id, email, created_at) VALUES (7, 'c@x.example', '2021-01-01Z');
INSERT INTO dogdb.invoices (invoice_id, invoice_number, account_id, period_start, total_cents)
	VALUES (70, 'INV-2021-000001', 7, '2021-02-01', 5000);
INSERT INTO dogdb.invoice_lines VALUES (70, 1, 2, '2021-02-01', '2021-02-28', 28, 5000, 5000);
ALTER EXTENSION dogdb_analytics UPDATE TO '1.4';
SELECT results_eq('SELECT account_id, invoice_id, line_no FROM dogdb.invoice_lines',
				  'VALUES (7::bigint, 70::bigint, 1::smallint)', '1.3 -> 1.4 gives the lines their invoice''s account');
SELECT is((SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indexrelid = 'dogdb.invoice_lines_pkey'::regclass),
		  'CREATE UNIQUE INDEX invoice_lines_pkey ON dogdb.invoice_lines USING btree (account_id, invoice_id, line_no)',
		  'and the key with it');
SELECT throws_ok($$INSERT INTO dogdb.invoice_lines VALUES (70, 2, 2, '2021-02-01', '2021-02-01', 1, 1, 1, 8)$$, '23503', NULL,
				 'the migrated foreign key holds');

SELECT * FROM finish();
ROLLBACK;
