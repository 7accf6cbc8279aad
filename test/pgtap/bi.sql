-- pgTAP: the BI surface.  Every user-facing relation of dogdb and each of
-- its columns has a comment; the browsable views are plain views with
-- declared scales and equal the KPI functions; incomplete months are
-- marked; KPI errors name the allowed values, group_by is case-insensitive,
-- hints hold in any session time zone.
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
SELECT plan(17);

-- the KPI engine's own tables leave dogdb for dogdb_internal in their own
-- change; until then they are not user-facing and are skipped here
CREATE TEMP TABLE engine_tables (relname name);
INSERT INTO engine_tables VALUES ('kpi_month_activity'), ('kpi_session_deltas'), ('kpi_dirty_months'),
	('kpi_dirty_accounts'), ('kpi_churn_state'), ('kpi_facts');

--
-- comments (JDBC/ODBC REMARKS, \d+)
--
SELECT is((SELECT string_agg(c.relname, ', ' ORDER BY c.relname) FROM pg_class c
		   WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			 AND c.relname NOT IN (SELECT relname FROM engine_tables)
			 AND coalesce(obj_description(c.oid, 'pg_class'), '') = ''), NULL,
		  'every table and view of dogdb has a comment');
SELECT is((SELECT string_agg(c.relname || '.' || a.attname, ', ' ORDER BY c.relname, a.attnum) FROM pg_class c
			JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
		   WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
			 AND c.relname NOT IN (SELECT relname FROM engine_tables)
			 AND coalesce(col_description(c.oid, a.attnum), '') = ''), NULL,
		  'every column of every table and view of dogdb has a comment');
SELECT ok((SELECT count(*) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0
		    WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind IN ('r', 'v', 'm')) > 150,
		  'the check covers the columns (more than 150)');
SELECT ok(col_description('dogdb.kpi_monthly'::regclass, 6) LIKE 'Churned accounts: %'
		  AND col_description('dogdb.plan_prices'::regclass, 2) LIKE '%cents%',
		  'the comments define churn and give units');

--
-- layout: only user-facing objects in dogdb; plain views for query builders
--
SELECT is((SELECT string_agg(p.proname, ', ') FROM pg_proc p WHERE p.pronamespace = 'dogdb'::regnamespace
			 AND p.proname NOT LIKE 'kpi\_track\_%' AND p.proname NOT IN ('kpi_transition_tables', 'kpi_update_facts')),
		  NULL, 'no helper function is left in dogdb');
SELECT is((SELECT string_agg(relname || ':' || relkind::text, ', ' ORDER BY relname) FROM pg_class
		   WHERE relnamespace = 'dogdb'::regnamespace AND relname IN ('kpi_monthly', 'kpi_data_through')),
		  'kpi_data_through:v, kpi_monthly:v', 'kpi_monthly and kpi_data_through are plain views');
SELECT col_type_is('dogdb', 'kpi_monthly', 'avg_sessions', 'numeric(10,2)', 'avg_sessions has a declared scale');
SELECT col_type_is('dogdb', 'kpi_monthly', 'revenue', 'numeric(20,2)', 'revenue in currency units has a declared scale');

--
-- the view equals the functions
--
SELECT FROM dogdb_generate_demo_data(60, 5, '2021-01-01', 3) \g /dev/null
-- a session in the current month: the current month is never complete
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, now());
SELECT FROM dogdb_refresh_kpis() \g /dev/null
SELECT set_eq($$SELECT month, company_size, sum(active_accounts)::bigint AS a, sum(churned_accounts)::bigint AS c
				  FROM dogdb.kpi_monthly GROUP BY 1, 2 HAVING sum(active_accounts) > 0 OR sum(churned_accounts) > 0$$,
			  $$SELECT * FROM dogdb_kpi_retention('2000-01-01', '2199-12-01')$$,
			  'kpi_monthly: active and churned accounts as dogdb_kpi_retention() gives them');
SELECT set_eq($$SELECT month, tier, sum(active_accounts)::bigint AS a, sum(sessions)::bigint AS s,
					   round(sum(sessions)::numeric / nullif(sum(active_accounts), 0), 2) AS avg
				  FROM dogdb.kpi_monthly GROUP BY 1, 2 HAVING sum(active_accounts) > 0 OR sum(sessions) > 0$$,
			  $$SELECT * FROM dogdb_kpi_usage('2000-01-01', '2199-12-01', 'Tier')$$,
			  'kpi_monthly: sessions as dogdb_kpi_usage() gives them (group_by ''Tier'')');
SELECT set_eq($$SELECT month, 'all', sum(revenue_cents)::bigint FROM dogdb.kpi_monthly GROUP BY 1 HAVING sum(revenue_cents) <> 0$$,
			  $$SELECT * FROM dogdb_kpi_revenue('2000-01-01', '2199-12-01', 'ALL')$$,
			  'kpi_monthly: revenue as dogdb_kpi_revenue() gives it');
SELECT is((SELECT bool_and(revenue = revenue_cents / 100.0 AND currency = 'USD' AND month_label = to_char(month, 'YYYY-MM'))
			 FROM dogdb.kpi_monthly), true, 'revenue in units, currency and the YYYY-MM label');

--
-- incomplete months: the current month, the months after the newest data
--
SELECT is((SELECT string_agg(DISTINCT month_label, ', ') FROM dogdb.kpi_monthly WHERE NOT is_complete),
		  to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM'),
		  'with a session this month, only the current month is incomplete');
DELETE FROM dogdb.sessions WHERE created_at > '2022-01-01Z';
SELECT FROM dogdb_refresh_kpis() \g /dev/null
SELECT is((SELECT data_through FROM dogdb.kpi_data_through), '2021-06-01 00:00Z'::timestamptz,
		  'data_through: the end of the newest month with sessions (demo data for 2021-01 to 2021-05)');
SELECT is((SELECT string_agg(DISTINCT to_char(month, 'YYYY-MM'), ',') FILTER (WHERE is_complete) || ' / '
				  || bool_and(NOT is_complete) FILTER (WHERE month >= '2021-06-01') FROM dogdb.kpi_monthly),
		  '2021-01,2021-02,2021-03,2021-04,2021-05 / true',
		  'the months after the newest data (where every account would show as churned) are marked incomplete');

--
-- errors: the allowed values in the message; hints right in any time zone
--
SELECT throws_ok($$SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-03-01', 'segment')$$, '22023',
				 'unknown KPI grouping ''segment'': group_by must be ''company_size'', ''tier'' or ''all''',
				 'an unknown group_by names the allowed values in the message');
SET LOCAL TIME ZONE 'America/Los_Angeles';
CREATE FUNCTION pg_temp.month_hint() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	h text;
BEGIN
	PERFORM * FROM dogdb_kpi_usage('2021-03-15', '2021-03-01');
	RETURN NULL;
EXCEPTION WHEN invalid_parameter_value THEN
	GET STACKED DIAGNOSTICS h = PG_EXCEPTION_HINT;
	RETURN h;
END $$;
-- the hint's own expression, applied to a UTC midnight in a session west of UTC
SELECT is((SELECT date_trunc('month', x AT TIME ZONE 'UTC')::date FROM (SELECT '2021-03-01 00:00Z'::timestamptz AS x) t)::text
		  || ' ' || (pg_temp.month_hint() LIKE '%date_trunc(''month'', x AT TIME ZONE ''UTC'')::date%'),
		  '2021-03-01 true', 'the month hint''s expression gives the UTC month in any session time zone');

SELECT * FROM finish();
ROLLBACK;
