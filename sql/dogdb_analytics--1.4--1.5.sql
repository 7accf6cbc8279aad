/* dogdb_analytics--1.4--1.5.sql: faster ingestion paths, the KPI engine's cold path, Citus completion (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.5'" to load this file. \quit
