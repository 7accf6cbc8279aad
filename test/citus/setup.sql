-- Citus lab, part 1 (test/citus/lab.sh runs it on the coordinator): data on
-- the single node, the single-node results kept in schema lab (plain local
-- tables), then dogdb_distribute().  The comparisons are in suite.sql.
\set ON_ERROR_STOP on
\set QUIET on
SET client_min_messages = warning;
CREATE SCHEMA lab;

-- the legacy import on the single node: the sample (test/legacy_sample.sql),
-- a rerun, then a second source (legacy2) with changed rows, a new account
-- and a license id that account 1 holds claimed for account 2
CREATE SCHEMA legacy;
CREATE SCHEMA legacy2;
SET search_path = legacy, public;
\i test/legacy_sample.sql
SET search_path = legacy2, public;
\i test/legacy_sample.sql
RESET search_path;
UPDATE legacy2.customer_accounts SET email = 'bob@new.example' WHERE account_id = 2;
INSERT INTO legacy2.customer_accounts VALUES (12, 'heidi@new.example', 'Medium', '2021-06-01 10:00', NULL),
	(13, NULL, 'Enterprise', '1999-12-31 23:00', NULL);
INSERT INTO legacy2.customer_interactions VALUES (12, 'email', 'billing', 'Zoe', 'open', '2021-06-02 10:00', NULL),
	(12, 'email', 'billing', 'Zoe', 'open', '2021-06-02 10:00', NULL);
UPDATE legacy2.customer_interactions SET status = 'reopened' WHERE account_id = 3;
INSERT INTO legacy2.customer_licenses VALUES
	(2, '{"license_id": "d17cb11cda9ba249c22f67e4aed65d0f65f1a80c", "role": "admin", "status": "active"}', '2021-06-01 10:00', NULL),
	(12, '{"license_id": "0000aaaa", "role": "admin", "status": "active"}', '2021-06-01 10:00', NULL),
	(12, '{"license_id": "0000aaaa", "role": "viewer", "status": "active"}', '2021-06-01 10:00', '2021-06-03 10:00');
-- what an import leaves: its result and the rows (surrogate ids by rank, reps by name)
CREATE FUNCTION lab.import_state() RETURNS TABLE (t text, r jsonb) LANGUAGE sql AS $$
	SELECT 'accounts', to_jsonb(a) FROM dogdb.accounts a
	UNION ALL SELECT 'subscriptions', to_jsonb(s) - 'subscription_id'
		   || jsonb_build_object('rank', rank() OVER (ORDER BY s.subscription_id)) FROM dogdb.subscriptions s
	UNION ALL SELECT 'interactions', to_jsonb(i) - 'interaction_id' - 'rep_id'
		   || jsonb_build_object('rep', r.name, 'rank', rank() OVER (ORDER BY i.interaction_id))
	  FROM dogdb.interactions i LEFT JOIN dogdb.service_reps r USING (rep_id)
	UNION ALL SELECT 'licenses', to_jsonb(l) FROM dogdb.licenses l
	UNION ALL SELECT 'rejects', to_jsonb(j) - 'reject_id' - 'rejected_at' FROM dogdb.import_rejects j
$$;
CREATE TABLE lab.exp_import (run int, source text, r jsonb);
INSERT INTO lab.exp_import SELECT 1, 'legacy', to_jsonb(i) FROM dogdb_import_legacy('legacy') i;
INSERT INTO lab.exp_import SELECT 2, 'legacy', to_jsonb(i) FROM dogdb_import_legacy('legacy') i;
INSERT INTO lab.exp_import SELECT 3, 'legacy2', to_jsonb(i) FROM dogdb_import_legacy('legacy2') i;
CREATE TABLE lab.exp_import_state AS SELECT * FROM lab.import_state();
TRUNCATE dogdb.licenses, dogdb.interactions, dogdb.subscriptions, dogdb.sessions, dogdb.invoice_lines,
		 dogdb.invoices, dogdb.accounts, dogdb.import_rejects, dogdb.service_reps RESTART IDENTITY;

-- the same data as a single node would hold
SELECT dogdb_generate_demo_data(400, 12, '2021-01-01', 7);
-- the demo data as generated, for the demo run on Citus
CREATE TABLE lab.exp_demo AS
SELECT (SELECT md5(string_agg(format('%s|%s|%s|%s', account_id, email, company_size, created_at), ',' ORDER BY account_id))
		  FROM dogdb.accounts WHERE account_id > 0) AS accounts,
	   (SELECT md5(string_agg(format('%s|%s|%s|%s', account_id, plan_id, valid_from, valid_to), ',' ORDER BY account_id, valid_from))
		  FROM dogdb.subscriptions) AS subscriptions,
	   (SELECT md5(string_agg(format('%s|%s', account_id, created_at), ',' ORDER BY account_id, created_at))
		  FROM dogdb.sessions) AS sessions;
INSERT INTO dogdb.service_reps (name) VALUES ('ann'), ('bob');
INSERT INTO dogdb.interactions (account_id, rep_id, channel, status, created_at)
SELECT a, 1 + a % 2, 'email', CASE WHEN a % 5 = 0 THEN 'weird' ELSE 'open' END, '2021-02-01Z'
  FROM generate_series(1, 400, 3) a;
INSERT INTO dogdb.interactions (account_id, rep_id, channel, category, status, created_at, completed_at)
SELECT a, 1 + a % 2, 'phone', 'billing', 'resolved', '2021-03-01Z'::timestamptz + a * interval '1 hour',
	   '2021-03-02Z'::timestamptz + a * interval '3 hours'
  FROM generate_series(2, 400, 5) a;
INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at)
SELECT 'L' || a, a, 'admin', CASE WHEN a % 7 = 0 THEN 'bogus' ELSE 'active' END, '2021-01-01Z'
  FROM generate_series(1, 400, 2) a;
UPDATE dogdb.accounts SET email = 'shared@demo.example' WHERE account_id IN (5, 6, 9);
UPDATE dogdb.accounts SET email = NULL WHERE account_id = 11;

-- web events and Stripe events
SELECT count(*) FROM dogdb_generate_demo_web_events(800, '2024-01-01 00:00+00', 14, 3);
CREATE TABLE lab.stripe_in (n serial, body text);
\copy lab.stripe_in (body) FROM 'test/fixtures/stripe/events.jsonl' WITH (FORMAT text)
CREATE TABLE lab.exp_stripe_outcomes AS
SELECT i.n, r.* FROM lab.stripe_in i, LATERAL dogdb_ingest_stripe_event(i.body, NULL) r ORDER BY i.n;

-- single-node results
CREATE TABLE lab.exp_preview AS SELECT * FROM dogdb_preview_invoice_lines('2021-05-01');
CREATE TABLE lab.exp_churn AS SELECT * FROM dogdb_account_churn('2021-12-01');
CREATE TABLE lab.exp_quality AS SELECT * FROM dogdb_check_data_quality();
CREATE TABLE lab.exp_invoices AS
SELECT g.invoice_number, g.account_id, g.total_cents, m.month
  FROM unnest(ARRAY['2021-03-01', '2021-04-01']::date[]) m (month),
	   LATERAL dogdb_generate_invoices(m.month) g;
CREATE TABLE lab.exp_lines AS
SELECT l.account_id, i.period_start, l.line_no, l.plan_id, l.line_start, l.line_end, l.days,
	   l.unit_price_cents, l.amount_cents
  FROM dogdb.invoice_lines l JOIN dogdb.invoices i USING (account_id, invoice_id);
-- the KPIs of the single node (the C engine)
SELECT count(*) FROM dogdb_refresh_kpis(true);
CREATE TABLE lab.exp_kpi_facts AS SELECT * FROM dogdb_internal.kpi_facts;
CREATE TABLE lab.exp_kpi AS
SELECT 'retention' AS kpi, to_jsonb(k) AS r FROM dogdb_kpi_retention('2021-01-01', '2021-12-01', 'tier') k
UNION ALL SELECT 'usage', to_jsonb(k) FROM dogdb_kpi_usage('2021-01-01', '2021-12-01', 'company_size') k
UNION ALL SELECT 'revenue', to_jsonb(k) FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'all') k;
CREATE TABLE lab.exp_support AS
SELECT g, k.* FROM unnest(ARRAY['channel', 'category', 'rep', 'tier', 'company_size', 'all']) g,
	   LATERAL dogdb_kpi_support('2021-01-01', '2021-12-01', g) k;

-- funnels and Stripe
CREATE TABLE lab.exp_funnel_client AS
SELECT * FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created'], '2024-01-01', '2024-01-15', '1 day', 'client');
CREATE TABLE lab.exp_funnel_plain AS
SELECT * FROM dogdb_funnel_report(ARRAY['/', '/pricing', '/signup'], '2024-01-01', '2024-01-15', '2 days');
CREATE TABLE lab.exp_funnel_trend AS
SELECT * FROM dogdb_funnel_trend(ARRAY['/', '/signup'], '2024-01-01', '2024-01-15', '1 day', 'day');
CREATE TABLE lab.exp_page_views AS SELECT * FROM dogdb_page_views('2024-01-01', '2024-01-15');
CREATE TABLE lab.exp_page_time AS SELECT * FROM dogdb_page_time_summary('2024-01-01', '2024-01-15');
CREATE TABLE lab.exp_mrr AS SELECT * FROM dogdb_stripe_account_mrr('2020-01-01', '2022-12-01');
CREATE TABLE lab.exp_movements AS SELECT * FROM dogdb_mrr_movements('2020-01-01', '2022-12-01');
CREATE TABLE lab.exp_ltv AS SELECT * FROM dogdb_customer_ltv('2022-06-30');
CREATE TABLE lab.exp_cohorts AS SELECT * FROM dogdb_cohort_retention('2020-01-01', '2022-12-01', 'revenue');
-- the Stripe facts but the arrival numbers (an identity: they go on counting)
CREATE TABLE lab.exp_stripe_facts AS
SELECT t, to_jsonb(f) - 'event_arrival' AS f
  FROM (SELECT 'customers' AS t, to_jsonb(x) AS f FROM dogdb.stripe_customers x
		UNION ALL SELECT 'subscriptions', to_jsonb(x) FROM dogdb.stripe_subscriptions x
		UNION ALL SELECT 'versions', to_jsonb(x) FROM dogdb.stripe_subscription_versions x
		UNION ALL SELECT 'invoices', to_jsonb(x) FROM dogdb.stripe_invoices x
		UNION ALL SELECT 'payments', to_jsonb(x) FROM dogdb.stripe_payments x
		UNION ALL SELECT 'refunds', to_jsonb(x) FROM dogdb.stripe_refunds x) u (t, f);

-- invoices are issued again on Citus: the same numbers from 1
TRUNCATE dogdb.invoices, dogdb.invoice_lines, dogdb.invoice_number_counters;

CREATE TABLE lab.distributed AS SELECT * FROM dogdb_distribute(shard_count => 8);
CREATE TABLE lab.distributed_again AS SELECT * FROM dogdb_distribute();

-- the same invoices issued on Citus (compared in suite.sql)
CREATE TABLE lab.issued AS
SELECT m.month, count(*) AS n
  FROM unnest(ARRAY['2021-03-01', '2021-04-01']::date[]) m (month),
	   LATERAL dogdb_generate_invoices(m.month) g
 GROUP BY 1;
