-- Benchmark: the churn aggregate (issue 12 item 3) on 100,000 companies x
-- 24 months of demo data ending this month.  Per account: churn month (the
-- first month from the account's first month through this month without a
-- session) and last active month.  C: dogdb_active_months() grouped by
-- account and its readers.  Plain SQL, the strongest route known: one
-- bigint per account, bit_or(1 << month bucket) grouped by account, churn
-- from the lowest zero bit (~x & (x + 1)), last month from the highest set
-- bit (limited to 63 months; the C path has no such limit).  Both outputs
-- are checked equal (EXCEPT ALL both ways).  Info rows: the old
-- gaps-and-islands baseline, and the floor of any aggregate in this plan
-- (count(*) grouped by account: the scan and the hash aggregation alone).
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

CREATE VIEW pg_temp.churn_c AS
SELECT a.account_id,
	   dogdb_first_inactive_month(m.active, date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date,
								  current_date) AS churn_month,
	   dogdb_last_active_month(m.active) AS last_active_month
  FROM dogdb.accounts a
  LEFT JOIN (SELECT account_id, dogdb_active_months(created_at) AS active
			   FROM dogdb.sessions GROUP BY account_id) m USING (account_id);

-- bit i of x: a session in month start_month + i; f: the account's first
-- month; a power of two's bit index is 64 - its '1' position in bit(64)
CREATE VIEW pg_temp.churn_sql AS
SELECT account_id,
	   CASE WHEN c <= :'nmonths'::int - 1 THEN (:'start_month'::date + c * interval '1 month')::date END AS churn_month,
	   CASE WHEN x <> 0 THEN (:'start_month'::date + (64 - strpos(x::bit(64)::text, '1')) * interval '1 month')::date
	   END AS last_active_month
  FROM (SELECT account_id, x,
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
SELECT a.account_id,
	   CASE WHEN coalesce((r.last_month + interval '1 month')::date, a.first_month) <= current_date
			THEN coalesce((r.last_month + interval '1 month')::date, a.first_month) END AS churn_month,
	   l.last_month AS last_active_month
  FROM acc a LEFT JOIN first_run r USING (account_id)
  LEFT JOIN (SELECT account_id, max(month) AS last_month FROM am GROUP BY account_id) l USING (account_id);

SELECT (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_c EXCEPT ALL SELECT * FROM pg_temp.churn_sql) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_sql EXCEPT ALL SELECT * FROM pg_temp.churn_c) d)
	   AS "rows differing from bit_or",
	   (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_c EXCEPT ALL SELECT * FROM pg_temp.churn_islands) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_islands EXCEPT ALL SELECT * FROM pg_temp.churn_c) d)
	   AS "rows differing from islands",
	   (SELECT count(*) FROM pg_temp.churn_c) AS "accounts",
	   (SELECT count(churn_month) FROM pg_temp.churn_c) AS "churned";

SELECT pg_temp.best_ms('SELECT count(churn_month), count(last_active_month) FROM pg_temp.churn_c') AS c_ms,
	   pg_temp.best_ms('SELECT count(churn_month), count(last_active_month) FROM pg_temp.churn_sql') AS sql_ms,
	   pg_temp.best_ms('SELECT count(churn_month), count(last_active_month) FROM pg_temp.churn_islands') AS islands_ms,
	   pg_temp.best_ms('SELECT count(n) FROM (SELECT account_id, count(*) AS n FROM dogdb.sessions GROUP BY account_id) g')
	   AS floor_ms \gset
INSERT INTO results VALUES
	('churn aggregate + readers vs bit_or', :c_ms, :sql_ms, 2),
	('info: vs gaps-and-islands (old baseline)', :c_ms, :islands_ms, NULL),
	('info: count(*) by account (floor) vs bit_or', :floor_ms, :sql_ms, NULL);
SELECT * FROM pg_temp.report();
