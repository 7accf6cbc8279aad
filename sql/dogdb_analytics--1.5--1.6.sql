/* dogdb_analytics--1.5--1.6.sql: the churn aggregate's grouped scan, the web event loader in C, faster funnel and Stripe paths (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.6'" to load this file. \quit

-- [churnpath] the grouped scan of dogdb_active_months(): a support function
-- on the transition function loads the library before the planner builds
-- the grouping paths (src/churn_path.c)
CREATE FUNCTION dogdb_active_months_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_active_months_support'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_active_months_support(internal) IS 'Planner support function of dogdb_active_months_transfn(): loads the library, whose planner hook offers the grouped scan of dogdb_active_months()';
ALTER FUNCTION dogdb_active_months_transfn(bytea, timestamptz) SUPPORT dogdb_active_months_support;
