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
-- [hkbench] dogdb_account_churn in C: one pass over the sessions, no GROUP BY
--
CREATE OR REPLACE FUNCTION dogdb_account_churn(as_of date DEFAULT current_date)
	RETURNS TABLE (account_id bigint, first_month date, last_active_month date, churn_month date)
	AS 'MODULE_PATHNAME', 'dogdb_account_churn'
	LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 1000;
