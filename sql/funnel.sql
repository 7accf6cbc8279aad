-- Web events and funnels: the loader, the exact window funnel against
-- hand-worked sequences in every mode, argument errors, the parallel plan
SET TimeZone = 'UTC';
TRUNCATE dogdb.web_events;
DELETE FROM dogdb.import_rejects WHERE source_table = 'web_events';

-- the loader: each (visitor, event id) once, malformed rows quarantined with the reason
CREATE TABLE web_stage (LIKE dogdb.web_events);
ALTER TABLE web_stage ALTER anonymous_id DROP NOT NULL, ALTER event_id DROP NOT NULL,
	ALTER occurred_at DROP NOT NULL, ALTER event_name DROP NOT NULL, ALTER properties DROP NOT NULL;
INSERT INTO web_stage (event_id, occurred_at, anonymous_id, event_name, page_path, client, properties) VALUES
	('e1', '2024-01-01 10:00Z', 'v1', 'page_view', '/', 'acme', '{"plan": "pro"}'),
	('e1', '2024-01-01 10:00Z', 'v1', 'page_view', '/', 'acme', '{"plan": "pro"}'),	-- delivered twice
	('e2', '2024-01-01 10:01Z', 'v1', 'signup_submitted', NULL, 'acme', NULL),
	('e1', '2024-01-01 10:02Z', 'v2', 'page_view', '/pricing', NULL, NULL),	-- same id, other visitor
	(NULL, '2024-01-01', 'v2', 'x', NULL, NULL, NULL),
	('e3', 'infinity', 'v2', 'x', NULL, NULL, NULL),
	('e4', NULL, 'v2', 'x', NULL, NULL, NULL),
	('e5', '2024-01-01', NULL, 'x', NULL, NULL, NULL),
	('e6', '2024-01-01', '', 'x', NULL, NULL, NULL),
	('e7', '2024-01-01', 'v3', 'page_view', NULL, NULL, NULL),
	('e8', '2024-01-01', 'v3', 'page_ping', 'pricing', NULL, NULL),
	('e9', '2024-01-01', 'v3', '', NULL, NULL, NULL),
	('e10', '2024-01-01', 'v3', 'click', NULL, NULL, '[1]');
SELECT * FROM dogdb_load_web_events('web_stage');
SELECT anonymous_id, event_id, occurred_at, event_name, page_path, client, properties
  FROM dogdb.web_events ORDER BY 1, 2;
SELECT source_row ->> 'event_id' AS event_id, reason FROM dogdb.import_rejects
 WHERE source_table = 'web_events' ORDER BY 1, 2;
-- delivered again: all duplicates, the rejects stay single
SELECT * FROM dogdb_load_web_events('web_stage');
SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events';
-- bad sources
SELECT * FROM dogdb_load_web_events(NULL);
SELECT * FROM dogdb_load_web_events('dogdb.web_events');
CREATE TABLE thin_stage (event_id text, occurred_at timestamptz);
SELECT * FROM dogdb_load_web_events('thin_stage');
-- the table refuses malformed rows written directly
INSERT INTO dogdb.web_events (anonymous_id, event_id, occurred_at, event_name) VALUES ('v9', 'x', '-infinity', 'click');
INSERT INTO dogdb.web_events (anonymous_id, event_id, occurred_at, event_name) VALUES ('v9', 'x', '2024-01-01Z', 'page_view');

-- the window funnel on a spec such as 'A0 AB5 C10': letters are the steps
-- the event matches, the number its minute
CREATE FUNCTION f(spec text, w int, mode text DEFAULT NULL, n int DEFAULT 4)
	RETURNS TABLE (level int, minutes text) LANGUAGE sql AS $$
WITH ev AS (
	SELECT timestamptz '2024-01-01 00:00Z' + substring(x FROM '[0-9]+$')::int * interval '1 minute' AS ts,
		   ARRAY(SELECT strpos(substring(x FROM '^[A-Z]*'), chr(64 + k)) > 0 FROM generate_series(1, n) k) AS steps
	  FROM regexp_split_to_table(spec, ' ') x)
SELECT dogdb_window_funnel(make_interval(mins => w), mode, ts, VARIADIC steps),
	   (SELECT string_agg((extract(epoch FROM t - timestamptz '2024-01-01 00:00Z') / 60)::int::text, ',')
		  FROM unnest(dogdb_window_funnel_times(make_interval(mins => w), mode, ts, VARIADIC steps)) t)
  FROM ev $$;
-- window: inclusive edge; the maximum over all chains, not the first A's
SELECT * FROM f('A0 B5 C10', 10);
SELECT * FROM f('A0 B5 C11', 10);
SELECT * FROM f('A0 A5 B12 C14', 10);
SELECT * FROM f('A0 B5 A6 B7 C15', 10);
SELECT * FROM f('C0 B1', 10);
SELECT * FROM f('B5 A1 C3', 10);
-- equal timestamps are ordered by step, whatever the input order
SELECT * FROM f('B0 A0', 10);
SELECT * FROM f('A0 B0', 10, 'strict_increase');
SELECT * FROM f('A0 B1', 10, 'strict_increase');
-- a repeated sub-chain at equal times under strict_increase (ClickHouse issue 52844)
SELECT * FROM f('A1 A2 B2 C3', 10, 'strict_increase');
SELECT * FROM f('C3 B2 A2 A1', 10, 'strict_increase');
-- a row matching several steps
SELECT * FROM f('AB0', 10);
SELECT * FROM f('AB0', 10, 'strict_once');
SELECT * FROM f('AB0 AB0', 10, 'strict_once');
SELECT * FROM f('AC0 B0', 10, 'strict_once');
SELECT * FROM f('AC0 AB0 C0', 10, 'strict_once');
-- strict_deduplication: the level it returns
SELECT * FROM f('A0 B1 B2 C3', 10, 'strict_deduplication');
SELECT * FROM f('A0 B1 C2 B3', 10, 'strict_deduplication');
SELECT * FROM f('A0 A1 B2', 10, 'strict_deduplication');
SELECT * FROM f('A0 B1 B1 C3', 10, 'strict_deduplication');
SELECT * FROM f('A0 B1 B2 C3', 10);
-- strict_order
SELECT * FROM f('A0 B1 D2 C3', 10, 'strict_order');
SELECT * FROM f('A0 B1 D2 C3', 10);
SELECT * FROM f('A0 B1 B2 C3', 10, 'strict_order');
SELECT * FROM f('A0 B1 A2 C3', 10, 'strict_order');
SELECT * FROM f('A0 A1 B2 C3', 10, 'strict_order');
-- combinations
SELECT * FROM f('A0 B1 B2 C3', 10, 'strict_order, strict_deduplication');
SELECT * FROM f('A0 B0 B1 C2', 10, 'strict_order,strict_increase');
SELECT * FROM f('A0 B0 B1 C2', 10, 'strict_deduplication,strict_increase');
SELECT * FROM f('AB0 B1 C2', 10, 'strict_once,strict_increase');
SELECT * FROM f('A0 ABC1 C2 D3', 10, 'strict_order,strict_deduplication,strict_increase,strict_once');
-- more than 32 steps (up to 64): step k at minute 100 - k, input in any order
SELECT dogdb_window_funnel('1 day', timestamptz '2024-01-01Z' + k * interval '1 minute',
						   VARIADIC ARRAY(SELECT j = k FROM generate_series(1, 40) j))
  FROM generate_series(40, 1, -1) k;
SELECT dogdb_window_funnel('1 day', timestamptz '2024-01-01Z' + k * interval '1 minute',
						   VARIADIC ARRAY(SELECT j = k FROM generate_series(1, 64) j))
  FROM generate_series(1, 64) k;
-- NULLs: a NULL time skips the row, a NULL condition is false, no rows is 0
SELECT dogdb_window_funnel('1 day', ts, a, b)
  FROM (VALUES (timestamptz '2024-01-01Z', true, false), (NULL, false, true),
			   ('2024-01-01 01:00Z', NULL, NULL)) v(ts, a, b);
SELECT dogdb_window_funnel('1 day', ts, a, b), dogdb_window_funnel_times('1 day', ts, a, b)
  FROM (VALUES (timestamptz '2024-01-01Z', true, false)) v(ts, a, b) WHERE false;

-- bad arguments (22023)
\set VERBOSITY default
SELECT dogdb_window_funnel('0 seconds', now(), true);
SELECT dogdb_window_funnel('-1 day', now(), true);
SELECT dogdb_window_funnel('1 month', now(), true);
SELECT dogdb_window_funnel('3651 days', now(), true);
SELECT dogdb_window_funnel(NULL, now(), true);
SELECT dogdb_window_funnel('1 day', now(), VARIADIC ARRAY[]::boolean[]);
SELECT dogdb_window_funnel('1 day', now(), VARIADIC NULL::boolean[]);
SELECT dogdb_window_funnel('1 day', now(), VARIADIC array_fill(true, ARRAY[65]));
SELECT dogdb_window_funnel('1 day', now(), VARIADIC array_fill(true, ARRAY[2, 2]));
SELECT dogdb_window_funnel('1 day', 'strict_order,nonsense', now(), true);
SELECT dogdb_window_funnel('1 day', 'strict_order,', now(), true);
SELECT dogdb_window_funnel('1 day', 'infinity'::timestamptz, true);
SELECT dogdb_window_funnel(w, now(), true) FROM (VALUES (interval '1 day'), ('2 days')) v(w);
SELECT dogdb_window_funnel('1 day', m, now(), true) FROM (VALUES ('strict_order'), ('strict_once')) v(m);
SELECT dogdb_window_funnel('1 day', now(), VARIADIC s) FROM (VALUES (ARRAY[true]), (ARRAY[true, false])) v(s);
\set VERBOSITY terse

-- merge-order independence: serial = parallel on shuffled input
CREATE TABLE shuffled AS
SELECT 'v' || (h % 2000) AS visitor,
	   timestamptz '2024-01-01Z' + ((h >> 12) % 600) * interval '1 minute' AS ts,
	   (h >> 24) % 7 AS e
  FROM (SELECT abs(hashint8(i)) AS h FROM generate_series(1, 60000) i) s
 ORDER BY md5(h::text);
ANALYZE shuffled;
-- (rare: steps matched by a few rows of the first hours, so that most partial
-- states of a visitor split between workers have no events: lazy + empty)
CREATE TABLE serial_result AS
SELECT visitor, dogdb_window_funnel('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS level,
	   dogdb_window_funnel('90 minutes', 'strict_order,strict_once', ts, e = 1, e = 2, e = 3, e = 4) AS strict,
	   dogdb_window_funnel_times('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS times,
	   dogdb_window_funnel('90 minutes', ts, e = 1 AND ts < '2024-01-01 03:00Z', e = 2 AND ts < '2024-01-01 03:00Z') AS rare
  FROM shuffled GROUP BY visitor;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
-- the deserialize function's COST 1000 keeps many small groups serial: priced as one here
BEGIN;
ALTER FUNCTION dogdb_window_funnel_deserialfn(bytea, internal) COST 1;
EXPLAIN (COSTS OFF)
SELECT visitor, dogdb_window_funnel('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) FROM shuffled GROUP BY visitor;
CREATE TABLE parallel_result AS
SELECT visitor, dogdb_window_funnel('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS level,
	   dogdb_window_funnel('90 minutes', 'strict_order,strict_once', ts, e = 1, e = 2, e = 3, e = 4) AS strict,
	   dogdb_window_funnel_times('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS times,
	   dogdb_window_funnel('90 minutes', ts, e = 1 AND ts < '2024-01-01 03:00Z', e = 2 AND ts < '2024-01-01 03:00Z') AS rare
  FROM shuffled GROUP BY visitor;
-- the same through the sorted plan (Partial GroupAggregate, Gather Merge,
-- Finalize GroupAggregate: one deserialized state per worker and visitor)
SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
SELECT visitor, dogdb_window_funnel('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) FROM shuffled GROUP BY visitor;
CREATE TABLE parallel_sorted AS
SELECT visitor, dogdb_window_funnel('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS level,
	   dogdb_window_funnel('90 minutes', 'strict_order,strict_once', ts, e = 1, e = 2, e = 3, e = 4) AS strict,
	   dogdb_window_funnel_times('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS times,
	   dogdb_window_funnel('90 minutes', ts, e = 1 AND ts < '2024-01-01 03:00Z', e = 2 AND ts < '2024-01-01 03:00Z') AS rare
  FROM shuffled GROUP BY visitor;
-- rows stored in visitor order: most visitors are whole in one worker, so
-- most final states are a deserialized state never merged (its stored level)
CREATE TABLE ordered AS SELECT * FROM shuffled ORDER BY visitor, ts;
ANALYZE ordered;
CREATE TABLE parallel_ordered AS
SELECT visitor, dogdb_window_funnel('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS level,
	   dogdb_window_funnel('90 minutes', 'strict_order,strict_once', ts, e = 1, e = 2, e = 3, e = 4) AS strict,
	   dogdb_window_funnel_times('90 minutes', ts, e = 1, e = 2, e = 3, e = 4) AS times,
	   dogdb_window_funnel('90 minutes', ts, e = 1 AND ts < '2024-01-01 03:00Z', e = 2 AND ts < '2024-01-01 03:00Z') AS rare
  FROM ordered GROUP BY visitor;
RESET enable_hashagg;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
ALTER FUNCTION dogdb_window_funnel_deserialfn(bytea, internal) COST 1000;
COMMIT;
RESET parallel_leader_participation;
-- serialized states come from workers, but any role can route other bytes
-- to the deserializer through an aggregate of its own: checked, 22P03
CREATE AGGREGATE pg_temp.forged_funnel(numeric) (
	SFUNC = numeric_avg_accum, STYPE = internal, SERIALFUNC = numeric_avg_serialize,
	DESERIALFUNC = dogdb_window_funnel_deserialfn, COMBINEFUNC = dogdb_window_funnel_combinefn,
	FINALFUNC = dogdb_window_funnel_finalfn, PARALLEL = SAFE);
BEGIN;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SET LOCAL parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT pg_temp.forged_funnel(e) FROM shuffled;
\set VERBOSITY default
SELECT pg_temp.forged_funnel(e) FROM shuffled;
\set VERBOSITY terse
ROLLBACK;
SELECT count(*) AS visitors, sum(level) AS levels, sum(strict) AS strict_levels FROM serial_result;
SELECT count(*) AS differences FROM (
	(TABLE serial_result EXCEPT TABLE parallel_result) UNION ALL (TABLE parallel_result EXCEPT TABLE serial_result)) d;
SELECT count(*) AS differences_sorted_plan FROM (
	(TABLE serial_result EXCEPT TABLE parallel_sorted) UNION ALL (TABLE parallel_sorted EXCEPT TABLE serial_result)) d;
SELECT count(*) AS differences_visitor_order FROM (
	(TABLE serial_result EXCEPT TABLE parallel_ordered) UNION ALL (TABLE parallel_ordered EXCEPT TABLE serial_result)) d;
SELECT level, count(*) FROM serial_result GROUP BY 1 ORDER BY 1;
SELECT rare, count(*) FROM serial_result GROUP BY 1 ORDER BY 1;
DROP TABLE web_stage, thin_stage, shuffled, ordered, serial_result, parallel_result, parallel_sorted, parallel_ordered;
DROP FUNCTION f(text, int, text, int);

-- the report's per-visitor aggregate runs in parallel too: serial = parallel
SET TimeZone = 'UTC';
CREATE TABLE visit_events AS
SELECT 'v' || (h % 500) AS visitor,
	   timestamptz '2024-01-01Z' + ((h >> 12) % 3000) * interval '1 minute' AS ts,
	   (ARRAY['page_view', 'page_view', 'account_created', 'tier_selected', 'page_ping', 'click'])[1 + (h >> 24) % 6] AS event_name,
	   (ARRAY['/', '/signup', '/pricing'])[1 + (h >> 30) % 3] AS page_path,
	   (ARRAY['search', 'social', NULL])[1 + (h >> 34) % 3] AS client,
	   CASE WHEN (h >> 36) % 4 = 0 THEN (h % 500)::bigint END AS account_id
  FROM (SELECT abs(hashint8(i)) AS h FROM generate_series(1, 40000) i) s
 ORDER BY md5(h::text);
ANALYZE visit_events;
CREATE VIEW visit_result AS
SELECT visitor, dogdb_funnel_visit('6 hours', 'strict_once', ARRAY['/', '/signup', 'account_created', 'tier_selected'],
								   ARRAY['click'], '2024-01-01Z', '2024-01-02Z', ts, event_name, page_path, client, account_id) AS r
  FROM visit_events GROUP BY visitor;
CREATE TABLE visit_serial AS SELECT visitor, (r).* FROM visit_result;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SET parallel_leader_participation = off;
EXPLAIN (COSTS OFF) SELECT * FROM visit_result;
CREATE TABLE visit_parallel AS SELECT visitor, (r).* FROM visit_result;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;
RESET parallel_leader_participation;
SELECT count(*) AS visitors, sum(level) AS levels, count(*) FILTER (WHERE excluded) AS excluded,
	   count(DISTINCT segment) AS segments, count(account_id) AS with_account FROM visit_serial;
SELECT count(*) AS differences FROM (
	(TABLE visit_serial EXCEPT TABLE visit_parallel) UNION ALL (TABLE visit_parallel EXCEPT TABLE visit_serial)) d;
DROP VIEW visit_result;
DROP TABLE visit_events, visit_serial, visit_parallel;
