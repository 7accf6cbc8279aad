/* dogdb_analytics--1.5--1.6.sql: the churn aggregate's grouped scan, the web event loader in C, faster funnel and Stripe paths (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.6'" to load this file. \quit

-- [funnelpath] the funnel scan: a planner support function on the window
-- funnel transition functions loads the library (and its planner hook) at plan time
CREATE FUNCTION dogdb_funnel_planner_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME', 'dogdb_funnel_planner_support'
	LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_funnel_planner_support(internal) IS 'Planner support function of the window funnel transition functions (loads the funnel scan''s planner hook)';
ALTER FUNCTION dogdb_window_funnel_transfn(internal, interval, timestamptz, boolean[]) SUPPORT dogdb_funnel_planner_support;
ALTER FUNCTION dogdb_window_funnel_transfn(internal, interval, text, timestamptz, boolean[]) SUPPORT dogdb_funnel_planner_support;
