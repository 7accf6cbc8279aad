/* dogdb_analytics--1.5--1.6.sql: the churn aggregate's grouped scan, the web event loader in C, faster funnel and Stripe paths (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.6'" to load this file. \quit

-- [churnpath] the grouped scan of dogdb_active_months(): a support function
-- on the transition function loads the library before the planner builds
-- the grouping paths (src/churn_path.c)
CREATE FUNCTION dogdb_active_months_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_active_months_support'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_active_months_support(internal) IS 'Planner support function of dogdb_active_months_transfn(): loads the library, whose planner hook offers the grouped scan of dogdb_active_months()';
ALTER FUNCTION dogdb_active_months_transfn(bytea, timestamptz) SUPPORT dogdb_active_months_support;
-- [webload] the web event loader in C: load_web_events() takes the C route
-- (load_web_events_bulk) when it can, else the SQL route (load_web_events_sql,
-- the statement load_web_events() ran before)
-- STABLE: reads the catalogs; PARALLEL RESTRICTED: it pins search_path.  The
-- source checks of both loader routes:
-- a table other than the loader's own, with every column of web_events.
CREATE FUNCTION dogdb_internal.check_web_events_source(source regclass) RETURNS void
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
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
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.check_web_events_source(regclass) IS 'Internal to the web event loader''s routes: the source is a staging table other than dogdb.web_events and dogdb.import_rejects with every column of dogdb.web_events (22023 otherwise)';
REVOKE ALL ON FUNCTION dogdb_internal.check_web_events_source(regclass) FROM PUBLIC;

-- VOLATILE: writes web_events and import_rejects.  The loader's SQL
-- route, one statement: for what the C route below does not handle, and
-- for the rows it rejects (it quarantines them through this function).
CREATE FUNCTION dogdb_internal.load_web_events_sql(source regclass, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb_internal.check_web_events_source(source);
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
			 ORDER BY c.anonymous_id, c.event_id, c.occurred_at, c.event_name, c.page_path
			-- (not a correlated NOT EXISTS: Citus cannot plan one here)
			ON CONFLICT (anonymous_id, event_id) DO NOTHING
			RETURNING 1)
		SELECT (SELECT count(*) FROM fresh),
			   count(*) FILTER (WHERE reason IS NULL) - (SELECT count(*) FROM fresh),
			   count(*) FILTER (WHERE reason IS NOT NULL)
		  FROM checked$q$, source)
	INTO loaded, duplicates, rejected;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.load_web_events_sql(regclass) IS 'Internal to dogdb_internal.load_web_events(): the loader''s SQL route (one INSERT ... ON CONFLICT DO NOTHING), for what its C route does not handle and for the rows the C route rejects';
REVOKE ALL ON FUNCTION dogdb_internal.load_web_events_sql(regclass) FROM PUBLIC;

-- the loader's C route (src/web_load.c): the same results as the
-- SQL route, or NULL when the SQL route must load the source (a
-- distributed or altered dogdb.web_events, a staging table it does not
-- read directly, a bad argument: the SQL route raises the error).
-- VOLATILE, PARALLEL UNSAFE: writes web_events and import_rejects; STRICT:
-- NULL is a bad argument.
CREATE FUNCTION dogdb_internal.load_web_events_bulk(source regclass, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'dogdb_load_web_events_bulk'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION dogdb_internal.load_web_events_bulk(regclass) IS 'Internal to dogdb_internal.load_web_events(): the loader''s C route (read once, sorted, written in bulk), or NULL when the SQL route must load the source';
REVOKE ALL ON FUNCTION dogdb_internal.load_web_events_bulk(regclass) FROM PUBLIC;

-- VOLATILE: writes web_events and import_rejects.  The loader itself,
-- behind dogdb_load_web_events() (which checks the caller) and the demo:
-- the C route, else the SQL route.
CREATE OR REPLACE FUNCTION dogdb_internal.load_web_events(source regclass, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb_internal.check_web_events_source(source);
	-- the C route, else the SQL route
	SELECT b.loaded, b.duplicates, b.rejected INTO loaded, duplicates, rejected
	  FROM dogdb_internal.load_web_events_bulk(source) b;
	IF loaded IS NULL THEN
		SELECT s.loaded, s.duplicates, s.rejected INTO loaded, duplicates, rejected
		  FROM dogdb_internal.load_web_events_sql(source) s;
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.load_web_events(regclass) IS 'Internal to dogdb_load_web_events() and the demo: the loader, without the check of the caller';
REVOKE ALL ON FUNCTION dogdb_internal.load_web_events(regclass) FROM PUBLIC;
-- [funnelpath] the funnel scan: a planner support function on the window
-- funnel transition functions loads the library (and its planner hook) at plan time
CREATE FUNCTION dogdb_funnel_planner_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_funnel_planner_support'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_planner_support(internal) IS 'Planner support function of the window funnel transition functions (loads the funnel scan''s planner hook)';
ALTER FUNCTION dogdb_window_funnel_transfn(internal, interval, timestamptz, boolean[]) SUPPORT dogdb_funnel_planner_support;
ALTER FUNCTION dogdb_window_funnel_transfn(internal, interval, text, timestamptz, boolean[]) SUPPORT dogdb_funnel_planner_support;

-- [lead] the KPI engine's state unlogged: rebuilt from the sources when
-- missing, it need not go through WAL (a full rebuild writes about 100 MB of
-- it at a million accounts); a crash empties the three tables together, and
-- the next refresh, finding no coverage, rebuilds
ALTER TABLE dogdb_internal.kpi_month_activity SET UNLOGGED;
ALTER TABLE dogdb_internal.kpi_churn_state SET UNLOGGED;
ALTER TABLE dogdb_internal.kpi_coverage SET UNLOGGED;
COMMENT ON TABLE dogdb_internal.kpi_coverage IS 'KPI engine state: the months [first_month, last_month] whose churn and revenue the last refresh computed (first account month to the then current month); no row (as after a crash: the state tables are unlogged): the next refresh rebuilds';
