-- pgTAP: the four roles the extension creates (dogdb_reader, dogdb_billing,
-- dogdb_ingest, dogdb_admin) each do exactly their job and nothing more,
-- tried as real logins: dblink to 127.0.0.1 over TCP with a password
-- (test/cluster.sh makes host connections use scram-sha-256).  The logins
-- must see committed objects, so this file works in a database of its own,
-- committed, and drops it and its logins at the end.
\ir setup_committed.psql
DROP DATABASE IF EXISTS dogdb_roles_test;
DROP ROLE IF EXISTS tap_reader, tap_billing, tap_ingest, tap_admin, tap_nobody;
CREATE DATABASE dogdb_roles_test;
\c dogdb_roles_test
SET client_min_messages = warning;
CREATE EXTENSION dogdb_analytics CASCADE;
CREATE EXTENSION pgtap;
CREATE EXTENSION dblink;
CREATE ROLE tap_reader LOGIN PASSWORD 'tap-reader-pw' IN ROLE dogdb_reader;
CREATE ROLE tap_billing LOGIN PASSWORD 'tap-billing-pw' IN ROLE dogdb_billing;
CREATE ROLE tap_ingest LOGIN PASSWORD 'tap-ingest-pw' IN ROLE dogdb_ingest;
CREATE ROLE tap_admin LOGIN PASSWORD 'tap-admin-pw' IN ROLE dogdb_admin;
CREATE ROLE tap_nobody LOGIN PASSWORD 'tap-nobody-pw';
SELECT set_config('dogdb_test.port', :'port', false) \g /dev/null

-- data: a small demo dataset, its KPIs, invoices, web events
SELECT FROM dogdb_generate_demo_data(40, 4, '2021-01-01', 7) \g /dev/null
SELECT FROM dogdb_refresh_kpis() \g /dev/null
SELECT FROM dogdb_generate_invoices('2021-01-01') \g /dev/null
SELECT FROM dogdb_generate_demo_web_events(200, '2024-01-01', 7, 1) \g /dev/null
-- legacy tables: one schema the admin login may read, one it may not, one
-- with a column of a user's type
CREATE SCHEMA legacy_ok;
CREATE SCHEMA legacy_secret;
CREATE SCHEMA legacy_typed;
CREATE TYPE legacy_typed.tier AS ENUM ('free');
DO $$
DECLARE
	s text;
BEGIN
	FOREACH s IN ARRAY ARRAY['legacy_ok', 'legacy_secret', 'legacy_typed'] LOOP
		EXECUTE format('CREATE TABLE %I.customer_accounts (account_id int, email text, current_tier %s,
						created_at timestamp, updated_at timestamp)', s,
					   CASE s WHEN 'legacy_typed' THEN 'legacy_typed.tier' ELSE 'text' END);
		EXECUTE format('CREATE TABLE %I.customer_interactions (account_id int, channel text, category text,
						service_rep text, status text, created_at timestamp, completed_at timestamp)', s);
		EXECUTE format('CREATE TABLE %I.customer_licenses (account_id int, license_data text,
						created_at timestamp, updated_at timestamp)', s);
	END LOOP;
END $$;
GRANT USAGE ON SCHEMA legacy_ok, legacy_typed TO tap_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA legacy_ok TO tap_admin;
GRANT SELECT ON ALL TABLES IN SCHEMA legacy_typed TO tap_admin;
INSERT INTO legacy_ok.customer_accounts VALUES (9001, 'new@x.example', 'free', '2021-02-02', NULL);
-- a staging table only the superuser may read
CREATE TABLE public.private_stage (account_id bigint, created_at timestamptz);
INSERT INTO public.private_stage VALUES (1, '2021-01-02Z');

-- the outcome of a statement run by a login over TCP: 'ok' or its SQLSTATE
-- (a query's rows are counted, a command is executed)
CREATE FUNCTION pg_temp.run(login text, q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF NOT coalesce(login = ANY (dblink_get_connections()), false) THEN
		PERFORM dblink_connect(login, format('host=127.0.0.1 port=%s dbname=dogdb_roles_test user=%s password=%s',
											 current_setting('dogdb_test.port'), login,
											 replace(login, '_', '-') || '-pw'));
	END IF;
	IF q ~* '^\s*(SELECT|WITH)\M' THEN
		PERFORM * FROM dblink(login, 'SELECT count(*) FROM (' || q || ') x') AS t(n bigint);
	ELSE
		PERFORM dblink_exec(login, q);
	END IF;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END $$;
-- a single value read by a login
CREATE FUNCTION pg_temp.val(login text, q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.run(login, 'SELECT 1');
	RETURN (SELECT v FROM dblink(login, q) AS t(v text));
END $$;
CREATE FUNCTION pg_temp.many(login text, queries text[], expected text) RETURNS text LANGUAGE sql AS $$
	SELECT coalesce(string_agg(q || ' => ' || r, E'\n'), '')
	  FROM (SELECT q, pg_temp.run(login, q) AS r FROM unnest(queries) q) x WHERE r <> expected
$$;

-- no transaction: what this session grants, the logins must see
SELECT plan(39);

--
-- real logins over TCP with a password
--
SELECT is(pg_temp.val('tap_reader', 'SELECT inet_client_addr()::text || '' '' || session_user'),
		  '127.0.0.1/32 tap_reader', 'tap_reader is logged in over TCP from 127.0.0.1');
SELECT is((SELECT auth_method FROM pg_hba_file_rules WHERE type = 'host' AND address = '127.0.0.1' LIMIT 1), 'scram-sha-256', 'host connections authenticate with scram-sha-256');
SELECT throws_ok($$SELECT dblink_connect('bad', format('host=127.0.0.1 port=%s dbname=dogdb_roles_test user=tap_reader password=wrong',
													current_setting('dogdb_test.port')))$$,
				 '08001', NULL, 'a wrong password is refused');

--
-- the objects: roles exist, dogdb_internal is granted to no one, every
-- SECURITY DEFINER function pins search_path and is not executable by PUBLIC
--
SELECT is((SELECT count(*) FROM pg_roles WHERE rolname IN ('dogdb_reader', 'dogdb_billing', 'dogdb_ingest', 'dogdb_admin')
			AND NOT rolcanlogin), 4::bigint, 'the install script created the four roles, none of which can log in');
SELECT is((SELECT coalesce(nspacl::text, '{' || nspowner::regrole || '=UC/' || nspowner::regrole || '}')
			 FROM pg_namespace WHERE nspname = 'dogdb_internal'),
		  (SELECT '{' || nspowner::regrole || '=UC/' || nspowner::regrole || '}' FROM pg_namespace WHERE nspname = 'dogdb_internal'),
		  'dogdb_internal: no privilege for anyone but its owner');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
			JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
			JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'dogdb_analytics'
		   WHERE p.prosecdef AND (p.proconfig IS DISTINCT FROM ARRAY['search_path=pg_catalog, pg_temp']
								  OR has_function_privilege('public', p.oid, 'EXECUTE'))), NULL,
		  'every SECURITY DEFINER function pins search_path and is revoked from PUBLIC');
SELECT is((SELECT string_agg(c.oid::regclass::text, ', ') FROM pg_class c
		   WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind IN ('v', 'm')
			 AND NOT has_table_privilege('dogdb_reader', c.oid, 'SELECT')), NULL,
		  'dogdb_reader may read every view and materialized view of dogdb');
SELECT is((SELECT string_agg(p.oid::regprocedure::text, ', ') FROM pg_proc p
		   WHERE p.proname LIKE 'dogdb\_kpi\_%' AND p.pronamespace <> 'dogdb_internal'::regnamespace
			 AND p.proname <> 'dogdb_kpi_update_facts' AND NOT has_function_privilege('dogdb_reader', p.oid, 'EXECUTE')), NULL,
		  'dogdb_reader may run every dogdb_kpi_* function');
SELECT is((SELECT string_agg(r || ' ' || c.oid::regclass::text, ', ') FROM pg_class c,
				 unnest(ARRAY['dogdb_reader', 'dogdb_billing', 'dogdb_ingest', 'dogdb_admin']) r
		   WHERE c.relnamespace IN ('dogdb'::regnamespace, 'dogdb_internal'::regnamespace) AND c.relkind IN ('r', 'p', 'v', 'm')
			 AND (has_table_privilege(r, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
				  AND NOT (r = 'dogdb_admin' AND c.relname IN ('import_rejects', 'stripe_customer_accounts')))), NULL,
		  'no role may write a table of dogdb or dogdb_internal directly (but the admin''s quarantine and customer mapping)');
SELECT is((SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
			AND (has_table_privilege('dogdb_ingest', c.oid, 'SELECT') OR has_any_column_privilege('dogdb_ingest', c.oid, 'SELECT'))),
		  0::bigint, 'dogdb_ingest may read nothing in dogdb');

--
-- dogdb_reader: every read the README shows, as a login granted only it
--
SELECT is(pg_temp.many('tap_reader', ARRAY[
	$q$SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-03-01')$q$,
	$q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$,
	$q$SELECT * FROM dogdb_kpi_revenue('2021-03-01', '2021-03-01', 'tier')$q$,
	$q$SELECT * FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'Tier')$q$,
	$q$SELECT * FROM dogdb_kpi_last_refresh()$q$,
	$q$SELECT * FROM dogdb.kpi_monthly WHERE is_complete ORDER BY month$q$,
	$q$SELECT * FROM dogdb.kpi_data_through$q$,
	$q$SELECT * FROM dogdb.kpi_retention, dogdb.kpi_usage, dogdb.kpi_revenue LIMIT 1$q$,
	$q$SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-06-01', 'Rep')$q$,
	$q$SELECT * FROM dogdb.support_monthly WHERE is_complete$q$,
	$q$SELECT * FROM dogdb.support_interactions, dogdb.service_reps LIMIT 1$q$,
	$q$SELECT * FROM dogdb_check_data_quality()$q$,
	$q$SELECT * FROM dogdb_account_churn('2021-04-30')$q$,
	$q$SELECT source_table, reason FROM dogdb.import_rejects$q$,
	$q$SELECT * FROM dogdb.invoices JOIN dogdb.invoice_lines USING (invoice_id)$q$,
	$q$SELECT * FROM dogdb_page_time_summary('2024-01-01', '2024-01-08', ARRAY['/', '/signup'])$q$,
	$q$SELECT * FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created'], '2024-01-01', '2024-01-08', '1 day', 'client')$q$,
	$q$SELECT * FROM dogdb_funnel_trend(ARRAY['account_created', 'tier_selected'], '2024-01-01', '2024-01-08')$q$,
	$q$SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created') FROM dogdb.web_events GROUP BY anonymous_id$q$,
	$q$SELECT * FROM dogdb_mrr_movements('2021-01-01', '2021-12-01')$q$,
	$q$SELECT * FROM dogdb_customer_ltv()$q$,
	$q$SELECT * FROM dogdb_cohort_retention('2021-01-01', '2021-12-01', 'revenue')$q$,
	$q$SELECT * FROM dogdb_stripe_account_mrr('2021-01-01', '2021-12-01')$q$,
	$q$SELECT account_id, dogdb_last_active_month(dogdb_active_months(created_at)) FROM dogdb.sessions GROUP BY 1$q$,
	$q$SELECT * FROM dogdb_page_views('2024-01-01', '2024-01-02')$q$,
	$q$SELECT * FROM dogdb.accounts, dogdb.sessions, dogdb.subscriptions, dogdb.pricing_plans LIMIT 1$q$], 'ok'),
	'', 'tap_reader runs every documented read');
SELECT is(pg_temp.many('tap_reader', ARRAY[
	$q$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, now())$q$,
	$q$DELETE FROM dogdb.import_rejects$q$,
	$q$SELECT * FROM dogdb.stripe_webhook_secrets$q$,
	$q$SELECT * FROM dogdb.stripe_events$q$,
	$q$SELECT * FROM dogdb_internal.deleted_seed_rows$q$,
	$q$SELECT dogdb_internal.kpi_segment('all', 'small', 'free')$q$,
	$q$SELECT * FROM dogdb_refresh_kpis()$q$,
	$q$SELECT * FROM dogdb_generate_invoices('2021-02-01')$q$,
	$q$SELECT dogdb_load_sessions('pg_catalog.pg_class')$q$,
	$q$SELECT * FROM dogdb_ingest_stripe_event('{}', NULL)$q$,
	$q$SELECT * FROM dogdb_import_legacy('legacy_ok')$q$,
	$q$SELECT * FROM dogdb_generate_demo_data(1, 1)$q$,
	$q$SELECT * FROM dogdb_stripe_replay()$q$], '42501'),
	'', 'tap_reader can write nothing, run no job but reading, read no secret and nothing internal (42501)');
SELECT is(pg_temp.val('tap_reader', $q$SELECT count(*) FILTER (WHERE NOT is_complete) || ' ' || count(*) FILTER (WHERE month > '2021-04-01' AND is_complete) FROM dogdb.kpi_monthly$q$),
		  (SELECT count(*) FILTER (WHERE month > '2021-04-01') || ' 0' FROM dogdb.kpi_monthly),
		  'the months after the newest data are marked incomplete');

--
-- dogdb_billing: preview and generate invoices, read them, nothing else
--
SELECT is(pg_temp.many('tap_billing', ARRAY[
	$q$SELECT * FROM dogdb_preview_invoice_lines('2021-02-01')$q$,
	$q$SELECT * FROM dogdb_generate_invoices('2021-02-01')$q$,
	$q$SELECT * FROM dogdb.invoices JOIN dogdb.invoice_lines USING (invoice_id)$q$], 'ok'),
	'', 'tap_billing previews and issues invoices and reads them');
SELECT is((SELECT count(*) FROM dogdb.invoices WHERE period_start = '2021-02-01') > 0, true, 'the invoices it issued are there');
SELECT is(pg_temp.many('tap_billing', ARRAY[
	$q$UPDATE dogdb.invoices SET total_cents = 0$q$,
	$q$DELETE FROM dogdb.invoice_lines$q$,
	$q$UPDATE dogdb.plan_prices SET monthly_price_cents = 1$q$,
	$q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$,
	$q$SELECT * FROM dogdb.kpi_monthly$q$,
	$q$SELECT * FROM dogdb.sessions$q$,
	$q$SELECT * FROM dogdb_refresh_kpis()$q$,
	$q$SELECT dogdb_load_sessions('pg_catalog.pg_class')$q$,
	$q$SELECT * FROM dogdb.invoice_number_counters$q$], '42501'),
	'', 'tap_billing cannot change issued invoices or prices, read KPIs or sessions, refresh or load (42501)');

--
-- dogdb_ingest: the loaders, from its own staging tables; no reads
--
SELECT is(pg_temp.run('tap_ingest', $q$CREATE TEMP TABLE s (account_id bigint, created_at timestamptz);
	INSERT INTO s VALUES (1, '2021-03-03Z'), (2, '2021-03-04Z')$q$)
		  || pg_temp.run('tap_ingest', $q$SELECT dogdb_load_sessions('s')$q$), 'okok', 'tap_ingest loads sessions from its own staging table');
SELECT is((SELECT count(*) FROM dogdb.sessions WHERE created_at IN ('2021-03-03Z', '2021-03-04Z')), 2::bigint,
		  'the sessions are loaded');
SELECT is(pg_temp.run('tap_ingest', $q$CREATE TEMP TABLE w (event_id text, occurred_at timestamptz, anonymous_id text,
	session_id text, account_id bigint, event_name text, page_path text, referrer text, client text, campaign text, properties jsonb);
	INSERT INTO w (event_id, occurred_at, anonymous_id, event_name) VALUES ('tap-e1', '2024-02-01Z', 'tap-v1', 'click')$q$)
		  || pg_temp.run('tap_ingest', $q$SELECT * FROM dogdb_load_web_events('w')$q$), 'okok', 'tap_ingest loads web events from its own staging table');
SELECT is((SELECT count(*) FROM dogdb.web_events WHERE anonymous_id = 'tap-v1'), 1::bigint, 'the event is loaded');
SELECT is(pg_temp.run('tap_ingest', $q$SELECT * FROM dogdb_ingest_stripe_event('{"id":"evt_tap","type":"customer.created","created":1617235200,"data":{"object":{"id":"cus_T","metadata":{"account_id":"1"}}}}', NULL)$q$),
		  'ok', 'tap_ingest takes a Stripe event');
SELECT is(pg_temp.many('tap_ingest', ARRAY[
	$q$SELECT * FROM dogdb.sessions$q$,
	$q$SELECT * FROM dogdb.web_events$q$,
	$q$SELECT * FROM dogdb.stripe_events$q$,
	$q$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, now())$q$,
	$q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$,
	$q$SELECT * FROM dogdb_funnel_report(ARRAY['/'], '2024-01-01', '2024-01-08')$q$,
	$q$SELECT * FROM dogdb_refresh_kpis()$q$,
	$q$SELECT dogdb_load_sessions('public.private_stage')$q$,
	$q$SELECT dogdb_load_sessions('dogdb.stripe_webhook_secrets')$q$,
	$q$SELECT * FROM dogdb_load_web_events('dogdb.stripe_events')$q$,
	$q$SELECT * FROM dogdb_generate_invoices('2021-03-01')$q$], '42501'),
	'', 'tap_ingest reads nothing, not even through a loader given a table it may not read (42501)');
SELECT is(pg_temp.run('tap_ingest', 'SELECT dogdb_load_sessions(NULL)'), '22023', 'a NULL staging table is refused (22023)');
SELECT is(pg_temp.run('tap_ingest', 'SELECT dogdb_load_sessions(''pg_catalog.pg_stat_activity'')'), '42809',
		  'the loaders read ordinary tables only (a view would run its owner''s code)');
SELECT is(pg_temp.run('tap_ingest', $q$CREATE TYPE pg_temp.t AS (x int); CREATE TEMP TABLE typed (account_id bigint, created_at timestamptz, x pg_temp.t)$q$)
		  || pg_temp.run('tap_ingest', $q$SELECT dogdb_load_sessions('typed')$q$), 'ok42804', 'and columns of built-in types only (a cast could run the caller''s code)');

--
-- dogdb_admin: refresh, import, demo data, replay
--
SELECT is(pg_temp.many('tap_admin', ARRAY[
	$q$SELECT * FROM dogdb_refresh_kpis()$q$,
	$q$SELECT * FROM dogdb_import_legacy('legacy_ok')$q$,
	$q$SELECT source_table, reason FROM dogdb.import_rejects$q$,
	$q$SELECT * FROM dogdb_generate_demo_web_events(20, '2024-03-01', 2, 5)$q$,
	$q$SELECT * FROM dogdb_stripe_replay()$q$], 'ok'),
	'', 'tap_admin refreshes, imports, generates demo web events and replays Stripe');
SELECT is((SELECT count(*) FROM dogdb.accounts WHERE account_id = 9001), 1::bigint, 'the import imported');
SELECT is(pg_temp.run('tap_admin', 'SELECT * FROM dogdb_generate_demo_data(5, 1)'), '55000',
		  'tap_admin may run the demo generator (which refuses non-empty tables)');
SELECT is(pg_temp.run('tap_admin', $q$SELECT * FROM dogdb_import_legacy('legacy_secret')$q$), '42501',
		  'the import (SECURITY DEFINER) reads no legacy table its caller may not read');
SELECT is(pg_temp.run('tap_admin', $q$SELECT * FROM dogdb_import_legacy('legacy_typed')$q$), '42804',
		  'nor a legacy column of a user''s type');
SELECT is(pg_temp.many('tap_admin', ARRAY[
	$q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$,
	$q$SELECT * FROM dogdb.sessions$q$,
	$q$SELECT * FROM dogdb_generate_invoices('2021-03-01')$q$,
	$q$SELECT dogdb_load_sessions('public.private_stage')$q$,
	$q$SELECT * FROM dogdb_internal.deleted_seed_rows$q$], '42501'),
	'', 'tap_admin reads no KPI or table beyond its job, bills and loads nothing (42501)');

--
-- a login with no grant: clear refusals, from the function, not an internal helper
--
SELECT is(pg_temp.many('tap_nobody', ARRAY[
	$q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$,
	$q$SELECT * FROM dogdb.kpi_monthly$q$,
	$q$SELECT * FROM dogdb_funnel_report(ARRAY['/'], '2024-01-01', '2024-01-08')$q$,
	$q$SELECT dogdb_load_sessions('pg_catalog.pg_class')$q$,
	$q$SELECT * FROM dogdb_refresh_kpis()$q$], '42501'), '', 'a login with no grant is refused (42501)');
SELECT throws_like($$SELECT * FROM dblink('tap_nobody', 'SELECT * FROM dogdb_kpi_usage(''2021-01-01'', ''2021-02-01'')') AS t(a date, b text, c bigint, d bigint, e numeric)$$,
				   '%permission denied for function dogdb_kpi_usage%', 'the refusal names the KPI function');
-- the same login granted dogdb_reader reads the KPIs (no other grant needed)
GRANT dogdb_reader TO tap_nobody;
SELECT is(pg_temp.run('tap_nobody', $q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$), 'ok',
		  'GRANT dogdb_reader is the one grant a BI login needs');
SELECT is(pg_temp.val('tap_reader', $q$SELECT count(*) FROM dogdb_kpi_revenue('2021-01-01', '2021-04-01', 'TIER')$q$),
		  (SELECT count(*)::text FROM dogdb_kpi_revenue('2021-01-01', '2021-04-01', 'tier')), 'group_by is case-insensitive');

-- a reader cannot pick up its own operators: the KPI functions pin search_path
SELECT is(pg_temp.run('tap_reader', $q$SET search_path = pg_temp, public$q$)
		  || pg_temp.run('tap_reader', $q$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-02-01')$q$),
		  'okok', 'the KPI functions run with any search_path');
-- the functions it runs have no hidden privileges: SECURITY DEFINER reads take no object name
SELECT is((SELECT string_agg(p.proname, ', ') FROM pg_proc p
		   WHERE p.prosecdef AND has_function_privilege('dogdb_reader', p.oid, 'EXECUTE')
			 AND 'regclass'::regtype = ANY (p.proargtypes)), NULL,
		  'no SECURITY DEFINER function dogdb_reader may run takes a table name');
SELECT is((SELECT count(*) FROM pg_auth_members m WHERE m.roleid IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'dogdb\_%')
			AND m.member IN (SELECT oid FROM pg_roles WHERE rolname LIKE 'dogdb\_%')), 0::bigint,
		  'no dogdb_ role is a member of another');
SELECT is((SELECT count(*) FROM pg_class c WHERE c.relnamespace = 'dogdb_internal'::regnamespace
			AND (SELECT bool_or(has_table_privilege(r, c.oid, 'SELECT')) FROM unnest(ARRAY['dogdb_reader', 'dogdb_billing', 'dogdb_ingest', 'dogdb_admin']) r)),
		  0::bigint, 'no role may read a table of dogdb_internal');

SELECT * FROM finish();

SELECT dblink_disconnect(c) FROM unnest(dblink_get_connections()) c \g /dev/null
\c :home_db
DROP DATABASE dogdb_roles_test WITH (FORCE);
DROP ROLE tap_reader, tap_billing, tap_ingest, tap_admin, tap_nobody;
