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
			SELECT s AS r, s.event_id::text AS event_id, s.occurred_at::timestamptz AS occurred_at,
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
			SELECT 'web_events', md5(r::text), to_jsonb(r), reason FROM checked WHERE reason IS NOT NULL
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
			 ORDER BY c.anonymous_id, c.event_id, c.occurred_at, c.r::text
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
