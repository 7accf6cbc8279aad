-- pgTAP: the funnel report, the trend and page times against independent
-- plain-SQL computations on generated data; the loader's counts; the demo
-- generator's determinism; argument errors
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
SET TimeZone = 'UTC';
SELECT plan(40);

-- 1500 visitors over 14 days; the data ends 2024-01-15; the range ends earlier
CREATE TEMP TABLE gen AS SELECT * FROM dogdb_generate_demo_web_events(1500, '2024-01-01', 14, 3);
SELECT ok(g.events = g.loaded + g.duplicates + g.rejected AND g.duplicates > 0 AND g.rejected > 0,
		  format('loader: every generated row is loaded, a duplicate or rejected (%s)', g)) FROM gen g;
SELECT is((SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events'),
		  (SELECT count(DISTINCT d::text) FROM dogdb_internal.demo_web_events(1500, '2024-01-01', 14, 3) d WHERE d.anonymous_id IS NULL),
		  'each distinct rejected row is in import_rejects (a bad row delivered twice is stored once)');
SELECT is((SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events' AND reason IS NULL), 0::bigint,
		  'with its reason');
SELECT is(count(DISTINCT (anonymous_id, event_id)), count(*), 'each event id once per visitor') FROM dogdb.web_events;
SELECT is((SELECT count(*) FROM dogdb_internal.demo_web_events(1500, '2024-01-01', 14, 3) d
			WHERE d.anonymous_id IS NOT NULL
			  AND NOT EXISTS (SELECT FROM dogdb.web_events w WHERE w.anonymous_id = d.anonymous_id AND w.event_id = d.event_id)),
		  0::bigint, 'nothing silently lost: every well-formed generated event is stored');
SELECT is((SELECT md5(string_agg(d::text, '|')) FROM dogdb_internal.demo_web_events(200, '2024-01-01', 14, 3) d),
		  (SELECT md5(string_agg(d::text, '|')) FROM dogdb_internal.demo_web_events(200, '2024-01-01', 14, 3) d),
		  'the generator is deterministic');
SELECT ok((SELECT max(occurred_at) FROM dogdb.web_events) < '2024-01-15', 'the data ends at start + days');
-- accounts for the visitors who signed up, for the company_size and tier breakdowns
INSERT INTO dogdb.accounts (account_id, company_size, created_at)
SELECT DISTINCT account_id, CASE WHEN account_id % 3 = 0 THEN 'large' ELSE 'small' END, timestamptz '2024-01-01Z'
  FROM dogdb.web_events WHERE account_id IS NOT NULL AND account_id % 5 <> 0;
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from)
SELECT account_id, 1 + account_id % 3, '2024-01-01Z' FROM dogdb.accounts WHERE account_id % 7 <> 0;

-- the independent computation: occurrences, then one layer of window functions per step
CREATE TEMP TABLE params AS
SELECT ARRAY['/', '/signup', 'account_created', 'tier_selected', 'deployment_configured', '/dashboard'] AS steps,
	   timestamptz '2024-01-01Z' AS from_ts, timestamptz '2024-01-14 12:00Z' AS to_ts, interval '1 day' AS w,
	   ARRAY['/pricing'] AS exclusions;
CREATE TEMP TABLE occ AS
SELECT e.anonymous_id AS v, e.occurred_at AS ts, s.k::int AS k,
	   CASE WHEN s.k = 1 THEN e.occurred_at END AS b
  FROM params p, dogdb.web_events e
  JOIN LATERAL unnest((SELECT steps FROM params)) WITH ORDINALITY s(name, k)
	ON e.event_name = s.name OR (e.event_name = 'page_view' AND e.page_path = s.name)
 WHERE e.occurred_at >= p.from_ts AND e.occurred_at <= p.to_ts + p.w AND (s.k > 1 OR e.occurred_at < p.to_ts);
DO $$
BEGIN
	FOR j IN 2..6 LOOP
		EXECUTE format($q$
			CREATE TEMP TABLE occ_next AS
			SELECT v, ts, k, CASE WHEN k = %1$s THEN CASE WHEN ts - m <= (SELECT w FROM params) THEN m END ELSE b END AS b
			  FROM (SELECT o.*, max(b) FILTER (WHERE k = %1$s - 1)
									OVER (PARTITION BY v ORDER BY ts, k ROWS UNBOUNDED PRECEDING) AS m
					  FROM occ o) x$q$, j);
		DROP TABLE occ;
		ALTER TABLE occ_next RENAME TO occ;
	END LOOP;
END $$;
CREATE TEMP TABLE plain_level AS
SELECT v, max(k) FILTER (WHERE b IS NOT NULL) AS level, max(ts) FILTER (WHERE k = 1) AS last_entry FROM occ GROUP BY v;
-- the chain: the first to reach the level (its start M), each step the earliest occurrence with start M
CREATE TEMP TABLE plain_chain AS
WITH firsts AS (
	SELECT DISTINCT ON (o.v) o.v, o.ts AS t_last, o.b AS m
	  FROM occ o JOIN plain_level l ON l.v = o.v AND o.k = l.level AND o.b IS NOT NULL
	 ORDER BY o.v, o.ts)
SELECT l.v, l.level, l.last_entry, f.m,
	   ARRAY(SELECT CASE WHEN kk = l.level THEN f.t_last
						 ELSE (SELECT min(o.ts) FROM occ o WHERE o.v = l.v AND o.k = kk AND o.b = f.m) END
			   FROM generate_series(1, l.level) kk ORDER BY kk) AS times
  FROM plain_level l JOIN firsts f ON f.v = l.v
 WHERE l.level >= 1;
CREATE TEMP TABLE plain_visitors AS
SELECT c.*,
	   coalesce((SELECT min(e.client) FROM dogdb.web_events e
				  WHERE e.anonymous_id = c.v AND e.occurred_at = c.m AND e.event_name = 'page_view' AND e.page_path = '/'),
				'(none)') AS client,
	   EXISTS (SELECT FROM dogdb.web_events e, params p
				WHERE e.anonymous_id = c.v AND (e.event_name = ANY (p.exclusions) OR
												(e.event_name = 'page_view' AND e.page_path = ANY (p.exclusions)))
				  AND e.occurred_at BETWEEN c.times[1] AND c.times[c.level]) AS excluded,
	   c.level < 6 AND c.last_entry + (SELECT w FROM params) > (SELECT max(occurred_at) FROM dogdb.web_events) AS still_open,
	   (SELECT a.company_size FROM dogdb.accounts a
		 WHERE a.account_id = (SELECT e.account_id FROM dogdb.web_events e, params p
								WHERE e.anonymous_id = c.v AND e.account_id IS NOT NULL
								  AND e.occurred_at BETWEEN p.from_ts AND p.to_ts + p.w
								ORDER BY e.occurred_at DESC, e.account_id LIMIT 1)) AS company_size
  FROM plain_chain c;

SELECT ok((SELECT count(*) FROM plain_visitors) > 1000 AND (SELECT count(*) FROM plain_visitors WHERE level = 6) > 20
		  AND (SELECT count(*) FROM plain_visitors WHERE still_open) > 10,
		  'the data has entered, converted and in-progress visitors');
-- the aggregate per visitor equals the plain-SQL level and chain times
SELECT is((SELECT count(*) FROM (
	SELECT e.anonymous_id, dogdb_window_funnel_times(p.w, e.occurred_at,
			(e.event_name = 'page_view' AND e.page_path = '/') AND e.occurred_at < p.to_ts,
			e.event_name = 'page_view' AND e.page_path = '/signup', e.event_name = 'account_created',
			e.event_name = 'tier_selected', e.event_name = 'deployment_configured',
			e.event_name = 'page_view' AND e.page_path = '/dashboard') AS times
	  FROM dogdb.web_events e, params p
	 WHERE e.occurred_at >= p.from_ts AND e.occurred_at <= p.to_ts + p.w
	 GROUP BY 1) a
	FULL JOIN plain_chain c ON c.v = a.anonymous_id
	WHERE a.times IS DISTINCT FROM coalesce(c.times, '{}')), 0::bigint,
	'dogdb_window_funnel_times equals the plain-SQL chain (level and every time) for every visitor');

-- the report against the plain-SQL report
CREATE FUNCTION pg_temp.plain_report(seg_expr text, excl boolean) RETURNS TABLE (
	segment text, step_no int, users bigint, conversion_from_start numeric, conversion_from_previous numeric,
	drop_off bigint, is_largest_drop_off boolean, median numeric, p90 numeric, in_progress bigint)
LANGUAGE plpgsql AS $f$
BEGIN
	RETURN QUERY EXECUTE format($q$
	WITH pv AS (SELECT %s AS seg, * FROM plain_visitors WHERE NOT (%L AND excluded)),
	g AS (
		SELECT s.seg, k,
			   (SELECT count(*) FROM pv WHERE pv.seg IS NOT DISTINCT FROM s.seg AND level >= k) AS users,
			   (SELECT count(*) FROM pv WHERE pv.seg IS NOT DISTINCT FROM s.seg AND level = k AND still_open) AS open_k,
			   CASE WHEN k > 1 THEN (SELECT count(*) FROM pv WHERE pv.seg IS NOT DISTINCT FROM s.seg AND level = k - 1 AND NOT still_open) END AS dropped,
			   (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM times[k] - times[k - 1]))
				  FROM pv WHERE pv.seg IS NOT DISTINCT FROM s.seg AND level >= k AND k > 1) AS med,
			   (SELECT percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM times[k] - times[k - 1]))
				  FROM pv WHERE pv.seg IS NOT DISTINCT FROM s.seg AND level >= k AND k > 1) AS p90
		  FROM (SELECT DISTINCT %s AS seg FROM plain_visitors) s, generate_series(1, 6) k),
	r AS (SELECT g.*, CASE WHEN users + dropped > 0 AND dropped > 0 THEN dropped::numeric / (users + dropped) END AS rate FROM g)
	SELECT r.seg, r.k, r.users,
		   round(r.users::numeric / nullif((SELECT r1.users FROM r r1 WHERE r1.seg IS NOT DISTINCT FROM r.seg AND r1.k = 1), 0), 4),
		   CASE WHEN r.k > 1 THEN round(r.users::numeric / nullif(r.users + r.dropped, 0), 4) END,
		   r.dropped,
		   r.k = (SELECT r2.k FROM r r2 WHERE r2.seg IS NOT DISTINCT FROM r.seg AND r2.rate IS NOT NULL
				   ORDER BY r2.rate DESC, r2.k LIMIT 1) IS TRUE,
		   round(r.med::numeric, 3), round(r.p90::numeric, 3), r.open_k
	  FROM r ORDER BY 1 NULLS FIRST, 2$q$, seg_expr, excl, seg_expr);
END $f$;
CREATE FUNCTION pg_temp.report(breakdown text, excl text[]) RETURNS TABLE (
	segment text, step_no int, users bigint, conversion_from_start numeric, conversion_from_previous numeric,
	drop_off bigint, is_largest_drop_off boolean, median numeric, p90 numeric, in_progress bigint)
LANGUAGE sql AS $f$
	SELECT r.segment, r.step_no, r.users, r.conversion_from_start, r.conversion_from_previous, r.drop_off,
		   r.is_largest_drop_off, round(r.median_seconds_from_previous::numeric, 3),
		   round(r.p90_seconds_from_previous::numeric, 3), r.in_progress
	  FROM params p, dogdb_funnel_report(p.steps, p.from_ts, p.to_ts, p.w, breakdown, NULL, excl) r
	 WHERE r.step_no > 0
	 ORDER BY 1 NULLS FIRST, 2
$f$;
SELECT results_eq($$SELECT * FROM pg_temp.report(NULL, NULL)$$, $$SELECT * FROM pg_temp.plain_report('NULL::text', false)$$,
				  'report: equals the plain-SQL report');
SELECT results_eq($$SELECT * FROM pg_temp.report('client', NULL)$$, $$SELECT * FROM pg_temp.plain_report('client', false)$$,
				  'report by client (first touch): equals the plain-SQL report');
SELECT results_eq($$SELECT * FROM pg_temp.report('company_size', NULL)$$,
				  $$SELECT * FROM pg_temp.plain_report('coalesce(company_size, ''(none)'')', false)$$,
				  'report by company_size (the visitor''s account): equals the plain-SQL report');
SELECT results_eq($$SELECT * FROM pg_temp.report(NULL, ARRAY['/pricing'])$$, $$SELECT * FROM pg_temp.plain_report('NULL::text', true)$$,
				  'report with an exclusion: equals the plain-SQL report');
SELECT results_eq($$SELECT users FROM params p, dogdb_funnel_report(p.steps, p.from_ts, p.to_ts, p.w, NULL, NULL, p.exclusions) r WHERE step_no = 0$$,
				  $$SELECT count(*) FROM plain_visitors WHERE excluded$$, 'report: the excluded visitors are counted (step_no 0)');
SELECT is((SELECT count(*) FROM params p, dogdb_funnel_report(p.steps, p.from_ts, p.to_ts, p.w, 'tier') r WHERE step_no = 1),
		  4::bigint, 'report by tier: three plans and (none)');
SELECT results_eq($$SELECT segment, sum(users) FILTER (WHERE step_no = 1)::bigint FROM params p, dogdb_funnel_report(p.steps, p.from_ts, p.to_ts, p.w, 'properties.device') GROUP BY 1 ORDER BY 1$$,
				  $$SELECT d, count(*) FROM plain_visitors pv,
						LATERAL (SELECT min(e.properties ->> 'device') AS d FROM dogdb.web_events e
								  WHERE e.anonymous_id = pv.v AND e.occurred_at = pv.m AND e.page_path = '/' AND e.event_name = 'page_view') x
					 GROUP BY 1 ORDER BY 1$$,
				  'report by a properties key: the value at step 1');
-- the report's one C pass (dogdb_internal.funnel_tally) equals the route through the
-- per-visitor aggregate dogdb_funnel_visit, in several configurations
CREATE FUNCTION pg_temp.tally_by_aggregate(breakdown text, mode text, excl text[]) RETURNS TABLE (
	segment text, step_no integer, reached bigint, open_here bigint, dropped bigint, median_s float8, p90_s float8)
LANGUAGE sql AS $f$
	WITH fv AS (SELECT f.* FROM params p, dogdb_internal.funnel_visitors(p.steps, p.from_ts, p.to_ts, p.w, mode, excl, breakdown) f),
	segs AS (SELECT DISTINCT fv.segment FROM fv)
	SELECT s.segment, gs.n,
		   count(f.*) FILTER (WHERE f.level >= gs.n),
		   count(f.*) FILTER (WHERE f.level = gs.n AND f.still_open),
		   CASE WHEN gs.n > 1 THEN count(f.*) FILTER (WHERE f.level = gs.n - 1 AND NOT f.still_open) END,
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.times[gs.n] - f.times[gs.n - 1])) FILTER (WHERE f.level >= gs.n AND gs.n > 1),
		   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM f.times[gs.n] - f.times[gs.n - 1])) FILTER (WHERE f.level >= gs.n AND gs.n > 1)
	  FROM segs s CROSS JOIN generate_series(1, 6) gs(n)
	  LEFT JOIN fv f ON f.segment IS NOT DISTINCT FROM s.segment AND NOT f.excluded
	 GROUP BY 1, 2
	UNION ALL
	SELECT fv.segment, 0, count(*), NULL, NULL, NULL, NULL FROM fv WHERE excl IS NOT NULL AND fv.excluded GROUP BY 1
	ORDER BY 1 NULLS FIRST, 2
$f$;
CREATE FUNCTION pg_temp.tally_in_c(breakdown text, mode text, excl text[]) RETURNS SETOF record
LANGUAGE sql AS $f$
	SELECT t.* FROM params p, dogdb_internal.funnel_tally(p.steps, p.from_ts, p.to_ts, p.w, mode, excl, breakdown) t
	 ORDER BY 1 NULLS FIRST, 2
$f$;
SELECT results_eq($$SELECT * FROM pg_temp.tally_in_c(NULL, NULL, NULL) t(a text, b int, c bigint, d bigint, e bigint, f float8, g float8)$$,
				  $$SELECT * FROM pg_temp.tally_by_aggregate(NULL, NULL, NULL)$$,
				  'report counts in C = through dogdb_funnel_visit (no breakdown)');
SELECT results_eq($$SELECT * FROM pg_temp.tally_in_c('client', 'strict_once', ARRAY['/pricing', 'page_ping']) t(a text, b int, c bigint, d bigint, e bigint, f float8, g float8)$$,
				  $$SELECT * FROM pg_temp.tally_by_aggregate('client', 'strict_once', ARRAY['/pricing', 'page_ping'])$$,
				  'report counts in C = through dogdb_funnel_visit (client, strict_once, exclusions)');
SELECT results_eq($$SELECT * FROM pg_temp.tally_in_c('properties.device', 'strict_order,strict_increase', NULL) t(a text, b int, c bigint, d bigint, e bigint, f float8, g float8)$$,
				  $$SELECT * FROM pg_temp.tally_by_aggregate('properties.device', 'strict_order,strict_increase', NULL)$$,
				  'report counts in C = through dogdb_funnel_visit (a properties key, two modes)');
SELECT throws_ok($$SELECT * FROM params p, dogdb_internal.funnel_tally(p.steps, p.from_ts, p.to_ts, p.w, NULL, NULL, 'tier')$$,
				 '22023', NULL, 'report counts in C: not for breakdowns by account');
SELECT throws_ok($$SELECT * FROM dogdb_internal.funnel_tally(ARRAY['a', ''], '2024-01-01', '2024-01-02', '1 day', NULL, NULL, NULL)$$,
				 '22023', NULL, 'report counts in C: arguments checked');
-- a mode: the report's users per step equal the aggregate's levels in that mode
SELECT results_eq($$SELECT users FROM params p, dogdb_funnel_report(p.steps, p.from_ts, p.to_ts, p.w, NULL, 'strict_order,strict_deduplication') ORDER BY step_no$$,
	$$WITH lv AS (
		SELECT dogdb_window_funnel(p.w, 'strict_order,strict_deduplication', e.occurred_at,
				(e.event_name = 'page_view' AND e.page_path = '/') AND e.occurred_at < p.to_ts,
				e.event_name = 'page_view' AND e.page_path = '/signup', e.event_name = 'account_created',
				e.event_name = 'tier_selected', e.event_name = 'deployment_configured',
				e.event_name = 'page_view' AND e.page_path = '/dashboard') AS level
		  FROM dogdb.web_events e, params p
		 WHERE e.occurred_at >= p.from_ts AND e.occurred_at <= p.to_ts + p.w GROUP BY e.anonymous_id)
	  SELECT count(*) FILTER (WHERE level >= k) FROM lv, generate_series(1, 6) k GROUP BY k ORDER BY k$$,
	'report in strict_order,strict_deduplication: users per step equal the aggregate''s levels');

-- the trend against plain SQL
SELECT results_eq($$SELECT period_start, entered, converted, conversion_rate, in_progress
					  FROM params p, dogdb_funnel_trend(p.steps, p.from_ts, p.to_ts, p.w, 'week')$$,
				  $$SELECT date_trunc('week', times[1] AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*),
						   count(*) FILTER (WHERE level = 6),
						   round(count(*) FILTER (WHERE level = 6)::numeric / nullif(count(*) FILTER (WHERE NOT still_open), 0), 4),
						   count(*) FILTER (WHERE still_open)
					  FROM plain_visitors GROUP BY 1 ORDER BY 1$$,
				  'trend by week: equals the plain-SQL computation');
SELECT results_eq($$SELECT period_start, segment, entered FROM params p, dogdb_funnel_trend(p.steps, p.from_ts, p.to_ts, p.w, 'day', NULL, 'client')$$,
				  $$SELECT date_trunc('day', times[1] AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', client, count(*)
					  FROM plain_visitors GROUP BY 1, 2 ORDER BY 1, 2$$,
				  'trend by day and client: entered equals the plain-SQL computation');

-- page times against plain SQL (correlated subqueries, not window functions)
CREATE TEMP TABLE pev AS
SELECT e.*, e.session_id IS NULL AS gapped FROM dogdb.web_events e WHERE e.occurred_at >= '2024-01-03Z';
CREATE INDEX ON pev (anonymous_id, occurred_at);
ANALYZE pev;
CREATE TEMP TABLE pev_s AS
SELECT p.*,
	   CASE WHEN NOT p.gapped THEN 't:' || p.session_id
			ELSE 'g:' || (SELECT count(*) FROM pev q
						   WHERE q.anonymous_id = p.anonymous_id AND q.gapped AND (q.occurred_at, q.event_id) <= (p.occurred_at, p.event_id)
							 AND NOT EXISTS (SELECT FROM pev r WHERE r.anonymous_id = q.anonymous_id AND r.gapped
												AND (r.occurred_at, r.event_id) < (q.occurred_at, q.event_id)
												AND r.occurred_at >= q.occurred_at - interval '30 minutes')) END AS skey
  FROM pev p WHERE p.event_name IN ('page_view', 'page_ping');
CREATE INDEX ON pev_s (anonymous_id, skey, occurred_at);
ANALYZE pev_s;
CREATE TEMP TABLE plain_views AS
SELECT p.page_path, p.occurred_at AS ts, n.next_ts,
	   (SELECT 5 + 10 * count(DISTINCT floor(extract(epoch FROM q.occurred_at) / 10)) FROM pev_s q
		 WHERE q.anonymous_id = p.anonymous_id AND q.skey = p.skey AND q.event_name = 'page_ping'
		   AND q.occurred_at >= p.occurred_at AND (n.next_ts IS NULL OR q.occurred_at < n.next_ts)
		HAVING count(*) > 0) AS engaged
  FROM pev_s p,
	   LATERAL (SELECT min(q.occurred_at) AS next_ts FROM pev_s q
				 WHERE q.anonymous_id = p.anonymous_id AND q.skey = p.skey AND q.event_name = 'page_view'
				   AND (q.occurred_at, q.event_id) > (p.occurred_at, p.event_id)) n
 WHERE p.event_name = 'page_view' AND p.occurred_at < '2024-01-08Z';
SELECT results_eq($$SELECT page_path, views, timed_views, round(avg_seconds::numeric, 6), round(median_seconds::numeric, 6), round(p90_seconds::numeric, 6)
					  FROM dogdb_page_time_summary('2024-01-03Z', '2024-01-08Z') ORDER BY 1$$,
				  $$SELECT page_path, count(*), count(s), round(avg(s)::numeric, 6),
						   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY s)::numeric, 6),
						   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY s)::numeric, 6)
					  FROM (SELECT page_path, coalesce(extract(epoch FROM next_ts - ts)::double precision, engaged) AS s FROM plain_views) x
					 GROUP BY 1 ORDER BY 1$$,
				  'page times: equal the plain-SQL computation (sessions, next page view, heartbeat rule)');
SELECT is((SELECT count(*) FROM dogdb_page_views('2024-01-03Z', '2024-01-08Z') WHERE is_last_in_session AND engaged_seconds IS NULL AND seconds_on_page IS NOT NULL),
		  0::bigint, 'the last page of a session without pings gets NULL, never a made-up time');
SELECT results_eq($$SELECT page_path FROM dogdb_page_time_summary('2024-01-03Z', '2024-01-08Z', ARRAY['/signup', '/'])$$,
				  $$VALUES ('/signup'), ('/')$$, 'page_time_summary: the pages asked for, in their order');

-- bad arguments (22023)
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY[]::text[], '2024-01-01', '2024-01-02')$$, '22023', NULL, 'report: no steps');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(array_fill('x'::text, ARRAY[65]), '2024-01-01', '2024-01-02')$$, '22023', NULL, 'report: 65 steps');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY['a', NULL], '2024-01-01', '2024-01-02')$$, '22023', NULL, 'report: a NULL step');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY['a'], '2024-01-02', '2024-01-01')$$, '22023', NULL, 'report: from_ts after to_ts');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY['a'], '-infinity', '2024-01-01')$$, '22023', NULL, 'report: infinite from_ts');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY['a'], '2024-01-01', '2024-01-02', '0 days')$$, '22023', NULL, 'report: empty window');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY['a'], '2024-01-01', '2024-01-02', '1 day', 'colour')$$, '22023', NULL, 'report: unknown breakdown');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_report(ARRAY['a'], '2024-01-01', '2024-01-02', '1 day', NULL, 'strict')$$, '22023', NULL, 'report: unknown mode');
SELECT throws_ok($$SELECT * FROM dogdb_funnel_trend(ARRAY['a'], '2024-01-01', '2024-01-02', '1 day', 'fortnight')$$, '22023', NULL, 'trend: unknown period');
SELECT throws_ok($$SELECT * FROM dogdb_page_time_summary('2024-01-01', '2024-01-02', NULL, '0 minutes')$$, '22023', NULL, 'page times: empty session gap');
SELECT throws_ok($$SELECT * FROM dogdb_page_time_summary(NULL, '2024-01-02')$$, '22023', NULL, 'page times: NULL from_ts');
SELECT throws_ok($$SELECT * FROM dogdb_generate_demo_web_events(0)$$, '22023', NULL, 'demo: no visitors');
SELECT ok(NOT has_function_privilege('public', 'dogdb_load_web_events(regclass)', 'EXECUTE'), 'the loader is not for PUBLIC');

SELECT * FROM finish();
ROLLBACK;
