/* dogdb_analytics--1.5--1.6.sql: the churn aggregate's grouped scan, the web event loader in C, faster funnel and Stripe paths (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.6'" to load this file. \quit
