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
