/* dogdb_analytics--1.2--1.3.sql: hardening and renovation (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.3'" to load this file. \quit

--
-- [encoding] the extension needs a UTF-8 database
--
-- The license parser reads UTF-8 (curly quotes included) and every text the
-- extension stores or returns must be valid in the database encoding: it
-- needs a UTF-8 database.
DO $enc$
BEGIN
	IF pg_catalog.getdatabaseencoding() <> 'UTF8' THEN
		RAISE EXCEPTION 'dogdb_analytics requires a database with encoding UTF8, not %', pg_catalog.getdatabaseencoding()
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Create the database with CREATE DATABASE ... TEMPLATE template0 ENCODING ''UTF8'' LOCALE ''C.UTF-8'' (or another UTF-8 locale).';
	END IF;
END
$enc$;

--
-- [quality] each data-quality check written once
--
CREATE OR REPLACE FUNCTION dogdb_check_data_quality()
	RETURNS TABLE (check_name text, relation text, failing_rows bigint, sample text)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	-- each check once: its name, the relation it looks at, and the keys of
	-- the rows that fail it
	WITH failures (ord, key) AS (
		SELECT 1, a.account_id::text
		  FROM dogdb.accounts a
		 WHERE EXISTS (SELECT FROM dogdb.accounts b
						WHERE lower(b.email) = lower(a.email) AND b.account_id <> a.account_id)
		UNION ALL
		SELECT 2, a.account_id::text FROM dogdb.accounts a WHERE a.email IS NULL
		UNION ALL
		SELECT 3, i.interaction_id::text FROM dogdb.interactions i WHERE i.rep_id IS NULL
		UNION ALL
		SELECT 4, l.license_id
		  FROM dogdb.licenses l
		 WHERE l.status NOT IN ('active', 'inactive', 'suspended', 'expired', 'revoked')
		UNION ALL
		SELECT 5, i.interaction_id::text
		  FROM dogdb.interactions i
		 WHERE i.status NOT IN ('open', 'pending', 'resolved', 'closed')
		UNION ALL
		SELECT 6, s.subscription_id::text
		  FROM dogdb.subscriptions s
		 WHERE NOT EXISTS (SELECT FROM dogdb.plan_prices p
							WHERE p.plan_id = s.plan_id
							  AND p.effective_from <= (s.valid_from AT TIME ZONE 'UTC')::date)
		UNION ALL
		SELECT 7, l.account_id::text
		  FROM dogdb.licenses l WHERE l.status = 'active'
		 GROUP BY l.account_id HAVING count(*) > 1
		UNION ALL
		SELECT 8, a.account_id::text
		  FROM dogdb.accounts a
		 WHERE NOT EXISTS (SELECT FROM dogdb.subscriptions s WHERE s.account_id = a.account_id)
		UNION ALL
		SELECT 9, r.source_table || ':' || r.reject_id FROM dogdb.import_rejects r
	)
	SELECT c.check_name, c.relation, count(f.key),
		   (SELECT string_agg(k.key, ', ' ORDER BY length(k.key), k.key)
			  FROM (SELECT f2.key FROM failures f2 WHERE f2.ord = c.ord
					 ORDER BY length(f2.key), f2.key LIMIT 5) k)
	  FROM (VALUES (1, 'unique_email', 'dogdb.accounts'),
				   (2, 'not_null_email', 'dogdb.accounts'),
				   (3, 'not_null_rep_id', 'dogdb.interactions'),
				   (4, 'accepted_values_status', 'dogdb.licenses'),
				   (5, 'accepted_values_status', 'dogdb.interactions'),
				   (6, 'relationships_plan_prices', 'dogdb.subscriptions'),
				   (7, 'multiple_active_licenses', 'dogdb.licenses'),
				   (8, 'accounts_without_subscription', 'dogdb.accounts'),
				   (9, 'rejects_in_quarantine', 'dogdb.import_rejects')) AS c (ord, check_name, relation)
	  LEFT JOIN failures f ON f.ord = c.ord
	 GROUP BY c.ord, c.check_name, c.relation
	 ORDER BY c.ord;
END;

--
-- [hardening] aggregates, bitmap readers, license parsing
--
COMMENT ON FUNCTION dogdb_parse_license(text) IS 'Parse a legacy license blob (JSON, or JSON with curly quotes) into license_id, role and status; a blob that would need more than 256 MB of memory to parse is refused (54000)';
COMMENT ON AGGREGATE dogdb_active_months(timestamptz) IS 'Bitmap of the UTC months of the session times (years 0001 to 9999; infinite or other times are an error): first month (int32, months since 2000-01), then one bit per month; order-independent, combines with OR';
COMMENT ON FUNCTION dogdb_first_inactive_month(bytea, date, date) IS 'First month from the month of from_month through the month of to_month (dates from 0001-01-01 to 9999-12-31) that is not in the bitmap (its first day), or NULL';

--
-- [import] one legacy-import pipeline through the bulk writer
--
-- the pipeline is in C now (import.c): the SQL helpers are gone
DROP FUNCTION dogdb.import_legacy_licenses(regclass);
DROP FUNCTION dogdb.legacy_timestamp(regclass, name);
CREATE OR REPLACE FUNCTION dogdb_import_legacy(source_schema text DEFAULT 'public')
	RETURNS TABLE (source_table text, rows_read bigint, imported bigint,
				   rejected bigint, skipped bigint)
	AS 'MODULE_PATHNAME', 'dogdb_import_legacy'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;

--
-- [billing] invoices: privileges, month range
--
-- generate runs as the extension's owner: a billing role needs EXECUTE only
-- (the month range 0001..9999 and the pinned search_path are in the C code)
ALTER FUNCTION dogdb_generate_invoices(date) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dogdb_generate_invoices(date) IS 'Issue the invoices of a billing month (first day of a UTC month, 0001-01-01 to 9999-12-01) to every account that has none yet for it and a non-zero total; returns the invoices created. Safe to re-run; concurrent runs serialize. SECURITY DEFINER: runs as the extension''s owner, so a role needs only EXECUTE (revoked from PUBLIC; GRANT it to billing roles) and no privilege on the tables, so billing does not give the power to change issued invoices';
COMMENT ON FUNCTION dogdb_preview_invoice_lines(date) IS 'The invoice lines of a billing month (first day of a UTC month, 0001-01-01 to 9999-12-01) for every account with a non-zero total, computed from the subscriptions and prices as they are now; writes nothing. Runs with the caller''s privileges: needs SELECT on dogdb.pricing_plans, dogdb.plan_prices and dogdb.subscriptions';

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
--
-- Seeded rows and pg_dump.  CREATE EXTENSION seeds three plans and their
-- first prices; pg_dump keeps every row of both tables, edited seeded rows
-- included.  A restore runs CREATE EXTENSION (which seeds again) before it
-- loads the dumped rows, so a dumped row whose key is a seeded row that is
-- still as seeded replaces it, and the deletion of a seeded row is kept in
-- dogdb.deleted_seed_rows, whose restore deletes the seeded row again:
-- the restored tables hold exactly the rows that were dumped.
--
CREATE TABLE dogdb.deleted_seed_rows (
	plan_id		smallint NOT NULL,
	effective_from date NOT NULL DEFAULT '-infinity',
	PRIMARY KEY (plan_id, effective_from)
);
COMMENT ON TABLE dogdb.deleted_seed_rows IS 'Seeded plans (effective_from -infinity) and seeded prices that were deleted, so that a restore deletes them again; kept by the extension''s triggers';

-- whether a row is a seeded row exactly as CREATE EXTENSION made it
CREATE FUNCTION dogdb.is_pristine_seed(plan_id smallint, name text, price_cents bigint, effective_from date)
	RETURNS boolean
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE WHEN name IS NOT NULL
				THEN (plan_id, name) IN ((1::smallint, 'free'), (2, 'medium'), (3, 'enterprise'))
				ELSE (plan_id, price_cents, effective_from) IN
					((1::smallint, 0::bigint, '2019-01-01'::date), (2, 5000, '2019-01-01'), (3, 50000, '2019-01-01'))
		   END;
COMMENT ON FUNCTION dogdb.is_pristine_seed(smallint, text, bigint, date) IS 'Internal: whether a plan (name given) or price (price and date given) is a seeded row as CREATE EXTENSION made it';

-- BEFORE INSERT on pricing_plans and plan_prices: a row whose key is a
-- pristine seeded row replaces it; AFTER DELETE: a deleted seeded key is
-- remembered.  SECURITY DEFINER: writers need no privilege on the
-- extension's bookkeeping table.
CREATE FUNCTION dogdb.keep_seed_rows() RETURNS trigger
	LANGUAGE plpgsql VOLATILE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF TG_OP = 'DELETE' THEN
		-- (nested: OLD of pricing_plans has no effective_from)
		IF TG_ARGV[0] = 'plans' THEN
			IF OLD.plan_id IN (1, 2, 3) THEN
				INSERT INTO dogdb.deleted_seed_rows VALUES (OLD.plan_id, '-infinity') ON CONFLICT DO NOTHING;
			END IF;
		ELSIF OLD.plan_id IN (1, 2, 3) AND OLD.effective_from = '2019-01-01' THEN
			INSERT INTO dogdb.deleted_seed_rows VALUES (OLD.plan_id, OLD.effective_from) ON CONFLICT DO NOTHING;
		END IF;
		RETURN OLD;
	END IF;
	IF TG_ARGV[0] = 'plans' THEN
		DELETE FROM dogdb.deleted_seed_rows d WHERE d.plan_id = NEW.plan_id AND d.effective_from = '-infinity';
		UPDATE dogdb.pricing_plans p SET name = NEW.name
		 WHERE p.plan_id = NEW.plan_id AND dogdb.is_pristine_seed(p.plan_id, p.name, NULL, NULL);
	ELSE
		DELETE FROM dogdb.deleted_seed_rows d WHERE d.plan_id = NEW.plan_id AND d.effective_from = NEW.effective_from;
		UPDATE dogdb.plan_prices p SET monthly_price_cents = NEW.monthly_price_cents
		 WHERE p.plan_id = NEW.plan_id AND p.effective_from = NEW.effective_from
		   AND dogdb.is_pristine_seed(p.plan_id, NULL, p.monthly_price_cents, p.effective_from);
	END IF;
	IF FOUND THEN
		RETURN NULL;			-- the seeded row now holds the inserted values
	END IF;
	RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION dogdb.keep_seed_rows() IS 'Trigger: keeps seeded plans and prices exact across pg_dump and restore (see dogdb.deleted_seed_rows)';
REVOKE ALL ON FUNCTION dogdb.keep_seed_rows() FROM PUBLIC;

-- a restored deletion deletes the seeded row (and a plan's seeded price) again
CREATE FUNCTION dogdb.restore_seed_deletion() RETURNS trigger
	LANGUAGE plpgsql VOLATILE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF NEW.effective_from = '-infinity' THEN
		DELETE FROM dogdb.plan_prices p
		 WHERE p.plan_id = NEW.plan_id AND dogdb.is_pristine_seed(p.plan_id, NULL, p.monthly_price_cents, p.effective_from);
		DELETE FROM dogdb.pricing_plans p
		 WHERE p.plan_id = NEW.plan_id AND dogdb.is_pristine_seed(p.plan_id, p.name, NULL, NULL);
	ELSE
		DELETE FROM dogdb.plan_prices p
		 WHERE p.plan_id = NEW.plan_id AND p.effective_from = NEW.effective_from
		   AND dogdb.is_pristine_seed(p.plan_id, NULL, p.monthly_price_cents, p.effective_from);
	END IF;
	-- those deletions remember themselves
	IF EXISTS (SELECT FROM dogdb.deleted_seed_rows d
				WHERE d.plan_id = NEW.plan_id AND d.effective_from = NEW.effective_from) THEN
		RETURN NULL;
	END IF;
	RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION dogdb.restore_seed_deletion() IS 'Trigger: a restored row of dogdb.deleted_seed_rows deletes the seeded row again';
REVOKE ALL ON FUNCTION dogdb.restore_seed_deletion() FROM PUBLIC;

CREATE TRIGGER keep_seed_rows BEFORE INSERT ON dogdb.pricing_plans
	FOR EACH ROW EXECUTE FUNCTION dogdb.keep_seed_rows('plans');
CREATE TRIGGER keep_seed_deletions AFTER DELETE ON dogdb.pricing_plans
	FOR EACH ROW EXECUTE FUNCTION dogdb.keep_seed_rows('plans');
CREATE TRIGGER keep_seed_rows BEFORE INSERT ON dogdb.plan_prices
	FOR EACH ROW EXECUTE FUNCTION dogdb.keep_seed_rows('prices');
CREATE TRIGGER keep_seed_deletions AFTER DELETE ON dogdb.plan_prices
	FOR EACH ROW EXECUTE FUNCTION dogdb.keep_seed_rows('prices');
CREATE TRIGGER restore_seed_deletion BEFORE INSERT ON dogdb.deleted_seed_rows
	FOR EACH ROW EXECUTE FUNCTION dogdb.restore_seed_deletion();

-- seeded rows edited before this update are dumped from now on as well
SELECT pg_catalog.pg_extension_config_dump('dogdb.pricing_plans', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.plan_prices', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.deleted_seed_rows', '');

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

--
-- [stripe] Stripe webhooks, payments ledger, MRR movements, LTV and cohorts
--
--
-- Stripe webhook events into an append-only ledger and the facts derived
-- from it (README "Stripe payments").  Money is integer cents with its
-- currency; times are timestamptz; months are UTC calendar months.
--
-- Distribution keys: every fact table has account_id in its primary key.
-- Two tables are keyed without it, on purpose: the ledger
-- dogdb.stripe_events (the unique Stripe event id is the exactly-once
-- guarantee, so the ledger is a reference table keyed by event id) and the
-- mapping dogdb.stripe_customer_accounts (a Stripe customer id decides the
-- account, so it cannot be keyed by it).

-- roles (global objects: created when missing, never dropped)
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dogdb_ingest') THEN
		CREATE ROLE dogdb_ingest NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dogdb_reader') THEN
		CREATE ROLE dogdb_reader NOLOGIN;
	END IF;
END
$do$;

CREATE TABLE dogdb.stripe_webhook_secrets (
	secret		text PRIMARY KEY CHECK (secret <> ''),
	note		text,
	added_at	timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dogdb.stripe_webhook_secrets FROM PUBLIC;
COMMENT ON TABLE dogdb.stripe_webhook_secrets IS 'Stripe endpoint signing secrets (whsec_...), readable and writable by superusers only; several while a secret is rolled; none = events are taken unsigned';

CREATE TABLE dogdb.stripe_events (
	event_id	text PRIMARY KEY CHECK (event_id <> ''),
	event_type	text NOT NULL,
	object_id	text,
	link_id		text,
	created		timestamptz NOT NULL,
	arrival		bigint GENERATED ALWAYS AS IDENTITY,
	received_at timestamptz NOT NULL DEFAULT now(),
	payload		text NOT NULL
);
CREATE INDEX stripe_events_link_idx ON dogdb.stripe_events (link_id);
REVOKE ALL ON dogdb.stripe_events FROM PUBLIC;
COMMENT ON TABLE dogdb.stripe_events IS 'Ledger: every accepted Stripe event, raw and once (keyed by the Stripe event id, a reference table); append-only, the facts are derived from it';
COMMENT ON COLUMN dogdb.stripe_events.link_id IS 'The customer id (the charge id for a refund event) whose mapping an event waits for';
COMMENT ON COLUMN dogdb.stripe_events.arrival IS 'Arrival order: breaks ties between events of one object with the same created second and rank';
COMMENT ON COLUMN dogdb.stripe_events.payload IS 'The raw request body, as signed';

CREATE TABLE dogdb.stripe_customer_accounts (
	customer_id text PRIMARY KEY CHECK (customer_id <> ''),
	account_id	bigint NOT NULL CHECK (account_id > 0),
	source		text NOT NULL DEFAULT 'manual' CHECK (source IN ('metadata', 'manual'))
);
CREATE INDEX stripe_customer_accounts_account_idx ON dogdb.stripe_customer_accounts (account_id);
COMMENT ON TABLE dogdb.stripe_customer_accounts IS 'Which DogDB account a Stripe customer is: from metadata.account_id of its first customer event that has one, or added by hand (source manual; run dogdb_stripe_replay() after adding)';

CREATE TABLE dogdb.stripe_customers (
	account_id	bigint NOT NULL,
	customer_id text NOT NULL,
	email		text,
	deleted		boolean NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, customer_id)
);
COMMENT ON TABLE dogdb.stripe_customers IS 'Stripe customers as of their newest event';

CREATE TABLE dogdb.stripe_subscriptions (
	account_id	bigint NOT NULL,
	subscription_id text NOT NULL,
	customer_id text NOT NULL,
	status		text NOT NULL,
	currency	text NOT NULL,
	mrr_cents	bigint NOT NULL,
	price_id	text NOT NULL,
	quantity	bigint NOT NULL,
	"interval"	text NOT NULL,
	interval_count bigint NOT NULL,
	discount_percent_off numeric,
	discount_amount_off_cents bigint,
	discount_end timestamptz,
	started_at	timestamptz,
	canceled_at timestamptz,
	ended_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, subscription_id)
);
COMMENT ON TABLE dogdb.stripe_subscriptions IS 'Stripe subscriptions as of their newest event (price, quantity and interval of the first item; MRR of all items)';
COMMENT ON COLUMN dogdb.stripe_subscriptions.mrr_cents IS 'Monthly recurring revenue in cents: items normalized to a month, less the discount; 0 unless active or past_due';

CREATE TABLE dogdb.stripe_subscription_versions (
	account_id	bigint NOT NULL,
	subscription_id text NOT NULL,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	status		text NOT NULL,
	currency	text NOT NULL,
	mrr_cents	bigint NOT NULL,
	PRIMARY KEY (account_id, subscription_id, event_id)
);
COMMENT ON TABLE dogdb.stripe_subscription_versions IS 'Every subscription event, stale ones included: the MRR history (at a time, the version with the greatest event_created, event_rank, event_arrival before it holds)';

CREATE TABLE dogdb.stripe_invoices (
	account_id	bigint NOT NULL,
	invoice_id	text NOT NULL,
	customer_id text NOT NULL,
	subscription_id text,
	status		text NOT NULL,
	currency	text NOT NULL,
	total_cents bigint NOT NULL,
	tax_cents	bigint NOT NULL,
	amount_paid_cents bigint NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, invoice_id)
);
COMMENT ON TABLE dogdb.stripe_invoices IS 'Stripe invoices as of their newest event';

CREATE TABLE dogdb.stripe_payments (
	account_id	bigint NOT NULL,
	charge_id	text NOT NULL,
	customer_id text NOT NULL,
	invoice_id	text,
	status		text NOT NULL,
	currency	text NOT NULL,
	amount_cents bigint NOT NULL,
	amount_refunded_cents bigint NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, charge_id)
);
CREATE INDEX stripe_payments_charge_idx ON dogdb.stripe_payments (charge_id);
COMMENT ON TABLE dogdb.stripe_payments IS 'Payments: Stripe charges as of their newest event (status succeeded = money received)';

CREATE TABLE dogdb.stripe_refunds (
	account_id	bigint NOT NULL,
	refund_id	text NOT NULL,
	charge_id	text NOT NULL,
	status		text NOT NULL,
	currency	text NOT NULL,
	amount_cents bigint NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, refund_id)
);
COMMENT ON TABLE dogdb.stripe_refunds IS 'Refunds of payments as of their newest event (status succeeded = money returned)';

SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_webhook_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_events', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_customer_accounts', '');
-- the facts are registered too, though dogdb_stripe_replay() rebuilds them
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_customers', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_subscription_versions', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_invoices', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_payments', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_refunds', '');

-- IMMUTABLE: a function of its arguments alone (the time is an argument)
CREATE FUNCTION dogdb_stripe_verify_signature(payload text, signature_header text, secrets text[],
											  tolerance interval DEFAULT '5 minutes',
											  at timestamptz DEFAULT now())
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'dogdb_stripe_verify_signature'
	LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_stripe_verify_signature(text, text, text[], interval, timestamptz) IS 'True if the Stripe-Signature header is well formed, its t within tolerance of at (past or future), and one of its v1 signatures the HMAC-SHA256 of "t.payload" with one of the secrets';

-- VOLATILE: writes the ledger and the facts; SECURITY DEFINER: reads the secrets
CREATE FUNCTION dogdb_ingest_stripe_event(payload text, signature_header text,
										  OUT event_id text, OUT event_type text, OUT outcome text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'dogdb_ingest_stripe_event'
	LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dogdb_ingest_stripe_event(text, text) IS 'Take one Stripe webhook delivery (raw body and Stripe-Signature header) into the ledger and the facts: applied, duplicate, stale or ignored';
REVOKE ALL ON FUNCTION dogdb_ingest_stripe_event(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dogdb_ingest_stripe_event(text, text) TO dogdb_ingest;

-- VOLATILE: rewrites the facts
CREATE FUNCTION dogdb_stripe_replay(OUT events bigint, OUT applied bigint, OUT stale bigint, OUT ignored bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'dogdb_stripe_replay'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION dogdb_stripe_replay() IS 'Rebuild every Stripe fact from the ledger, in arrival order (after a manual customer mapping, or to check the facts)';
REVOKE ALL ON FUNCTION dogdb_stripe_replay() FROM PUBLIC;

-- MRR and its movements, LTV, cohorts (README "Stripe payments")
-- STABLE: read the subscription history.  PARALLEL RESTRICTED: they pin
-- search_path for their queries, which a parallel worker may not do.
CREATE FUNCTION dogdb_stripe_account_mrr(from_month date, to_month date)
	RETURNS TABLE (account_id bigint, currency text, month date, mrr_cents bigint, active boolean)
	AS 'MODULE_PATHNAME', 'dogdb_stripe_account_mrr'
	LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dogdb_stripe_account_mrr(date, date) IS 'Per account, currency and month: MRR in cents at the end of the month and whether it is a customer then (a subscription active or past_due); rows only where either holds';

CREATE FUNCTION dogdb.stripe_mrr_movement_totals(from_month date, to_month date,
	OUT month date, OUT currency text, OUT mrr_start_cents bigint, OUT new_cents bigint,
	OUT expansion_cents bigint, OUT contraction_cents bigint, OUT churned_cents bigint,
	OUT reactivation_cents bigint, OUT mrr_end_cents bigint, OUT customers_start bigint,
	OUT new_customers bigint, OUT reactivated_customers bigint, OUT churned_customers bigint,
	OUT customers_end bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'dogdb_stripe_mrr_movements'
	LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dogdb.stripe_mrr_movement_totals(date, date) IS 'Internal to dogdb_mrr_movements(): the movement totals per month and currency';

CREATE FUNCTION dogdb_mrr_movements(from_month date, to_month date)
	RETURNS TABLE (month date, currency text, mrr_start_cents bigint, new_cents bigint,
				   expansion_cents bigint, contraction_cents bigint, churned_cents bigint,
				   reactivation_cents bigint, net_cents bigint, mrr_end_cents bigint,
				   customers_start bigint, new_customers bigint, reactivated_customers bigint,
				   churned_customers bigint, customers_end bigint,
				   gross_mrr_churn_rate numeric, net_mrr_churn_rate numeric, customer_churn_rate numeric)
	LANGUAGE sql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT t.month, t.currency, t.mrr_start_cents, t.new_cents, t.expansion_cents, t.contraction_cents,
		   t.churned_cents, t.reactivation_cents,
		   t.new_cents + t.expansion_cents + t.contraction_cents + t.churned_cents + t.reactivation_cents,
		   t.mrr_end_cents, t.customers_start, t.new_customers, t.reactivated_customers,
		   t.churned_customers, t.customers_end,
		   round(-(t.churned_cents + t.contraction_cents)::numeric / nullif(t.mrr_start_cents, 0), 4),
		   round(-(t.churned_cents + t.contraction_cents + t.expansion_cents + t.reactivation_cents)::numeric
				 / nullif(t.mrr_start_cents, 0), 4),
		   round(t.churned_customers::numeric / nullif(t.customers_start, 0), 4)
	  FROM dogdb.stripe_mrr_movement_totals(from_month, to_month) t
	 ORDER BY t.month, t.currency;
END;
COMMENT ON FUNCTION dogdb_mrr_movements(date, date) IS 'Per month and currency: MRR at the start, its movements (new, expansion, contraction, churned, reactivation; signed cents), net, MRR at the end, customer counts, and gross/net MRR churn and customer churn rates (ChartMogul''s definitions)';

-- STABLE: reads the facts
CREATE FUNCTION dogdb_customer_ltv(as_of date DEFAULT current_date)
	RETURNS TABLE (account_id bigint, currency text, first_payment_at timestamptz, months_active integer,
				   realized_ltv_cents bigint, mrr_cents bigint, arpa_cents numeric,
				   customer_churn_rate numeric, predicted_ltv_cents bigint, predicted_ltv_note text)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	this_month date;
	last_month date;
	first_month date;
BEGIN
	IF as_of IS NULL OR NOT isfinite(as_of) OR as_of < '0001-07-01' OR as_of > '9999-12-31' THEN
		RAISE EXCEPTION 'as_of must be a date from 0001-07-01 to 9999-12-31, not %', coalesce(as_of::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For a timestamptz x use (x AT TIME ZONE ''UTC'')::date.';
	END IF;
	this_month := date_trunc('month', as_of)::date;
	last_month := (this_month - interval '1 month')::date;		-- the last complete month
	first_month := (this_month - interval '6 months')::date;
	RETURN QUERY
	WITH am AS (
		SELECT a.account_id, a.currency, count(*) FILTER (WHERE a.active)::integer AS months_active,
			   sum(a.mrr_cents) FILTER (WHERE a.month = last_month)::bigint AS mrr_cents
		  FROM @extschema@.dogdb_stripe_account_mrr('0001-01-01', last_month) a
		 GROUP BY 1, 2
	), paid AS (
		SELECT p.account_id, p.currency, min(p.created_at) AS first_payment_at, sum(p.amount_cents) AS cents
		  FROM dogdb.stripe_payments p
		 WHERE p.status = 'succeeded' AND p.created_at < ((as_of + 1)::timestamp AT TIME ZONE 'UTC')
		 GROUP BY 1, 2
	), refunded AS (
		SELECT r.account_id, r.currency, sum(r.amount_cents) AS cents
		  FROM dogdb.stripe_refunds r
		 WHERE r.status = 'succeeded' AND r.created_at < ((as_of + 1)::timestamp AT TIME ZONE 'UTC')
		 GROUP BY 1, 2
	), rates AS (		-- per currency: ARPA at the last complete month, trailing six-month churn
		SELECT m.currency,
			   round(sum(m.mrr_end_cents) FILTER (WHERE m.month = last_month)::numeric
					 / nullif(sum(m.customers_end) FILTER (WHERE m.month = last_month), 0), 2) AS arpa,
			   avg(m.churned_customers::numeric / nullif(m.customers_start, 0)) AS churn
		  FROM @extschema@.dogdb_mrr_movements(first_month, last_month) m
		 GROUP BY 1
	), accounts AS (
		SELECT x.account_id, x.currency FROM am x
		UNION SELECT x.account_id, x.currency FROM paid x
		UNION SELECT x.account_id, x.currency FROM refunded x
	)
	SELECT a.account_id, a.currency, p.first_payment_at, coalesce(am.months_active, 0),
		   (coalesce(p.cents, 0) - coalesce(r.cents, 0))::bigint, coalesce(am.mrr_cents, 0),
		   rt.arpa, round(rt.churn, 4),
		   CASE WHEN rt.churn > 0 THEN round(rt.arpa / rt.churn)::bigint END,
		   CASE WHEN rt.arpa IS NULL THEN 'no customers in this currency at the end of the last complete month'
				WHEN rt.churn IS NULL THEN 'no customers in this currency at the start of the six months before as_of''s month'
				WHEN rt.churn = 0 THEN 'no customer churned in the six months before as_of''s month: lifetime unbounded'
		   END
	  FROM accounts a
	  LEFT JOIN am ON am.account_id = a.account_id AND am.currency = a.currency
	  LEFT JOIN paid p ON p.account_id = a.account_id AND p.currency = a.currency
	  LEFT JOIN refunded r ON r.account_id = a.account_id AND r.currency = a.currency
	  LEFT JOIN rates rt ON rt.currency = a.currency
	 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_customer_ltv(date) IS 'Per account and currency: realized LTV (succeeded payments less succeeded refunds up to as_of), months as a customer, and predicted LTV = ARPA / trailing six-month average customer churn rate (complete months before as_of''s month; NULL with the reason when that churn is 0)';

-- the month arguments of dogdb_cohort_retention(), as the C functions check theirs
CREATE FUNCTION dogdb.stripe_check_months(from_month date, to_month date) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	-- the one month validator every month argument goes through
	PERFORM dogdb.check_month(from_month, 'from_month');
	PERFORM dogdb.check_month(to_month, 'to_month');
	IF from_month > to_month THEN
		RAISE EXCEPTION 'from_month must be on or before to_month'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Both months are included.';
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb.stripe_check_months(date, date) IS 'Internal to dogdb_cohort_retention(): validates its months';

-- STABLE: reads the facts
CREATE FUNCTION dogdb_cohort_retention(from_month date, to_month date, basis text DEFAULT 'logo')
	RETURNS TABLE (cohort_month date, months_since integer, cohort_size bigint, retained bigint,
				   retention_rate numeric, revenue_cents bigint, currency text)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	b text := lower(basis);
BEGIN
	IF b IS NULL OR b NOT IN ('logo', 'revenue') THEN
		RAISE EXCEPTION 'basis must be ''logo'' or ''revenue'', not %', coalesce(quote_literal(basis), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = '''logo'' counts customers retained; ''revenue'' is net revenue retention (MRR against the cohort month''s).';
	END IF;
	PERFORM dogdb.stripe_check_months(from_month, to_month);
	RETURN QUERY
	WITH first_paid AS (	-- the cohort: month of the first succeeded payment, in its currency
		SELECT DISTINCT ON (p.account_id) p.account_id, p.currency,
			   date_trunc('month', p.created_at AT TIME ZONE 'UTC')::date AS cohort
		  FROM dogdb.stripe_payments p
		 WHERE p.status = 'succeeded'
		 ORDER BY p.account_id, p.created_at, p.charge_id
	), c AS (
		SELECT * FROM first_paid f WHERE f.cohort BETWEEN from_month AND to_month
	), am AS (
		SELECT a.* FROM @extschema@.dogdb_stripe_account_mrr(from_month, to_month) a
		 WHERE a.account_id IN (SELECT c.account_id FROM c)
	), grid AS (
		SELECT c.cohort, c.currency, k::integer AS k, count(*) AS size
		  FROM c, generate_series(0, (extract(year FROM age(to_month, c.cohort)) * 12
									  + extract(month FROM age(to_month, c.cohort)))::integer) k
		 GROUP BY 1, 2, 3
	), cells AS (
		SELECT g.cohort, g.currency, g.k, g.size,
			   count(am.account_id) FILTER (WHERE am.active) AS kept,
			   coalesce(sum(am.mrr_cents), 0)::bigint AS mrr
		  FROM grid g
		  LEFT JOIN c ON c.cohort = g.cohort AND c.currency = g.currency
		  LEFT JOIN am ON am.account_id = c.account_id AND am.currency = c.currency
					  AND am.month = (g.cohort + make_interval(months => g.k))::date
		 GROUP BY 1, 2, 3, 4
	)
	SELECT x.cohort, x.k, x.size, x.kept,
		   CASE b WHEN 'logo' THEN round(x.kept::numeric / x.size, 4)
				  ELSE round(x.mrr::numeric / nullif(first_value(x.mrr) OVER w, 0), 4) END,
		   x.mrr, x.currency
	  FROM cells x
	WINDOW w AS (PARTITION BY x.cohort, x.currency ORDER BY x.k)
	 ORDER BY 1, 7, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_cohort_retention(date, date, text) IS 'Per cohort (month of the first succeeded payment, and its currency) and months since: cohort size, customers retained at the month end, retention rate (logo: retained / size; revenue: MRR / the cohort month''s MRR, may exceed 1), MRR in cents';

-- who may read (dogdb_ingest gets nothing here)
REVOKE ALL ON FUNCTION dogdb_stripe_account_mrr(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb.stripe_mrr_movement_totals(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb_mrr_movements(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb_customer_ltv(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb_cohort_retention(date, date, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb.stripe_check_months(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dogdb_stripe_account_mrr(date, date), dogdb.stripe_mrr_movement_totals(date, date),
	dogdb_mrr_movements(date, date), dogdb_customer_ltv(date), dogdb_cohort_retention(date, date, text),
	dogdb.stripe_check_months(date, date) TO dogdb_reader;
GRANT USAGE ON SCHEMA dogdb TO dogdb_reader;
GRANT SELECT ON dogdb.stripe_customer_accounts, dogdb.stripe_customers, dogdb.stripe_subscriptions,
	dogdb.stripe_subscription_versions, dogdb.stripe_invoices, dogdb.stripe_payments, dogdb.stripe_refunds
	TO dogdb_reader;
