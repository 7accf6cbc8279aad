-- Benchmark: churn and the KPI views on 100,000 companies x 24 months of
-- demo data ending this month, C against the strongest plain SQL found, on
-- the same data in the same run.  (a) churn detection, (b) a full KPI
-- refresh, (c) an incremental refresh after one day of new sessions.
-- Every baseline is checked equal to the C output (EXCEPT ALL both ways)
-- before it is timed; the older, weaker baselines stay as info rows.
-- Prints ratios.
\ir helpers.psql

TRUNCATE dogdb.accounts, dogdb.invoice_number_counters CASCADE;
DELETE FROM dogdb.plan_prices WHERE effective_from > '2019-01-01';
SELECT (date_trunc('month', now() AT TIME ZONE 'UTC') - interval '23 months')::date AS start_month,
	   date_trunc('month', now() AT TIME ZONE 'UTC')::date AS this_month \gset
SELECT * FROM dogdb_generate_demo_data(100000, 24, :'start_month', 1);
VACUUM ANALYZE dogdb.accounts, dogdb.subscriptions, dogdb.sessions;
SELECT * FROM dogdb_refresh_kpis(true);

-- (a) churn month of every account, and active accounts per month and size
CREATE VIEW pg_temp.churn_c AS
WITH m AS MATERIALIZED (
	SELECT account_id, dogdb_active_months(created_at) AS active FROM dogdb.sessions GROUP BY account_id)
SELECT 'churn' AS what, a.account_id, NULL::text AS company_size,
	   dogdb_first_inactive_month(m.active, date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date,
								  current_date) AS month, NULL::bigint AS n
  FROM dogdb.accounts a LEFT JOIN m USING (account_id)
UNION ALL
SELECT 'active', NULL, a.company_size, mo, count(*)
  FROM m JOIN dogdb.accounts a USING (account_id), dogdb_active_month_list(m.active) mo
 GROUP BY mo, a.company_size;
-- plain SQL: distinct account-months, then gaps-and-islands for the first
-- month without a session (churn need not be permanent)
CREATE VIEW pg_temp.churn_sql AS
WITH am AS MATERIALIZED (
	SELECT DISTINCT account_id, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS month FROM dogdb.sessions
), acc AS (
	SELECT account_id, company_size, date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS first_month
	  FROM dogdb.accounts
), islands AS (		-- consecutive months share month number - row number
	SELECT am.account_id, am.month, a.first_month,
		   (extract(year FROM am.month) * 12 + extract(month FROM am.month))::int
		   - row_number() OVER (PARTITION BY am.account_id ORDER BY am.month)::int AS island
	  FROM am JOIN acc a USING (account_id) WHERE am.month >= a.first_month
), first_run AS (	-- the run of active months that starts with the first month
	SELECT account_id, max(month) AS last_month FROM islands
	 WHERE island = (extract(year FROM first_month) * 12 + extract(month FROM first_month))::int - 1
	 GROUP BY account_id
), churn AS (
	SELECT a.account_id,
		   CASE WHEN r.last_month IS NULL THEN a.first_month ELSE (r.last_month + interval '1 month')::date END AS month
	  FROM acc a LEFT JOIN first_run r USING (account_id)
)
SELECT 'churn' AS what, account_id, NULL::text AS company_size,
	   CASE WHEN month <= current_date THEN month END AS month, NULL::bigint AS n FROM churn
UNION ALL
SELECT 'active', NULL, a.company_size, am.month, count(*) FROM am JOIN acc a USING (account_id)
 GROUP BY am.month, a.company_size;

-- plain SQL, the strongest route found: one hash aggregate of the sessions
-- by account and month bucket (width_bucket over the month edges); churn
-- from the lowest zero bit of a bit_or() bitmap of the buckets; active
-- accounts per month and size from the same aggregate
SELECT min(date_trunc('month', created_at AT TIME ZONE 'UTC'))::date AS m0 FROM dogdb.accounts \gset
SELECT array_agg(m AT TIME ZONE 'UTC' ORDER BY m)::text AS edges, count(*) - 1 AS nm
  FROM generate_series(:'m0'::timestamp, date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month',
					   interval '1 month') m \gset
CREATE VIEW pg_temp.churn_bitor AS
WITH u AS MATERIALIZED (
	SELECT account_id, width_bucket(created_at, :'edges'::timestamptz[]) - 1 AS b
	  FROM dogdb.sessions GROUP BY 1, 2
), acc AS (
	SELECT account_id, company_size, width_bucket(created_at, :'edges'::timestamptz[]) - 1 AS f FROM dogdb.accounts
)
SELECT 'churn' AS what, a.account_id, NULL::text AS company_size,
	   CASE WHEN c < :nm THEN (:'m0'::date + c * interval '1 month')::date END AS month, NULL::bigint AS n
  FROM (SELECT a.account_id,
			   a.f + 64 - strpos((~(coalesce(x.x, 0) >> a.f) & ((coalesce(x.x, 0) >> a.f) + 1))::bit(64)::text, '1') AS c
		  FROM acc a LEFT JOIN (SELECT account_id, bit_or(1::bigint << b) AS x FROM u WHERE b >= 0 AND b < :nm GROUP BY 1) x
			USING (account_id)) a
UNION ALL
SELECT 'active', NULL, a.company_size, (:'m0'::date + u.b * interval '1 month')::date, count(*)
  FROM u JOIN acc a USING (account_id)
 GROUP BY u.b, a.company_size;

SELECT (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_c EXCEPT ALL SELECT * FROM pg_temp.churn_sql) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_sql EXCEPT ALL SELECT * FROM pg_temp.churn_c) d)
	   AS "churn rows that differ (islands)",
	   (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_c EXCEPT ALL SELECT * FROM pg_temp.churn_bitor) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.churn_bitor EXCEPT ALL SELECT * FROM pg_temp.churn_c) d)
	   AS "churn rows that differ (bit_or)", (SELECT count(*) FROM pg_temp.churn_c) AS "churn rows";
INSERT INTO results
SELECT 'churn detection (a) vs one aggregate by account and month + bit_or',
	   pg_temp.best_ms('SELECT count(month), sum(n) FROM pg_temp.churn_c'),
	   pg_temp.best_ms('SELECT count(month), sum(n) FROM pg_temp.churn_bitor'), 3;
INSERT INTO results
SELECT 'info: churn detection (a) vs distinct account-months and gaps-and-islands (1.2 baseline)',
	   (SELECT c_ms FROM results WHERE bench LIKE 'churn detection (a)%'),
	   pg_temp.best_ms('SELECT count(month), sum(n) FROM pg_temp.churn_sql', 1), NULL;

-- (b) a full KPI refresh against plain-SQL materialized views of the same
-- KPIs by the same rules (tier and revenue as in README "KPIs"; revenue
-- rounded per piece of subscription and price period, which equals the
-- invoice lines here: no back-to-back subscriptions on one plan).  First
-- the 1.2 baseline (per-account LATERAL GROUP BY over the sessions index,
-- gaps-and-islands), kept as an info row.
DROP SCHEMA IF EXISTS bench_kpi CASCADE;
CREATE SCHEMA bench_kpi;
CREATE MATERIALIZED VIEW bench_kpi.kpi_plain AS
WITH months AS (
	SELECT m::date AS month, (m + interval '1 month')::date AS next
	  FROM generate_series((SELECT min(date_trunc('month', created_at AT TIME ZONE 'UTC')) FROM dogdb.accounts),
						   date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') m
), acc AS (
	SELECT account_id, coalesce(company_size, 'unknown') AS company_size,
		   date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS first_month
	  FROM dogdb.accounts
), subs AS (
	SELECT account_id, plan_id, (valid_from AT TIME ZONE 'UTC')::date AS d0,
		   coalesce((valid_to AT TIME ZONE 'UTC')::date, 'infinity') AS d1
	  FROM dogdb.subscriptions
), usage AS (		-- sessions per account and month
	SELECT a.account_id, x.month, x.n
	  FROM acc a CROSS JOIN LATERAL (
		SELECT date_trunc('month', s.created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
		  FROM dogdb.sessions s WHERE s.account_id = a.account_id GROUP BY 1) x
), islands AS (	-- gaps and islands: the run of active months from the first month
	SELECT u.account_id, u.month, a.first_month,
		   (extract(year FROM u.month) * 12 + extract(month FROM u.month))::int
		   - row_number() OVER (PARTITION BY u.account_id ORDER BY u.month)::int AS island
	  FROM usage u JOIN acc a USING (account_id) WHERE u.month >= a.first_month
), churn AS (
	SELECT a.account_id,
		   CASE WHEN r.last_month IS NULL THEN a.first_month ELSE (r.last_month + interval '1 month')::date END AS month
	  FROM acc a LEFT JOIN (
		SELECT account_id, max(month) AS last_month FROM islands
		 WHERE island = (extract(year FROM first_month) * 12 + extract(month FROM first_month))::int - 1
		 GROUP BY account_id) r USING (account_id)
), prices AS (
	SELECT plan_id, monthly_price_cents AS price, effective_from AS p0,
		   coalesce(lead(effective_from) OVER (PARTITION BY plan_id ORDER BY effective_from), 'infinity') AS p1
	  FROM dogdb.plan_prices
), revenue AS (
	SELECT s.account_id, m.month,
		   sum(round(p.price * (least(s.d1, m.next, p.p1) - greatest(s.d0, m.month, p.p0))::numeric
					 / (m.next - m.month)))::bigint AS cents
	  FROM subs s JOIN months m ON s.d0 < m.next AND s.d1 > m.month
	  JOIN prices p ON p.plan_id = s.plan_id AND p.p0 < least(s.d1, m.next) AND p.p1 > greatest(s.d0, m.month)
	 GROUP BY 1, 2
), facts AS (		-- every account-month with something to report
	SELECT account_id, month, sum(n) AS n, sum(churned) AS churned, sum(cents) AS cents
	  FROM (SELECT account_id, month, n, 0 AS churned, 0 AS cents FROM usage
			UNION ALL SELECT account_id, month, 0, 1, 0 FROM churn WHERE month <= (SELECT max(month) FROM months)
			UNION ALL SELECT account_id, month, 0, 0, cents FROM revenue) x
	 GROUP BY 1, 2
), tiered AS (		-- tier: plan on the first day, else the one before, else the first that month
	SELECT f.*, a.company_size, coalesce(p.name, 'none') AS tier
	  FROM facts f JOIN acc a USING (account_id)
	  LEFT JOIN subs s1 ON s1.account_id = f.account_id AND s1.d0 <= f.month AND s1.d1 > f.month
	  LEFT JOIN dogdb.pricing_plans p ON p.plan_id = coalesce(s1.plan_id,
		(SELECT s.plan_id FROM dogdb.subscriptions s
		  WHERE s.account_id = f.account_id AND s.valid_to < ((f.month + 1)::timestamp AT TIME ZONE 'UTC')
		  ORDER BY s.valid_from DESC LIMIT 1),
		(SELECT s.plan_id FROM dogdb.subscriptions s
		  WHERE s.account_id = f.account_id
			AND s.valid_from < ((f.month + interval '1 month') AT TIME ZONE 'UTC')
		  ORDER BY s.valid_from LIMIT 1))
)
SELECT month, company_size, tier, count(*) FILTER (WHERE n > 0) AS active_accounts,
	   sum(churned)::bigint AS churned_accounts, sum(n)::bigint AS sessions, sum(cents)::bigint AS revenue_cents
  FROM tiered GROUP BY 1, 2, 3;

-- the facts with their tier names (they are keyed by plan_id)
CREATE VIEW pg_temp.kpi_named AS
SELECT f.month, f.company_size, coalesce(p.name, 'none') AS tier, f.active_accounts, f.churned_accounts,
	   f.sessions, f.revenue_cents
  FROM dogdb_internal.kpi_facts f LEFT JOIN dogdb.pricing_plans p USING (plan_id);
-- the strongest plain SQL found for the full refresh: a single-pass view.
-- One hash aggregate of the sessions by account and month bucket
-- (width_bucket over the month edges, computed once), the churn month
-- from a bit_or() bitmap of those buckets (lowest zero bit), the tier of
-- each account-month from one join to per-account tier intervals built
-- with lead() (a subscription's tier holds from the first month whose 1st
-- it covers, or the month it starts if it is the account's first, until
-- the next subscription's), revenue prorated per piece of subscription and
-- price period in closed form.
CREATE FUNCTION bench_kpi.first_month() RETURNS date LANGUAGE sql STABLE AS $$
	SELECT min(date_trunc('month', created_at AT TIME ZONE 'UTC'))::date FROM dogdb.accounts
$$;
CREATE FUNCTION bench_kpi.edges() RETURNS timestamptz[] LANGUAGE sql STABLE AS $$
	SELECT array_agg(m AT TIME ZONE 'UTC' ORDER BY m)
	  FROM generate_series(bench_kpi.first_month()::timestamp,
						   date_trunc('month', now() AT TIME ZONE 'UTC') + interval '1 month', interval '1 month') m
$$;
CREATE MATERIALIZED VIEW bench_kpi.kpi_single AS
WITH usage AS MATERIALIZED (		-- the one pass over the sessions
	SELECT account_id, width_bucket(created_at, (SELECT bench_kpi.edges())) - 1 AS b, count(*) AS n
	  FROM dogdb.sessions GROUP BY 1, 2
), p AS MATERIALIZED (
	SELECT m0, (extract(year FROM m0) * 12 + extract(month FROM m0))::int AS m0i, cardinality(bench_kpi.edges()) - 1 AS nm
	  FROM bench_kpi.first_month() m0
), acc AS (
	SELECT account_id, coalesce(company_size, 'unknown') AS company_size,
		   width_bucket(created_at, (SELECT bench_kpi.edges())) - 1 AS f
	  FROM dogdb.accounts
), churn AS (		-- the lowest zero bit of the account's bitmap from its first month on
	SELECT a.account_id,
		   a.f + 64 - strpos((~(coalesce(u.x, 0) >> a.f) & ((coalesce(u.x, 0) >> a.f) + 1))::bit(64)::text, '1') AS b
	  FROM acc a
	  LEFT JOIN (SELECT account_id, bit_or(1::bigint << b) AS x FROM usage, p WHERE b >= 0 AND b < p.nm GROUP BY 1) u
		USING (account_id)
), months AS MATERIALIZED (
	SELECT i AS b, (p.m0 + i * interval '1 month')::date AS month, (p.m0 + (i + 1) * interval '1 month')::date AS next
	  FROM p, generate_series(0, p.nm - 1) i
), subs AS MATERIALIZED (
	SELECT account_id, plan_id, valid_from, (valid_from AT TIME ZONE 'UTC')::date AS d0,
		   coalesce((valid_to AT TIME ZONE 'UTC')::date, 'infinity') AS d1
	  FROM dogdb.subscriptions
), prices AS MATERIALIZED (
	SELECT plan_id, monthly_price_cents AS price, effective_from AS p0,
		   coalesce(lead(effective_from) OVER (PARTITION BY plan_id ORDER BY effective_from), 'infinity') AS p1
	  FROM dogdb.plan_prices
), revenue AS (		-- closed form: price x days covered / days of the month, per piece,
					-- rounded half up in integer arithmetic
	SELECT s.account_id, m.b,
		   sum((2 * p.price * (least(s.d1, m.next, p.p1) - greatest(s.d0, m.month, p.p0)) + (m.next - m.month))
			   / (2 * (m.next - m.month)))::bigint AS cents
	  FROM subs s JOIN months m ON s.d0 < m.next AND s.d1 > m.month
	  JOIN prices p ON p.plan_id = s.plan_id AND p.p0 < least(s.d1, m.next) AND p.p1 > greatest(s.d0, m.month)
	 GROUP BY 1, 2
), tiers AS (		-- per account: [lo, hi) month buckets of each subscription's tier
	SELECT account_id, plan_id, lo, lead(lo, 1, 2147483647) OVER (PARTITION BY account_id ORDER BY valid_from) AS hi
	  FROM (SELECT account_id, plan_id, valid_from,
				   (extract(year FROM mlo) * 12 + extract(month FROM mlo))::int - p.m0i AS lo
			  FROM (SELECT account_id, plan_id, valid_from,
						   CASE WHEN row_number() OVER (PARTITION BY account_id ORDER BY valid_from) = 1
								THEN date_trunc('month', d0) ELSE date_trunc('month', d0 - 1) + interval '1 month' END AS mlo
					  FROM subs) s, p) t
), facts AS (
	SELECT account_id, b, sum(n) AS n, sum(churned) AS churned, sum(cents) AS cents
	  FROM (SELECT account_id, b, n, 0 AS churned, 0 AS cents FROM usage, p WHERE b >= 0 AND b < p.nm
			UNION ALL SELECT account_id, b, 0, 1, 0 FROM churn, p WHERE b < p.nm
			UNION ALL SELECT account_id, b, 0, 0, cents FROM revenue) x
	 GROUP BY 1, 2
)
SELECT (p.m0 + g.b * interval '1 month')::date AS month, g.company_size, g.tier, g.active_accounts,
	   g.churned_accounts, g.sessions, g.revenue_cents
  FROM (SELECT f.b, a.company_size, coalesce(pl.name, 'none') AS tier,
			   count(*) FILTER (WHERE f.n > 0) AS active_accounts, sum(f.churned)::bigint AS churned_accounts,
			   sum(f.n)::bigint AS sessions, sum(f.cents)::bigint AS revenue_cents
		  FROM facts f
		  JOIN acc a USING (account_id)
		  LEFT JOIN tiers t ON t.account_id = f.account_id AND f.b >= t.lo AND f.b < t.hi
		  LEFT JOIN dogdb.pricing_plans pl ON pl.plan_id = t.plan_id
		 GROUP BY 1, 2, 3) g, p;

SELECT (SELECT count(*) FROM (SELECT * FROM bench_kpi.kpi_plain EXCEPT ALL SELECT * FROM pg_temp.kpi_named) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.kpi_named EXCEPT ALL SELECT * FROM bench_kpi.kpi_plain) d)
	   AS "KPI rows that differ (1.2 view)",
	   (SELECT count(*) FROM (SELECT * FROM bench_kpi.kpi_single EXCEPT ALL SELECT * FROM pg_temp.kpi_named) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.kpi_named EXCEPT ALL SELECT * FROM bench_kpi.kpi_single) d)
	   AS "KPI rows that differ (single-pass view)", (SELECT count(*) FROM dogdb_internal.kpi_facts) AS "KPI rows";
-- the single-pass view at the cluster's work_mem (64MB: its aggregates
-- spill) and tuned (1GB: none does); the faster is the baseline
SELECT pg_temp.best_ms('SELECT dogdb_refresh_kpis(true)') AS c_full_ms,
	   pg_temp.best_ms('REFRESH MATERIALIZED VIEW bench_kpi.kpi_single') AS single_ms,
	   pg_temp.best_ms('REFRESH MATERIALIZED VIEW bench_kpi.kpi_single', 3, 'SET work_mem = ''1GB''') AS single_tuned_ms,
	   pg_temp.best_ms('REFRESH MATERIALIZED VIEW bench_kpi.kpi_plain', 1, 'RESET work_mem') AS plain_ms \gset
INSERT INTO results VALUES
	('full KPI refresh (b) vs the single-pass view (work_mem tuned)', :c_full_ms, least(:single_ms, :single_tuned_ms), 3),
	('info: the single-pass view at work_mem 64MB', :c_full_ms, :single_ms, NULL),
	('info: the single-pass view at work_mem 1GB', :c_full_ms, :single_tuned_ms, NULL),
	('info: full KPI refresh (b) vs the 1.2 baseline view', :c_full_ms, :plain_ms, NULL);
-- for information: the sessions KPIs alone (no tiers, no revenue) in plain
-- SQL, the per-account LATERAL GROUP BY form; the C refresh above computes
-- all of them
CREATE MATERIALIZED VIEW bench_kpi.usage_plain AS
WITH acc AS (
	SELECT account_id, coalesce(company_size, 'unknown') AS company_size,
		   date_trunc('month', created_at AT TIME ZONE 'UTC')::date AS first_month
	  FROM dogdb.accounts
), usage AS (
	SELECT a.account_id, a.company_size, x.month, x.n
	  FROM acc a CROSS JOIN LATERAL (
		SELECT date_trunc('month', s.created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
		  FROM dogdb.sessions s WHERE s.account_id = a.account_id GROUP BY 1) x
)
SELECT month, company_size, count(*) AS active_accounts, sum(n) AS sessions FROM usage GROUP BY 1, 2;
INSERT INTO results
SELECT 'info: sessions KPIs alone in plain SQL (LATERAL form)',
	   :c_full_ms,
	   pg_temp.best_ms('REFRESH MATERIALIZED VIEW bench_kpi.usage_plain'), NULL;

-- (c) one day of new sessions (a copy of a day of last month's, moved to
-- today), then an incremental refresh; against the full refresh above
CREATE FUNCTION pg_temp.add_day() RETURNS void LANGUAGE sql AS $$
	INSERT INTO dogdb.sessions (account_id, created_at)
	SELECT account_id, created_at + (current_date - (current_date - 30)) * interval '1 day'
	  FROM dogdb.sessions
	 WHERE created_at >= (current_date - 30)::timestamp AT TIME ZONE 'UTC'
	   AND created_at < (current_date - 29)::timestamp AT TIME ZONE 'UTC'
	   AND session_id <= (SELECT max(session_id) FROM dogdb.sessions WHERE created_at < now() - interval '40 days')
$$;
SELECT count(*) AS "sessions in one day" FROM dogdb.sessions
 WHERE created_at >= (current_date - 30)::timestamp AT TIME ZONE 'UTC'
   AND created_at < (current_date - 29)::timestamp AT TIME ZONE 'UTC';
INSERT INTO results
SELECT 'incremental refresh after one day (c)',
	   pg_temp.best_ms('SELECT dogdb_refresh_kpis()', 5, 'SELECT pg_temp.add_day()'),
	   :c_full_ms, 10;
-- the incremental result is the full rebuild's
CREATE TEMP TABLE incremental AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT dogdb_refresh_kpis(true);
SELECT (SELECT count(*) FROM (SELECT * FROM incremental EXCEPT ALL SELECT * FROM dogdb_internal.kpi_facts) d)
	 + (SELECT count(*) FROM (SELECT * FROM dogdb_internal.kpi_facts EXCEPT ALL SELECT * FROM incremental) d)
	   AS "incremental rows that differ from a full rebuild";

SELECT * FROM pg_temp.report();
DROP SCHEMA bench_kpi CASCADE;
TRUNCATE dogdb.accounts CASCADE;
