-- Benchmark: churn (issue 12 items 3 and 4) on 100,000 companies x 24
-- months of demo data ending this month.  Per account: first month, last
-- active month and churn month (the first month from the account's first
-- month through this month without a session).
--   C: dogdb_account_churn() (one pass over the sessions, in parallel, no
--   GROUP BY), and the plain query of the dogdb_active_months() aggregate
--   grouped by account with its readers, which the planner runs as the
--   grouped scan (one pass, a bitmap per account, parallel workers; README
--   "dogdb_active_months"); an info row times it with the grouped scan off
--   (dogdb_analytics.enable_grouped_scan), the standard aggregate plans.
--   Plain SQL, the strongest route known: one bigint per account,
--   bit_or(1 << month bucket) grouped by account (width_bucket over the
--   month edges), churn from the lowest zero bit (~x & (x + 1)), last month
--   from the highest set bit (limited to 63 months; the C paths are not).
--   It is timed with each plan a user could force (hash aggregate; sorted
--   aggregate over the (account_id, created_at) index; each with and
--   without JIT) and the fastest is the baseline; the aggregate route gets
--   the same choice when the grouped scan is off.
-- Every route is checked equal to the C output (EXCEPT ALL both ways).
-- Info rows: the aggregate route with the grouped scan off, the other
-- bit_or plans, the old gaps-and-islands baseline, and the floor of any
-- standard aggregate plan of this shape (count(*) grouped by account: the
-- scan and the grouping alone).
\ir helpers.psql

TRUNCATE dogdb.accounts, dogdb.invoice_number_counters CASCADE;
DELETE FROM dogdb.plan_prices WHERE effective_from > '2019-01-01';
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '23 months')::date AS start_month,
	   date_trunc('month', now() AT TIME ZONE 'UTC')::date AS this_month \gset
SELECT * FROM dogdb_generate_demo_data(100000, 24, :'start_month', 1);
VACUUM ANALYZE dogdb.accounts, dogdb.subscriptions, dogdb.sessions;

\set nmonths 24
-- month edges for width_bucket: the 25 month starts from start_month (UTC)
SELECT array_agg(m ORDER BY m)::text AS edges
  FROM generate_series(:'start_month'::timestamp AT TIME ZONE 'UTC',
					   (:'this_month'::timestamp + interval '1 month') AT TIME ZONE 'UTC', interval '1 month') m \gset

CREATE VIEW pg_temp.churn_fn AS
SELECT * FROM dogdb_account_churn(current_date);

CREATE VIEW pg_temp.churn_c AS
SELECT a.account_id, date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date AS first_month,
	   dogdb_last_active_month(m.active) AS last_active_month,
	   dogdb_first_inactive_month(m.active, date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date,
								  current_date) AS churn_month
  FROM dogdb.accounts a
  LEFT JOIN (SELECT account_id, dogdb_active_months(created_at) AS active
			   FROM dogdb.sessions GROUP BY account_id) m USING (account_id);

-- bit i of x: a session in month start_month + i; f: the account's first
-- month; a power of two's bit index is 64 - its '1' position in bit(64)
CREATE VIEW pg_temp.churn_sql AS
SELECT account_id, (:'start_month'::date + f * interval '1 month')::date AS first_month,
	   CASE WHEN x <> 0 THEN (:'start_month'::date + (64 - strpos(x::bit(64)::text, '1')) * interval '1 month')::date
	   END AS last_active_month,
	   CASE WHEN c <= :'nmonths'::int - 1 THEN (:'start_month'::date + c * interval '1 month')::date END AS churn_month
  FROM (SELECT account_id, x, f,
			   f + 64 - strpos((~(x >> f) & ((x >> f) + 1))::bit(64)::text, '1') AS c
		  FROM (SELECT a.account_id, coalesce(m.x, 0) AS x,
					   width_bucket(a.created_at, :'edges'::timestamptz[]) - 1 AS f
				  FROM dogdb.accounts a
				  LEFT JOIN (SELECT account_id,
									bit_or(1::bigint << (width_bucket(created_at, :'edges'::timestamptz[]) - 1)) AS x
							   FROM dogdb.sessions GROUP BY account_id) m USING (account_id)) b) c;

-- the old baseline: distinct account-months, then gaps-and-islands
CREATE VIEW pg_temp.churn_islands AS
WITH am AS MATERIALIZED (
	SELECT DISTINCT account_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month FROM dogdb.sessions
), acc AS (
	SELECT account_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS first_month FROM dogdb.accounts
), islands AS (		-- consecutive months share month number - row number
	SELECT am.account_id, am.month, a.first_month,
		   (extract(year FROM am.month) * 12 + extract(month FROM am.month))::int
		   - row_number() OVER (PARTITION BY am.account_id ORDER BY am.month)::int AS island
	  FROM am JOIN acc a USING (account_id) WHERE am.month >= a.first_month
), first_run AS (	-- the run of active months that starts with the first month
	SELECT account_id, max(month) AS last_month FROM islands
	 WHERE island = (extract(year FROM first_month) * 12 + extract(month FROM first_month))::int - 1
	 GROUP BY account_id
)
SELECT a.account_id, a.first_month, l.last_month AS last_active_month,
	   CASE WHEN coalesce((r.last_month + interval '1 month')::date, a.first_month) <= current_date
			THEN coalesce((r.last_month + interval '1 month')::date, a.first_month) END AS churn_month
  FROM acc a LEFT JOIN first_run r USING (account_id)
  LEFT JOIN (SELECT account_id, max(month) AS last_month FROM am GROUP BY account_id) l USING (account_id);

-- rows of one route not in the other, both ways
CREATE FUNCTION pg_temp.differ(a text, b text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
	m bigint;
BEGIN
	EXECUTE format('SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) d', a, b) INTO n;
	EXECUTE format('SELECT count(*) FROM (SELECT * FROM %s EXCEPT ALL SELECT * FROM %s) d', b, a) INTO m;
	RETURN n + m;
END $$;
SELECT pg_temp.differ('pg_temp.churn_fn', 'pg_temp.churn_c') AS "aggregate route differing from dogdb_account_churn",
	   pg_temp.differ('pg_temp.churn_fn', 'pg_temp.churn_sql') AS "bit_or differing",
	   pg_temp.differ('pg_temp.churn_fn', 'pg_temp.churn_islands') AS "islands differing",
	   (SELECT count(*) FROM pg_temp.churn_fn) AS "accounts",
	   (SELECT count(churn_month) FROM pg_temp.churn_fn) AS "churned";
SELECT pg_temp.differ('pg_temp.churn_fn', 'pg_temp.churn_c') + pg_temp.differ('pg_temp.churn_fn', 'pg_temp.churn_sql')
	   + pg_temp.differ('pg_temp.churn_fn', 'pg_temp.churn_islands') = 0 AS same \gset
\if :same
\else
	\echo 'the routes do not give the same rows'
	SELECT 1/0;
\endif

\set q 'SELECT count(churn_month), count(last_active_month) FROM '
-- the aggregate route's plan: the grouped scan
EXPLAIN (COSTS OFF) SELECT count(churn_month), count(last_active_month) FROM pg_temp.churn_c;
SELECT pg_temp.best_ms(:'q' || 'pg_temp.churn_fn') AS fn_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_c', 3, 'RESET enable_hashagg; RESET jit; RESET dogdb_analytics.enable_grouped_scan') AS agg_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_c', 3, 'SET dogdb_analytics.enable_grouped_scan = off') AS agg_hash_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_c', 3, 'SET enable_hashagg = off') AS agg_sort_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_c', 3, 'SET enable_hashagg = off; SET jit = off') AS agg_sort_nojit_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_sql', 3, 'RESET enable_hashagg; RESET jit; RESET dogdb_analytics.enable_grouped_scan') AS sql_hash_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_sql', 3, 'SET jit = off') AS sql_hash_nojit_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_sql', 3, 'SET enable_hashagg = off; SET jit = on') AS sql_sort_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_sql', 3, 'SET enable_hashagg = off; SET jit = off') AS sql_sort_nojit_ms,
	   pg_temp.best_ms(:'q' || 'pg_temp.churn_islands', 1, 'RESET enable_hashagg; RESET jit') AS islands_ms,
	   pg_temp.best_ms('SELECT count(n) FROM (SELECT account_id, count(*) AS n FROM dogdb.sessions GROUP BY account_id) g')
	   AS floor_ms \gset
SELECT least(:sql_hash_ms, :sql_hash_nojit_ms, :sql_sort_ms, :sql_sort_nojit_ms) AS sql_ms,
	   least(:agg_hash_ms, :agg_sort_ms, :agg_sort_nojit_ms) AS agg_off_ms \gset
INSERT INTO results VALUES
	('dogdb_account_churn vs bit_or (strongest plan)', :fn_ms, :sql_ms, 2),
	('dogdb_active_months grouped by account + readers (grouped scan) vs bit_or (strongest plan)', :agg_ms, :sql_ms, 2),
	('info: the same with the grouped scan off (its best standard plan) vs bit_or', :agg_off_ms, :sql_ms, NULL),
	('info: bit_or, hash aggregate', :fn_ms, :sql_hash_ms, NULL),
	('info: bit_or, hash aggregate, no JIT', :fn_ms, :sql_hash_nojit_ms, NULL),
	('info: bit_or, sorted aggregate over the index', :fn_ms, :sql_sort_ms, NULL),
	('info: bit_or, sorted aggregate over the index, no JIT', :fn_ms, :sql_sort_nojit_ms, NULL),
	('info: dogdb_account_churn vs gaps-and-islands (old baseline)', :fn_ms, :islands_ms, NULL),
	('info: count(*) by account (floor of the standard aggregate plans) vs bit_or', :floor_ms, :sql_ms, NULL);
SELECT * FROM pg_temp.report();
