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
