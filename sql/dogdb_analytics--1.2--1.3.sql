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
-- Rows the KPI engine cannot take are refused from now on.  The update
-- checks the existing rows: one outside the horizon fails it with 23514
-- naming the constraint; correct or delete such rows, then update again.
ALTER TABLE dogdb.accounts ADD CONSTRAINT accounts_created_at_kpi_horizon
	CHECK (created_at >= '2000-01-01 00:00+00' AND created_at < '2200-01-01 00:00+00');
COMMENT ON CONSTRAINT accounts_created_at_kpi_horizon ON dogdb.accounts IS 'The KPI horizon: created_at from 2000-01-01 to before 2200-01-01 UTC, finite';
ALTER TABLE dogdb.sessions ADD CONSTRAINT sessions_created_at_kpi_horizon
	CHECK (created_at >= '2000-01-01 00:00+00' AND created_at < '2200-01-01 00:00+00');
COMMENT ON CONSTRAINT sessions_created_at_kpi_horizon ON dogdb.sessions IS 'The KPI horizon: created_at from 2000-01-01 to before 2200-01-01 UTC, finite';

-- The engine's state is rebuilt: facts are keyed by plan_id, the churn
-- state records the months it covers, accounts are tracked one by one.
DROP MATERIALIZED VIEW dogdb.kpi_retention, dogdb.kpi_usage, dogdb.kpi_revenue;
DROP TABLE dogdb.kpi_facts, dogdb.kpi_churn_state;
TRUNCATE dogdb.kpi_month_activity, dogdb.kpi_session_deltas, dogdb.kpi_dirty_months;
COMMENT ON TABLE dogdb.kpi_month_activity IS 'KPI engine state: per month with sessions, the accounts with sessions (sorted int8 ids) and their session counts (int4, same order)';
COMMENT ON TABLE dogdb.kpi_dirty_months IS 'KPI engine input: months whose revenue and tiers must be recomputed (to_month NULL = open), or a full rebuild, since the last refresh';

CREATE TABLE dogdb.kpi_dirty_accounts (
	account_id	bigint NOT NULL
);
COMMENT ON TABLE dogdb.kpi_dirty_accounts IS 'KPI engine input: accounts inserted, deleted, or whose created_at or company_size changed since the last refresh (their churn is recomputed; a deleted one''s stored counts are dropped)';

CREATE TABLE dogdb.kpi_churn_state (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	account_ids bytea NOT NULL,
	churn_months bytea NOT NULL,
	first_month date NOT NULL,
	last_month	date NOT NULL
);
ALTER TABLE dogdb.kpi_churn_state ALTER account_ids SET STORAGE EXTERNAL,
	ALTER churn_months SET STORAGE EXTERNAL;
COMMENT ON TABLE dogdb.kpi_churn_state IS 'KPI engine state: every account''s churn month as of the last refresh (sorted int8 ids; int4 months since 2000-01, or -1 if none), and the months [first_month, last_month] whose churn and revenue that refresh computed (first account month to the then current month)';

CREATE TABLE dogdb.kpi_facts (
	month		date NOT NULL,
	company_size text NOT NULL,
	plan_id		smallint,
	active_accounts bigint NOT NULL,
	churned_accounts bigint NOT NULL,
	sessions	bigint NOT NULL,
	revenue_cents bigint NOT NULL,
	CONSTRAINT kpi_facts_key UNIQUE NULLS NOT DISTINCT (month, company_size, plan_id)
);
COMMENT ON TABLE dogdb.kpi_facts IS 'KPI engine output, published by the materialized views dogdb.kpi_retention, kpi_usage and kpi_revenue';
COMMENT ON COLUMN dogdb.kpi_facts.plan_id IS 'The tier: a plan of dogdb.pricing_plans (no foreign key: the engine keeps it consistent), NULL for accounts without a subscription (tier ''none''); names are joined when read, so renaming a plan changes no fact';

REVOKE ALL ON dogdb.kpi_month_activity, dogdb.kpi_session_deltas, dogdb.kpi_dirty_months, dogdb.kpi_dirty_accounts,
	dogdb.kpi_churn_state, dogdb.kpi_facts, dogdb.kpi_refresh_log FROM PUBLIC;

-- a new installation starts with a full rebuild
INSERT INTO dogdb.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);

-- Change tracking: SECURITY DEFINER triggers; accounts get their own; plans need none
DROP TRIGGER kpi_track_change ON dogdb.pricing_plans;
DROP TRIGGER kpi_track_insert ON dogdb.accounts;
DROP TRIGGER kpi_track_update ON dogdb.accounts;
DROP TRIGGER kpi_track_delete ON dogdb.accounts;
DROP TRIGGER kpi_track_truncate ON dogdb.accounts;
-- VOLATILE, PARALLEL UNSAFE: a trigger writing the engine's input
CREATE OR REPLACE FUNCTION dogdb.kpi_track_sessions() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
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

-- Subscriptions and prices: months whose revenue (and tier) changed.  A
-- subscription counts from the month of valid_from on, open-ended: the tier
-- rule carries an ended subscription's plan into the months after it.
CREATE OR REPLACE FUNCTION dogdb.kpi_track_billing() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb.kpi_dirty_months (from_month) VALUES ('-infinity');
		RETURN NULL;
	END IF;
	FOREACH rel IN ARRAY dogdb.kpi_transition_tables(TG_OP) LOOP
		EXECUTE format('INSERT INTO dogdb.kpi_dirty_months (from_month) SELECT min(%s) FROM %I r HAVING count(*) > 0',
			CASE TG_TABLE_NAME
			WHEN 'subscriptions' THEN $e$date_trunc('month', r.valid_from AT TIME ZONE 'UTC')::date$e$
			ELSE $e$date_trunc('month', r.effective_from::timestamp)::date$e$
			END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION dogdb.kpi_track_billing() IS 'Trigger: records from which month on the next KPI refresh must recompute revenue and tiers';

-- Accounts: the accounts whose KPI columns (id, company_size, created_at)
-- changed, and the months from their first month on
CREATE FUNCTION dogdb.kpi_track_accounts() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);
		RETURN NULL;
	END IF;
	EXECUTE format($q$WITH changed AS (%s), a AS (INSERT INTO dogdb.kpi_dirty_accounts (account_id)
												SELECT DISTINCT account_id FROM changed)
					  INSERT INTO dogdb.kpi_dirty_months (from_month)
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
COMMENT ON FUNCTION dogdb.kpi_track_accounts() IS 'Trigger: records the accounts (and months) whose churn, segment or revenue the next KPI refresh must recompute';

REVOKE ALL ON FUNCTION dogdb.kpi_track_sessions(), dogdb.kpi_track_billing(), dogdb.kpi_track_accounts() FROM PUBLIC;

DO $do$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('accounts', 'kpi_track_accounts')) v(tab, fn)
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

-- The engine and the views
REVOKE ALL ON FUNCTION dogdb.kpi_update_facts(boolean) FROM PUBLIC;
-- the views carry the plan_id (NULL: no plan); the functions join the names
CREATE MATERIALIZED VIEW dogdb.kpi_retention AS
	SELECT month, company_size, plan_id, active_accounts, churned_accounts FROM dogdb.kpi_facts
	 WHERE active_accounts <> 0 OR churned_accounts <> 0;
CREATE UNIQUE INDEX kpi_retention_key ON dogdb.kpi_retention (month, company_size, plan_id) NULLS NOT DISTINCT;
COMMENT ON MATERIALIZED VIEW dogdb.kpi_retention IS 'Retention KPI by month, company size and plan_id (read it through dogdb_kpi_retention())';
CREATE MATERIALIZED VIEW dogdb.kpi_usage AS
	SELECT month, company_size, plan_id, active_accounts, sessions FROM dogdb.kpi_facts
	 WHERE active_accounts <> 0 OR sessions <> 0;
CREATE UNIQUE INDEX kpi_usage_key ON dogdb.kpi_usage (month, company_size, plan_id) NULLS NOT DISTINCT;
COMMENT ON MATERIALIZED VIEW dogdb.kpi_usage IS 'Usage KPI by month, company size and plan_id (read it through dogdb_kpi_usage())';
CREATE MATERIALIZED VIEW dogdb.kpi_revenue AS
	SELECT month, company_size, plan_id, revenue_cents FROM dogdb.kpi_facts WHERE revenue_cents <> 0;
CREATE UNIQUE INDEX kpi_revenue_key ON dogdb.kpi_revenue (month, company_size, plan_id) NULLS NOT DISTINCT;
COMMENT ON MATERIALIZED VIEW dogdb.kpi_revenue IS 'Revenue KPI by month, company size and plan_id (read it through dogdb_kpi_revenue())';

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
COMMENT ON FUNCTION dogdb_refresh_kpis(boolean) IS 'Bring the KPI views up to date: recomputes only the months that changed since the last refresh (everything with rebuild => true), then REFRESH MATERIALIZED VIEW CONCURRENTLY, so readers are never blocked. Runs as the extension owner; grant EXECUTE to the roles that may refresh';
REVOKE ALL ON FUNCTION dogdb_refresh_kpis(boolean) FROM PUBLIC;

-- The one month validator (common.c) for SQL callers; IMMUTABLE, not
-- STRICT: a NULL month is an error, not a NULL result
CREATE FUNCTION dogdb.check_month(month date, argname text) RETURNS void
	AS 'MODULE_PATHNAME', 'dogdb_check_month'
	LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION dogdb.check_month(date, text) IS 'Internal: raises 22023 (naming argname) unless month is the first day of a month from 0001-01-01 to 9999-12-01, the message every month argument gives';

-- the arguments of the KPI functions: 22023 with a hint unless valid
CREATE OR REPLACE FUNCTION dogdb.kpi_check_arguments(from_month date, to_month date, group_by text) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF group_by IS NULL OR group_by NOT IN ('company_size', 'tier', 'all') THEN
		RAISE EXCEPTION 'unknown KPI grouping: %', coalesce(quote_literal(group_by), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'group_by must be one of ''company_size'', ''tier'' or ''all''.';
	END IF;
	PERFORM dogdb.check_month(from_month, 'from_month');
	PERFORM dogdb.check_month(to_month, 'to_month');
	IF from_month > to_month THEN
		RAISE EXCEPTION 'KPI month range is reversed: from % to %', from_month, to_month
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'from_month must be on or before to_month; both are included.';
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb.kpi_check_arguments(date, date, text) IS 'Internal to the dogdb_kpi_* functions: validates their arguments';

-- The KPI functions: STABLE, they read the materialized views and the
-- plan names (a tier is the name of the plan now, 'none' without one)
CREATE OR REPLACE FUNCTION dogdb_kpi_retention(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, active_accounts bigint, churned_accounts bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, group_by);
	RETURN QUERY
	SELECT k.month, dogdb.kpi_segment(group_by, k.company_size, coalesce(p.name, 'none')),
		   sum(k.active_accounts)::bigint, sum(k.churned_accounts)::bigint
	  FROM dogdb.kpi_retention k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_retention(date, date, text) IS 'Per month and segment: accounts with at least one session, and accounts whose churn month it is';

CREATE OR REPLACE FUNCTION dogdb_kpi_usage(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, active_accounts bigint, sessions bigint, avg_sessions numeric)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, group_by);
	RETURN QUERY
	SELECT k.month, dogdb.kpi_segment(group_by, k.company_size, coalesce(p.name, 'none')),
		   sum(k.active_accounts)::bigint, sum(k.sessions)::bigint,
		   round(sum(k.sessions) / nullif(sum(k.active_accounts), 0), 2)
	  FROM dogdb.kpi_usage k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_usage(date, date, text) IS 'Per month and segment: active accounts, sessions, and sessions per active account';

CREATE OR REPLACE FUNCTION dogdb_kpi_revenue(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, revenue_cents bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, group_by);
	RETURN QUERY
	SELECT k.month, dogdb.kpi_segment(group_by, k.company_size, coalesce(p.name, 'none')),
		   sum(k.revenue_cents)::bigint
	  FROM dogdb.kpi_revenue k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_revenue(date, date, text) IS 'Per month and segment: the billable amount by the invoice rules (equals the month''s invoice totals once they are issued)';

--
-- [dump] pg_dump keeps every row, seeded ones included
--
