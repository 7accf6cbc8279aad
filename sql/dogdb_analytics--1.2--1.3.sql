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
