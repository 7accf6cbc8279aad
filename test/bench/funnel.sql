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

-- (a) level per visitor, 6 steps, window 1 day, over the rows of the steps (the same WHERE as
-- the baselines' pg_temp.occ below), and over every row (no WHERE: rows of no step are skipped
-- by the aggregate itself)
CREATE VIEW pg_temp.agg_c AS
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected', event_name = 'deployment_configured',
		event_name = 'page_view' AND page_path = '/dashboard') AS level
  FROM dogdb.web_events
 WHERE event_name IN ('account_created', 'tier_selected', 'deployment_configured')
	OR (event_name = 'page_view' AND page_path IN ('/', '/signup', '/dashboard'))
 GROUP BY anonymous_id;
CREATE VIEW pg_temp.agg_c_all AS
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected', event_name = 'deployment_configured',
		event_name = 'page_view' AND page_path = '/dashboard') AS level
  FROM dogdb.web_events GROUP BY anonymous_id;
-- the step of each event (each matches at most one here)
CREATE VIEW pg_temp.occ AS
SELECT anonymous_id AS v, occurred_at AS ts,
	   CASE WHEN event_name = 'page_view' THEN CASE page_path WHEN '/' THEN 1 WHEN '/signup' THEN 2 WHEN '/dashboard' THEN 6 END
			WHEN event_name = 'account_created' THEN 3 WHEN event_name = 'tier_selected' THEN 4
			WHEN event_name = 'deployment_configured' THEN 5 END AS k
  FROM dogdb.web_events
 WHERE event_name IN ('account_created', 'tier_selected', 'deployment_configured')
	OR (event_name = 'page_view' AND page_path IN ('/', '/signup', '/dashboard'));
-- pure SQL: per step, the latest start of a chain one step lower before this event (one sort, stacked windows)
CREATE VIEW pg_temp.agg_sql AS
WITH l2 AS (
	SELECT v, ts, k, b1, CASE WHEN k = 2 AND ts - m <= interval '1 day' THEN m END AS b2
	  FROM (SELECT v, ts, k, CASE WHEN k = 1 THEN ts END AS b1,
				   max(CASE WHEN k = 1 THEN ts END) OVER w AS m
			  FROM pg_temp.occ WINDOW w AS (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING)) x),
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
	SELECT v, ts, k, b1, b2, b3, b4, b5, CASE WHEN k = 6 AND ts - m <= interval '1 day' THEN m END AS b6
	  FROM (SELECT *, max(b5) OVER (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING) AS m FROM l5) x)
SELECT v AS anonymous_id,
	   CASE WHEN count(b6) > 0 THEN 6 WHEN count(b5) > 0 THEN 5 WHEN count(b4) > 0 THEN 4
			WHEN count(b3) > 0 THEN 3 WHEN count(b2) > 0 THEN 2 WHEN count(b1) > 0 THEN 1 ELSE 0 END AS level
  FROM l6 GROUP BY v;
-- PL/pgSQL: the same exact rule (latest start per level) over each visitor's sorted arrays
CREATE FUNCTION pg_temp.funnel_loop(ts timestamptz[], ks int[], w interval) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
	best timestamptz[] := array_fill(NULL::timestamptz, ARRAY[6]);
	lvl int := 0;
	k int;
BEGIN
	FOR i IN 1 .. cardinality(ts) LOOP
		k := ks[i];
		IF k = 1 THEN
			best[1] := ts[i];
		ELSIF best[k - 1] IS NOT NULL AND ts[i] - best[k - 1] <= w AND (best[k] IS NULL OR best[k - 1] > best[k]) THEN
			best[k] := best[k - 1];
		END IF;
		IF best[k] IS NOT NULL AND k > lvl THEN
			lvl := k;
		END IF;
	END LOOP;
	RETURN lvl;
END $$;
CREATE VIEW pg_temp.agg_plpgsql AS
SELECT v AS anonymous_id, pg_temp.funnel_loop(array_agg(ts ORDER BY ts, k), array_agg(k ORDER BY ts, k), '1 day') AS level
  FROM pg_temp.occ GROUP BY v;

CREATE TEMP TABLE lv_c AS SELECT * FROM pg_temp.agg_c WHERE level > 0;
CREATE TEMP TABLE lv_c_all AS SELECT * FROM pg_temp.agg_c_all WHERE level > 0;
CREATE TEMP TABLE lv_sql AS SELECT * FROM pg_temp.agg_sql WHERE level > 0;
CREATE TEMP TABLE lv_plpgsql AS SELECT * FROM pg_temp.agg_plpgsql WHERE level > 0;
SELECT (SELECT count(*) FROM lv_c) AS "visitors with a level",
	   (SELECT count(*) FROM (TABLE lv_c EXCEPT TABLE lv_sql) d) + (SELECT count(*) FROM (TABLE lv_sql EXCEPT TABLE lv_c) d)
		   AS "differ from pure SQL",
	   (SELECT count(*) FROM (TABLE lv_c EXCEPT TABLE lv_plpgsql) d) + (SELECT count(*) FROM (TABLE lv_plpgsql EXCEPT TABLE lv_c) d)
		   AS "differ from PL/pgSQL",
	   (SELECT count(*) FROM (TABLE lv_c EXCEPT TABLE lv_c_all) d) + (SELECT count(*) FROM (TABLE lv_c_all EXCEPT TABLE lv_c) d)
		   AS "differ without the WHERE";
-- the plan the aggregate gets (serial over the visitor/time index: README "Performance (funnels)")
EXPLAIN (COSTS OFF) SELECT count(*), sum(level) FROM pg_temp.agg_c;
SELECT level, count(*) FROM lv_c GROUP BY 1 ORDER BY 1;
INSERT INTO results
SELECT 'aggregate by visitor vs pure SQL (a)', pg_temp.best_ms('SELECT count(*), sum(level) FROM pg_temp.agg_c', 2),
	   pg_temp.best_ms('SELECT count(*), sum(level) FROM pg_temp.agg_sql', 1), 5;
INSERT INTO results
SELECT 'aggregate by visitor, every row (no WHERE)', pg_temp.best_ms('SELECT count(*), sum(level) FROM pg_temp.agg_c_all', 2), NULL, NULL;
INSERT INTO results
SELECT 'aggregate by visitor vs PL/pgSQL loop (a)', (SELECT c_ms FROM results WHERE bench LIKE 'aggregate by visitor vs pure%'),
	   pg_temp.best_ms('SELECT count(*), sum(level) FROM pg_temp.agg_plpgsql', 1), 3;

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
CREATE TEMP TABLE one_visitor AS
SELECT 'v1'::text AS anonymous_id, timestamptz '2024-01-01Z' + i * interval '1 second' AS occurred_at,
	   (ARRAY['page_view', 'page_view', 'account_created', 'tier_selected', 'deployment_configured', 'page_view'])[1 + i % 6] AS event_name,
	   (ARRAY['/', '/signup', NULL, NULL, NULL, '/dashboard'])[1 + i % 6] AS page_path
  FROM generate_series(1, 1000000) i;
SELECT (dogdb_funnel_visit('1 day', NULL, ARRAY['/', '/signup', 'account_created', 'tier_selected', 'deployment_configured', '/dashboard'],
						   NULL, '2024-01-01Z', '2024-02-01Z', occurred_at, event_name, page_path, NULL, NULL)).level
	   AS "report's per-visitor aggregate, 1,000,000 events"
  FROM one_visitor;
SELECT 'dogdb_funnel_visit (the report), 1 visitor x 1,000,000 events' AS what,
	   (regexp_match(pg_read_file('/proc/' || :pid || '/status'), 'VmHWM:\s*(\d+ kB)'))[1] AS "peak backend memory (VmHWM)";
