-- Benchmark: the exact window funnel on demo web events (default 1,000,000
-- visitors, about 10.7 events each: 6 steps plus page pings and other
-- pages, repeats, out-of-order steps and gaps beyond the window), C
-- against plain SQL on the same data in the same run.  (a) the aggregate
-- grouped by visitor vs the best exact pure-SQL formulation (stacked
-- window functions) and vs a PL/pgSQL loop over per-visitor sorted arrays;
-- (b) dogdb_funnel_report vs the pure-SQL report; (c) the loader vs plain
-- INSERT ... ON CONFLICT DO NOTHING from the staging table; (d) peak
-- backend memory for one visitor with 1,000,000 events.  Outputs are
-- checked equal.  psql -v visitors=N for another size.
\ir helpers.psql
\if :{?visitors}
\else
\set visitors 1000000
\endif
SET TimeZone = 'UTC';
SET max_parallel_workers_per_gather = 2;
TRUNCATE dogdb.web_events;
DELETE FROM dogdb.import_rejects WHERE source_table = 'web_events';

-- the staging table (as delivered: duplicates, out of order; malformed rows left out for the plain INSERT)
CREATE UNLOGGED TABLE web_stage AS
SELECT * FROM dogdb_internal.demo_web_events(:visitors, '2024-01-01 00:00+00', 28, 1) WHERE anonymous_id IS NOT NULL;
ANALYZE web_stage;
SELECT count(*) AS "staged events", count(DISTINCT anonymous_id) AS visitors FROM web_stage;

-- (c) the loader (its C route) vs INSERT ... ON CONFLICT DO NOTHING, each into the empty table
INSERT INTO results
SELECT 'loader, ' || (SELECT count(*) FROM web_stage) || ' staged rows (c)',
	   pg_temp.best_ms('SELECT dogdb_load_web_events(''web_stage'')', 1, 'TRUNCATE dogdb.web_events'),
	   pg_temp.best_ms($q$INSERT INTO dogdb.web_events (anonymous_id, event_id, occurred_at, session_id, account_id,
						  event_name, page_path, referrer, client, campaign, properties)
						SELECT anonymous_id, event_id, occurred_at, session_id, account_id, event_name, page_path,
							   referrer, client, campaign, coalesce(properties, '{}') FROM web_stage
						ON CONFLICT DO NOTHING$q$, 1, 'TRUNCATE dogdb.web_events'),
	   1.5;
SELECT count(*) AS "events after the plain INSERT" FROM dogdb.web_events;
TRUNCATE dogdb.web_events;
SELECT * FROM dogdb_load_web_events('web_stage');
SELECT count(*) AS "events after the loader" FROM dogdb.web_events;
-- (c, info) the same rows again into the full table: every row a duplicate
-- (the loader probes the primary key for each key, ON CONFLICT for each row)
INSERT INTO results
SELECT 'loader, the same rows again into the full table (all duplicates)',
	   pg_temp.best_ms('SELECT dogdb_load_web_events(''web_stage'')', 1),
	   pg_temp.best_ms($q$INSERT INTO dogdb.web_events (anonymous_id, event_id, occurred_at, session_id, account_id,
						  event_name, page_path, referrer, client, campaign, properties)
						SELECT anonymous_id, event_id, occurred_at, session_id, account_id, event_name, page_path,
							   referrer, client, campaign, coalesce(properties, '{}') FROM web_stage
						ON CONFLICT DO NOTHING$q$, 1),
	   NULL;
VACUUM ANALYZE dogdb.web_events;

-- (a) the aggregate grouped by visitor (test/bench/funnel_a.psql, also run alone by funnel_agg.psql)
\ir funnel_a.psql

-- (b) the report: users per step, conversion, median seconds from the previous step
CREATE VIEW pg_temp.report_c AS
SELECT step_no, users, round(median_seconds_from_previous::numeric, 3) AS median_s
  FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created', 'tier_selected', 'deployment_configured', '/dashboard'],
						   '2024-01-01', '2024-01-22', '1 day');
-- pure SQL: the stacked windows over the range, then the chain that first reaches the level
-- (its start m; each step the earliest occurrence with start m), then the aggregates
CREATE VIEW pg_temp.report_sql AS
WITH o AS (
	SELECT * FROM pg_temp.occ
	 WHERE ts >= '2024-01-01Z' AND ts <= timestamptz '2024-01-22Z' + interval '1 day' AND (k > 1 OR ts < '2024-01-22Z')),
l2 AS (
	SELECT v, ts, k, b1, CASE WHEN k = 2 AND ts - m <= interval '1 day' THEN m END AS b2
	  FROM (SELECT v, ts, k, CASE WHEN k = 1 THEN ts END AS b1, max(CASE WHEN k = 1 THEN ts END) OVER w AS m
			  FROM o WINDOW w AS (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING)) x),
l3 AS (
	SELECT v, ts, k, b1, b2, CASE WHEN k = 3 AND ts - m <= interval '1 day' THEN m END AS b3
	  FROM (SELECT *, max(b2) OVER (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING) AS m FROM l2) x),
l4 AS (
	SELECT v, ts, k, b1, b2, b3, CASE WHEN k = 4 AND ts - m <= interval '1 day' THEN m END AS b4
	  FROM (SELECT *, max(b3) OVER (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING) AS m FROM l3) x),
l5 AS (
	SELECT v, ts, k, b1, b2, b3, b4, CASE WHEN k = 5 AND ts - m <= interval '1 day' THEN m END AS b5
	  FROM (SELECT *, max(b4) OVER (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING) AS m FROM l4) x),
l6 AS (
	SELECT v, ts, k, CASE k WHEN 1 THEN b1 WHEN 2 THEN b2 WHEN 3 THEN b3 WHEN 4 THEN b4 WHEN 5 THEN b5
						  ELSE CASE WHEN ts - m <= interval '1 day' THEN m END END AS b
	  FROM (SELECT *, max(b5) OVER (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING) AS m FROM l5) x),
lv AS (		-- level, and the start of the chain that reaches it first
	SELECT DISTINCT ON (v) v, k AS level, b AS m FROM l6 WHERE b IS NOT NULL ORDER BY v, k DESC, ts),
st AS (		-- each step's time: the earliest occurrence with that start (the first to reach the level for the last)
	SELECT l6.v, l6.k, min(l6.ts) AS t FROM l6 JOIN lv ON lv.v = l6.v AND l6.b = lv.m AND l6.k <= lv.level
	 GROUP BY 1, 2),
gaps AS (
	SELECT s.k, extract(epoch FROM s.t - p.t) AS secs FROM st s JOIN st p ON p.v = s.v AND p.k = s.k - 1)
SELECT k AS step_no, (SELECT count(*) FROM lv WHERE lv.level >= k) AS users,
	   round((SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) FROM gaps WHERE gaps.k = s.k)::numeric, 3) AS median_s
  FROM generate_series(1, 6) s(k);
SELECT (SELECT count(*) FROM (SELECT * FROM pg_temp.report_c EXCEPT SELECT * FROM pg_temp.report_sql) d)
	 + (SELECT count(*) FROM (SELECT * FROM pg_temp.report_sql EXCEPT SELECT * FROM pg_temp.report_c) d) AS "report rows that differ";
SELECT * FROM pg_temp.report_c;
INSERT INTO results
SELECT 'dogdb_funnel_report vs pure-SQL report (b)', pg_temp.best_ms('SELECT sum(users), sum(median_s) FROM pg_temp.report_c', 2),
	   pg_temp.best_ms('SELECT sum(users), sum(median_s) FROM pg_temp.report_sql', 1), 3;

-- floors
INSERT INTO results
SELECT 'floor: count(*) of the events', pg_temp.best_ms('SELECT count(*) FROM dogdb.web_events', 2), NULL, NULL;
INSERT INTO results
SELECT 'floor: count(*) per visitor', pg_temp.best_ms('SELECT count(*) FROM (SELECT anonymous_id, count(*) FROM dogdb.web_events GROUP BY 1) x', 2), NULL, NULL;

SELECT * FROM pg_temp.report();

-- (d) peak memory: one visitor with 1,000,000 events (every one a step), a fresh backend each,
-- next to the same scan with count(*) instead (the floor: what the scan itself takes)
\set one_visitor_table 'CREATE TEMP TABLE one_visitor AS SELECT ''v1''::text AS anonymous_id, timestamptz ''2024-01-01Z'' + i * interval ''1 second'' AS occurred_at, (ARRAY[''page_view'', ''page_view'', ''account_created'', ''tier_selected'', ''deployment_configured'', ''page_view''])[1 + i % 6] AS event_name, (ARRAY[''/'', ''/signup'', NULL, NULL, NULL, ''/dashboard''])[1 + i % 6] AS page_path FROM generate_series(1, 1000000) i'
\c
SELECT pg_backend_pid() AS pid \gset
SELECT count(*) FROM generate_series(1, 1000000) i;
SELECT 'floor: count(*) over the same 1,000,000 rows' AS what,
	   (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'VmHWM:\s*(\d+ kB)'))[1] AS "peak backend memory (VmHWM)";
\c
SELECT pg_backend_pid() AS pid \gset
SELECT dogdb_window_funnel('1 day', timestamptz '2024-01-01Z' + i * interval '1 second',
						   i % 6 = 0, i % 6 = 1, i % 6 = 2, i % 6 = 3, i % 6 = 4, i % 6 = 5) AS "level, 1,000,000 events"
  FROM generate_series(1, 1000000) i;
SELECT 'dogdb_window_funnel, 1 visitor x 1,000,000 events' AS what,
	   (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'VmHWM:\s*(\d+ kB)'))[1] AS "peak backend memory (VmHWM)";
\c
SELECT pg_backend_pid() AS pid \gset
:one_visitor_table;
SELECT (dogdb_funnel_visit('1 day', NULL, ARRAY['/', '/signup', 'account_created', 'tier_selected', 'deployment_configured', '/dashboard'],
						   NULL, '2024-01-01Z', '2024-02-01Z', occurred_at, event_name, page_path, NULL, NULL)).level
	   AS "report's per-visitor aggregate, 1,000,000 events"
  FROM one_visitor;
SELECT 'dogdb_funnel_visit (the report), 1 visitor x 1,000,000 events' AS what,
	   (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'VmHWM:\s*(\d+ kB)'))[1] AS "peak backend memory (VmHWM)";
-- the same visitor's events grouped by visitor, so through the funnel scan (a Sort
-- on (visitor, time) under it: work_mem, then temporary files)
\c
SELECT pg_backend_pid() AS pid \gset
:one_visitor_table;
ANALYZE one_visitor;
-- (one group: a HashAggregate would be costed cheaper than the Sort the scan needs)
SET enable_hashagg = off;
\set one_visitor_query 'SELECT anonymous_id, dogdb_window_funnel(''1 day'', occurred_at, event_name = ''page_view'' AND page_path = ''/'', event_name = ''page_view'' AND page_path = ''/signup'', event_name = ''account_created'', event_name = ''tier_selected'', event_name = ''deployment_configured'', event_name = ''page_view'' AND page_path = ''/dashboard'') AS level FROM one_visitor GROUP BY anonymous_id'
EXPLAIN (COSTS OFF) :one_visitor_query;
:one_visitor_query;
SELECT 'dogdb_window_funnel grouped by visitor (the funnel scan), 1 visitor x 1,000,000 events' AS what,
	   (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'VmHWM:\s*(\d+ kB)'))[1] AS "peak backend memory (VmHWM)";
