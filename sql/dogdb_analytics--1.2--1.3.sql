/* dogdb_analytics--1.2--1.3.sql: hardening and renovation (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.3'" to load this file. \quit

--
-- [encoding] the extension needs a UTF-8 database
--

--
-- [hardening] aggregates, bitmap readers, license parsing
--

--
-- [import] one legacy-import pipeline through the bulk writer
--

--
-- [billing] invoices: privileges, month range
--

--
-- [kpi] KPI engine: facts keyed by plan id, change tracking, privileges
--

--
-- [dump] pg_dump keeps every row, seeded ones included
--

--
-- [funnel] web events, loader, window funnel aggregates, sessions, reports, demo
--

-- One row per tracker event.  The visitor id (the distribution key when the
-- table is spread over shards) leads the primary key and every index.
CREATE TABLE dogdb.web_events (
	anonymous_id text NOT NULL CHECK (anonymous_id <> ''),
	event_id	text NOT NULL CHECK (event_id <> ''),
	occurred_at timestamptz NOT NULL CHECK (isfinite(occurred_at)),
	session_id	text,
	account_id	bigint,
	event_name	text NOT NULL CHECK (event_name <> ''),
	page_path	text,
	referrer	text,
	client		text,
	campaign	text,
	properties	jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(properties) = 'object'),
	PRIMARY KEY (anonymous_id, event_id),
	CHECK (event_name NOT IN ('page_view', 'page_ping') OR (page_path IS NOT NULL AND page_path LIKE '/%'))
);
COMMENT ON TABLE dogdb.web_events IS 'Web events (Snowplow-style page views, page pings and actions); each event id stored once per visitor; load with dogdb_load_web_events()';
COMMENT ON COLUMN dogdb.web_events.anonymous_id IS 'The visitor (tracker cookie id); the distribution key';
COMMENT ON COLUMN dogdb.web_events.session_id IS 'The tracker''s session id, NULL if it had none (sessions then end after an inactivity gap)';
COMMENT ON COLUMN dogdb.web_events.account_id IS 'The account the visitor is signed in as, once there is one (not a foreign key: events may arrive before the account)';
COMMENT ON COLUMN dogdb.web_events.event_name IS 'page_view, page_ping (heartbeat while a page stays open) or the name of an action such as account_created';
COMMENT ON COLUMN dogdb.web_events.client IS 'The acquisition source (client)';
-- per-visitor time-ordered scans; INCLUDE lets a funnel over event names and pages read the index alone
CREATE INDEX web_events_visitor_time ON dogdb.web_events (anonymous_id, occurred_at) INCLUDE (event_name, page_path);
-- the newest event (the censoring horizon) and time-range scans
CREATE INDEX web_events_time ON dogdb.web_events (occurred_at);
SELECT pg_catalog.pg_extension_config_dump('dogdb.web_events', '');

-- VOLATILE: writes web_events and import_rejects
CREATE FUNCTION dogdb_load_web_events(source regclass, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	cols CONSTANT text[] := ARRAY['event_id', 'occurred_at', 'anonymous_id', 'session_id', 'account_id',
								  'event_name', 'page_path', 'referrer', 'client', 'campaign', 'properties'];
	missing text[];
BEGIN
	IF source IS NULL OR source = 'dogdb.web_events'::regclass OR source = 'dogdb.import_rejects'::regclass THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = format('source must be a staging table other than dogdb.web_events and dogdb.import_rejects, not %s',
							 coalesce(source::text, 'NULL')),
			HINT = 'COPY the events into a table with the columns of dogdb.web_events, then pass it, such as dogdb_load_web_events(''web_events_staging'').';
	END IF;
	SELECT array_agg(c ORDER BY o) INTO missing
	  FROM unnest(cols) WITH ORDINALITY u(c, o)
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
						WHERE a.attrelid = source AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = format('source must have the columns %s; %s lacks %s',
							 array_to_string(cols, ', '), source, array_to_string(missing, ', ')),
			HINT = 'Create the staging table with CREATE TABLE ... (LIKE dogdb.web_events) or give it these columns (any of them may be NULL).';
	END IF;
	-- one loader at a time (the lock conflicts with itself), readers go on
	LOCK TABLE dogdb.web_events IN SHARE ROW EXCLUSIVE MODE;
	EXECUTE format($q$
		WITH src AS (
			SELECT s.event_id::text AS event_id, s.occurred_at::timestamptz AS occurred_at,
				   s.anonymous_id::text AS anonymous_id, s.session_id::text AS session_id,
				   s.account_id::bigint AS account_id, s.event_name::text AS event_name,
				   s.page_path::text AS page_path, s.referrer::text AS referrer, s.client::text AS client,
				   s.campaign::text AS campaign, s.properties::jsonb AS properties
			  FROM %s s),
		checked AS (
			SELECT src.*,
				   CASE WHEN anonymous_id IS NULL OR anonymous_id = '' THEN 'no visitor id (anonymous_id)'
						WHEN event_id IS NULL OR event_id = '' THEN 'no event id'
						WHEN occurred_at IS NULL THEN 'no time (occurred_at is NULL)'
						WHEN NOT isfinite(occurred_at) THEN 'infinite time (occurred_at)'
						WHEN event_name IS NULL OR event_name = '' THEN 'unknown event shape: no event_name'
						WHEN event_name IN ('page_view', 'page_ping') AND page_path IS NULL THEN
							 'unknown event shape: ' || event_name || ' without page_path'
						WHEN event_name IN ('page_view', 'page_ping') AND page_path NOT LIKE '/%%' THEN
							 'unknown event shape: page_path does not start with /'
						WHEN properties IS NOT NULL AND jsonb_typeof(properties) <> 'object' THEN
							 'unknown event shape: properties is not a JSON object'
				   END AS reason
			  FROM src),
		rejects AS (
			INSERT INTO dogdb.import_rejects (source_table, source_key, source_row, reason)
			SELECT 'web_events', md5(j::text), j, reason
			  FROM (SELECT jsonb_build_object('event_id', event_id, 'occurred_at', occurred_at, 'anonymous_id', anonymous_id,
											  'session_id', session_id, 'account_id', account_id, 'event_name', event_name,
											  'page_path', page_path, 'referrer', referrer, 'client', client,
											  'campaign', campaign, 'properties', properties) AS j, reason
					  FROM checked WHERE reason IS NOT NULL) b
			ON CONFLICT (source_table, source_key) DO NOTHING),
		fresh AS (
			INSERT INTO dogdb.web_events (anonymous_id, event_id, occurred_at, session_id, account_id,
										  event_name, page_path, referrer, client, campaign, properties)
			SELECT DISTINCT ON (c.anonymous_id, c.event_id)
				   c.anonymous_id, c.event_id, c.occurred_at, c.session_id, c.account_id, c.event_name,
				   c.page_path, c.referrer, c.client, c.campaign, coalesce(c.properties, '{}')
			  FROM checked c
			 WHERE c.reason IS NULL
			   AND NOT EXISTS (SELECT FROM dogdb.web_events w
								WHERE w.anonymous_id OPERATOR(pg_catalog.=) c.anonymous_id
								  AND w.event_id OPERATOR(pg_catalog.=) c.event_id)
			 ORDER BY c.anonymous_id, c.event_id, c.occurred_at, c.event_name, c.page_path
			RETURNING 1)
		SELECT (SELECT count(*) FROM fresh),
			   count(*) FILTER (WHERE reason IS NULL) - (SELECT count(*) FROM fresh),
			   count(*) FILTER (WHERE reason IS NOT NULL)
		  FROM checked$q$, source)
	INTO loaded, duplicates, rejected;
END
$fn$;
COMMENT ON FUNCTION dogdb_load_web_events(regclass) IS 'Load web events from a staging table: each (visitor, event id) stored once (later copies count as duplicates), malformed rows to dogdb.import_rejects with the reason; returns the counts';
REVOKE ALL ON FUNCTION dogdb_load_web_events(regclass) FROM PUBLIC;

-- the window funnel aggregates (C): not STRICT, NULL times are skipped and NULL conditions are false
CREATE FUNCTION dogdb_window_funnel_transfn(internal, interval, timestamptz, VARIADIC boolean[]) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_transfn(internal, interval, timestamptz, boolean[]) IS 'Transition function of dogdb_window_funnel and dogdb_window_funnel_times';
CREATE FUNCTION dogdb_window_funnel_transfn(internal, interval, text, timestamptz, VARIADIC boolean[]) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_transfn(internal, interval, text, timestamptz, boolean[]) IS 'Transition function of dogdb_window_funnel and dogdb_window_funnel_times with a mode';
CREATE FUNCTION dogdb_window_funnel_combinefn(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_combinefn(internal, internal) IS 'Combine function of the window funnel aggregates (concatenates events)';
CREATE FUNCTION dogdb_window_funnel_serialfn(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_serialfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_serialfn(internal) IS 'Serialize function of the window funnel aggregates';
CREATE FUNCTION dogdb_window_funnel_deserialfn(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_deserialfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_deserialfn(bytea, internal) IS 'Deserialize function of the window funnel aggregates (validates every byte)';
CREATE FUNCTION dogdb_window_funnel_finalfn(internal) RETURNS integer
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_finalfn(internal) IS 'Final function of dogdb_window_funnel: the level';
CREATE FUNCTION dogdb_window_funnel_times_finalfn(internal) RETURNS timestamptz[]
	AS 'MODULE_PATHNAME', 'dogdb_window_funnel_times_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_window_funnel_times_finalfn(internal) IS 'Final function of dogdb_window_funnel_times: the best chain''s times';

CREATE AGGREGATE dogdb_window_funnel("window" interval, ts timestamptz, VARIADIC steps boolean[]) (
	SFUNC = dogdb_window_funnel_transfn, STYPE = internal, FINALFUNC = dogdb_window_funnel_finalfn,
	COMBINEFUNC = dogdb_window_funnel_combinefn, SERIALFUNC = dogdb_window_funnel_serialfn,
	DESERIALFUNC = dogdb_window_funnel_deserialfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE dogdb_window_funnel(interval, timestamptz, VARIADIC boolean[]) IS 'Highest step (0..N, N <= 64) reached in order within the window of step 1, the maximum over all chains (README "Funnels")';
CREATE AGGREGATE dogdb_window_funnel("window" interval, mode text, ts timestamptz, VARIADIC steps boolean[]) (
	SFUNC = dogdb_window_funnel_transfn, STYPE = internal, FINALFUNC = dogdb_window_funnel_finalfn,
	COMBINEFUNC = dogdb_window_funnel_combinefn, SERIALFUNC = dogdb_window_funnel_serialfn,
	DESERIALFUNC = dogdb_window_funnel_deserialfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE dogdb_window_funnel(interval, text, timestamptz, VARIADIC boolean[]) IS 'dogdb_window_funnel with modes strict_order, strict_deduplication, strict_increase, strict_once (comma-separated)';
CREATE AGGREGATE dogdb_window_funnel_times("window" interval, ts timestamptz, VARIADIC steps boolean[]) (
	SFUNC = dogdb_window_funnel_transfn, STYPE = internal, FINALFUNC = dogdb_window_funnel_times_finalfn,
	COMBINEFUNC = dogdb_window_funnel_combinefn, SERIALFUNC = dogdb_window_funnel_serialfn,
	DESERIALFUNC = dogdb_window_funnel_deserialfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE dogdb_window_funnel_times(interval, timestamptz, VARIADIC boolean[]) IS 'Times of the steps of the chain dogdb_window_funnel reports (the first to reach its level)';
CREATE AGGREGATE dogdb_window_funnel_times("window" interval, mode text, ts timestamptz, VARIADIC steps boolean[]) (
	SFUNC = dogdb_window_funnel_transfn, STYPE = internal, FINALFUNC = dogdb_window_funnel_times_finalfn,
	COMBINEFUNC = dogdb_window_funnel_combinefn, SERIALFUNC = dogdb_window_funnel_serialfn,
	DESERIALFUNC = dogdb_window_funnel_deserialfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE dogdb_window_funnel_times(interval, text, timestamptz, VARIADIC boolean[]) IS 'dogdb_window_funnel_times with modes';

-- one visitor's funnel (dogdb_funnel_visit), behind the report and the trend
CREATE TYPE dogdb.funnel_visit AS (level integer, times timestamptz[], segment text, excluded boolean,
								   last_entry timestamptz, account_id bigint);
COMMENT ON TYPE dogdb.funnel_visit IS 'One visitor''s funnel: the level, the best chain''s times, the segment at step 1, whether an exclusion event fell inside the chain, the last step-1 time in the range, the account';
CREATE FUNCTION dogdb_funnel_visit_transfn(internal, interval, text, text[], text[], timestamptz, timestamptz,
										   timestamptz, text, text, text, bigint) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_funnel_visit_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_visit_transfn(internal, interval, text, text[], text[], timestamptz, timestamptz, timestamptz, text, text, text, bigint) IS 'Transition function of dogdb_funnel_visit';
CREATE FUNCTION dogdb_funnel_visit_finalfn(internal) RETURNS dogdb.funnel_visit
	AS 'MODULE_PATHNAME', 'dogdb_funnel_visit_finalfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_visit_finalfn(internal) IS 'Final function of dogdb_funnel_visit';
CREATE FUNCTION dogdb_funnel_visit_combinefn(internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_funnel_visit_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_visit_combinefn(internal, internal) IS 'Combine function of dogdb_funnel_visit';
CREATE FUNCTION dogdb_funnel_visit_serialfn(internal) RETURNS bytea
	AS 'MODULE_PATHNAME', 'dogdb_funnel_visit_serialfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_visit_serialfn(internal) IS 'Serialize function of dogdb_funnel_visit';
CREATE FUNCTION dogdb_funnel_visit_deserialfn(bytea, internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_funnel_visit_deserialfn'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_visit_deserialfn(bytea, internal) IS 'Deserialize function of dogdb_funnel_visit (validates every byte)';
CREATE AGGREGATE dogdb_funnel_visit("window" interval, mode text, steps text[], exclusions text[],
									from_ts timestamptz, to_ts timestamptz, ts timestamptz, event_name text,
									page_path text, segment text, account_id bigint) (
	SFUNC = dogdb_funnel_visit_transfn, STYPE = internal, FINALFUNC = dogdb_funnel_visit_finalfn,
	COMBINEFUNC = dogdb_funnel_visit_combinefn, SERIALFUNC = dogdb_funnel_visit_serialfn,
	DESERIALFUNC = dogdb_funnel_visit_deserialfn, PARALLEL = SAFE
);
COMMENT ON AGGREGATE dogdb_funnel_visit(interval, text, text[], text[], timestamptz, timestamptz, timestamptz, text, text, text, bigint) IS 'One visitor''s funnel over their web events: step k is an event name or the path of a page view; entry in [from_ts, to_ts) (README "Funnels")';

CREATE FUNCTION dogdb.funnel_check_arguments(steps text[], from_ts timestamptz, to_ts timestamptz, "window" interval,
											 mode text, exclusions text[], breakdown text) RETURNS void
	AS 'MODULE_PATHNAME', 'dogdb_funnel_check_arguments'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb.funnel_check_arguments(text[], timestamptz, timestamptz, interval, text, text[], text) IS 'Check the arguments of dogdb_funnel_report (22023 with the allowed values)';
CREATE FUNCTION dogdb.funnel_check_arguments(steps text[], from_ts timestamptz, to_ts timestamptz, "window" interval,
											 mode text, exclusions text[], breakdown text, period text) RETURNS void
	AS 'MODULE_PATHNAME', 'dogdb_funnel_check_arguments'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb.funnel_check_arguments(text[], timestamptz, timestamptz, interval, text, text[], text, text) IS 'Check the arguments of dogdb_funnel_trend (22023 with the allowed values)';

-- the visitors who entered the funnel, with their segment and whether their window is still open
-- (STABLE: reads the tables)
CREATE FUNCTION dogdb.funnel_visitors(steps text[], from_ts timestamptz, to_ts timestamptz, "window" interval,
									  mode text, exclusions text[], breakdown text)
	RETURNS TABLE (segment text, level integer, times timestamptz[], excluded boolean, still_open boolean)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.funnel_check_arguments(steps, from_ts, to_ts, "window", mode, exclusions, breakdown);
	-- PL/pgSQL, not SQL: RETURN QUERY plans with the values and may run in parallel
	RETURN QUERY
	WITH v AS (
		SELECT @extschema@.dogdb_funnel_visit("window", mode, steps, exclusions, from_ts, to_ts, e.occurred_at, e.event_name,
								  e.page_path,
								  CASE breakdown WHEN 'client' THEN e.client WHEN 'campaign' THEN e.campaign
									   ELSE CASE WHEN breakdown LIKE 'properties.%' THEN e.properties ->> substr(breakdown, 12) END
								  END, e.account_id) AS r
		  FROM dogdb.web_events e
		 WHERE e.occurred_at >= from_ts AND e.occurred_at <= to_ts + "window"
		 GROUP BY e.anonymous_id),
	horizon AS (SELECT max(occurred_at) AS h FROM dogdb.web_events)
	SELECT CASE WHEN breakdown IS NULL THEN NULL
				WHEN breakdown = 'company_size' THEN coalesce(a.company_size, '(none)')
				WHEN breakdown = 'tier' THEN coalesce(
					(SELECT p.name FROM dogdb.subscriptions s JOIN dogdb.pricing_plans p ON p.plan_id = s.plan_id
					  WHERE s.account_id = (v.r).account_id ORDER BY s.valid_from DESC LIMIT 1), '(none)')
				ELSE coalesce((v.r).segment, '(none)') END,
		   (v.r).level, (v.r).times, (v.r).excluded,
		   (v.r).level < cardinality(steps) AND (v.r).last_entry + "window" > horizon.h
	  FROM v CROSS JOIN horizon
	  LEFT JOIN dogdb.accounts a ON a.account_id = (v.r).account_id AND breakdown = 'company_size'
	 WHERE (v.r).level >= 1;
END
$fn$;
COMMENT ON FUNCTION dogdb.funnel_visitors(text[], timestamptz, timestamptz, interval, text, text[], text) IS 'The visitors who did step 1 in [from_ts, to_ts): segment, level, chain times, excluded, window still open at the newest event';

-- STABLE: reads the tables
CREATE FUNCTION dogdb_funnel_report(steps text[], from_ts timestamptz, to_ts timestamptz,
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
	PERFORM dogdb.funnel_check_arguments(steps, from_ts, to_ts, "window", mode, exclusions, breakdown);
	RETURN QUERY
	WITH fv AS (
		SELECT * FROM dogdb.funnel_visitors(steps, from_ts, to_ts, "window", mode, exclusions, breakdown)),
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
	grid AS (
		SELECT s.seg, gs.n AS k, coalesce(c.reached, 0) AS reached, coalesce(c.open_here, 0) AS open_here,
			   CASE WHEN gs.n > 1 THEN coalesce(c.dropped, 0) END AS dropped, c.median_s, c.p90_s
		  FROM segs s CROSS JOIN generate_series(1, cardinality(steps)) gs(n)
		  LEFT JOIN counted c ON c.seg IS NOT DISTINCT FROM s.seg AND c.k = gs.n),
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
	SELECT f.segment, 0, '(excluded)', count(*), NULL, NULL, NULL, false, NULL, NULL, NULL
	  FROM fv f WHERE exclusions IS NOT NULL AND f.excluded GROUP BY f.segment
	ORDER BY 1 NULLS FIRST, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_funnel_report(text[], timestamptz, timestamptz, interval, text, text, text[]) IS 'Funnel per segment and step: users, conversion, closed drop-off, the largest drop-off, time from the previous step, visitors still in progress; step_no 0 counts excluded visitors (README "Funnels")';

-- STABLE: reads the tables
CREATE FUNCTION dogdb_funnel_trend(steps text[], from_ts timestamptz, to_ts timestamptz,
								   "window" interval DEFAULT '1 day', period text DEFAULT 'week',
								   mode text DEFAULT NULL, breakdown text DEFAULT NULL)
	RETURNS TABLE (period_start timestamptz, segment text, entered bigint, converted bigint,
				   conversion_rate numeric, in_progress bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.funnel_check_arguments(steps, from_ts, to_ts, "window", mode, NULL, breakdown, period);
	RETURN QUERY
	SELECT date_trunc(period, f.times[1] AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', f.segment, count(*),
		   count(*) FILTER (WHERE f.level = cardinality(steps)),
		   round(count(*) FILTER (WHERE f.level = cardinality(steps))::numeric
				 / nullif(count(*) FILTER (WHERE NOT f.still_open), 0), 4),
		   count(*) FILTER (WHERE f.still_open)
	  FROM dogdb.funnel_visitors(steps, from_ts, to_ts, "window", mode, NULL, breakdown) f
	 GROUP BY 1, 2 ORDER BY 1, 2 NULLS FIRST;
END
$fn$;
COMMENT ON FUNCTION dogdb_funnel_trend(text[], timestamptz, timestamptz, interval, text, text, text) IS 'Conversion by the UTC day, week or month of entry (step 1): entered, converted (all steps), rate among visitors whose window closed, in progress';

-- Sessions and time on page.  A session is the tracker's session id when
-- the event has one, else a new one after session_gap of inactivity
-- (any event of the visitor without a tracker session).  A page view lasts
-- until the next page view of its session; the last page of a session gets
-- its engaged time from page pings (heartbeat rule), or NULL.
-- STABLE: reads the tables
CREATE FUNCTION dogdb_page_views(from_ts timestamptz, to_ts timestamptz, session_gap interval DEFAULT '30 minutes',
								 heartbeat interval DEFAULT '10 seconds', min_visit interval DEFAULT '5 seconds')
	RETURNS TABLE (anonymous_id text, session_key text, event_id text, page_path text, viewed_at timestamptz,
				   seconds_on_page double precision, engaged_seconds double precision, is_last_in_session boolean)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF from_ts IS NULL OR to_ts IS NULL OR NOT isfinite(from_ts) OR NOT isfinite(to_ts) OR from_ts >= to_ts THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = 'from_ts and to_ts must be finite timestamps with from_ts < to_ts',
			HINT = 'Page views in [from_ts, to_ts) are timed; later events are read to time the last ones.';
	END IF;
	IF session_gap IS NULL OR session_gap <= interval '0' OR session_gap > interval '1 day'
	   OR heartbeat IS NULL OR heartbeat <= interval '0' OR heartbeat > interval '1 hour'
	   OR min_visit IS NULL OR min_visit < interval '0' OR min_visit > interval '1 hour' THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = format('session_gap must be from 1 microsecond to 1 day, heartbeat from 1 microsecond to 1 hour and min_visit from 0 to 1 hour, not %s, %s and %s',
							 coalesce(session_gap::text, 'NULL'), coalesce(heartbeat::text, 'NULL'), coalesce(min_visit::text, 'NULL')),
			HINT = 'Use the tracker''s settings: Snowplow''s defaults are a 30-minute session, 10-second heartbeat and 5-second minimum visit.';
	END IF;
	RETURN QUERY
	WITH ev AS (
		SELECT e.anonymous_id AS vid, e.event_id AS eid, e.occurred_at AS ts, e.session_id, e.event_name,
			   e.page_path AS path,
			   e.occurred_at - lag(e.occurred_at) OVER (PARTITION BY e.anonymous_id, e.session_id IS NULL
														 ORDER BY e.occurred_at, e.event_id) AS gap
		  FROM dogdb.web_events e
		 WHERE e.occurred_at >= from_ts
		   AND e.anonymous_id IN (SELECT p.anonymous_id FROM dogdb.web_events p
								   WHERE p.occurred_at >= from_ts AND p.occurred_at < to_ts
									 AND p.event_name = 'page_view')),
	sess AS (
		SELECT ev.*,
			   CASE WHEN ev.session_id IS NOT NULL THEN 't:' || ev.session_id
					ELSE 'g:' || count(*) FILTER (WHERE ev.gap IS NULL OR ev.gap > session_gap)
								 OVER (PARTITION BY ev.vid, ev.session_id IS NULL ORDER BY ev.ts, ev.eid) END AS skey
		  FROM ev),
	numbered AS (
		SELECT s.*, count(*) FILTER (WHERE s.event_name = 'page_view')
						OVER (PARTITION BY s.vid, s.skey ORDER BY s.ts, (s.event_name = 'page_ping'), s.eid) AS pv_no
		  FROM sess s WHERE s.event_name IN ('page_view', 'page_ping')),
	grouped AS (
		SELECT n.vid, n.skey, n.pv_no,
			   min(n.eid) FILTER (WHERE n.event_name = 'page_view') AS eid,
			   min(n.path) FILTER (WHERE n.event_name = 'page_view') AS path,
			   min(n.ts) FILTER (WHERE n.event_name = 'page_view') AS ts,
			   count(DISTINCT floor(extract(epoch FROM n.ts) / extract(epoch FROM heartbeat)))
				   FILTER (WHERE n.event_name = 'page_ping') AS buckets
		  FROM numbered n WHERE n.pv_no > 0
		 GROUP BY 1, 2, 3),
	views AS (
		SELECT g.*, lead(g.ts) OVER (PARTITION BY g.vid, g.skey ORDER BY g.pv_no) AS next_ts,
			   CASE WHEN g.buckets > 0 THEN extract(epoch FROM min_visit + g.buckets * heartbeat)::double precision END AS engaged
		  FROM grouped g)
	SELECT v.vid, v.skey, v.eid, v.path, v.ts,
		   coalesce(extract(epoch FROM v.next_ts - v.ts)::double precision, v.engaged),
		   v.engaged, v.next_ts IS NULL
	  FROM views v
	 WHERE v.ts < to_ts;
END
$fn$;
COMMENT ON FUNCTION dogdb_page_views(timestamptz, timestamptz, interval, interval, interval) IS 'Page views in [from_ts, to_ts), sessionized, with time on page (to the next page view of the session; for the last page the engaged time from page pings, else NULL) and engaged time (Snowplow heartbeat rule)';

-- STABLE: reads the tables
CREATE FUNCTION dogdb_page_time_summary(from_ts timestamptz, to_ts timestamptz, pages text[] DEFAULT NULL,
										session_gap interval DEFAULT '30 minutes')
	RETURNS TABLE (page_path text, views bigint, timed_views bigint, avg_seconds double precision,
				   median_seconds double precision, p90_seconds double precision)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF pages IS NOT NULL AND (cardinality(pages) > 1000 OR array_position(pages, NULL) IS NOT NULL) THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = format('pages must be NULL or up to 1000 page paths, none NULL, not %s elements', cardinality(pages)),
			HINT = 'NULL summarizes every page.';
	END IF;
	RETURN QUERY
	SELECT v.page_path, count(*), count(v.seconds_on_page), avg(v.seconds_on_page),
		   percentile_cont(0.5) WITHIN GROUP (ORDER BY v.seconds_on_page),
		   percentile_cont(0.9) WITHIN GROUP (ORDER BY v.seconds_on_page)
	  FROM @extschema@.dogdb_page_views(from_ts, to_ts, session_gap) v
	 WHERE pages IS NULL OR v.page_path = ANY (pages)
	 GROUP BY 1
	 ORDER BY CASE WHEN pages IS NULL THEN 0 ELSE array_position(pages, v.page_path) END, 1;
END
$fn$;
COMMENT ON FUNCTION dogdb_page_time_summary(timestamptz, timestamptz, text[], interval) IS 'Per page: views in [from_ts, to_ts), views with a time, average, median and 90th percentile seconds on page (dogdb_page_views)';

-- demo web events (C): rows shaped like a staging table, duplicates and malformed rows included
CREATE FUNCTION dogdb.demo_web_events(visitors integer, start timestamptz, days integer, seed bigint)
	RETURNS TABLE (event_id text, occurred_at timestamptz, anonymous_id text, session_id text, account_id bigint,
				   event_name text, page_path text, referrer text, client text, campaign text, properties jsonb)
	AS 'MODULE_PATHNAME', 'dogdb_demo_web_events'
	LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE ROWS 10000;
COMMENT ON FUNCTION dogdb.demo_web_events(integer, timestamptz, integer, bigint) IS 'Deterministic demo web events of the signup flow, as delivered (duplicates, out of order, a few malformed); see dogdb_generate_demo_web_events()';

-- VOLATILE: writes web_events and import_rejects
CREATE FUNCTION dogdb_generate_demo_web_events(visitors integer DEFAULT 10000, start timestamptz DEFAULT '2024-01-01 00:00+00',
											   days integer DEFAULT 28, seed bigint DEFAULT 1,
											   OUT events bigint, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF to_regclass('pg_temp.dogdb_demo_web_stage') IS NOT NULL THEN
		DROP TABLE pg_temp.dogdb_demo_web_stage;
	END IF;
	CREATE TEMP TABLE dogdb_demo_web_stage AS SELECT * FROM dogdb.demo_web_events(visitors, start, days, seed);
	GET DIAGNOSTICS events = ROW_COUNT;
	SELECT l.loaded, l.duplicates, l.rejected INTO loaded, duplicates, rejected
	  FROM @extschema@.dogdb_load_web_events('pg_temp.dogdb_demo_web_stage'::regclass) l;
	DROP TABLE pg_temp.dogdb_demo_web_stage;
END
$fn$;
COMMENT ON FUNCTION dogdb_generate_demo_web_events(integer, timestamptz, integer, bigint) IS 'Load deterministic demo web events of the signup flow through dogdb_load_web_events (README "Funnels"); returns the generated, loaded, duplicate and rejected counts';
REVOKE ALL ON FUNCTION dogdb_generate_demo_web_events(integer, timestamptz, integer, bigint) FROM PUBLIC;
