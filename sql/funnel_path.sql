-- The funnel scan (README "dogdb_window_funnel"): a custom scan in place of
-- GroupAggregate for dogdb_window_funnel grouped by one column.  Every result
-- is compared with the plan PostgreSQL makes without it
-- (dogdb_analytics.enable_funnel_scan = off), EXCEPT ALL both ways.
SET TimeZone = 'UTC';
SET client_min_messages = warning;
CREATE SCHEMA fp;
-- demo events as delivered (duplicates, out of order, malformed rows with a
-- NULL visitor or time; the infinite times go to their own table)
CREATE TABLE fp.ev AS
SELECT anonymous_id, occurred_at, event_name, page_path, client, event_id
  FROM dogdb_internal.demo_web_events(400, '2024-01-01 00:00+00', 14, 3)
 WHERE occurred_at IS NULL OR isfinite(occurred_at);
INSERT INTO fp.ev VALUES ('zz-null-steps', '2024-01-02 10:00+00', NULL, NULL, NULL, 'n1'),
	('zz-null-steps', '2024-01-02 10:05+00', 'page_view', NULL, NULL, 'n2'),
	('zz-null-steps', NULL, 'page_view', '/', NULL, 'n3');
CREATE INDEX ev_visitor_time ON fp.ev (anonymous_id, occurred_at) INCLUDE (event_name, page_path);
VACUUM ANALYZE fp.ev;
SELECT count(*) > 1000 AS many, count(*) FILTER (WHERE occurred_at IS NULL) > 0 AS null_times,
	   count(*) FILTER (WHERE anonymous_id IS NULL) > 0 AS null_visitors, count(DISTINCT anonymous_id) > 300 AS visitors
  FROM fp.ev;
RESET client_min_messages;

-- runs q with the funnel scan and without: rows, whether each plan has the
-- scan, and the rows of each result missing from the other
CREATE FUNCTION fp.check(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r record;
	plan_on text := '';
	plan_off text := '';
	n bigint;
	d1 bigint;
	d2 bigint;
BEGIN
	PERFORM set_config('dogdb_analytics.enable_funnel_scan', 'on', false);
	FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP plan_on := plan_on || r."QUERY PLAN"; END LOOP;
	EXECUTE 'CREATE TEMP TABLE fp_on AS ' || q;
	PERFORM set_config('dogdb_analytics.enable_funnel_scan', 'off', false);
	FOR r IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP plan_off := plan_off || r."QUERY PLAN"; END LOOP;
	EXECUTE 'CREATE TEMP TABLE fp_off AS ' || q;
	PERFORM set_config('dogdb_analytics.enable_funnel_scan', 'on', false);
	SELECT count(*) INTO n FROM fp_on;
	SELECT count(*) INTO d1 FROM (SELECT * FROM fp_on EXCEPT ALL SELECT * FROM fp_off) x;
	SELECT count(*) INTO d2 FROM (SELECT * FROM fp_off EXCEPT ALL SELECT * FROM fp_on) x;
	DROP TABLE fp_on, fp_off;
	RETURN format('%s rows, scan %s/%s, differences %s/%s', n,
				  CASE WHEN plan_on LIKE '%DogdbFunnelScan%' THEN 'on' ELSE 'not used' END,
				  CASE WHEN plan_off LIKE '%DogdbFunnelScan%' THEN 'on' ELSE 'off' END, d1, d2);
END $$;

-- the sorted plans only (a hash aggregate is cheaper at this size)
SET enable_hashagg = off;

-- the supported shape over the visitor/time index: the WHERE moves into the node's memo
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected') AS level
  FROM fp.ev
 WHERE event_name IN ('account_created', 'tier_selected') OR (event_name = 'page_view' AND page_path IN ('/', '/signup'))
 GROUP BY anonymous_id;
-- a qual on the time stays in the index scan; steps reading the time: no memo
EXPLAIN (COSTS OFF)
SELECT anonymous_id, dogdb_window_funnel('1 day', 'strict_order', occurred_at,
		event_name = 'page_view', occurred_at < '2024-01-05') AS level
  FROM fp.ev WHERE occurred_at >= '2024-01-03' AND event_name <> 'page_ping'
 GROUP BY anonymous_id;
RESET enable_seqscan;
-- HAVING on the node (no Sort above it for the ORDER BY), the filter memoized, an index scan below
EXPLAIN (COSTS OFF)
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', client = 'acme') + 1 AS level,
	   dogdb_window_funnel_times('1 day', occurred_at, event_name = 'page_view', client = 'acme')
  FROM fp.ev WHERE client IS NOT NULL
 GROUP BY anonymous_id HAVING dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', client = 'acme') > 0
 ORDER BY anonymous_id;
-- an explicit VARIADIC ARRAY[...] is the same steps
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, VARIADIC ARRAY[event_name = 'page_view']) FROM fp.ev GROUP BY 1;
-- volatile steps: no memo
EXPLAIN (COSTS OFF)
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view' AND random() >= 0) FROM fp.ev GROUP BY anonymous_id;

-- unsupported shapes: PostgreSQL's own plans
EXPLAIN (COSTS OFF) SELECT anonymous_id, client, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1, 2;
EXPLAIN (COSTS OFF) SELECT lower(anonymous_id), dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view'), count(*) FROM fp.ev GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FILTER (WHERE client = 'acme') FROM fp.ev GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at + interval '1 hour', event_name = 'page_view') FROM fp.ev GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel(CASE WHEN client = 'acme' THEN interval '1 day' ELSE interval '2 days' END, occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, VARIADIC string_to_array('t,f', ',')::boolean[]) FROM fp.ev GROUP BY 1;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY ROLLUP (1);
EXPLAIN (COSTS OFF) SELECT e.anonymous_id, dogdb_window_funnel('1 day', e.occurred_at, e.event_name = 'page_view')
  FROM fp.ev e JOIN fp.ev f USING (event_id) GROUP BY 1;
SET dogdb_analytics.enable_funnel_scan = off;
EXPLAIN (COSTS OFF) SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
RESET dogdb_analytics.enable_funnel_scan;

-- results: the scan's equal PostgreSQL's, every mode, with and without WHERE, both child plans
SELECT m, fp.check(format($q$
SELECT anonymous_id, dogdb_window_funnel('1 day', %L, occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected', event_name = 'deployment_configured',
		event_name = 'page_view' AND page_path = '/dashboard') AS level
  FROM fp.ev
 WHERE event_name IN ('account_created', 'tier_selected', 'deployment_configured')
	OR (event_name = 'page_view' AND page_path IN ('/', '/signup', '/dashboard'))
 GROUP BY anonymous_id$q$, m)) AS with_where,
	   fp.check(format($q$
SELECT anonymous_id, dogdb_window_funnel('2 hours', %L, occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected', event_name = 'page_view') AS level,
	   dogdb_window_funnel_times('2 hours', %L, occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected', event_name = 'page_view') AS times
  FROM fp.ev GROUP BY anonymous_id$q$, m, m)) AS every_row
  FROM unnest(ARRAY[NULL, '', 'strict_order', 'strict_deduplication', 'strict_increase', 'strict_once',
					'strict_order,strict_once', 'strict_deduplication,strict_increase']) m;
SET enable_seqscan = off;
SELECT m, fp.check(format($q$
SELECT anonymous_id, dogdb_window_funnel('1 day', %L, occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected') AS level,
	   dogdb_window_funnel_times('1 day', %L, occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'account_created') AS times
  FROM fp.ev
 WHERE event_name IN ('account_created', 'tier_selected') OR (event_name = 'page_view' AND page_path IN ('/', '/signup'))
 GROUP BY anonymous_id$q$, m, m)) AS index_with_where
  FROM unnest(ARRAY[NULL, 'strict_order', 'strict_deduplication', 'strict_increase', 'strict_once']) m;
RESET enable_seqscan;
-- the levels reached (not all zero)
SELECT level, count(*) FROM (
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at,
		event_name = 'page_view' AND page_path = '/', event_name = 'page_view' AND page_path = '/signup',
		event_name = 'account_created', event_name = 'tier_selected', event_name = 'deployment_configured',
		event_name = 'page_view' AND page_path = '/dashboard') AS level
  FROM fp.ev GROUP BY anonymous_id) s GROUP BY 1 ORDER BY 1;

-- NULL steps and times, NULL visitor; steps on other columns; the time in a step (no memo);
-- volatile steps (no memo); a qual kept below; HAVING and expressions over the aggregates
SELECT fp.check($q$SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, page_path = '/', NULL::boolean, event_name = 'page_view',
		CASE WHEN event_name = 'page_ping' THEN NULL ELSE true END) AS l FROM fp.ev GROUP BY 1$q$) AS null_steps,
	   fp.check($q$SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, client = 'acme', event_name = 'account_created',
		event_id LIKE '%1') AS l FROM fp.ev GROUP BY 1$q$) AS other_columns,
	   fp.check($q$SELECT anonymous_id, dogdb_window_funnel('1 day', 'strict_order', occurred_at, event_name = 'page_view',
		occurred_at < '2024-01-05', event_name = 'account_created') AS l FROM fp.ev WHERE occurred_at >= '2024-01-03' GROUP BY 1$q$) AS time_step;
SELECT fp.check($q$SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view' AND random() >= 0,
		event_name = 'account_created' AND random() < 2) AS l FROM fp.ev GROUP BY 1$q$) AS volatile_steps,
	   fp.check($q$SELECT upper(anonymous_id) AS v, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created') * 10 AS l,
		cardinality(dogdb_window_funnel_times('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created')) AS n
		FROM fp.ev WHERE page_path IS NOT NULL OR event_name = 'account_created' GROUP BY anonymous_id
		HAVING dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created') > 1$q$) AS having;
SELECT fp.check($q$SELECT * FROM (SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') AS l
		FROM fp.ev GROUP BY 1) s WHERE l > 0$q$) AS outer_where,
	   fp.check($q$SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') AS l
		FROM fp.ev WHERE event_name = 'no such event' GROUP BY 1$q$) AS no_rows;

-- a prepared statement, executed past the switch to a generic plan
PREPARE fp_p(text) AS
SELECT count(*), sum(l), sum(cardinality(t)) FROM (
	SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = $1) AS l,
		   dogdb_window_funnel_times('1 day', occurred_at, event_name = 'page_view', event_name = $1) AS t
	  FROM fp.ev WHERE event_name IN ('page_view', $1) GROUP BY 1) s;
EXECUTE fp_p('account_created');
EXECUTE fp_p('account_created');
EXECUTE fp_p('account_created');
EXECUTE fp_p('account_created');
EXECUTE fp_p('account_created');
EXECUTE fp_p('account_created');
EXECUTE fp_p('account_created');
SET dogdb_analytics.enable_funnel_scan = off;
EXECUTE fp_p('account_created');
RESET dogdb_analytics.enable_funnel_scan;
PREPARE fp_q AS
SELECT count(*), sum(l) FROM (SELECT anonymous_id, dogdb_window_funnel('1 day', 'strict_once', occurred_at, event_name = 'page_view',
		event_name = 'page_view') AS l FROM fp.ev GROUP BY 1) s;
EXECUTE fp_q;
EXECUTE fp_q;
EXECUTE fp_q;
EXECUTE fp_q;
EXECUTE fp_q;
EXECUTE fp_q;
EXECUTE fp_q;
DEALLOCATE fp_p;
DEALLOCATE fp_q;

-- rescans: a LATERAL subquery per outer row (the memo is emptied on rescan:
-- the step and the filter read the outer row)
EXPLAIN (COSTS OFF)
SELECT c.client, s.n, s.total
  FROM (VALUES ('acme'), ('globex'), ('initech')) c(client),
	   LATERAL (SELECT count(*) AS n, sum(l) AS total FROM (
			SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', client = c.client) AS l
			  FROM fp.ev WHERE client IN (c.client, 'acme') GROUP BY 1) x) s;
SELECT fp.check($q$SELECT c.client, s.n, s.total
  FROM (VALUES ('acme'), ('globex'), ('initech'), ('acme')) c(client),
	   LATERAL (SELECT count(*) AS n, sum(l) AS total FROM (
			SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', client = c.client) AS l
			  FROM fp.ev WHERE client IN (c.client, 'acme') GROUP BY 1) x) s$q$) AS lateral;

-- a scrollable cursor (the same rows both ways)
BEGIN;
DECLARE fp_c SCROLL CURSOR FOR
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created') AS l
  FROM fp.ev WHERE anonymous_id IS NOT NULL GROUP BY 1 ORDER BY 1;
FETCH 3 FROM fp_c;
FETCH BACKWARD 2 FROM fp_c;
FETCH ABSOLUTE 5 FROM fp_c;
FETCH LAST FROM fp_c;
FETCH PRIOR FROM fp_c;
COMMIT;
SET dogdb_analytics.enable_funnel_scan = off;
BEGIN;
DECLARE fp_c SCROLL CURSOR FOR
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created') AS l
  FROM fp.ev WHERE anonymous_id IS NOT NULL GROUP BY 1 ORDER BY 1;
FETCH 3 FROM fp_c;
FETCH BACKWARD 2 FROM fp_c;
FETCH ABSOLUTE 5 FROM fp_c;
FETCH LAST FROM fp_c;
FETCH PRIOR FROM fp_c;
COMMIT;
RESET dogdb_analytics.enable_funnel_scan;

-- column privileges: the same error with the scan and without
CREATE ROLE regress_fp_reader;
GRANT USAGE ON SCHEMA fp TO regress_fp_reader;
GRANT SELECT (anonymous_id, occurred_at, page_path) ON fp.ev TO regress_fp_reader;
SET ROLE regress_fp_reader;
SELECT count(*) FROM (SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, page_path = '/') FROM fp.ev GROUP BY 1) s;
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SET dogdb_analytics.enable_funnel_scan = off;
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
RESET dogdb_analytics.enable_funnel_scan;
RESET ROLE;
-- row security: the scan's quals stay in the scan below the policy (none is taken into the node)
CREATE TABLE fp.rls AS SELECT * FROM fp.ev;
ALTER TABLE fp.rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY fp_rls ON fp.rls USING (event_name <> 'page_ping');
CREATE INDEX ON fp.rls (anonymous_id, occurred_at);
ANALYZE fp.rls;
GRANT SELECT ON fp.rls TO regress_fp_reader;
SET ROLE regress_fp_reader;
SET enable_seqscan = off;
EXPLAIN (COSTS OFF)
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.rls WHERE page_path <> '/x' GROUP BY 1;
SELECT fp.check($q$SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', page_path = '/signup') AS l
		FROM fp.rls WHERE page_path <> '/x' GROUP BY 1$q$) AS row_security;
RESET enable_seqscan;
RESET ROLE;

-- the aggregate's errors (22023), with the scan and without
\set VERBOSITY default
SELECT anonymous_id, dogdb_window_funnel('0 seconds', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel('1 month', 'strict_order', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel(NULL, occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel('1 day', 'strict_sometimes', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
-- a window that changes within a group (not a constant: PostgreSQL's plan, the aggregate's error)
SELECT anonymous_id, dogdb_window_funnel(CASE WHEN event_name = 'page_view' THEN interval '1 day' ELSE interval '2 days' END,
		occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel('1 day', CASE WHEN event_name = 'page_view' THEN 'strict_order' END,
		occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
-- no row, no error
SELECT anonymous_id, dogdb_window_funnel('0 seconds', occurred_at, event_name = 'page_view') FROM fp.ev WHERE event_name = 'none' GROUP BY 1;
-- an infinite time
CREATE TABLE fp.inf AS SELECT * FROM fp.ev WHERE anonymous_id = 'zz-null-steps';
INSERT INTO fp.inf VALUES ('zz-null-steps', 'infinity', 'page_view', '/', NULL, 'i1');
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.inf GROUP BY 1;
SET dogdb_analytics.enable_funnel_scan = off;
SELECT anonymous_id, dogdb_window_funnel('0 seconds', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel('1 month', 'strict_order', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel(NULL, occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel('1 day', 'strict_sometimes', occurred_at, event_name = 'page_view') FROM fp.ev GROUP BY 1;
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view') FROM fp.inf GROUP BY 1;
RESET dogdb_analytics.enable_funnel_scan;

-- a fresh session: its first query loads the library at plan time and takes the scan
\c
SET enable_hashagg = off;
EXPLAIN (COSTS OFF)
SELECT anonymous_id, dogdb_window_funnel('1 day', occurred_at, event_name = 'page_view', event_name = 'account_created') FROM fp.ev GROUP BY 1;
SHOW dogdb_analytics.enable_funnel_scan;

DROP OWNED BY regress_fp_reader;
DROP ROLE regress_fp_reader;
DROP SCHEMA fp CASCADE;
