/* dogdb_analytics--1.3--1.4.sql: BI surface, roles, support model, KPI engine at scale, Citus (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.4'" to load this file. \quit

--
-- [internal] the schema of engine internals
--
CREATE SCHEMA dogdb_internal;
COMMENT ON SCHEMA dogdb_internal IS 'dogdb_analytics engine internals (state tables and helper functions); granted to no one, written only by the extension''s own functions';
REVOKE ALL ON SCHEMA dogdb_internal FROM PUBLIC;

--
-- [hkpi2] the KPI engine at a million accounts: its state in small rows by
-- block of accounts, its tables and helper functions in dogdb_internal
--
-- the state is rebuilt by the next refresh: drop it, mark a full rebuild
DROP TABLE dogdb.kpi_month_activity, dogdb.kpi_churn_state;
DROP TABLE dogdb.kpi_session_deltas;
ALTER TABLE dogdb.kpi_dirty_months SET SCHEMA dogdb_internal;
ALTER TABLE dogdb.kpi_dirty_accounts SET SCHEMA dogdb_internal;
ALTER TABLE dogdb.kpi_facts SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_transition_tables(text) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_track_sessions() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_track_billing() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_track_accounts() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_update_facts(boolean) SET SCHEMA dogdb_internal;
COMMENT ON FUNCTION dogdb_internal.kpi_update_facts(boolean) IS 'Internal to dogdb_refresh_kpis(): brings dogdb_internal.kpi_facts up to date, incrementally unless a full rebuild is asked for or needed';

CREATE TABLE dogdb_internal.kpi_month_activity (
	month		date NOT NULL,
	block		bigint NOT NULL,
	session_counts bytea NOT NULL,
	plan_ids	bytea NOT NULL,
	PRIMARY KEY (month, block)
);
ALTER TABLE dogdb_internal.kpi_month_activity ALTER session_counts SET STORAGE PLAIN,
	ALTER plan_ids SET STORAGE PLAIN;	-- 2-6 kB a row: stays in the heap page, read and written whole
COMMENT ON TABLE dogdb_internal.kpi_month_activity IS 'KPI engine state: per month and block of 1024 account ids (block = account_id >> 10), each account''s session count and tier that month (plan_id, -32768 = none) by account_id & 1023, each array a width byte (1, 2 or 4) then 1024 values of that width (src/kpi_matrix.c); rows for every block with accounts in the months the last refresh covered, and for months with sessions';

CREATE TABLE dogdb_internal.kpi_churn_state (
	block		bigint PRIMARY KEY,
	first_months bytea NOT NULL,
	churn_months bytea NOT NULL,
	company_sizes bytea NOT NULL
);
ALTER TABLE dogdb_internal.kpi_churn_state ALTER first_months SET STORAGE PLAIN,
	ALTER churn_months SET STORAGE PLAIN, ALTER company_sizes SET STORAGE PLAIN;
COMMENT ON TABLE dogdb_internal.kpi_churn_state IS 'KPI engine state: per block of 1024 account ids (block = account_id >> 10), each account''s first month (int2 months since 2000-01, -32768 = no such account), churn month (int2, -1 = none) and company size (one byte: 0 small, 1 large, 2 unknown), as of the last refresh';

CREATE TABLE dogdb_internal.kpi_coverage (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	first_month date NOT NULL,
	last_month	date NOT NULL
);
COMMENT ON TABLE dogdb_internal.kpi_coverage IS 'KPI engine state: the months [first_month, last_month] whose churn and revenue the last refresh computed (first account month to the then current month); no row: the next refresh rebuilds';
CREATE TABLE dogdb_internal.kpi_session_deltas (
	months		date[] NOT NULL,
	account_ids bigint[] NOT NULL,
	sessions	bigint[] NOT NULL,
	CHECK (cardinality(months) = cardinality(account_ids) AND cardinality(months) = cardinality(sessions))
);
COMMENT ON TABLE dogdb_internal.kpi_session_deltas IS 'KPI engine input: session count changes per account and month since the last refresh, as three arrays side by side (one row per statement on dogdb.sessions, written by its triggers), so that a refresh consumes a day of sessions in a few rows';

REVOKE ALL ON dogdb_internal.kpi_month_activity, dogdb_internal.kpi_churn_state, dogdb_internal.kpi_coverage,
	dogdb_internal.kpi_session_deltas FROM PUBLIC;
INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);

-- the triggers write the moved tables
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_track_sessions() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);
		RETURN NULL;
	END IF;
	-- per account and month: + the new rows, - the old ones
	FOREACH rel IN ARRAY dogdb_internal.kpi_transition_tables(TG_OP) LOOP
		EXECUTE format($q$INSERT INTO dogdb_internal.kpi_session_deltas (months, account_ids, sessions)
						  SELECT array_agg(g.month), array_agg(g.account_id), array_agg(g.n)
							FROM (SELECT date_trunc('month', r.created_at AT TIME ZONE 'UTC')::date AS month,
										 r.account_id, %s count(*) AS n
									FROM %I r GROUP BY 1, 2) g
						  HAVING count(*) > 0$q$,
					   CASE rel WHEN 'kpi_old_rows' THEN '-' ELSE '' END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;

-- Subscriptions and prices: months whose revenue (and tier) changed.  A
-- subscription counts from the month of valid_from on, open-ended: the tier
-- rule carries an ended subscription's plan into the months after it.
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_track_billing() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.kpi_dirty_months (from_month) VALUES ('-infinity');
		RETURN NULL;
	END IF;
	FOREACH rel IN ARRAY dogdb_internal.kpi_transition_tables(TG_OP) LOOP
		EXECUTE format('INSERT INTO dogdb_internal.kpi_dirty_months (from_month) SELECT min(%s) FROM %I r HAVING count(*) > 0',
			CASE TG_TABLE_NAME
			WHEN 'subscriptions' THEN $e$date_trunc('month', r.valid_from AT TIME ZONE 'UTC')::date$e$
			ELSE $e$date_trunc('month', r.effective_from::timestamp)::date$e$
			END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;

-- Accounts: the accounts whose KPI columns (id, company_size, created_at)
-- changed, and the months from their first month on
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_track_accounts() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);
		RETURN NULL;
	END IF;
	EXECUTE format($q$WITH changed AS (%s), a AS (INSERT INTO dogdb_internal.kpi_dirty_accounts (account_id)
												SELECT DISTINCT account_id FROM changed)
					  INSERT INTO dogdb_internal.kpi_dirty_months (from_month)
					  SELECT min(date_trunc('month', created_at AT TIME ZONE 'UTC')::date) FROM changed
					  HAVING count(*) > 0$q$,
		CASE TG_OP
		WHEN 'INSERT' THEN 'SELECT account_id, created_at FROM kpi_new_rows'
		WHEN 'DELETE' THEN 'SELECT account_id, created_at FROM kpi_old_rows'
		ELSE $e$SELECT account_id, created_at
				  FROM ((SELECT account_id, company_size, created_at FROM kpi_new_rows
						 EXCEPT ALL SELECT account_id, company_size, created_at FROM kpi_old_rows)
						UNION ALL
						(SELECT account_id, company_size, created_at FROM kpi_old_rows
						 EXCEPT ALL SELECT account_id, company_size, created_at FROM kpi_new_rows)) c$e$
		END);
	RETURN NULL;
END
$fn$;


-- the engine's entry point moved
-- VOLATILE: refreshes the views.  SECURITY DEFINER: refreshing a
-- materialized view needs its owner; EXECUTE is granted by the owner.
CREATE OR REPLACE FUNCTION dogdb_refresh_kpis(rebuild boolean DEFAULT false)
	RETURNS TABLE (kpi text, refreshed_at timestamptz, full_rebuild boolean, duration_ms numeric)
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t0 timestamptz := clock_timestamp();
	u record;
BEGIN
	SELECT * INTO u FROM dogdb_internal.kpi_update_facts(rebuild);
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
