/* dogdb_analytics--1.2--1.3.sql: hardening and renovation (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.3'" to load this file. \quit

--
-- [encoding] the extension needs a UTF-8 database
--

--
-- [hardening] aggregates, bitmap readers, license parsing
--
COMMENT ON FUNCTION dogdb_parse_license(text) IS 'Parse a legacy license blob (JSON, or JSON with curly quotes) into license_id, role and status; a blob that would need more than 256 MB of memory to parse is refused (54000)';
COMMENT ON AGGREGATE dogdb_active_months(timestamptz) IS 'Bitmap of the UTC months of the session times (years 0001 to 9999; infinite or other times are an error): first month (int32, months since 2000-01), then one bit per month; order-independent, combines with OR';
COMMENT ON FUNCTION dogdb_first_inactive_month(bytea, date, date) IS 'First month from the month of from_month through the month of to_month (dates from 0001-01-01 to 9999-12-31) that is not in the bitmap (its first day), or NULL';

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
