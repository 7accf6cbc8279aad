-- pgTAP: the demo data generator's rules, churn and the KPI functions
-- against independent plain-SQL computations, the incremental refresh
-- against a full rebuild after random changes, argument errors
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
\ir ../reference_invoice_lines.sql
SELECT plan(26);

-- the generator's rules on 4000 companies over 12 months
SELECT is(accounts, 4000::bigint, 'generator: 4000 companies')
  FROM dogdb_generate_demo_data(4000, 12, '2021-01-01', 7);
SELECT ok(share BETWEEN 0.67 AND 0.73, format('about 70%% are small (%s)', share))
  FROM (SELECT round(avg((company_size = 'small')::int), 3) AS share FROM dogdb.accounts) s;
SELECT is(count(*), 0::bigint, 'all acquired at 2021-01-01 00:00 UTC')
  FROM dogdb.accounts WHERE created_at <> '2021-01-01Z';
CREATE TEMP TABLE account_months AS
SELECT a.account_id, a.company_size, m::date AS month,
	   (SELECT count(*) FROM dogdb.sessions s WHERE s.account_id = a.account_id
		   AND s.created_at >= m AT TIME ZONE 'UTC' AND s.created_at < (m + interval '1 month') AT TIME ZONE 'UTC') AS n
  FROM dogdb.accounts a, generate_series(timestamp '2021-01-01', '2021-12-01', '1 month') m;
CREATE TEMP TABLE churned AS
SELECT account_id, min(month) AS churn_month FROM account_months WHERE n = 0 GROUP BY 1;
SELECT results_eq($$SELECT company_size, min(n), max(n) FROM account_months am
					 WHERE NOT EXISTS (SELECT FROM churned c WHERE c.account_id = am.account_id AND am.month >= c.churn_month)
					 GROUP BY 1 ORDER BY 1$$,
				  $$VALUES ('large', 1::bigint, 20::bigint), ('small', 1, 10)$$,
				  'sessions per month until churn: small 1..10, large 1..20 (0 is churn)');
SELECT ok(abs(small - 5) < 0.15 AND abs(large - 10) < 0.3,
		  format('draws average 5 (small: %s) and 10 (large: %s) sessions a month, churn month included', small, large))
  FROM (SELECT round(avg(n) FILTER (WHERE company_size = 'small'), 2) AS small,
			   round(avg(n) FILTER (WHERE company_size = 'large'), 2) AS large
		  FROM account_months am
		 WHERE NOT EXISTS (SELECT FROM churned c WHERE c.account_id = am.account_id AND am.month > c.churn_month)) x;
SELECT is(count(*), 0::bigint, 'no session after the churn month')
  FROM account_months am JOIN churned c USING (account_id) WHERE am.month > c.churn_month AND am.n > 0;
SELECT is(count(*), 0::bigint, 'sessions are inside the 12 months')
  FROM dogdb.sessions WHERE created_at < '2021-01-01Z' OR created_at >= '2022-01-01Z';
SELECT is(count(*), 0::bigint,
		  'each subscription runs from the start to 00:00 UTC of the churn month (open if none)')
  FROM dogdb.subscriptions s LEFT JOIN churned c USING (account_id)
 WHERE s.valid_from <> '2021-01-01Z'
	OR s.valid_to IS DISTINCT FROM (c.churn_month::timestamp AT TIME ZONE 'UTC');
SELECT is((SELECT count(*) FROM dogdb.accounts) - (SELECT count(*) FROM dogdb.subscriptions),
		  (SELECT count(*) FROM churned WHERE churn_month = '2021-01-01'),
		  'only companies that churn in their first month have no subscription');
SELECT results_eq($$SELECT p.name FROM dogdb.subscriptions JOIN dogdb.pricing_plans p USING (plan_id)
					 GROUP BY 1 ORDER BY 1$$, ARRAY['enterprise', 'medium'], 'both paid tiers are used');

-- churn against gaps-and-islands in SQL, with comebacks: extra sessions after churn
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT account_id, (churn_month + interval '1 month' + interval '3 days') AT TIME ZONE 'UTC'
  FROM churned WHERE account_id % 3 = 0 AND churn_month < '2021-11-01';
SELECT bag_eq($$SELECT account_id, churn_month FROM dogdb_account_churn('2021-12-31')$$,
			  $$SELECT a.account_id,
					   (SELECT min(m)::date FROM generate_series(timestamp '2021-01-01', '2021-12-01', '1 month') m
						 WHERE NOT EXISTS (SELECT FROM dogdb.sessions s WHERE s.account_id = a.account_id
											  AND s.created_at >= m AT TIME ZONE 'UTC'
											  AND s.created_at < (m + interval '1 month') AT TIME ZONE 'UTC'))
				  FROM dogdb.accounts a$$,
			  'churn month: the first month without a session, even when sessions come back');
SELECT is((SELECT count(*) FROM dogdb_account_churn('2021-06-30') WHERE churn_month > '2021-06-01'), 0::bigint,
		  'as_of bounds the churn month');

-- the KPI functions against an independent computation
CREATE FUNCTION pg_temp.tier_of(acct bigint, m date) RETURNS text LANGUAGE sql STABLE AS $$
	SELECT coalesce((SELECT p.name FROM dogdb.pricing_plans p WHERE p.plan_id = coalesce(
		(SELECT plan_id FROM dogdb.subscriptions WHERE account_id = acct
			AND (valid_from AT TIME ZONE 'UTC')::date <= m AND coalesce((valid_to AT TIME ZONE 'UTC')::date, 'infinity') > m
		  LIMIT 1),
		(SELECT plan_id FROM dogdb.subscriptions WHERE account_id = acct AND (valid_to AT TIME ZONE 'UTC')::date <= m
		  ORDER BY valid_from DESC LIMIT 1),
		(SELECT plan_id FROM dogdb.subscriptions WHERE account_id = acct
			AND (valid_from AT TIME ZONE 'UTC')::date < (m + interval '1 month')::date
		  ORDER BY valid_from LIMIT 1))), 'none')
$$;
CREATE FUNCTION pg_temp.expected_facts() RETURNS TABLE (month date, company_size text, tier text,
	active bigint, churned bigint, sessions bigint, revenue bigint) LANGUAGE sql AS $$
	WITH months AS (
		SELECT m::date AS month FROM generate_series(
			(SELECT min(date_trunc('month', created_at AT TIME ZONE 'UTC')) FROM dogdb.accounts),
			date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') m
	), usage AS (
		SELECT account_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
		  FROM dogdb.sessions GROUP BY 1, 2
	), churn AS (
		SELECT a.account_id, (SELECT min(m.month) FROM months m
							   WHERE m.month >= date_trunc('month', a.created_at AT TIME ZONE 'UTC')
								 AND NOT EXISTS (SELECT FROM usage u WHERE u.account_id = a.account_id AND u.month = m.month)) AS month
		  FROM dogdb.accounts a
	), revenue AS (
		SELECT l.account_id, m.month, sum(l.amount_cents) AS cents
		  FROM months m, pg_temp.reference_invoice_lines(m.month) l GROUP BY 1, 2
	), per_account AS (
		SELECT account_id, month, sum(n) AS n, sum(c) AS c, sum(cents) AS cents
		  FROM (SELECT account_id, month, n, 0 AS c, 0 AS cents FROM usage
				UNION ALL SELECT account_id, month, 0, 1, 0 FROM churn WHERE month IS NOT NULL
				UNION ALL SELECT account_id, month, 0, 0, cents FROM revenue) x GROUP BY 1, 2
	)
	SELECT p.month, coalesce(a.company_size, 'unknown'), pg_temp.tier_of(p.account_id, p.month),
		   count(*) FILTER (WHERE p.n > 0), sum(p.c)::bigint, sum(p.n)::bigint, sum(p.cents)::bigint
	  FROM per_account p JOIN dogdb.accounts a USING (account_id)
	 GROUP BY 1, 2, 3
$$;
SELECT lives_ok('SELECT dogdb_refresh_kpis()', 'refresh after generating: a full rebuild');
SELECT bag_eq('SELECT month, company_size, tier, active_accounts, churned_accounts, sessions, revenue_cents FROM dogdb.kpi_facts',
			  'SELECT * FROM pg_temp.expected_facts()', 'the KPI facts equal the independent computation');
SELECT results_eq($$SELECT month, segment, active_accounts, churned_accounts FROM dogdb_kpi_retention('2021-01-01', '2021-12-01', 'tier')$$,
				  $$SELECT month, tier, sum(active)::bigint, sum(churned)::bigint FROM pg_temp.expected_facts()
					 WHERE month <= '2021-12-01' AND (active <> 0 OR churned <> 0) GROUP BY 1, 2 ORDER BY 1, 2$$,
				  'dogdb_kpi_retention by tier');
SELECT results_eq($$SELECT month, segment, sessions, avg_sessions FROM dogdb_kpi_usage('2021-01-01', '2021-12-01')$$,
				  $$SELECT month, company_size, sum(sessions)::bigint, round(sum(sessions)::numeric / sum(active), 2)
					  FROM pg_temp.expected_facts() WHERE month <= '2021-12-01' AND active > 0 GROUP BY 1, 2 ORDER BY 1, 2$$,
				  'dogdb_kpi_usage by company size');
SELECT results_eq($$SELECT month, revenue_cents FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'all')$$,
				  $$SELECT m::date, (SELECT sum(amount_cents)::bigint FROM dogdb_preview_invoice_lines(m::date))
					  FROM generate_series(timestamp '2021-01-01', '2021-12-01', '1 month') m ORDER BY 1$$,
				  'dogdb_kpi_revenue equals what the invoices would bill, month by month');

-- random changes, then incremental refresh = full rebuild
SELECT setseed(0.5);
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 1 + (random() * 3999)::int, timestamptz '2021-01-01Z' + random() * interval '400 days' FROM generate_series(1, 3000);
DELETE FROM dogdb.sessions WHERE session_id IN (SELECT session_id FROM dogdb.sessions ORDER BY random() LIMIT 2000);
UPDATE dogdb.sessions SET created_at = created_at - interval '40 days' WHERE session_id % 997 = 0;
UPDATE dogdb.subscriptions SET valid_to = '2021-07-14 13:00Z' WHERE subscription_id % 50 = 0 AND valid_to IS NULL;
UPDATE dogdb.subscriptions SET plan_id = 2 WHERE subscription_id % 71 = 0;
INSERT INTO dogdb.plan_prices VALUES (3, 55000, '2021-05-20');
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES (100001, 'large', '2021-08-15Z');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (100001, 3, '2021-08-15Z');
UPDATE dogdb.accounts SET company_size = 'large' WHERE account_id % 101 = 0;
SELECT is(months > 0 AND NOT rebuilt, true, 'the refresh after the changes is incremental')
  FROM dogdb.kpi_update_facts(false);
SELECT lives_ok('SELECT dogdb_refresh_kpis()', 'views refreshed');
CREATE TEMP TABLE incremental AS SELECT * FROM dogdb.kpi_facts;
SELECT lives_ok('SELECT dogdb_refresh_kpis(true)', 'full rebuild');
SELECT bag_eq('SELECT * FROM incremental', 'SELECT * FROM dogdb.kpi_facts',
			  'the incremental refresh equals a full rebuild');
SELECT bag_eq('SELECT month, company_size, tier, active_accounts, churned_accounts, sessions, revenue_cents FROM dogdb.kpi_facts',
			  'SELECT * FROM pg_temp.expected_facts()', 'and the independent computation');

-- errors
SELECT throws_ok($$SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-03-01', 'country')$$, '22023',
				 'unknown KPI grouping: ''country''', 'unknown group_by: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_kpi_usage('2021-03-01', '2021-01-01')$$, '22023', NULL, 'reversed range: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_kpi_revenue('2021-03-01', '2021-03-31')$$, '22023', NULL, 'not a first of month: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_generate_demo_data(10, 2)$$, '55000', 'dogdb.accounts is not empty',
				 'the generator refuses non-empty tables');

SELECT * FROM finish();
ROLLBACK;
