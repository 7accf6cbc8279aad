/* dogdb_analytics--1.4--1.5.sql: faster ingestion paths, the KPI engine's cold path, Citus completion (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.5'" to load this file. \quit

-- [kpi3] dogdb_refresh_kpis() in C (src/kpi_top.c): the refresh with
-- nothing to do takes no PL/pgSQL and no statement but the log's
CREATE OR REPLACE FUNCTION dogdb_refresh_kpis(rebuild boolean DEFAULT false)
	RETURNS TABLE (kpi text, refreshed_at timestamptz, full_rebuild boolean, duration_ms numeric)
	AS 'MODULE_PATHNAME', 'dogdb_refresh_kpis'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
