-- pgTAP: the support model.  The update to 1.4 fills the names of the reps
-- there are; then, over random data and four random rounds of changes to every
-- source of the model, an incremental refresh equals an independent
-- plain-SQL computation of the model and of dogdb_kpi_support() under every
-- grouping, and equals a full rebuild.
\ir setup.psql
SET TimeZone = 'Pacific/Chatham';		-- months are UTC months whatever the session says
SELECT plan(6 + 4 * 10);

-- the update: reps of 1.3 get their first and last names from the name
CREATE EXTENSION dogdb_analytics VERSION '1.3' CASCADE;
INSERT INTO dogdb.service_reps (name) VALUES ('Maria'), ('John  Smith'), ('Ana María de la Cruz');
ALTER EXTENSION dogdb_analytics UPDATE TO '1.4';
SELECT results_eq('SELECT name, first_name, last_name FROM dogdb.service_reps ORDER BY rep_id',
				  $$VALUES ('Maria', 'Maria', NULL), ('John  Smith', 'John', 'Smith'),
						   ('Ana María de la Cruz', 'Ana', 'María de la Cruz')$$,
				  'the update splits the names of the reps there are');
SELECT is((SELECT full_rebuild FROM dogdb_refresh_kpis() WHERE kpi = 'support'), true,
		  'the first refresh after the update builds the model');
SELECT throws_ok($$SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-02-01', 'segment')$$, '22023',
				 'unknown KPI grouping ''segment'': group_by must be ''channel'', ''category'', ''rep'', ''tier'', ''company_size'' or ''all''',
				 'an unknown grouping names the allowed ones');
SELECT lives_ok($$SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-02-01', 'Company_Size')$$,
				'group_by in any letter case');

-- random data: 300 accounts (some without a size), up to three
-- non-overlapping subscriptions each, sessions, 12 reps, 1500 interactions
SELECT setseed(0.25);
INSERT INTO dogdb.service_reps (name, start_date, end_date)
SELECT 'rep' || i, date '2021-01-01' + (random() * 60)::int, CASE WHEN i % 3 = 0 THEN date '2021-09-01' + (random() * 60)::int END
  FROM generate_series(1, 12) i;
INSERT INTO dogdb.accounts (account_id, company_size, created_at)
SELECT i, (ARRAY['small', 'large', NULL])[1 + floor(random() * (2 + 1))::int], '2021-01-01Z' FROM generate_series(1, 300) i;
CREATE FUNCTION pg_temp.add_subscriptions(accts bigint[]) RETURNS void LANGUAGE sql AS $$
	INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to)
	SELECT a, (1 + floor(random() * (2 + 1))::int)::smallint, f,
		   CASE WHEN j < n - 1 OR random() < 0.5 THEN f + (1 + random() * 79) * interval '1 day' END
	  FROM unnest(accts) a, LATERAL (SELECT floor(random() * (3 + 1))::int AS n) k,
		   LATERAL (SELECT j, timestamptz '2021-01-01Z' + (j * 120 + random() * 40) * interval '1 day' AS f
					  FROM generate_series(0, k.n - 1) j) p
$$;
SELECT pg_temp.add_subscriptions(array_agg(account_id)) FROM dogdb.accounts;
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT 1 + (random() * 299)::int, timestamptz '2021-01-01Z' + random() * interval '380 days' FROM generate_series(1, 3000);
CREATE FUNCTION pg_temp.add_interactions(n int) RETURNS void LANGUAGE sql AS $$
	INSERT INTO dogdb.interactions (account_id, rep_id, channel, category, status, created_at, completed_at)
	SELECT g.a, g.r, g.c, g.cat, CASE WHEN g.u < 0.8 THEN 'closed' ELSE 'open' END, g.t,
		   CASE WHEN g.u < 0.8 THEN g.t + g.u * g.u * interval '40 days' END
	  FROM (SELECT 1 + (random() * 299)::int AS a,
				   CASE WHEN random() < 0.9 THEN 1 + (random() * 14)::int END AS r,
				   (ARRAY['email', 'phone', 'chat'])[1 + floor(random() * (2 + 1))::int] AS c,
				   (ARRAY['billing', 'bug', 'upgrade', NULL])[1 + floor(random() * (3 + 1))::int] AS cat,
				   timestamptz '2021-01-01Z' + random() * interval '365 days' AS t, random() AS u
			  FROM generate_series(1, n)) g
$$;
SELECT pg_temp.add_interactions(1500);
SELECT is((SELECT full_rebuild FROM dogdb_refresh_kpis() WHERE kpi = 'support'), false,
		  'the random data are taken in incrementally (the rounds then change a few keys each)');

-- a round of random changes to every source of the model
CREATE FUNCTION pg_temp.mutate(k int) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_temp.add_interactions(40);
	UPDATE dogdb.interactions SET completed_at = created_at + random() * interval '30 days', status = 'closed'
	 WHERE interaction_id IN (SELECT interaction_id FROM dogdb.interactions WHERE completed_at IS NULL ORDER BY random() LIMIT 15);
	UPDATE dogdb.interactions SET completed_at = NULL, status = 'open'
	 WHERE interaction_id IN (SELECT interaction_id FROM dogdb.interactions WHERE completed_at IS NOT NULL ORDER BY random() LIMIT 5);
	UPDATE dogdb.interactions SET channel = 'chat', category = NULL, rep_id = CASE WHEN random() < 0.5 THEN 1 + (random() * 14)::int END
	 WHERE interaction_id IN (SELECT interaction_id FROM dogdb.interactions ORDER BY random() LIMIT 15);
	UPDATE dogdb.interactions SET account_id = 1 + (random() * 299)::int,
								  created_at = created_at - random() * interval '20 days'
	 WHERE interaction_id IN (SELECT interaction_id FROM dogdb.interactions ORDER BY random() LIMIT 10);
	DELETE FROM dogdb.interactions WHERE interaction_id IN (SELECT interaction_id FROM dogdb.interactions ORDER BY random() LIMIT 15);
	UPDATE dogdb.accounts SET company_size = (ARRAY['small', 'large', NULL])[1 + floor(random() * (2 + 1))::int]
	 WHERE account_id IN (SELECT account_id FROM dogdb.accounts ORDER BY random() LIMIT 10);
	UPDATE dogdb.accounts SET email = 'x' || account_id || '@x.example'		-- not a column of the model
	 WHERE account_id IN (SELECT account_id FROM dogdb.accounts ORDER BY random() LIMIT 10);
	DELETE FROM dogdb.subscriptions WHERE subscription_id IN (SELECT subscription_id FROM dogdb.subscriptions ORDER BY random() LIMIT 8);
	UPDATE dogdb.subscriptions SET valid_to = valid_from + (1 + random() * 19) * interval '1 day'
	 WHERE subscription_id IN (SELECT subscription_id FROM dogdb.subscriptions ORDER BY random() LIMIT 8);
	PERFORM pg_temp.add_subscriptions(array_agg(a.account_id))
	  FROM (SELECT account_id FROM dogdb.accounts a
			 WHERE NOT EXISTS (SELECT FROM dogdb.subscriptions s WHERE s.account_id = a.account_id)
			 ORDER BY random() LIMIT 8) a;
	UPDATE dogdb.service_reps SET name = name || '+' WHERE rep_id = 1 + (random() * 14)::int;
	UPDATE dogdb.pricing_plans SET name = CASE WHEN name LIKE '%+' THEN rtrim(name, '+') ELSE name || '+' END
	 WHERE plan_id = 1 + k % 3;
	INSERT INTO dogdb.sessions (account_id, created_at)
	SELECT 1 + (random() * 299)::int, timestamptz '2021-01-01Z' + random() * interval '380 days' FROM generate_series(1, 100);
	DELETE FROM dogdb.sessions WHERE session_id IN (SELECT session_id FROM dogdb.sessions ORDER BY random() LIMIT 100);
END
$$;

-- the model, computed independently
CREATE FUNCTION pg_temp.expected_rows() RETURNS TABLE (interaction_id bigint, account_id bigint, company_size text,
	tier text, rep_name text, channel text, category text, status text, created_at timestamptz, completed_at timestamptz,
	created_month date, completed_month date, resolution_hours double precision, is_open boolean)
LANGUAGE sql STABLE AS $$
	SELECT i.interaction_id, i.account_id, coalesce(a.company_size, 'unknown'),
		   coalesce((SELECT p.name FROM dogdb.subscriptions s JOIN dogdb.pricing_plans p ON p.plan_id = s.plan_id
					  WHERE s.account_id = i.account_id AND tstzrange(s.valid_from, s.valid_to) @> i.created_at), 'none'),
		   r.name, i.channel, i.category, i.status, i.created_at, i.completed_at,
		   (date_trunc('month', i.created_at, 'UTC') AT TIME ZONE 'UTC')::date,
		   (date_trunc('month', i.completed_at, 'UTC') AT TIME ZONE 'UTC')::date,
		   (extract(epoch FROM i.completed_at - i.created_at) / 3600)::double precision, i.completed_at IS NULL
	  FROM dogdb.interactions i JOIN dogdb.accounts a ON a.account_id = i.account_id
	  LEFT JOIN dogdb.service_reps r ON r.rep_id = i.rep_id
$$;

-- the KPI engine's tier of an account in a month (as test/pgtap/kpi.sql states it)
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

-- dogdb_kpi_support, computed independently: month by month over every interaction
CREATE FUNCTION pg_temp.expected_support(from_month date, to_month date, g text)
RETURNS TABLE (month date, segment text, opened bigint, resolved bigint, open_backlog bigint,
			   median_resolution_hours numeric, p90_resolution_hours numeric,
			   active_accounts bigint, interactions_per_active_account numeric)
LANGUAGE sql STABLE AS $$
	WITH x AS (
		SELECT e.*, CASE g WHEN 'channel' THEN e.channel WHEN 'category' THEN coalesce(e.category, '(none)')
						   WHEN 'rep' THEN coalesce(e.rep_name, '(none)') WHEN 'tier' THEN e.tier
						   WHEN 'company_size' THEN e.company_size ELSE 'all' END AS seg
		  FROM pg_temp.expected_rows() e),
	months AS (
		SELECT m::date AS month, m AT TIME ZONE 'UTC' AS m0, (m + interval '1 month') AT TIME ZONE 'UTC' AS m1
		  FROM generate_series(from_month::timestamp, to_month::timestamp, interval '1 month') m),
	cells AS (
		SELECT mo.month, x.seg,
			   count(*) FILTER (WHERE x.created_at >= mo.m0 AND x.created_at < mo.m1) AS opened,
			   count(*) FILTER (WHERE x.completed_at >= mo.m0 AND x.completed_at < mo.m1) AS resolved,
			   count(*) FILTER (WHERE x.created_at < mo.m1 AND (x.completed_at IS NULL OR x.completed_at >= mo.m1)) AS backlog,
			   percentile_cont(0.5) WITHIN GROUP (ORDER BY x.resolution_hours)
				   FILTER (WHERE x.completed_at >= mo.m0 AND x.completed_at < mo.m1) AS med,
			   percentile_cont(0.9) WITHIN GROUP (ORDER BY x.resolution_hours)
				   FILTER (WHERE x.completed_at >= mo.m0 AND x.completed_at < mo.m1) AS p90
		  FROM months mo CROSS JOIN x
		 GROUP BY 1, 2),
	active AS (
		SELECT mo.month, coalesce(a.company_size, 'unknown') AS size,
			   CASE WHEN g = 'tier' THEN pg_temp.tier_of(a.account_id, mo.month) END AS tier
		  FROM months mo JOIN dogdb.accounts a
			ON EXISTS (SELECT FROM dogdb.sessions s WHERE s.account_id = a.account_id
						  AND s.created_at >= mo.m0 AND s.created_at < mo.m1))
	SELECT c.month, c.seg, c.opened, c.resolved, c.backlog, round(c.med::numeric, 2), round(c.p90::numeric, 2),
		   n.n, round(c.opened::numeric / nullif(n.n, 0), 4)
	  FROM cells c,
		   LATERAL (SELECT count(*) AS n FROM active ac
					 WHERE ac.month = c.month
					   AND CASE g WHEN 'tier' THEN ac.tier = c.seg WHEN 'company_size' THEN ac.size = c.seg ELSE true END) n
	 WHERE c.opened > 0 OR c.resolved > 0 OR c.backlog > 0
$$;

CREATE FUNCTION pg_temp.actual_support(g text) RETURNS SETOF record LANGUAGE sql STABLE AS $$
	SELECT 'year', * FROM dogdb_kpi_support('2021-01-01', '2022-02-01', g)
	UNION ALL SELECT 'spring', * FROM dogdb_kpi_support('2021-04-01', '2021-06-01', g)
$$;
CREATE TEMP TABLE groupings (g) AS VALUES ('channel'), ('category'), ('rep'), ('tier'), ('company_size'), ('all');
CREATE TEMP TABLE model_columns (c) AS VALUES
	('interaction_id, account_id, company_size, tier, rep_name, channel, category, status, created_at, completed_at, '
	 'created_month, completed_month, resolution_hours, is_open');

-- one round: changes, an incremental refresh against the independent
-- computation, then a full rebuild against the incremental refresh
CREATE FUNCTION pg_temp.round(k int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	cols text := (SELECT c FROM model_columns);
	g text;
BEGIN
	PERFORM pg_temp.mutate(k);
	RETURN NEXT is((SELECT r.full_rebuild FROM dogdb_refresh_kpis() r WHERE r.kpi = 'support'), false,
				   format('round %s: the refresh is incremental', k));
	RETURN NEXT bag_eq(format('SELECT %s FROM dogdb.support_interactions', cols),
					   format('SELECT %s FROM pg_temp.expected_rows()', cols),
					   format('round %s: the model equals an independent computation', k));
	FOR g IN SELECT gr.g FROM groupings gr LOOP
		RETURN NEXT results_eq(
			format($q$SELECT * FROM pg_temp.actual_support(%L) AS t(r text, month date, segment text, opened bigint,
						resolved bigint, open_backlog bigint, median numeric, p90 numeric, active bigint, per_active numeric)$q$, g),
			format($q$SELECT 'year', * FROM pg_temp.expected_support('2021-01-01', '2022-02-01', %1$L)
					  UNION ALL SELECT 'spring', * FROM pg_temp.expected_support('2021-04-01', '2021-06-01', %1$L)
					  ORDER BY 1 DESC, 2, 3$q$, g),
			format('round %s: dogdb_kpi_support by %s equals an independent computation', k, g));
	END LOOP;
	DROP TABLE IF EXISTS incremental_model, incremental_kpis;
	EXECUTE format('CREATE TEMP TABLE incremental_model AS SELECT * FROM dogdb.support_interactions');
	CREATE TEMP TABLE incremental_kpis AS
	SELECT gr.g, t.* FROM groupings gr,
		   LATERAL pg_temp.actual_support(gr.g) AS t(r text, month date, segment text, opened bigint, resolved bigint,
													 open_backlog bigint, median numeric, p90 numeric, active bigint,
													 per_active numeric);
	PERFORM dogdb_refresh_kpis(true);
	RETURN NEXT bag_eq('TABLE dogdb.support_interactions', 'TABLE incremental_model',
					   format('round %s: a full rebuild gives the same model', k));
	RETURN NEXT bag_eq($q$SELECT gr.g, t.* FROM groupings gr,
						  LATERAL pg_temp.actual_support(gr.g) AS t(r text, month date, segment text, opened bigint,
								  resolved bigint, open_backlog bigint, median numeric, p90 numeric, active bigint,
								  per_active numeric)$q$,
					   'TABLE incremental_kpis',
					   format('round %s: and the same KPIs under every grouping', k));
END
$$;
SELECT pg_temp.round(k) FROM generate_series(1, 4) k;

-- the browsable view adds up to the function's counts (group_by 'all'),
-- month by month over the model's whole range
SELECT bag_eq($$SELECT month, sum(opened)::bigint AS o, sum(resolved)::bigint AS r, sum(open_backlog)::bigint AS b
				  FROM dogdb.support_monthly GROUP BY month HAVING sum(opened) + sum(resolved) + sum(open_backlog) > 0$$,
			  $$SELECT month, opened, resolved, open_backlog
				  FROM dogdb_kpi_support((SELECT min(created_month) FROM dogdb.support_interactions),
										 (SELECT max(greatest(created_month, completed_month)) FROM dogdb.support_interactions),
										 'all')$$,
			  'dogdb.support_monthly adds up to dogdb_kpi_support(..., ''all'') in every month');

SELECT * FROM finish();
ROLLBACK;
