#!/bin/sh
# The demo ("make demo"): create the extension; import the legacy sample
# and print the import summary, quarantine and data-quality report (rolled
# back afterwards); generate the demo dataset, bill every month of it,
# refresh the KPIs and print the three KPI tables.
#
# Runs on a throwaway local PostgreSQL 15 cluster, or on your server when
# PGHOST or PGDATABASE is set: it then creates the extension there, and
# generates and bills the demo dataset only if dogdb.accounts is empty
# (otherwise it only refreshes and prints the KPIs of the data there).
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--here" ] && [ -z "${PGHOST:-}${PGDATABASE:-}" ]; then
	echo "No PGHOST/PGDATABASE: running on a throwaway local cluster"
	exec test/cluster.sh "$0" --here
fi

psql -X -v ON_ERROR_STOP=1 -q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dogdb_analytics CASCADE;

-- Part 1: the legacy import, in a transaction that is rolled back at the end
BEGIN;
DROP SCHEMA IF EXISTS dogdb_demo_legacy CASCADE;
CREATE SCHEMA dogdb_demo_legacy;
SET LOCAL search_path = dogdb_demo_legacy, public;
\i test/legacy_sample.sql
RESET search_path;
\echo
\echo '== Import of the legacy tables (every source row imported, rejected or skipped)'
SELECT * FROM dogdb_import_legacy('dogdb_demo_legacy');
\echo '== Quarantined rows'
SELECT source_table, source_row->>'account_id' AS account_id, reason
  FROM dogdb.import_rejects ORDER BY source_table, reject_id;
\echo '== Data-quality report'
SELECT * FROM dogdb_check_data_quality();
ROLLBACK;

-- Part 2: the demo dataset, a year of invoices, the KPIs
\echo '== Demo dataset: 500 companies, 12 months from 2021-01 (skipped if dogdb.accounts has rows)'
SELECT NOT EXISTS (SELECT FROM dogdb.accounts) AS empty \gset
\if :empty
SELECT * FROM dogdb_generate_demo_data(500, 12, '2021-01-01', 1);
\echo '== Invoices of the demo dataset, every month of 2021'
SELECT m::date AS month, count(i.*) AS invoices_created, coalesce(sum(i.total_cents), 0) AS billed_cents
  FROM generate_series(timestamp '2021-01-01', '2021-12-01', '1 month') m
  LEFT JOIN LATERAL dogdb_generate_invoices(m::date) i ON true
 GROUP BY 1 ORDER BY 1;
\else
\echo 'dogdb.accounts has rows: no demo dataset and no invoices; the KPIs below are of your data'
\endif
\echo '== KPI refresh'
SELECT * FROM dogdb_refresh_kpis();
\echo '== Retention by company size, 2021'
SELECT * FROM dogdb_kpi_retention('2021-01-01', '2021-12-01', 'company_size');
\echo '== Usage by company size, 2021'
SELECT * FROM dogdb_kpi_usage('2021-01-01', '2021-12-01', 'company_size');
\echo '== Revenue by tier, 2021'
SELECT * FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'tier');
\echo '== The revenue KPI is what the invoices billed'
SELECT r.month, r.revenue_cents, i.invoiced_cents, r.revenue_cents = i.invoiced_cents AS equal
  FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'all') r
  LEFT JOIN (SELECT period_start, sum(total_cents) AS invoiced_cents FROM dogdb.invoices GROUP BY 1) i
	ON i.period_start = r.month;
SQL
