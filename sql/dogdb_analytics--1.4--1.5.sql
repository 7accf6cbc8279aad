/* dogdb_analytics--1.4--1.5.sql: faster ingestion paths, the KPI engine's cold path, Citus completion (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.5'" to load this file. \quit

-- [funnel2] dogdb_funnel_report counts in one ordered pass of C over the
-- events (dogdb_internal.funnel_tally); breakdowns by account keep the
-- route through dogdb_funnel_visit
-- the report's counts in one ordered pass of C over the events (breakdowns taken from the events)
-- (STABLE: reads the tables; PARALLEL RESTRICTED: it pins search_path)
CREATE FUNCTION dogdb_internal.funnel_tally(steps text[], from_ts timestamptz, to_ts timestamptz, "window" interval,
									mode text, exclusions text[], breakdown text)
	RETURNS TABLE (segment text, step_no integer, reached bigint, open_here bigint, dropped bigint,
				   median_s double precision, p90_s double precision)
	AS 'MODULE_PATHNAME', 'dogdb_funnel_tally'
	LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dogdb_internal.funnel_tally(text[], timestamptz, timestamptz, interval, text, text[], text) IS 'Per segment and step of dogdb_funnel_report: users, in progress, closed drop-offs, median and p90 seconds from the previous step; step 0 counts excluded visitors (not for company_size/tier)';

-- STABLE: reads the tables
CREATE OR REPLACE FUNCTION dogdb_funnel_report(steps text[], from_ts timestamptz, to_ts timestamptz,
									"window" interval DEFAULT '1 day', breakdown text DEFAULT NULL,
									mode text DEFAULT NULL, exclusions text[] DEFAULT NULL)
	RETURNS TABLE (segment text, step_no integer, step text, users bigint, conversion_from_start numeric,
				   conversion_from_previous numeric, drop_off bigint, is_largest_drop_off boolean,
				   median_seconds_from_previous double precision, p90_seconds_from_previous double precision,
				   in_progress bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb_internal.funnel_check_arguments(steps, from_ts, to_ts, "window", mode, exclusions, breakdown);
	-- per segment and step: reached, open_here, dropped (NULL at step 1), median_s, p90_s;
	-- step 0: the excluded visitors.  In C from the events; by account through the aggregate.
	RETURN QUERY
	WITH fv AS (
		SELECT * FROM dogdb_internal.funnel_visitors(steps, from_ts, to_ts, "window", mode, exclusions, breakdown)
		 WHERE breakdown IN ('company_size', 'tier')),
	counted AS (
		SELECT f.segment AS seg, gs.n AS k,
			   count(*) FILTER (WHERE f.level >= gs.n) AS reached,
			   count(*) FILTER (WHERE f.level = gs.n AND f.still_open) AS open_here,
			   count(*) FILTER (WHERE f.level = gs.n - 1 AND NOT f.still_open) AS dropped,
			   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.times[gs.n] - f.times[gs.n - 1]))
				   FILTER (WHERE f.level >= gs.n AND gs.n > 1) AS median_s,
			   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM f.times[gs.n] - f.times[gs.n - 1]))
				   FILTER (WHERE f.level >= gs.n AND gs.n > 1) AS p90_s
		  FROM fv f CROSS JOIN generate_series(1, cardinality(steps)) gs(n)
		 WHERE NOT f.excluded
		 GROUP BY 1, 2),
	segs AS (SELECT DISTINCT f.segment AS seg FROM fv f),
	tally AS (
		SELECT t.segment AS seg, t.step_no AS k, t.reached, t.open_here, t.dropped, t.median_s, t.p90_s
		  FROM dogdb_internal.funnel_tally(steps, from_ts, to_ts, "window", mode, exclusions, breakdown) t
		 WHERE breakdown IS NULL OR breakdown NOT IN ('company_size', 'tier')
		UNION ALL
		SELECT s.seg, gs.n, coalesce(c.reached, 0), coalesce(c.open_here, 0),
			   CASE WHEN gs.n > 1 THEN coalesce(c.dropped, 0) END, c.median_s, c.p90_s
		  FROM segs s CROSS JOIN generate_series(1, cardinality(steps)) gs(n)
		  LEFT JOIN counted c ON c.seg IS NOT DISTINCT FROM s.seg AND c.k = gs.n
		UNION ALL
		SELECT f.segment, 0, count(*), NULL, NULL, NULL, NULL
		  FROM fv f WHERE exclusions IS NOT NULL AND f.excluded GROUP BY f.segment),
	grid AS (SELECT * FROM tally WHERE tally.k > 0),
	rated AS (
		SELECT g.*, first_value(g.reached) OVER w1 AS first_reached,
			   lag(g.reached) OVER w1 AS prev_reached,
			   CASE WHEN g.reached + g.dropped > 0 THEN g.dropped::numeric / (g.reached + g.dropped) END AS drop_rate
		  FROM grid g WINDOW w1 AS (PARTITION BY g.seg ORDER BY g.k)),
	largest AS (
		SELECT DISTINCT ON (r.seg) r.seg, r.k FROM rated r
		 WHERE r.drop_rate IS NOT NULL AND r.dropped > 0
		 ORDER BY r.seg, r.drop_rate DESC, r.k)
	SELECT r.seg, r.k, steps[r.k], r.reached,
		   round(r.reached::numeric / nullif(r.first_reached, 0), 4),
		   CASE WHEN r.k > 1 THEN round(r.reached::numeric / nullif(r.reached + r.dropped, 0), 4) END,
		   r.dropped,
		   coalesce(l.k = r.k, false),
		   r.median_s, r.p90_s, r.open_here
	  FROM rated r LEFT JOIN largest l ON l.seg IS NOT DISTINCT FROM r.seg
	UNION ALL
	SELECT t.seg, 0, '(excluded)', t.reached, NULL, NULL, NULL, false, NULL, NULL, NULL
	  FROM tally t WHERE t.k = 0
	ORDER BY 1 NULLS FIRST, 2;
END
$fn$;
ALTER FUNCTION dogdb_funnel_report(text[], timestamptz, timestamptz, interval, text, text, text[])
	SECURITY DEFINER PARALLEL RESTRICTED;
-- [funnel2] deserializing a window funnel state is dear: grouped by visitor
-- the planner keeps the serial plan over the visitor/time index
ALTER FUNCTION dogdb_window_funnel_deserialfn(bytea, internal) COST 1000;
