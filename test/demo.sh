#!/bin/sh
# The demo ("make demo"): create the extension; import the legacy sample
# and print the import summary, quarantine and data-quality report (rolled
# back afterwards); generate the demo dataset, bill every month of it,
# refresh the KPIs and print the three KPI tables; ingest the Stripe
# fixtures and print MRR movements, LTV and cohorts (rolled back).
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
\echo '== Support interactions of the import by channel, 2021-01 to 2021-04 (the model is refreshed with the KPIs)'
SELECT count(*) AS kpis_refreshed FROM dogdb_refresh_kpis();
SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-04-01', 'channel');
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
\echo '== What a query builder browses without calling a function: dogdb.kpi_monthly, complete months, by tier (first 12 rows)'
SELECT month_label, tier, sum(active_accounts) AS active, sum(churned_accounts) AS churned,
	   sum(revenue) AS revenue, currency
  FROM dogdb.kpi_monthly WHERE is_complete GROUP BY 1, 2, currency ORDER BY 1, 2 LIMIT 12;
-- Part 3: web events and the signup funnel: four questions, one call each
\echo '== Demo web events: 20000 visitors over 28 days from 2024-01-01 through the loader (skipped if dogdb.web_events has rows)'
SELECT NOT EXISTS (SELECT FROM dogdb.web_events) AS no_events \gset
\if :no_events
SELECT * FROM dogdb_generate_demo_web_events(20000, '2024-01-01 00:00+00', 28, 1);
\else
\echo 'dogdb.web_events has rows: no demo events; the answers below are of your data'
\endif
SET TimeZone = 'UTC';
\echo '== (1) Average time on each page of the flow (sessions: tracker id, else 30 minutes of inactivity)'
SELECT page_path, views, timed_views, round(avg_seconds::numeric, 1) AS avg_seconds, round(median_seconds::numeric, 1) AS median_seconds,
	   round(p90_seconds::numeric, 1) AS p90_seconds
  FROM dogdb_page_time_summary('2024-01-01', '2024-01-29', ARRAY['/', '/signup', '/dashboard']);
\echo '== (2) Do visitors from one client convert better? (conversion to the dashboard by client, first touch)'
SELECT segment AS client, max(users) FILTER (WHERE step_no = 1) AS entered,
	   max(users) FILTER (WHERE step_no = 6) AS converted,
	   max(conversion_from_start) FILTER (WHERE step_no = 6) AS conversion
  FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created', 'tier_selected', 'deployment_configured', '/dashboard'],
						   '2024-01-01', '2024-01-22', '1 day', 'client')
 GROUP BY 1 ORDER BY conversion DESC;
\echo '== (3) Which step has the largest drop-off? (the whole funnel; is_largest_drop_off marks it)'
SELECT step_no, step, users, conversion_from_previous, drop_off, is_largest_drop_off,
	   median_seconds_from_previous, in_progress
  FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created', 'tier_selected', 'deployment_configured', '/dashboard'],
						   '2024-01-01', '2024-01-29');
\echo '== (4) What share of new signups get from "account created" to "dashboard"? (weekly; open windows are in progress, not lost)'
SELECT * FROM dogdb_funnel_trend(ARRAY['account_created', 'tier_selected', 'deployment_configured', '/dashboard'],
								 '2024-01-01', '2024-01-29', '1 day', 'week');
RESET TimeZone;
SQL

# Part 3: Stripe webhooks (test/fixtures/stripe), in a transaction rolled
# back at the end: signed with a demo secret, delivered in their recorded
# order (redeliveries and out-of-order events included), then the MRR
# movements, LTV and cohorts
psql -X -v ON_ERROR_STOP=1 -q <<'SQL'
SET client_min_messages = warning;
SET timezone = 'UTC';
BEGIN;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE TEMP TABLE demo_stripe (delivery serial, body text);
\copy demo_stripe (body) FROM 'test/fixtures/stripe/events.jsonl' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
INSERT INTO dogdb.stripe_webhook_secrets (secret, note) VALUES ('whsec_demo', 'make demo');
\echo
\echo '== Stripe: ingestion of the fixture deliveries, signed as Stripe signs them'
SELECT i.outcome, count(*) AS deliveries
  FROM demo_stripe d,
	   LATERAL (SELECT floor(extract(epoch FROM now()))::bigint AS t) s,
	   dogdb_ingest_stripe_event(d.body, 't=' || s.t || ',v1=' ||
			encode(hmac(convert_to(s.t || '.' || d.body, 'UTF8'), convert_to('whsec_demo', 'UTF8'), 'sha256'), 'hex')) i
 GROUP BY 1 ORDER BY 1;
\echo '== MRR movements, 2021-01 to 2021-07 (cents; contraction and churn negative)'
SELECT month, currency, mrr_start_cents AS start, new_cents AS new, expansion_cents AS expansion,
	   contraction_cents AS contraction, churned_cents AS churned, reactivation_cents AS reactivation,
	   net_cents AS net, mrr_end_cents AS "end", customers_end AS customers,
	   gross_mrr_churn_rate AS gross_churn, net_mrr_churn_rate AS net_churn, customer_churn_rate AS customer_churn
  FROM dogdb_mrr_movements('2021-01-01', '2021-07-01');
\echo '== Customer LTV as of 2021-07-10'
SELECT account_id, currency, months_active, realized_ltv_cents, mrr_cents, arpa_cents, customer_churn_rate,
	   predicted_ltv_cents, predicted_ltv_note FROM dogdb_customer_ltv('2021-07-10');
\echo '== Cohort retention (logo), cohorts 2021-01 to 2021-06'
SELECT cohort_month, currency, cohort_size,
	   string_agg(format('%s', retention_rate), ' | ' ORDER BY months_since) AS "retention by month since 0, 1, 2, ..."
  FROM dogdb_cohort_retention('2021-01-01', '2021-06-01')
 GROUP BY 1, 2, 3 ORDER BY 1, 2;
\echo '== Net revenue retention of the 2021-01 cohort'
SELECT months_since, revenue_cents, retention_rate
  FROM dogdb_cohort_retention('2021-01-01', '2021-06-01', 'revenue') WHERE cohort_month = '2021-01-01';
ROLLBACK;
SQL
