/* dogdb_analytics--1.1--1.2.sql: session churn, monthly KPIs in materialized views, demo data */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.2'" to load this file. \quit

--
-- Churn: which months an account was active in
--
CREATE FUNCTION dogdb_active_months_transfn(state bytea, session_time timestamptz) RETURNS bytea
	AS 'MODULE_PATHNAME', 'dogdb_active_months_transfn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;	-- not STRICT: starts from a NULL state
COMMENT ON FUNCTION dogdb_active_months_transfn(bytea, timestamptz) IS 'Transition function of dogdb_active_months()';

CREATE FUNCTION dogdb_active_months_combinefn(state bytea, other bytea) RETURNS bytea
	AS 'MODULE_PATHNAME', 'dogdb_active_months_combinefn'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;	-- not STRICT: either side may be NULL
COMMENT ON FUNCTION dogdb_active_months_combinefn(bytea, bytea) IS 'Combine function of dogdb_active_months(): OR of two bitmaps';

CREATE AGGREGATE dogdb_active_months(timestamptz) (
	SFUNC = dogdb_active_months_transfn,
	STYPE = bytea,
	COMBINEFUNC = dogdb_active_months_combinefn,
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE dogdb_active_months(timestamptz) IS 'Bitmap of the UTC months of the session times: first month (int32, months since 2000-01), then one bit per month; order-independent, combines with OR';

CREATE FUNCTION dogdb_first_inactive_month(active_months bytea, from_month date, to_month date) RETURNS date
	AS 'MODULE_PATHNAME', 'dogdb_first_inactive_month'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;	-- not STRICT: a NULL bitmap means no active month
COMMENT ON FUNCTION dogdb_first_inactive_month(bytea, date, date) IS 'First month from the month of from_month through the month of to_month that is not in the bitmap (its first day), or NULL';

CREATE FUNCTION dogdb_last_active_month(active_months bytea) RETURNS date
	AS 'MODULE_PATHNAME', 'dogdb_last_active_month'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_last_active_month(bytea) IS 'Last month in the bitmap (its first day), or NULL if none';

CREATE FUNCTION dogdb_active_month_list(active_months bytea) RETURNS SETOF date
	AS 'MODULE_PATHNAME', 'dogdb_active_month_list'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 24;
COMMENT ON FUNCTION dogdb_active_month_list(bytea) IS 'The months in the bitmap (their first days), in order';

-- STABLE: reads the tables; the default as_of is the current date
CREATE FUNCTION dogdb_account_churn(as_of date DEFAULT current_date)
	RETURNS TABLE (account_id bigint, first_month date, last_active_month date, churn_month date)
	LANGUAGE sql STABLE STRICT PARALLEL SAFE
BEGIN ATOMIC
	SELECT a.account_id, f.first_month,
		   dogdb_last_active_month(m.active),
		   dogdb_first_inactive_month(m.active, f.first_month, as_of)
	  FROM dogdb.accounts a
	 CROSS JOIN LATERAL (SELECT date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date AS first_month) f
	  LEFT JOIN (SELECT s.account_id, dogdb_active_months(s.created_at) AS active
				   FROM dogdb.sessions s
				  WHERE s.created_at < ((date_trunc('month', as_of::timestamp) + interval '1 month') AT TIME ZONE 'UTC')
				  GROUP BY s.account_id) m ON m.account_id = a.account_id;
END;
COMMENT ON FUNCTION dogdb_account_churn(date) IS 'Per account: first month (UTC month of created_at), last month with a session, and churn month = first month from the first month through the month of as_of with no session (NULL if none)';

--
-- KPI engine state.  dogdb_refresh_kpis() keeps these; nothing else should
-- write them.  Changes to the source tables are tracked by the statement
-- triggers below: session changes as per-account deltas, other changes as
-- ranges of months whose revenue must be recomputed.
--
CREATE TABLE dogdb.kpi_month_activity (
	month		date PRIMARY KEY,
	account_ids bytea NOT NULL,
	session_counts bytea NOT NULL
);
ALTER TABLE dogdb.kpi_month_activity ALTER account_ids SET STORAGE EXTERNAL,
	ALTER session_counts SET STORAGE EXTERNAL;	-- read whole and often: no compression
COMMENT ON TABLE dogdb.kpi_month_activity IS 'KPI engine state: per month, the accounts with sessions (sorted int8 ids) and their session counts (int4, same order)';

CREATE TABLE dogdb.kpi_session_deltas (
	month		date NOT NULL,
	account_id	bigint NOT NULL,
	sessions	bigint NOT NULL
);
COMMENT ON TABLE dogdb.kpi_session_deltas IS 'KPI engine input: session count changes per account and month since the last refresh (written by triggers on dogdb.sessions)';

CREATE TABLE dogdb.kpi_dirty_months (
	from_month	date NOT NULL,
	to_month	date,
	full_rebuild boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE dogdb.kpi_dirty_months IS 'KPI engine input: months whose revenue must be recomputed (to_month NULL = open), or a full rebuild, since the last refresh';

CREATE TABLE dogdb.kpi_churn_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	account_ids bytea NOT NULL,
	churn_months bytea NOT NULL
);
ALTER TABLE dogdb.kpi_churn_state ALTER account_ids SET STORAGE EXTERNAL,
	ALTER churn_months SET STORAGE EXTERNAL;
COMMENT ON TABLE dogdb.kpi_churn_state IS 'KPI engine state: every account''s churn month as of the last refresh (sorted int8 ids; int4 months since 2000-01, or -1 if none), so an incremental refresh reads only the months that changed';

CREATE TABLE dogdb.kpi_facts (
	month		date NOT NULL,
	company_size text NOT NULL,
	tier		text NOT NULL,
	active_accounts bigint NOT NULL,
	churned_accounts bigint NOT NULL,
	sessions	bigint NOT NULL,
	revenue_cents bigint NOT NULL,
	PRIMARY KEY (month, company_size, tier)
);
COMMENT ON TABLE dogdb.kpi_facts IS 'KPI engine output, published by the materialized views dogdb.kpi_retention, kpi_usage and kpi_revenue';

CREATE TABLE dogdb.kpi_refresh_log (
	kpi			text PRIMARY KEY,
	refreshed_at timestamptz NOT NULL,
	full_rebuild boolean NOT NULL,
	duration_ms numeric NOT NULL
);
COMMENT ON TABLE dogdb.kpi_refresh_log IS 'When each KPI view was last refreshed, and how';

-- a new installation starts with a full rebuild
INSERT INTO dogdb.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);

-- not registered with pg_extension_config_dump: all of it is rebuilt by a
-- refresh (a restored database starts with a full rebuild, as above)

--
-- Change tracking
--
-- The transition tables of a statement: new rows unless a DELETE, old rows
-- unless an INSERT (plpgsql sees them in dynamic SQL too)
CREATE FUNCTION dogdb.kpi_transition_tables(op text) RETURNS text[]
	LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
	RETURN CASE op WHEN 'INSERT' THEN ARRAY['kpi_new_rows'] WHEN 'DELETE' THEN ARRAY['kpi_old_rows']
				   ELSE ARRAY['kpi_new_rows', 'kpi_old_rows'] END;
COMMENT ON FUNCTION dogdb.kpi_transition_tables(text) IS 'Internal to the KPI change-tracking triggers';

CREATE FUNCTION dogdb.kpi_track_sessions() RETURNS trigger
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);
		RETURN NULL;
	END IF;
	-- per account and month: + the new rows, - the old ones
	FOREACH rel IN ARRAY dogdb.kpi_transition_tables(TG_OP) LOOP
		EXECUTE format($q$INSERT INTO dogdb.kpi_session_deltas (month, account_id, sessions)
						  SELECT date_trunc('month', r.created_at AT TIME ZONE 'UTC')::date, r.account_id, %s count(*)
							FROM %I r GROUP BY 1, 2$q$,
					   CASE rel WHEN 'kpi_old_rows' THEN '-' ELSE '' END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION dogdb.kpi_track_sessions() IS 'Trigger: records session count changes for the next KPI refresh';

-- subscriptions, prices, plans, accounts: months whose revenue (and tier) changed
CREATE FUNCTION dogdb.kpi_track_billing() RETURNS trigger
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' OR TG_TABLE_NAME = 'pricing_plans' THEN
		-- plan names label every month
		INSERT INTO dogdb.kpi_dirty_months (from_month) VALUES ('-infinity');
		RETURN NULL;
	END IF;
	-- the months of the rows before and after the change: a subscription's
	-- period, a price from its first day on, an account from its first month on
	FOREACH rel IN ARRAY dogdb.kpi_transition_tables(TG_OP) LOOP
		EXECUTE format('INSERT INTO dogdb.kpi_dirty_months (from_month, to_month) SELECT %s FROM %I r HAVING count(*) > 0',
			CASE TG_TABLE_NAME
			WHEN 'subscriptions' THEN
				$e$min(date_trunc('month', r.valid_from AT TIME ZONE 'UTC')::date),
				   CASE WHEN bool_or(r.valid_to IS NULL) THEN NULL
						ELSE max(date_trunc('month', r.valid_to AT TIME ZONE 'UTC')::date) END$e$
			WHEN 'plan_prices' THEN $e$min(date_trunc('month', r.effective_from::timestamp)::date), NULL$e$
			ELSE $e$min(date_trunc('month', r.created_at AT TIME ZONE 'UTC')::date), NULL$e$
			END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION dogdb.kpi_track_billing() IS 'Trigger: records which months'' revenue and tiers the next KPI refresh must recompute';

-- statement triggers with transition tables: no per-row cost
DO $do$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('sessions', 'kpi_track_sessions'), ('subscriptions', 'kpi_track_billing'),
								   ('plan_prices', 'kpi_track_billing'), ('accounts', 'kpi_track_billing')) v(tab, fn)
	LOOP
		EXECUTE format('CREATE TRIGGER kpi_track_insert AFTER INSERT ON dogdb.%I REFERENCING NEW TABLE AS kpi_new_rows'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I()', t.tab, t.fn);
		EXECUTE format('CREATE TRIGGER kpi_track_update AFTER UPDATE ON dogdb.%I'
					   ' REFERENCING OLD TABLE AS kpi_old_rows NEW TABLE AS kpi_new_rows'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I()', t.tab, t.fn);
		EXECUTE format('CREATE TRIGGER kpi_track_delete AFTER DELETE ON dogdb.%I REFERENCING OLD TABLE AS kpi_old_rows'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I()', t.tab, t.fn);
		EXECUTE format('CREATE TRIGGER kpi_track_truncate AFTER TRUNCATE ON dogdb.%I'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I()', t.tab, t.fn);
	END LOOP;
END
$do$;
CREATE TRIGGER kpi_track_change AFTER UPDATE OR DELETE OR TRUNCATE ON dogdb.pricing_plans
	FOR EACH STATEMENT EXECUTE FUNCTION dogdb.kpi_track_billing();

--
-- The KPI engine (C) and the published views
--

-- VOLATILE: writes the engine's tables
CREATE FUNCTION dogdb.kpi_update_facts(full_rebuild boolean, OUT months integer, OUT rebuilt boolean,
	OUT retention_changed boolean, OUT usage_changed boolean, OUT revenue_changed boolean)
	AS 'MODULE_PATHNAME', 'dogdb_kpi_update_facts'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION dogdb.kpi_update_facts(boolean) IS 'Internal to dogdb_refresh_kpis(): brings dogdb.kpi_facts up to date, incrementally unless a full rebuild is asked for or needed';

CREATE MATERIALIZED VIEW dogdb.kpi_retention AS
	SELECT month, company_size, tier, active_accounts, churned_accounts FROM dogdb.kpi_facts
	 WHERE active_accounts <> 0 OR churned_accounts <> 0;
CREATE UNIQUE INDEX kpi_retention_key ON dogdb.kpi_retention (month, company_size, tier);
COMMENT ON MATERIALIZED VIEW dogdb.kpi_retention IS 'Retention KPI by month, company size and tier (read it through dogdb_kpi_retention())';
CREATE MATERIALIZED VIEW dogdb.kpi_usage AS
	SELECT month, company_size, tier, active_accounts, sessions FROM dogdb.kpi_facts
	 WHERE active_accounts <> 0 OR sessions <> 0;
CREATE UNIQUE INDEX kpi_usage_key ON dogdb.kpi_usage (month, company_size, tier);
COMMENT ON MATERIALIZED VIEW dogdb.kpi_usage IS 'Usage KPI by month, company size and tier (read it through dogdb_kpi_usage())';
CREATE MATERIALIZED VIEW dogdb.kpi_revenue AS
	SELECT month, company_size, tier, revenue_cents FROM dogdb.kpi_facts WHERE revenue_cents <> 0;
CREATE UNIQUE INDEX kpi_revenue_key ON dogdb.kpi_revenue (month, company_size, tier);
COMMENT ON MATERIALIZED VIEW dogdb.kpi_revenue IS 'Revenue KPI by month, company size and tier (read it through dogdb_kpi_revenue())';

-- VOLATILE: refreshes the views
CREATE FUNCTION dogdb_refresh_kpis(rebuild boolean DEFAULT false)
	RETURNS TABLE (kpi text, refreshed_at timestamptz, full_rebuild boolean, duration_ms numeric)
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t0 timestamptz := clock_timestamp();
	u record;
BEGIN
	SELECT * INTO u FROM dogdb.kpi_update_facts(rebuild);
	-- a view whose facts did not change is already up to date
	IF u.retention_changed OR rebuild THEN
		REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_retention;
	END IF;
	IF u.usage_changed OR rebuild THEN
		REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_usage;
	END IF;
	IF u.revenue_changed OR rebuild THEN
		REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_revenue;
	END IF;
	INSERT INTO dogdb.kpi_refresh_log AS l (kpi, refreshed_at, full_rebuild, duration_ms)
	SELECT k, clock_timestamp(), u.rebuilt, round(1000 * extract(epoch FROM clock_timestamp() - t0), 1)
	  FROM unnest(ARRAY['retention', 'usage', 'revenue']) k
	ON CONFLICT ON CONSTRAINT kpi_refresh_log_pkey DO UPDATE
	   SET refreshed_at = excluded.refreshed_at, full_rebuild = excluded.full_rebuild,
		   duration_ms = excluded.duration_ms;
	RETURN QUERY SELECT l.kpi, l.refreshed_at, l.full_rebuild, l.duration_ms FROM dogdb.kpi_refresh_log l ORDER BY 1;
END
$fn$;
COMMENT ON FUNCTION dogdb_refresh_kpis(boolean) IS 'Bring the KPI views up to date: recomputes only the months that changed since the last refresh (everything with rebuild => true), then REFRESH MATERIALIZED VIEW CONCURRENTLY, so readers are never blocked';
REVOKE ALL ON FUNCTION dogdb_refresh_kpis(boolean) FROM PUBLIC;

-- STABLE: reads the log
CREATE FUNCTION dogdb_kpi_last_refresh()
	RETURNS TABLE (kpi text, refreshed_at timestamptz, full_rebuild boolean, duration_ms numeric)
	LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
	SELECT l.kpi, l.refreshed_at, l.full_rebuild, l.duration_ms FROM dogdb.kpi_refresh_log l ORDER BY 1;
END;
COMMENT ON FUNCTION dogdb_kpi_last_refresh() IS 'When each KPI view was last refreshed (NULL rows: never)';

-- the arguments of the KPI functions: 22023 with a hint unless valid
CREATE FUNCTION dogdb.kpi_check_arguments(from_month date, to_month date, group_by text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF group_by IS NULL OR group_by NOT IN ('company_size', 'tier', 'all') THEN
		RAISE EXCEPTION 'unknown KPI grouping: %', coalesce(quote_literal(group_by), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'group_by must be one of ''company_size'', ''tier'' or ''all''.';
	END IF;
	IF from_month IS NULL OR to_month IS NULL OR NOT isfinite(from_month) OR NOT isfinite(to_month)
	   OR extract(day FROM from_month) <> 1 OR extract(day FROM to_month) <> 1 THEN
		RAISE EXCEPTION 'KPI months must be first days of months: from % to %',
			coalesce(from_month::text, 'NULL'), coalesce(to_month::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Pass the first day of a month, such as date ''2021-03-01''; use date_trunc(''month'', ...)::date.';
	END IF;
	IF from_month > to_month THEN
		RAISE EXCEPTION 'KPI month range is reversed: from % to %', from_month, to_month
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'from_month must be on or before to_month; both are included.';
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb.kpi_check_arguments(date, date, text) IS 'Internal to the dogdb_kpi_* functions: validates their arguments';

-- the segment of a KPI row under a grouping
CREATE FUNCTION dogdb.kpi_segment(group_by text, company_size text, tier text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE group_by WHEN 'company_size' THEN company_size WHEN 'tier' THEN tier ELSE 'all' END;
COMMENT ON FUNCTION dogdb.kpi_segment(text, text, text) IS 'Internal to the dogdb_kpi_* functions: the segment label of a row';

-- The KPI functions: STABLE, they read the materialized views
CREATE FUNCTION dogdb_kpi_retention(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, active_accounts bigint, churned_accounts bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, group_by);
	RETURN QUERY
	SELECT k.month, dogdb.kpi_segment(group_by, k.company_size, k.tier),
		   sum(k.active_accounts)::bigint, sum(k.churned_accounts)::bigint
	  FROM dogdb.kpi_retention k
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_retention(date, date, text) IS 'Per month and segment: accounts with at least one session, and accounts whose churn month it is';

CREATE FUNCTION dogdb_kpi_usage(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, active_accounts bigint, sessions bigint, avg_sessions numeric)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, group_by);
	RETURN QUERY
	SELECT k.month, dogdb.kpi_segment(group_by, k.company_size, k.tier),
		   sum(k.active_accounts)::bigint, sum(k.sessions)::bigint,
		   round(sum(k.sessions) / nullif(sum(k.active_accounts), 0), 2)
	  FROM dogdb.kpi_usage k
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_usage(date, date, text) IS 'Per month and segment: active accounts, sessions, and sessions per active account';

CREATE FUNCTION dogdb_kpi_revenue(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, revenue_cents bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, group_by);
	RETURN QUERY
	SELECT k.month, dogdb.kpi_segment(group_by, k.company_size, k.tier),
		   sum(k.revenue_cents)::bigint
	  FROM dogdb.kpi_revenue k
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_revenue(date, date, text) IS 'Per month and segment: the billable amount by the invoice rules (equals the month''s invoice totals once they are issued)';

--
-- Demo data (C)
--

-- VOLATILE: writes accounts, subscriptions and sessions
CREATE FUNCTION dogdb_generate_demo_data(companies integer DEFAULT 500, months integer DEFAULT 12,
										 start_month date DEFAULT '2021-01-01', seed bigint DEFAULT 1,
										 OUT accounts bigint, OUT subscriptions bigint, OUT sessions bigint)
	AS 'MODULE_PATHNAME', 'dogdb_generate_demo_data'
	LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE;
COMMENT ON FUNCTION dogdb_generate_demo_data(integer, integer, date, bigint) IS 'Fill empty accounts, subscriptions and sessions with a deterministic demo dataset (README "Demo data")';
REVOKE ALL ON FUNCTION dogdb_generate_demo_data(integer, integer, date, bigint) FROM PUBLIC;
