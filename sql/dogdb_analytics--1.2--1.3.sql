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

--
-- [kpi] KPI engine: facts keyed by plan id, change tracking, privileges
--

--
-- [dump] pg_dump keeps every row, seeded ones included
--
