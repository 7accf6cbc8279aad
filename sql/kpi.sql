-- Churn, KPIs and the demo data generator: exact outputs on small data
TRUNCATE dogdb.accounts, dogdb.invoice_number_counters RESTART IDENTITY CASCADE;
DELETE FROM dogdb.plan_prices WHERE NOT (plan_id IN (1, 2, 3) AND effective_from = '2019-01-01');
DELETE FROM dogdb.pricing_plans WHERE plan_id > 3;
SET TimeZone = 'America/Los_Angeles';	-- months are UTC months regardless

-- churn on hand-made data: 1 active every month; 2 skips February (churns
-- then, although it comes back); 3 never has a session; 4 starts in March
INSERT INTO dogdb.accounts (account_id, email, company_size, created_at) VALUES
	(1, NULL, 'small', '2021-01-10Z'), (2, NULL, 'large', '2021-01-01Z'),
	(3, NULL, NULL, '2021-01-31 23:00Z'), (4, NULL, 'small', '2021-03-05Z');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES
	(1, '2021-01-10Z'), (1, '2021-02-28 23:59:59Z'), (1, '2021-03-01 00:00Z'), (1, '2021-04-30Z'),
	(2, '2021-01-05Z'), (2, '2021-03-05Z'), (2, '2021-04-05Z'),
	(4, '2021-03-06Z'), (4, '2021-03-31 17:00-08');	-- that is April 1st in UTC
SELECT * FROM dogdb_account_churn('2021-04-15') ORDER BY account_id;
SELECT * FROM dogdb_account_churn('2021-05-01') ORDER BY account_id;

-- the aggregate: order-independent bitmaps that combine with OR
SELECT account_id, array(SELECT dogdb_active_month_list(dogdb_active_months(created_at ORDER BY created_at DESC))) AS months
  FROM dogdb.sessions GROUP BY account_id ORDER BY 1;
-- the support functions are for the aggregate only; bad bytes are refused
SELECT dogdb_active_months_combinefn(NULL, NULL);
SELECT dogdb_last_active_month('\x00'::bytea);
SELECT dogdb_first_inactive_month(NULL, '2021-03-17', '2021-05-01');

-- it runs as a parallel aggregate
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF)
SELECT dogdb_active_months(created_at) FROM dogdb.sessions;
SELECT dogdb_active_month_list(dogdb_active_months(created_at)) FROM dogdb.sessions;
SELECT account_id, dogdb_last_active_month(dogdb_active_months(created_at)) FROM dogdb.sessions
 GROUP BY account_id ORDER BY 1;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;

-- KPIs of the hand-made data; account 1 is medium, 2 enterprise from
-- mid-February (revenue prorated: 14 of 28 days)
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to) VALUES
	(1, 2, '2021-01-10Z', NULL), (2, 3, '2021-02-15Z', '2021-04-01Z');
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-05-01');
SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-05-01', 'tier');
SELECT * FROM dogdb_kpi_revenue('2021-01-01', '2021-05-01', 'all');
SELECT * FROM dogdb_kpi_revenue('2021-02-01', '2021-02-01', 'tier');
SELECT kpi, refreshed_at IS NOT NULL AS refreshed, full_rebuild FROM dogdb_kpi_last_refresh();

-- an incremental refresh sees a late session, a deleted one and a price change
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (2, '2021-02-10Z');
DELETE FROM dogdb.sessions WHERE account_id = 4 AND created_at = '2021-03-06Z';
INSERT INTO dogdb.plan_prices VALUES (2, 6000, '2021-04-16');
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-05-01', 'all');
SELECT * FROM dogdb_kpi_revenue('2021-04-01', '2021-04-01', 'all');
-- the revenue KPI is what the invoices bill
SELECT sum(total_cents) FROM dogdb_generate_invoices('2021-04-01');
DELETE FROM dogdb.plan_prices WHERE monthly_price_cents = 6000;

-- the incremental refresh equals a full rebuild under every change (issue
-- 8, finding 2; test/pgtap/kpi.sql does it on random data).  Renaming a
-- plan changes no fact: facts are keyed by plan_id, the names are joined
SELECT count(*) AS kpis_refreshed FROM dogdb_refresh_kpis();
UPDATE dogdb.pricing_plans SET name = 'pro' WHERE plan_id = 3;
SELECT retention_changed, usage_changed, revenue_changed FROM dogdb_internal.kpi_update_facts(false);
SELECT * FROM dogdb_kpi_revenue('2021-02-01', '2021-03-01', 'tier');
UPDATE dogdb.pricing_plans SET name = 'enterprise' WHERE plan_id = 3;
-- the plan of an ended subscription: the tier rule carries it into April
UPDATE dogdb.subscriptions SET plan_id = 2 WHERE account_id = 2;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT * FROM dogdb_kpi_retention('2021-02-01', '2021-05-01', 'tier');
-- an account's first month moves: its churn month moves with it
UPDATE dogdb.accounts SET created_at = '2021-03-01Z' WHERE account_id = 2;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-05-01', 'all');
-- an account deleted with its sessions, then its id re-created: the old
-- sessions do not come back
DELETE FROM dogdb.sessions WHERE account_id = 4;
DELETE FROM dogdb.accounts WHERE account_id = 4;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES (4, 'small', '2021-03-05Z');
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT * FROM dogdb_kpi_usage('2021-03-01', '2021-04-01', 'all');
CREATE TEMP TABLE incremental AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT count(*) AS kpis_rebuilt FROM dogdb_refresh_kpis(true);
SELECT count(*) AS rows_that_differ
  FROM ((SELECT * FROM incremental EXCEPT ALL SELECT * FROM dogdb_internal.kpi_facts)
		UNION ALL (SELECT * FROM dogdb_internal.kpi_facts EXCEPT ALL SELECT * FROM incremental)) d;

-- the KPI horizon (issue 8, finding 5): rows outside 2000-01..2199-12 are
-- refused when written, so none can stall or break a refresh
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, 'infinity');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, '5000-01-01Z');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, '294276-12-31Z');
INSERT INTO dogdb.accounts (account_id, created_at) VALUES (9, '-infinity');
UPDATE dogdb.accounts SET created_at = '1999-12-31 23:00Z' WHERE account_id = 1;

-- bad arguments: 22023 with a hint (SQLSTATEs in test/pgtap/kpi.sql)
SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-05-01', 'region');
SELECT * FROM dogdb_kpi_retention('2021-05-01', '2021-01-01');
SELECT * FROM dogdb_kpi_revenue('2021-01-15', '2021-05-01');
SELECT * FROM dogdb_kpi_revenue(NULL, '2021-05-01');

-- the demo data generator: refuses non-empty tables
SELECT * FROM dogdb_generate_demo_data(10, 3);
TRUNCATE dogdb.accounts CASCADE;
SELECT * FROM dogdb_generate_demo_data(0, 3);
SELECT * FROM dogdb_generate_demo_data(10, 3, '2021-01-02');
-- deterministic for a seed: the same data twice
SELECT * FROM dogdb_generate_demo_data(200, 6, '2021-01-01', 42);
CREATE TEMP TABLE first_run AS
SELECT md5(string_agg(format('%s %s %s', account_id, company_size, created_at), ',' ORDER BY account_id)) AS accounts,
	   (SELECT md5(string_agg(format('%s %s %s %s', account_id, plan_id, valid_from, valid_to), ',' ORDER BY account_id))
		  FROM dogdb.subscriptions) AS subscriptions,
	   (SELECT md5(string_agg(format('%s %s', account_id, created_at), ',' ORDER BY account_id, created_at))
		  FROM dogdb.sessions) AS sessions
  FROM dogdb.accounts;
SELECT company_size, count(*), min(created_at), max(created_at) FROM dogdb.accounts GROUP BY 1 ORDER BY 1;
SELECT p.name, count(*), count(valid_to) AS ended FROM dogdb.subscriptions JOIN dogdb.pricing_plans p USING (plan_id)
 GROUP BY 1 ORDER BY 1;
TRUNCATE dogdb.accounts CASCADE;
SELECT * FROM dogdb_generate_demo_data(200, 6, '2021-01-01', 42);
SELECT f.accounts = (SELECT md5(string_agg(format('%s %s %s', account_id, company_size, created_at), ',' ORDER BY account_id)) FROM dogdb.accounts)
		   AS same_accounts,
	   f.subscriptions = (SELECT md5(string_agg(format('%s %s %s %s', account_id, plan_id, valid_from, valid_to), ',' ORDER BY account_id))
							FROM dogdb.subscriptions) AS same_subscriptions,
	   f.sessions = (SELECT md5(string_agg(format('%s %s', account_id, created_at), ',' ORDER BY account_id, created_at))
					   FROM dogdb.sessions) AS same_sessions
  FROM first_run f(accounts, subscriptions, sessions);
SELECT count(*) AS kpis_refreshed FROM dogdb_refresh_kpis();
SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-06-01');
SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-06-01');
SELECT * FROM dogdb_kpi_revenue('2021-01-01', '2021-06-01', 'tier');
TRUNCATE dogdb.accounts CASCADE;
RESET TimeZone;
