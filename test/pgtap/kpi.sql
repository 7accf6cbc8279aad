-- pgTAP: the demo data generator's rules, churn and the KPI functions
-- against independent plain-SQL computations, the incremental refresh
-- against a full rebuild after random changes, argument errors
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
\ir ../reference_invoice_lines.sql
SELECT plan(149);

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
	), churn AS (		-- the first month from the first one without a session
		SELECT a.account_id, min(m.month) AS month
		  FROM dogdb.accounts a JOIN months m ON m.month >= date_trunc('month', a.created_at AT TIME ZONE 'UTC')
		  LEFT JOIN usage u ON u.account_id = a.account_id AND u.month = m.month
		 WHERE u.account_id IS NULL GROUP BY 1
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
-- the facts with their tier names (they are keyed by plan_id)
CREATE VIEW pg_temp.named_facts AS
SELECT f.month, f.company_size, coalesce(p.name, 'none') AS tier, f.active_accounts, f.churned_accounts,
	   f.sessions, f.revenue_cents
  FROM dogdb_internal.kpi_facts f LEFT JOIN dogdb.pricing_plans p USING (plan_id);
SELECT lives_ok('SELECT dogdb_refresh_kpis()', 'refresh after generating: a full rebuild');
-- a full rebuild whose parallel workers count every session (kpi_parallel.c;
-- force_parallel_mode gives the worker every chunk of the 1360 heap blocks)
-- and compute the facts of the upper part of the accounts
-- (kpi_facts_parallel.c); done serially, the facts are the same
SET force_parallel_mode = on;
SELECT months FROM dogdb_internal.kpi_update_facts(true) \g /dev/null
RESET force_parallel_mode;
CREATE TEMP TABLE parallel_facts AS SELECT * FROM dogdb_internal.kpi_facts;
SET max_parallel_workers_per_gather = 0;
SELECT months FROM dogdb_internal.kpi_update_facts(true) \g /dev/null
RESET max_parallel_workers_per_gather;
SELECT is((SELECT count(*) FROM ((TABLE parallel_facts EXCEPT ALL TABLE dogdb_internal.kpi_facts)
								 UNION ALL (TABLE dogdb_internal.kpi_facts EXCEPT ALL TABLE parallel_facts)) d),
		  0::bigint, 'a full rebuild done serially equals the one done by parallel workers');
-- a full rebuild by parallel workers (force_parallel_mode: both take their
-- share whatever the size) against a serial one: the rows of the facts and
-- of the engine's state that differ
CREATE FUNCTION pg_temp.rebuild_parallel() RETURNS void LANGUAGE sql SET force_parallel_mode = on
AS $$ SELECT FROM dogdb_internal.kpi_update_facts(true) $$;
CREATE FUNCTION pg_temp.rebuild_serial() RETURNS void LANGUAGE sql SET max_parallel_workers_per_gather = 0
AS $$ SELECT FROM dogdb_internal.kpi_update_facts(true) $$;
CREATE FUNCTION pg_temp.engine_state() RETURNS TABLE (t text, r jsonb) LANGUAGE sql AS $$
	SELECT 'facts', to_jsonb(f) FROM dogdb_internal.kpi_facts f
	UNION ALL SELECT 'months', to_jsonb(m) FROM dogdb_internal.kpi_month_activity m
	UNION ALL SELECT 'churn', to_jsonb(c) FROM dogdb_internal.kpi_churn_state c
$$;
-- the engine's state now, kept; then the rows that differ from it after a serial full rebuild
CREATE FUNCTION pg_temp.differ_from_serial_rebuild() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	CREATE TEMP TABLE kept_state AS SELECT * FROM pg_temp.engine_state();
	PERFORM pg_temp.rebuild_serial();
	SELECT count(*) INTO n
	  FROM ((TABLE kept_state EXCEPT ALL SELECT * FROM pg_temp.engine_state())
			UNION ALL (SELECT * FROM pg_temp.engine_state() EXCEPT ALL TABLE kept_state)) d;
	DROP TABLE kept_state;
	RETURN n;
END
$$;
CREATE FUNCTION pg_temp.parallel_serial_differ() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.rebuild_parallel();
	RETURN pg_temp.differ_from_serial_rebuild();
END
$$;
-- the count starts before the accounts load when the last refresh left its
-- months and the accounts' ids look compact (kpi_parallel.c, KpiCountStart)
ANALYZE dogdb.accounts;
SAVEPOINT holes;
-- ids with holes (the count's index map, the facts' worker's accounts
-- renumbered) and accounts without subscriptions where the facts split the
-- accounts (at 2048 of them, kpi_facts_parallel.c)
DELETE FROM dogdb.sessions WHERE account_id % 7 = 3;
DELETE FROM dogdb.subscriptions WHERE account_id % 7 = 3 OR account_id BETWEEN 2030 AND 2070;
DELETE FROM dogdb.invoices WHERE account_id % 7 = 3;
DELETE FROM dogdb.licenses WHERE account_id % 7 = 3;
DELETE FROM dogdb.interactions WHERE account_id % 7 = 3;
DELETE FROM dogdb.accounts WHERE account_id % 7 = 3;
SELECT is(pg_temp.parallel_serial_differ(), 0::bigint,
		  'ids with holes: the parallel full rebuild writes the serial one''s facts, month rows and churn state');
SELECT cmp_ok((SELECT count(*) FROM pg_temp.engine_state() WHERE t = 'months'), '>', 0::bigint, 'and month rows were written');
SELECT bag_eq('SELECT * FROM pg_temp.named_facts', 'SELECT * FROM pg_temp.expected_facts()',
			  'ids with holes: the facts equal the independent computation');
-- sessions before the months of the last refresh: the early count's worker
-- lists them apart (up to 65,536), then gives up on its counts (the leader
-- counts the worker's blocks again)
UPDATE dogdb.accounts SET created_at = created_at - interval '3 months' WHERE account_id % 5 = 1;
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT a.account_id, a.created_at + interval '1 day' FROM dogdb.accounts a, generate_series(1, 2) WHERE a.account_id % 5 = 1;
SELECT is(pg_temp.parallel_serial_differ(), 0::bigint,
		  'sessions before the last refresh''s months (listed apart by the worker): parallel = serial');
UPDATE dogdb.accounts SET created_at = created_at - interval '6 months' WHERE account_id % 5 = 1;
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT a.account_id, a.created_at + interval '1 hour' * i FROM dogdb.accounts a, generate_series(1, 120) i
 WHERE a.account_id % 5 = 1;
SELECT cmp_ok((SELECT count(*) FROM dogdb.sessions s JOIN dogdb.accounts a USING (account_id)
				WHERE a.account_id % 5 = 1 AND s.created_at < a.created_at + interval '6 months'), '>', 65536::bigint,
			  'more sessions before the last refresh''s months than the worker lists');
SELECT is(pg_temp.parallel_serial_differ(), 0::bigint,
		  'too many sessions before them (the worker''s blocks counted again): parallel = serial');
-- the estimated count of accounts out of date: ids not compact after all
-- (the leader maps the worker's offsets by search)
DELETE FROM dogdb.sessions WHERE account_id BETWEEN 101 AND 3990;
DELETE FROM dogdb.subscriptions WHERE account_id BETWEEN 101 AND 3990;
DELETE FROM dogdb.invoices WHERE account_id BETWEEN 101 AND 3990;
DELETE FROM dogdb.licenses WHERE account_id BETWEEN 101 AND 3990;
DELETE FROM dogdb.interactions WHERE account_id BETWEEN 101 AND 3990;
DELETE FROM dogdb.accounts WHERE account_id BETWEEN 101 AND 3990;
SELECT is(pg_temp.parallel_serial_differ(), 0::bigint, 'ids not compact, the count started early: parallel = serial');
SELECT bag_eq('SELECT * FROM pg_temp.named_facts', 'SELECT * FROM pg_temp.expected_facts()',
			  'and the facts equal the independent computation');
ROLLBACK TO holes;
SELECT bag_eq('SELECT * FROM pg_temp.named_facts',
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

-- The incremental refresh against a full rebuild and the independent
-- computation, after every kind of change the tables feeding the KPIs can
-- receive, interleaved with refreshes.  pg_temp.check() refreshes
-- incrementally, then rebuilds in a subtransaction it rolls back, so the
-- chain of incremental refreshes goes on.
CREATE TEMP TABLE incremental (LIKE dogdb_internal.kpi_facts);
CREATE FUNCTION pg_temp.check(label text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	u record;
	vs_full bigint;
	vs_expected bigint;
	vs_views bigint;
BEGIN
	-- the refresh users call: the engine, then the views (changed in place when it can)
	SELECT bool_or(r.full_rebuild) AS rebuilt INTO u FROM dogdb_refresh_kpis() r;
	SELECT count(*) INTO vs_views
	  FROM ((SELECT month, company_size, plan_id, active_accounts, churned_accounts, NULL::bigint, NULL::bigint
			   FROM dogdb.kpi_retention
			 UNION ALL SELECT month, company_size, plan_id, active_accounts, NULL, sessions, NULL FROM dogdb.kpi_usage
			 UNION ALL SELECT month, company_size, plan_id, NULL, NULL, NULL, revenue_cents FROM dogdb.kpi_revenue)
			EXCEPT ALL
			(SELECT month, company_size, plan_id, active_accounts, churned_accounts, NULL::bigint, NULL::bigint
			   FROM dogdb_internal.kpi_facts WHERE active_accounts <> 0 OR churned_accounts <> 0
			 UNION ALL SELECT month, company_size, plan_id, active_accounts, NULL, sessions, NULL
			   FROM dogdb_internal.kpi_facts WHERE active_accounts <> 0 OR sessions <> 0
			 UNION ALL SELECT month, company_size, plan_id, NULL, NULL, NULL, revenue_cents
			   FROM dogdb_internal.kpi_facts WHERE revenue_cents <> 0)) d;
	SELECT vs_views + count(*) INTO vs_views
	  FROM ((SELECT month, company_size, plan_id, active_accounts, churned_accounts, NULL::bigint, NULL::bigint
			   FROM dogdb_internal.kpi_facts WHERE active_accounts <> 0 OR churned_accounts <> 0
			 UNION ALL SELECT month, company_size, plan_id, active_accounts, NULL, sessions, NULL
			   FROM dogdb_internal.kpi_facts WHERE active_accounts <> 0 OR sessions <> 0
			 UNION ALL SELECT month, company_size, plan_id, NULL, NULL, NULL, revenue_cents
			   FROM dogdb_internal.kpi_facts WHERE revenue_cents <> 0)
			EXCEPT ALL
			(SELECT month, company_size, plan_id, active_accounts, churned_accounts, NULL::bigint, NULL::bigint
			   FROM dogdb.kpi_retention
			 UNION ALL SELECT month, company_size, plan_id, active_accounts, NULL, sessions, NULL FROM dogdb.kpi_usage
			 UNION ALL SELECT month, company_size, plan_id, NULL, NULL, NULL, revenue_cents FROM dogdb.kpi_revenue)) d;
	DELETE FROM incremental;
	INSERT INTO incremental SELECT * FROM dogdb_internal.kpi_facts;
	CREATE TEMP TABLE expected ON COMMIT DROP AS SELECT * FROM pg_temp.expected_facts();
	SELECT count(*) INTO vs_expected
	  FROM ((SELECT * FROM pg_temp.named_facts EXCEPT ALL SELECT * FROM expected)
			UNION ALL (SELECT * FROM expected EXCEPT ALL SELECT * FROM pg_temp.named_facts)) d;
	DROP TABLE expected;
	BEGIN
		PERFORM dogdb_internal.kpi_update_facts(true);
		SELECT count(*) INTO vs_full
		  FROM ((SELECT * FROM incremental EXCEPT ALL SELECT * FROM dogdb_internal.kpi_facts)
				UNION ALL (SELECT * FROM dogdb_internal.kpi_facts EXCEPT ALL SELECT * FROM incremental)) d;
		RAISE EXCEPTION 'roll the rebuild back';
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	RETURN NEXT is(vs_full, 0::bigint, format('%s: the incremental refresh (%s) equals a full rebuild',
											  label, CASE WHEN u.rebuilt THEN 'rebuilt' ELSE 'incremental' END));
	RETURN NEXT is(vs_expected, 0::bigint, label || ': and the independent computation');
	RETURN NEXT is(vs_views, 0::bigint, label || ': the three views publish the facts');
END
$$;
SELECT setseed(0.5);

-- accounts deleted in bulk (which keeps the rest of the test quick)
DELETE FROM dogdb.sessions WHERE account_id > 1500;
DELETE FROM dogdb.subscriptions WHERE account_id > 1500;
DELETE FROM dogdb.accounts WHERE account_id > 1500;
SELECT pg_temp.check('2500 accounts deleted');

-- sessions: inserts, deletes, moves between months and accounts
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 1 + (random() * 1499)::int, timestamptz '2021-01-01Z' + random() * interval '400 days' FROM generate_series(1, 3000);
DELETE FROM dogdb.sessions WHERE session_id IN (SELECT session_id FROM dogdb.sessions ORDER BY random() LIMIT 2000);
UPDATE dogdb.sessions SET created_at = created_at - interval '40 days' WHERE session_id % 997 = 0;
UPDATE dogdb.sessions SET account_id = account_id % 1499 + 1 WHERE session_id % 1009 = 0;
SELECT pg_temp.check('sessions inserted, deleted, moved');

-- session changes alone take the delta path (kpi_delta.c): churn months
-- moving back (a month emptied), forward (a session in the churn month,
-- once and twice in a row), sessions of the current month and before an
-- account's first month, and a mix in one refresh
DELETE FROM dogdb.sessions WHERE account_id % 7 = 0 AND created_at >= '2021-06-01Z' AND created_at < '2021-07-01Z';
SELECT pg_temp.check('delta path: a month emptied, churn moves back');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT account_id, (churn_month + interval '3 hours') AT TIME ZONE 'UTC' FROM dogdb_account_churn(current_date)
 WHERE churn_month IS NOT NULL AND account_id % 3 = 0;
SELECT pg_temp.check('delta path: a session in the churn month, churn moves forward');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT account_id, (churn_month + interval '5 hours') AT TIME ZONE 'UTC' FROM dogdb_account_churn(current_date)
 WHERE churn_month IS NOT NULL AND account_id % 3 = 0
UNION ALL
SELECT account_id, (churn_month + interval '5 hours' + interval '1 month') AT TIME ZONE 'UTC' FROM dogdb_account_churn(current_date)
 WHERE churn_month IS NOT NULL AND account_id % 3 = 0;
SELECT pg_temp.check('delta path: sessions in the churn month and the next one');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 1 + (random() * 1499)::int, date_trunc('month', now()) + random() * (now() - date_trunc('month', now()))
  FROM generate_series(1, 500);
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT account_id, created_at - interval '2 months' FROM dogdb.accounts WHERE account_id % 11 = 0;
SELECT pg_temp.check('delta path: sessions this month and before first months');
DELETE FROM dogdb.sessions WHERE session_id IN (SELECT session_id FROM dogdb.sessions ORDER BY random() LIMIT 3000);
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 1 + (random() * 1499)::int, timestamptz '2021-01-01Z' + random() * (now() - timestamptz '2021-01-01Z')
  FROM generate_series(1, 3000);
UPDATE dogdb.sessions SET created_at = created_at + interval '1 month' WHERE session_id % 13 = 0 AND created_at < now() - interval '1 month';
SELECT pg_temp.check('delta path: a mix of random inserts, deletes and moves');

-- subscriptions, one kind of change at a time: ended; the plan of ended
-- ones changed (the tier rule carries it into the months after); deleted;
-- added
UPDATE dogdb.subscriptions SET valid_to = '2021-07-14 13:00Z' WHERE subscription_id % 5 = 0 AND valid_to IS NULL;
SELECT pg_temp.check('subscriptions ended');
UPDATE dogdb.subscriptions SET plan_id = 5 - plan_id WHERE valid_to IS NOT NULL AND subscription_id % 3 = 0;
SELECT pg_temp.check('the plan of ended subscriptions changed');
UPDATE dogdb.subscriptions SET plan_id = 2 WHERE subscription_id % 71 = 0;
DELETE FROM dogdb.subscriptions WHERE subscription_id % 89 = 0;
SELECT pg_temp.check('subscriptions re-planned and deleted');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to)
SELECT a.account_id, 1 + a.account_id % 3, '2021-03-10Z', CASE WHEN a.account_id % 2 = 0 THEN timestamptz '2021-05-20Z' END
  FROM dogdb.accounts a WHERE NOT EXISTS (SELECT 1 FROM dogdb.subscriptions s WHERE s.account_id = a.account_id);
SELECT pg_temp.check('subscriptions added');

-- prices and plans: a new price, a changed one, a deleted one; a rename
-- changes no fact; a new plan with a price and subscribers
INSERT INTO dogdb.plan_prices VALUES (3, 55000, '2021-05-20'), (2, 4000, '2021-09-01');
UPDATE dogdb.plan_prices SET monthly_price_cents = 4500 WHERE plan_id = 2 AND effective_from = '2021-09-01';
DELETE FROM dogdb.plan_prices WHERE plan_id = 3 AND effective_from = '2021-05-20';
SELECT pg_temp.check('prices added, changed, deleted');
UPDATE dogdb.pricing_plans SET name = 'pro' WHERE plan_id = 3;
SELECT pg_temp.check('a plan renamed');
SELECT is((SELECT count(*) FROM dogdb_internal.kpi_update_facts(false) WHERE revenue_changed OR retention_changed OR usage_changed),
		  0::bigint, 'a rename changes no fact');
INSERT INTO dogdb.pricing_plans VALUES (4, 'starter');
INSERT INTO dogdb.plan_prices VALUES (4, 1500, '2020-01-01');
UPDATE dogdb.subscriptions SET valid_to = '2021-10-01Z' WHERE valid_to IS NULL AND account_id % 13 = 0;
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from)
SELECT account_id, 4, '2021-10-01Z' FROM dogdb.subscriptions WHERE valid_to = '2021-10-01Z' AND account_id % 13 = 0;
SELECT pg_temp.check('a new plan with subscribers');
-- the stored month rows widen: a plan_id beyond a byte, session counts
-- beyond a byte and beyond two (kpi_matrix.c's codec), by both paths
INSERT INTO dogdb.pricing_plans VALUES (300, 'wide');
INSERT INTO dogdb.plan_prices VALUES (300, 2500, '2020-01-01');
CREATE TEMP TABLE wide AS
SELECT account_id FROM dogdb.subscriptions s WHERE valid_to IS NULL AND valid_from < '2021-11-01Z' AND account_id % 17 = 0;
UPDATE dogdb.subscriptions SET valid_to = '2021-11-01Z' WHERE valid_to IS NULL AND account_id IN (TABLE wide);
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) SELECT account_id, 300, '2021-11-01Z' FROM wide;
SELECT pg_temp.check('a plan_id beyond a byte');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 34, timestamptz '2021-11-03Z' + i * interval '1 second' FROM generate_series(1, 300) i;
SELECT pg_temp.check('delta path: 300 sessions of one account in a month');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 34, timestamptz '2021-11-04Z' + i * interval '1 second' FROM generate_series(1, 33000) i;
SELECT pg_temp.check('delta path: 33300 sessions of one account in a month');

-- accounts, one kind of change at a time: first months later (a stored
-- churn month before the new first month), earlier, sizes, new accounts
UPDATE dogdb.accounts SET created_at = '2021-04-02Z' WHERE account_id IN
	(SELECT account_id FROM dogdb_account_churn('2021-12-31') WHERE churn_month < '2021-04-01' LIMIT 20);
SELECT pg_temp.check('accounts created later');
UPDATE dogdb.accounts SET created_at = '2020-11-20Z' WHERE account_id % 211 = 0;
SELECT pg_temp.check('accounts created earlier');
UPDATE dogdb.accounts SET company_size = CASE company_size WHEN 'small' THEN 'large' WHEN 'large' THEN NULL ELSE 'small' END
 WHERE account_id % 101 = 0;
SELECT pg_temp.check('accounts resized');
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES (100001, 'large', '2021-08-15Z'), (100002, NULL, '2019-06-01Z');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (100001, 3, '2021-08-15Z');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (100001, '2021-08-16Z'), (100002, '2019-06-02Z');
SELECT pg_temp.check('accounts added');

-- an account deleted with its sessions and subscriptions, then its id
-- re-created: the old sessions must not come back
DELETE FROM dogdb.sessions WHERE account_id IN (17, 18);
DELETE FROM dogdb.subscriptions WHERE account_id IN (17, 18);
DELETE FROM dogdb.accounts WHERE account_id IN (17, 18);
SELECT pg_temp.check('accounts deleted');
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES (17, 'small', '2021-06-01Z');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (17, '2021-06-03Z');
SELECT pg_temp.check('a deleted account''s id re-created');
-- deleted and re-created between two refreshes
DELETE FROM dogdb.sessions WHERE account_id = 19;
DELETE FROM dogdb.subscriptions WHERE account_id = 19;
DELETE FROM dogdb.accounts WHERE account_id = 19;
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES (19, 'large', '2021-02-01Z');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (19, '2021-09-09Z');
SELECT pg_temp.check('an account deleted and re-created between refreshes');

-- sessions far in the future widen the facts; deleting them narrows them again
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (20, '2150-06-01Z'), (21, '2199-12-31 23:59Z');
SELECT pg_temp.check('sessions in 2150 and 2199');
DELETE FROM dogdb.sessions WHERE created_at > '2100-01-01Z';
SELECT pg_temp.check('and deleted');
SELECT is((SELECT max(month) FROM dogdb_internal.kpi_facts), date_trunc('month', now() AT TIME ZONE 'UTC')::date,
		  'no fact is left beyond the current month');

-- TRUNCATE: a rebuild, then incremental refreshes go on
TRUNCATE dogdb.sessions;
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT a, t FROM (SELECT 1 + (random() * 1499)::int, timestamptz '2021-01-01Z' + random() * interval '300 days'
					FROM generate_series(1, 4000)) x(a, t)
 WHERE a IN (SELECT account_id FROM dogdb.accounts);
SELECT pg_temp.check('sessions truncated and refilled');
UPDATE dogdb.pricing_plans SET name = 'enterprise' WHERE plan_id = 3;
DELETE FROM dogdb.sessions WHERE session_id % 5 = 0;
UPDATE dogdb.accounts SET created_at = created_at + interval '1 month' WHERE account_id % 307 = 0;
SELECT pg_temp.check('everything at once');
SELECT lives_ok('SELECT dogdb_refresh_kpis(true)', 'views refreshed');
SELECT bag_eq($$SELECT month, segment, revenue_cents FROM dogdb_kpi_revenue('2019-01-01', '2030-12-01', 'tier')$$,
			  $$SELECT month, tier, sum(revenue)::bigint FROM pg_temp.expected_facts() GROUP BY 1, 2 HAVING sum(revenue) <> 0$$,
			  'dogdb_kpi_revenue shows the plans by their names now');

-- data outside the KPI horizon is refused when written
SELECT throws_ok($$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, 'infinity')$$, '23514',
				 'new row for relation "sessions" violates check constraint "sessions_created_at_kpi_horizon"',
				 'a session at infinity: 23514');
SELECT throws_ok($$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, '5000-01-01Z')$$, '23514', NULL,
				 'a session in year 5000: 23514');
SELECT throws_ok($$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, '294276-12-31Z')$$, '23514', NULL,
				 'a session in year 294276: 23514');
SELECT throws_ok($$INSERT INTO dogdb.accounts (account_id, created_at) VALUES (200000, '-infinity')$$, '23514',
				 'new row for relation "accounts" violates check constraint "accounts_created_at_kpi_horizon"',
				 'an account created at -infinity: 23514');
SELECT throws_ok($$UPDATE dogdb.accounts SET created_at = '1999-12-31 23:59Z' WHERE account_id = 1$$, '23514', NULL,
				 'an account created before 2000: 23514');
-- and should such rows exist anyway, no refresh stalls or gets stuck
ALTER TABLE dogdb.sessions DROP CONSTRAINT sessions_created_at_kpi_horizon;
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (1, 'infinity'), (1, '294276-12-31Z'), (1, '5000-01-01Z');
SET LOCAL client_min_messages = error;	-- a warning says how many were ignored
SELECT lives_ok('SELECT dogdb_internal.kpi_update_facts(false)', 'without the constraint: sessions outside the horizon are ignored');
DELETE FROM dogdb.sessions WHERE created_at > '2200-01-01Z';
SELECT pg_temp.check('and deleted again');
SET LOCAL client_min_messages = warning;
ALTER TABLE dogdb.accounts DROP CONSTRAINT accounts_created_at_kpi_horizon;
UPDATE dogdb.accounts SET created_at = '-infinity' WHERE account_id = 1;
SELECT throws_ok('SELECT dogdb_internal.kpi_update_facts(false)', '23514', NULL, 'an account outside the horizon: a clear error');
UPDATE dogdb.accounts SET created_at = '2021-01-01Z' WHERE account_id = 1;
SELECT pg_temp.check('which correcting the row clears');

-- errors
SELECT throws_ok($$SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-03-01', 'country')$$, '22023',
				 'unknown KPI grouping ''country'': group_by must be ''company_size'', ''tier'' or ''all''',
				 'unknown group_by: 22023, the allowed values in the message');
SELECT throws_ok($$SELECT * FROM dogdb_kpi_usage('2021-03-01', '2021-01-01')$$, '22023', NULL, 'reversed range: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_kpi_revenue('2021-03-01', '2021-03-31')$$, '22023', NULL, 'not a first of month: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_generate_demo_data(10, 2)$$, '55000', 'dogdb.accounts is not empty',
				 'the generator refuses non-empty tables');

-- privileges: the engine's state is written only by the extension's code
RESET ROLE;
CREATE ROLE kpi_test_inserter;
CREATE ROLE kpi_test_refresher;
GRANT USAGE ON SCHEMA dogdb TO kpi_test_inserter, kpi_test_refresher;
GRANT INSERT ON dogdb.sessions TO kpi_test_inserter;
GRANT EXECUTE ON FUNCTION dogdb_refresh_kpis(boolean) TO kpi_test_refresher;
SET ROLE kpi_test_inserter;
SELECT lives_ok($$INSERT INTO dogdb.sessions (account_id, created_at) VALUES (2, '2021-05-05Z')$$,
				'a role with INSERT on dogdb.sessions alone can insert sessions');
SELECT throws_ok($$INSERT INTO dogdb_internal.kpi_session_deltas VALUES ('{2021-03-01}', '{5}', '{1000000}')$$, '42501', NULL,
				 'but cannot forge session deltas');
SELECT throws_ok($$SELECT dogdb_internal.kpi_update_facts(false)$$, '42501', NULL, 'nor run the engine');
SELECT throws_ok($$SELECT dogdb_refresh_kpis()$$, '42501', NULL, 'nor refresh without EXECUTE');
RESET ROLE;
SET ROLE kpi_test_refresher;
SELECT lives_ok($$SELECT dogdb_refresh_kpis()$$, 'a role granted EXECUTE on dogdb_refresh_kpis can refresh');
SELECT throws_ok($$DELETE FROM dogdb_internal.kpi_facts$$, '42501', NULL, 'but not write the facts');
RESET ROLE;
SELECT is((SELECT sessions FROM dogdb_kpi_usage('2021-05-01', '2021-05-01', 'all')),
		  (SELECT count(*) FROM dogdb.sessions WHERE created_at >= '2021-05-01Z' AND created_at < '2021-06-01Z'),
		  'the refresh saw the inserted session');

-- a full rebuild writes the month rows through the bulk writer; on a state
-- table altered by hand it writes them through SQL, with the same result
SELECT dogdb_refresh_kpis(true);
CREATE TEMP TABLE bulk_written AS SELECT month, block, session_counts, plan_ids FROM dogdb_internal.kpi_month_activity;
CREATE TEMP TABLE bulk_facts AS SELECT * FROM dogdb_internal.kpi_facts;
SAVEPOINT altered;	-- (pgTAP's results are rolled back too: assert after)
ALTER TABLE dogdb_internal.kpi_month_activity ADD COLUMN note text DEFAULT 'via SQL';
SELECT dogdb_refresh_kpis(true);
SELECT (SELECT count(*) FROM dogdb_internal.kpi_month_activity WHERE note IS DISTINCT FROM 'via SQL') AS not_via_sql,
	   (SELECT count(*) FROM (SELECT month, block, session_counts, plan_ids FROM dogdb_internal.kpi_month_activity
							  EXCEPT ALL SELECT * FROM bulk_written) d)
	   + (SELECT count(*) FROM (SELECT * FROM bulk_written EXCEPT ALL
								SELECT month, block, session_counts, plan_ids FROM dogdb_internal.kpi_month_activity) d)
	   + (SELECT count(*) FROM (SELECT * FROM dogdb_internal.kpi_facts EXCEPT ALL SELECT * FROM bulk_facts) d)
	   + (SELECT count(*) FROM (SELECT * FROM bulk_facts EXCEPT ALL SELECT * FROM dogdb_internal.kpi_facts) d) AS differ
\gset
ROLLBACK TO altered;
SELECT is(:not_via_sql::bigint, 0::bigint,
		  'full rebuild on an altered state table: every month row written through SQL (the column default is set)');
SELECT is(:differ::bigint, 0::bigint, 'the SQL route writes the same month rows and facts as the bulk writer');
-- session deltas alone read and write the state rows by their key (kpi_delta.c),
-- unless the state tables are not as made (here: another index on each),
-- when they go through SQL; both give the full rebuild's facts and state
CREATE FUNCTION pg_temp.add_sessions(n int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO dogdb.sessions (account_id, created_at)
	SELECT a.account_id, a.created_at + interval '1 day' * (i % 300)
	  FROM dogdb.accounts a, generate_series(1, n) i WHERE a.account_id % 97 = i % 97
$$;
CREATE FUNCTION pg_temp.incremental_differ() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.add_sessions(2000);
	IF (SELECT bool_or(full_rebuild) FROM dogdb_refresh_kpis() WHERE kpi <> 'support') THEN
		RETURN -1;		-- not the deltas' path
	END IF;
	RETURN pg_temp.differ_from_serial_rebuild();
END
$$;
SELECT is(pg_temp.incremental_differ(), 0::bigint, 'session deltas by key: the incremental state and facts are a full rebuild''s');
SAVEPOINT other_index;
CREATE INDEX ON dogdb_internal.kpi_month_activity (block);
CREATE INDEX ON dogdb_internal.kpi_churn_state (churn_months);
SELECT is(pg_temp.incremental_differ(), 0::bigint,
		  'session deltas through SQL (another index on the state tables): the same as a full rebuild');
ROLLBACK TO other_index;
-- the facts, the queue of session deltas and the log are also written with
-- heap calls when as made; not as made (another index on the facts, row
-- security on the queue, a trigger on the log), each goes through SQL
SAVEPOINT sql_routes;
CREATE INDEX ON dogdb_internal.kpi_facts (plan_id);
ALTER TABLE dogdb_internal.kpi_session_deltas ENABLE ROW LEVEL SECURITY;
CREATE TABLE public.log_seen (kpi text);
CREATE FUNCTION public.log_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO public.log_seen VALUES (NEW.kpi);
	RETURN NEW;
END
$$;
CREATE TRIGGER log_seen AFTER INSERT OR UPDATE ON dogdb.kpi_refresh_log FOR EACH ROW EXECUTE FUNCTION public.log_seen();
SELECT is(pg_temp.incremental_differ(), 0::bigint,
		  'session deltas with the facts and the queue through SQL: the same as a full rebuild');
SELECT is((SELECT string_agg(kpi, ',' ORDER BY kpi) FROM public.log_seen WHERE kpi <> 'support'),
		  'retention,revenue,usage', 'the log through SQL (a trigger on it fires for each KPI refreshed)');
ROLLBACK TO sql_routes;
-- a count that needs two bytes, then one again: the rows changed in place
-- keep the encoder's width (a full rebuild's bytes)
CREATE FUNCTION pg_temp.width_differ() RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	a bigint;
	t timestamptz;
BEGIN
	SELECT account_id, created_at + interval '40 days' INTO a, t FROM dogdb.accounts ORDER BY created_at, account_id LIMIT 1;
	INSERT INTO dogdb.sessions (account_id, created_at) SELECT a, t + interval '1 minute' * i FROM generate_series(1, 300) i;
	IF (SELECT bool_or(full_rebuild) FROM dogdb_refresh_kpis() WHERE kpi <> 'support') THEN
		RETURN -1;
	END IF;
	IF (SELECT get_byte(session_counts, 0) FROM dogdb_internal.kpi_month_activity
		 WHERE block = a >> 10 AND month = date_trunc('month', t AT TIME ZONE 'UTC')::date) <> 2 THEN
		RETURN -2;		-- not two bytes wide
	END IF;
	IF pg_temp.differ_from_serial_rebuild() <> 0 THEN
		RETURN -3;
	END IF;
	DELETE FROM dogdb.sessions WHERE account_id = a AND created_at > t;
	IF (SELECT bool_or(full_rebuild) FROM dogdb_refresh_kpis() WHERE kpi <> 'support') THEN
		RETURN -4;
	END IF;
	RETURN pg_temp.differ_from_serial_rebuild();
END
$$;
SELECT is(pg_temp.width_differ(), 0::bigint,
		  'session deltas widening a row to two bytes and back: the state and facts are a full rebuild''s');
SELECT cmp_ok((SELECT count(*) FROM bulk_written), '>', 0::bigint, 'the bulk writer wrote month rows');

-- the engine's state is unlogged; a crash empties it (as this TRUNCATE does),
-- and the next refresh rebuilds to the same facts
SELECT is((SELECT string_agg(relname || ':' || relpersistence::text, ',' ORDER BY relname) FROM pg_class
			WHERE relnamespace = 'dogdb_internal'::regnamespace
			  AND relname IN ('kpi_month_activity', 'kpi_churn_state', 'kpi_coverage')),
		  'kpi_churn_state:u,kpi_coverage:u,kpi_month_activity:u', 'the engine''s state tables are unlogged');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (3, '2021-06-06Z');
SELECT dogdb_refresh_kpis();
CREATE TEMP TABLE before_crash AS SELECT * FROM dogdb_internal.kpi_facts;
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (3, '2021-07-07Z'), (4, '2021-02-02Z');
TRUNCATE dogdb_internal.kpi_month_activity, dogdb_internal.kpi_churn_state, dogdb_internal.kpi_coverage;
SELECT is((SELECT bool_and(full_rebuild) FROM dogdb_refresh_kpis() WHERE kpi <> 'support'), true,
		  'after the state is lost (a crash), the next refresh rebuilds by itself');
CREATE TEMP TABLE after_crash AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT dogdb_refresh_kpis(true);
SELECT is((SELECT count(*) FROM (SELECT * FROM after_crash EXCEPT ALL SELECT * FROM dogdb_internal.kpi_facts) a)
		  + (SELECT count(*) FROM (SELECT * FROM dogdb_internal.kpi_facts EXCEPT ALL SELECT * FROM after_crash) b), 0::bigint,
		  'and its facts (the sessions queued before the loss included) are a full rebuild''s');

SELECT * FROM finish();
ROLLBACK;
