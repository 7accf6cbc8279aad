-- Citus lab, part 2 (test/citus/lab.sh runs it on the coordinator after
-- setup.sql and two concurrent invoice runs): every result on the
-- distributed tables against the single node's (schema lab), pushdown from
-- EXPLAIN.  Prints TAP lines; "# TODO" marks what does not work on Citus yet.
\set ON_ERROR_STOP on
\set QUIET on
\pset tuples_only on
\pset format unaligned
SET client_min_messages = error;	-- Citus: temporary functions stay local

CREATE TEMP SEQUENCE tap_n;
CREATE FUNCTION pg_temp.tap(pass boolean, what text, todo text DEFAULT NULL) RETURNS text
LANGUAGE sql AS $$
	SELECT CASE WHEN coalesce(pass, false) THEN 'ok' ELSE 'not ok' END || ' ' || nextval('tap_n') || ' - ' || what
		   || coalesce(' # TODO ' || todo, '')
$$;
-- the SQLSTATE a statement raises ('00000' if none)
CREATE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN '00000';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
-- EXPLAIN (COSTS OFF) of a query, one text
CREATE FUNCTION pg_temp.plan_of(q text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
	line text;
	plan text := '';
BEGIN
	FOR line IN EXECUTE 'EXPLAIN (COSTS OFF) ' || q LOOP
		plan := plan || line || E'\n';
	END LOOP;
	RETURN plan;
END
$$;
-- the rows of two queries are the same multiset, each kept in a temporary
-- table first (on Citus, EXCEPT ALL between a local table and a UNION ALL of
-- function scans returned rows where both sides held the same rows)
CREATE FUNCTION pg_temp.same_rows(a text, b text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
	n bigint;
BEGIN
	EXECUTE 'CREATE TEMP TABLE same_a AS ' || a;
	EXECUTE 'CREATE TEMP TABLE same_b AS ' || b;
	SELECT count(*) INTO n FROM ((TABLE same_a EXCEPT ALL TABLE same_b) UNION ALL (TABLE same_b EXCEPT ALL TABLE same_a)) d;
	DROP TABLE same_a, same_b;
	RETURN n = 0;
END
$$;

-- dogdb_distribute()
SELECT pg_temp.tap((SELECT count(*) FROM lab.distributed WHERE action = 'distributed') = 24,
				   'dogdb_distribute() distributed the 24 tables');
SELECT pg_temp.tap((SELECT count(*) FROM pg_dist_partition WHERE logicalrelid IN (SELECT relation FROM dogdb_internal.distribution_plan())) = 24,
				   'Citus knows the 24 tables');
SELECT pg_temp.tap((SELECT bool_and(action = 'already done') AND count(*) = 24 FROM lab.distributed_again),
				   'dogdb_distribute() again: idempotent');
SELECT pg_temp.tap((SELECT count(DISTINCT colocationid) FROM pg_dist_partition
					 WHERE logicalrelid::text LIKE 'dogdb.%' AND partmethod = 'h' AND logicalrelid <> 'dogdb.web_events'::regclass) = 1,
				   'the account tables are co-located');
SELECT pg_temp.tap((SELECT count(*) FROM pg_dist_shard WHERE logicalrelid = 'dogdb.accounts'::regclass) = 8,
				   'shard_count => 8 is taken');
SELECT pg_temp.tap(NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE NOT t.tgisinternal
								AND t.tgrelid IN (SELECT logicalrelid FROM pg_dist_partition)),
				   'no trigger left on a Citus table');

-- reads: equal to the single node
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_preview',
									 $$SELECT * FROM dogdb_preview_invoice_lines('2021-05-01')$$),
				   'dogdb_preview_invoice_lines() equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_churn',
									 $$SELECT * FROM dogdb_account_churn('2021-12-01')$$),
				   'dogdb_account_churn() equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_quality', 'SELECT * FROM dogdb_check_data_quality()'),
				   'dogdb_check_data_quality() equals the single node');
SELECT pg_temp.tap((SELECT failing_rows FROM lab.exp_quality WHERE check_name = 'unique_email') = 3,
				   '(the data has failures to find)');

-- invoices: the same invoices, numbers and lines as the single node
CREATE TEMP TABLE got_invoices AS
SELECT invoice_number, account_id, total_cents, period_start AS month FROM dogdb.invoices
 WHERE period_start IN ('2021-03-01', '2021-04-01');
CREATE TEMP TABLE got_lines AS
SELECT l.account_id, i.period_start, l.line_no, l.plan_id, l.line_start, l.line_end, l.days,
	   l.unit_price_cents, l.amount_cents
  FROM dogdb.invoice_lines l JOIN dogdb.invoices i USING (account_id, invoice_id)
 WHERE i.period_start IN ('2021-03-01', '2021-04-01');
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_invoices) > 0
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_invoices', 'SELECT * FROM got_invoices'),
				   'dogdb_generate_invoices() issues the single node''s invoices, numbers included');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_lines', 'SELECT * FROM got_lines'),
				   'and the same invoice lines');
SELECT pg_temp.tap(pg_relation_size('dogdb.invoices') = 0 AND pg_relation_size('dogdb.invoice_lines') = 0,
				   'nothing was written into the coordinator''s shell tables');
SELECT pg_temp.tap((SELECT count(*) FROM dogdb_generate_invoices('2021-03-01')) = 0,
				   'a rerun issues nothing (one invoice per account and month)');
-- the two concurrent runs of June (lab.sh)
SELECT pg_temp.tap((SELECT count(*) FROM dogdb.invoices WHERE period_start = '2021-06-01')
				   = (SELECT count(DISTINCT account_id) FROM dogdb_preview_invoice_lines('2021-06-01')),
				   'two concurrent runs for June: each account invoiced once');
SELECT pg_temp.tap((SELECT count(*) = count(DISTINCT invoice_number)
						   AND max(substr(invoice_number, 10)::int) = count(*)
						   AND min(substr(invoice_number, 10)::int) = 1
					  FROM dogdb.invoices WHERE invoice_number LIKE 'INV-2021-%'),
				   'invoice numbers unique and gapless across shards');
SELECT pg_temp.tap((SELECT last_number FROM dogdb.invoice_number_counters WHERE year = 2021)
				   = (SELECT count(*) FROM dogdb.invoices WHERE period_start >= '2021-01-01' AND period_start < '2022-01-01'),
				   'the counter matches the invoices');
SELECT pg_temp.tap((SELECT count(*) FROM dogdb.invoice_lines l
					 WHERE NOT EXISTS (SELECT 1 FROM dogdb.invoices i
										WHERE i.account_id = l.account_id AND i.invoice_id = l.invoice_id)) = 0,
				   'every line has its invoice (on the invoice''s shard)');
SELECT pg_temp.tap(pg_temp.sqlstate_of($$INSERT INTO dogdb.invoice_lines VALUES (999999, 1, 2, '2021-03-01', '2021-03-01', 1, 1, 1, 1)$$) = '23503',
				   'the shards check the invoice_lines foreign key');

-- the KPIs: on Citus the facts are computed by pushed-down queries; the first refresh computes them all
DELETE FROM dogdb_internal.kpi_facts;		-- (so that nothing is left from the single node)
SELECT pg_temp.tap((SELECT bool_and(full_rebuild) FROM dogdb_refresh_kpis()),
				   'dogdb_refresh_kpis() on Citus, the first time: a full recompute');
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_kpi_facts) > 0
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_kpi_facts', 'SELECT * FROM dogdb_internal.kpi_facts'),
				   'the KPI facts equal the single node''s (C engine)');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_kpi', $$
	SELECT 'retention' AS kpi, to_jsonb(k) AS r FROM dogdb_kpi_retention('2021-01-01', '2021-12-01', 'tier') k
	UNION ALL SELECT 'usage', to_jsonb(k) FROM dogdb_kpi_usage('2021-01-01', '2021-12-01', 'company_size') k
	UNION ALL SELECT 'revenue', to_jsonb(k) FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'all') k$$),
				   'dogdb_kpi_retention/usage/revenue equal the single node''s');
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_support) > 0
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_support', $$
	SELECT g, k.* FROM unnest(ARRAY['channel', 'category', 'rep', 'tier', 'company_size', 'all']) g,
		   LATERAL dogdb_kpi_support('2021-01-01', '2021-12-01', g) k$$),
				   'dogdb_kpi_support() under every grouping equals the single node''s (the model rebuilt on Citus)');
INSERT INTO dogdb.sessions (account_id, created_at) SELECT account_id, '2021-12-15Z' FROM dogdb.accounts WHERE account_id % 10 = 0;
SELECT count(*) FROM dogdb_refresh_kpis() \g /dev/null
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM dogdb_internal.kpi_facts', 'SELECT * FROM dogdb_internal.kpi_facts_sql()')
				   AND NOT pg_temp.same_rows('SELECT * FROM lab.exp_kpi_facts', 'SELECT * FROM dogdb_internal.kpi_facts'),
				   'a refresh after new sessions on Citus takes them');
-- incremental refreshes on Citus: change tracking by blocks of 1024 accounts
-- (fingerprints computed on the workers), equal to a full rebuild
CREATE FUNCTION pg_temp.refresh_blocks(rebuild boolean DEFAULT false, OUT rebuilt boolean, OUT kpi_blocks int, OUT support_blocks int)
LANGUAGE plpgsql AS $$
BEGIN
	SELECT bool_or(r.full_rebuild) INTO rebuilt FROM dogdb_refresh_kpis(rebuild) r;
	SELECT s.blocks_changed INTO kpi_blocks FROM dogdb_internal.citus_refresh_state s WHERE s.consumer = 'kpi';
	SELECT s.blocks_changed INTO support_blocks FROM dogdb_internal.citus_refresh_state s WHERE s.consumer = 'support';
END
$$;
INSERT INTO dogdb.accounts (account_id, email, company_size, created_at)
VALUES (2048, 'x@block2.example', 'small', '2021-03-01Z'), (4096, 'y@block4.example', 'large', '2021-04-01Z');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (2048, 2, '2021-03-01Z'), (4096, 3, '2021-04-01Z');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT a, '2021-04-10Z'::timestamptz + g * interval '1 day' FROM unnest('{2048,4096}'::bigint[]) a, generate_series(0, 90) g;
INSERT INTO dogdb.interactions (account_id, rep_id, channel, status, created_at)
VALUES (2048, 1, 'chat', 'open', '2021-05-01Z'), (4096, 2, 'phone', 'open', '2021-05-02Z');
SELECT pg_temp.tap((SELECT NOT rebuilt AND kpi_blocks = 2 AND support_blocks = 2 FROM pg_temp.refresh_blocks())
				   AND pg_temp.same_rows('SELECT * FROM dogdb_internal.kpi_facts', 'SELECT * FROM dogdb_internal.kpi_facts_sql()')
				   AND pg_temp.same_rows('SELECT * FROM dogdb.support_interactions', 'SELECT * FROM dogdb_internal.support_source'),
				   'incremental refresh on Citus: two new blocks of accounts recomputed (no rebuild), facts and support model equal to a recompute');
SELECT pg_temp.tap((SELECT NOT rebuilt AND kpi_blocks = 0 AND support_blocks = 0 FROM pg_temp.refresh_blocks()),
				   'nothing changed: no block recomputed');
DELETE FROM dogdb.sessions WHERE account_id = 4096 AND created_at > '2021-06-01Z';
UPDATE dogdb.accounts SET company_size = 'small' WHERE account_id = 4096;
UPDATE dogdb.subscriptions SET valid_to = '2021-08-01Z' WHERE account_id = 4096;
UPDATE dogdb.interactions SET status = 'closed', completed_at = '2021-05-03Z' WHERE account_id = 4096;
SELECT pg_temp.tap((SELECT NOT rebuilt AND kpi_blocks = 1 AND support_blocks = 1 FROM pg_temp.refresh_blocks()),
				   'deletes and updates in one block: that block only is recomputed');
CREATE TEMP TABLE inc_facts AS SELECT * FROM dogdb_internal.kpi_facts;
CREATE TEMP TABLE inc_support AS SELECT * FROM dogdb.support_interactions;
CREATE TEMP TABLE inc_kpi AS
SELECT 'retention' AS kpi, to_jsonb(k) AS r FROM dogdb_kpi_retention('2021-01-01', '2021-12-01', 'tier') k
UNION ALL SELECT 'revenue', to_jsonb(k) FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'all') k
UNION ALL SELECT 'support', to_jsonb(k) FROM dogdb_kpi_support('2021-01-01', '2021-12-01', 'company_size') k;
SELECT pg_temp.tap((SELECT rebuilt FROM pg_temp.refresh_blocks(true))
				   AND pg_temp.same_rows('SELECT * FROM inc_facts', 'SELECT * FROM dogdb_internal.kpi_facts')
				   AND pg_temp.same_rows('SELECT * FROM inc_support', 'SELECT * FROM dogdb.support_interactions')
				   AND pg_temp.same_rows('SELECT * FROM inc_kpi', $$
	SELECT 'retention' AS kpi, to_jsonb(k) AS r FROM dogdb_kpi_retention('2021-01-01', '2021-12-01', 'tier') k
	UNION ALL SELECT 'revenue', to_jsonb(k) FROM dogdb_kpi_revenue('2021-01-01', '2021-12-01', 'all') k
	UNION ALL SELECT 'support', to_jsonb(k) FROM dogdb_kpi_support('2021-01-01', '2021-12-01', 'company_size') k$$),
				   'incremental = full rebuild on Citus (facts, KPIs, support model)');
UPDATE dogdb.plan_prices SET monthly_price_cents = monthly_price_cents + 1
 WHERE (plan_id, effective_from) = (SELECT plan_id, max(effective_from) FROM dogdb.plan_prices WHERE plan_id = 2 GROUP BY 1);
SELECT pg_temp.tap((SELECT rebuilt FROM pg_temp.refresh_blocks())
				   AND pg_temp.same_rows('SELECT * FROM dogdb_internal.kpi_facts', 'SELECT * FROM dogdb_internal.kpi_facts_sql()'),
				   'a price change (every block depends on it): a rebuild');
UPDATE dogdb.plan_prices SET monthly_price_cents = monthly_price_cents - 1
 WHERE (plan_id, effective_from) = (SELECT plan_id, max(effective_from) FROM dogdb.plan_prices WHERE plan_id = 2 GROUP BY 1);
-- the facts query with the values of its variables, to EXPLAIN it
CREATE TEMP TABLE kpi_query AS
SELECT regexp_replace(regexp_replace(regexp_replace(substring(prosrc FROM '(WITH usage AS .*GROUP BY 1, 2, 3, 4)'),
									 '\mm0\M', '''2021-01-01''::date', 'g'), '\mm1\M', '''2021-12-01''::date', 'g'),
					  '\mblocks\M', 'NULL::bigint[]', 'g') AS q
  FROM pg_proc WHERE proname = 'kpi_block_facts_sql';
SELECT pg_temp.tap((SELECT pg_temp.plan_of(q) FROM kpi_query)
				   ~ '^HashAggregate\n[^\n]*\n\s+->  Custom Scan \(Citus Adaptive\)\n\s+->  Distributed Subplan \S+\n\s+->  Function Scan on generate_series g\n\s+Task Count: 8'
				   AND (SELECT pg_temp.plan_of(q) FROM kpi_query) ~ 'Seq Scan on sessions_\d+',
				   'KPI facts: the per-account work on the workers (sessions read there), only the sums by month, size and plan on the coordinator');

-- pushdown
SELECT pg_temp.tap(pg_temp.plan_of($$
		SELECT a.account_id, dogdb_last_active_month(m.active)
		  FROM dogdb.accounts a
		  LEFT JOIN (SELECT s.account_id, dogdb_active_months(s.created_at) AS active
					   FROM dogdb.sessions s GROUP BY s.account_id) m ON m.account_id = a.account_id$$)
				   ~ '^Custom Scan \(Citus Adaptive\)\n\s+Task Count: 8\n(.|\n)*Aggregate',
				   'churn per account runs whole on the workers (EXPLAIN: nothing above the Citus scan, the aggregate in the task)');
SELECT pg_temp.tap(pg_temp.plan_of('SELECT dogdb_active_months(created_at) FROM dogdb.sessions')
				   ~ '^Aggregate\n\s+->  Custom Scan \(Citus Adaptive\)(.|\n)*->  Aggregate',
				   'churn bitmap over all accounts: partial aggregates on the workers, combined on the coordinator');
SELECT pg_temp.tap(pg_temp.plan_of($$SELECT lower(b.email) FROM dogdb.accounts b GROUP BY lower(b.email) HAVING count(*) > 1$$)
				   ~ 'Custom Scan \(Citus Adaptive\)(.|\n)*Task(.|\n)*Aggregate',
				   'the shared-e-mail check groups on the workers first');

SELECT pg_temp.tap(pg_temp.plan_of($$SELECT s.account_id >> 10, count(*), sum(hashint8extended(s.account_id, 0) # hashfloat8extended(date_part('epoch', s.created_at), 0)) % 9223372036854775807
										FROM dogdb.sessions s GROUP BY 1$$)
				   ~ '^HashAggregate\n(.|\n)*Custom Scan \(Citus Adaptive\)\n\s+Task Count: 8(.|\n)*Aggregate(.|\n)*Seq Scan on sessions_\d+',
				   'change tracking: the fingerprints of blocks are partial aggregates on the workers');

-- funnels and Stripe: the readers on the distributed tables
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_funnel_client) > 0 AND pg_temp.same_rows('SELECT * FROM lab.exp_funnel_client',
		$$SELECT * FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created'], '2024-01-01', '2024-01-15', '1 day', 'client')$$),
				   'dogdb_funnel_report() by client equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_funnel_plain',
		$$SELECT * FROM dogdb_funnel_report(ARRAY['/', '/pricing', '/signup'], '2024-01-01', '2024-01-15', '2 days')$$),
				   'dogdb_funnel_report() without breakdown equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_funnel_trend',
		$$SELECT * FROM dogdb_funnel_trend(ARRAY['/', '/signup'], '2024-01-01', '2024-01-15', '1 day', 'day')$$),
				   'dogdb_funnel_trend() equals the single node');
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_page_views) > 0 AND pg_temp.same_rows('SELECT * FROM lab.exp_page_views',
		$$SELECT * FROM dogdb_page_views('2024-01-01', '2024-01-15')$$),
				   'dogdb_page_views() equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_page_time',
		$$SELECT * FROM dogdb_page_time_summary('2024-01-01', '2024-01-15')$$),
				   'dogdb_page_time_summary() equals the single node');
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_mrr) > 0 AND pg_temp.same_rows('SELECT * FROM lab.exp_mrr',
		$$SELECT * FROM dogdb_stripe_account_mrr('2020-01-01', '2022-12-01')$$),
				   'dogdb_stripe_account_mrr() equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_movements',
		$$SELECT * FROM dogdb_mrr_movements('2020-01-01', '2022-12-01')$$),
				   'dogdb_mrr_movements() equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_ltv', $$SELECT * FROM dogdb_customer_ltv('2022-06-30')$$),
				   'dogdb_customer_ltv() equals the single node');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_cohorts',
		$$SELECT * FROM dogdb_cohort_retention('2020-01-01', '2022-12-01', 'revenue')$$),
				   'dogdb_cohort_retention() equals the single node');

-- funnels and Stripe: the writers into the distributed tables
TRUNCATE dogdb.web_events;
SELECT pg_temp.tap((SELECT loaded > 0 FROM dogdb_generate_demo_web_events(800, '2024-01-01 00:00+00', 14, 3)),
				   'dogdb_generate_demo_web_events() (dogdb_load_web_events()) loads into the distributed table');
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_funnel_client',
		$$SELECT * FROM dogdb_funnel_report(ARRAY['/', '/signup', 'account_created'], '2024-01-01', '2024-01-15', '1 day', 'client')$$)
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_page_views',
		$$SELECT * FROM dogdb_page_views('2024-01-01', '2024-01-15')$$),
				   'and the funnels over the events loaded on Citus equal the single node''s');
TRUNCATE dogdb.stripe_events, dogdb.stripe_customer_accounts, dogdb.stripe_customers, dogdb.stripe_subscriptions,
		 dogdb.stripe_subscription_versions, dogdb.stripe_invoices, dogdb.stripe_payments, dogdb.stripe_refunds;
CREATE TEMP TABLE got_outcomes AS
SELECT i.n, r.* FROM lab.stripe_in i, LATERAL dogdb_ingest_stripe_event(i.body, NULL) r ORDER BY i.n;
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_stripe_outcomes', 'SELECT * FROM got_outcomes'),
				   'dogdb_ingest_stripe_event(): the same outcomes as the single node');
CREATE TEMP TABLE got_stripe_facts AS
SELECT t, to_jsonb(f) - 'event_arrival' AS f
  FROM (SELECT 'customers' AS t, to_jsonb(x) AS f FROM dogdb.stripe_customers x
		UNION ALL SELECT 'subscriptions', to_jsonb(x) FROM dogdb.stripe_subscriptions x
		UNION ALL SELECT 'versions', to_jsonb(x) FROM dogdb.stripe_subscription_versions x
		UNION ALL SELECT 'invoices', to_jsonb(x) FROM dogdb.stripe_invoices x
		UNION ALL SELECT 'payments', to_jsonb(x) FROM dogdb.stripe_payments x
		UNION ALL SELECT 'refunds', to_jsonb(x) FROM dogdb.stripe_refunds x) u (t, f);
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_stripe_facts) > 0
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_stripe_facts', 'SELECT * FROM got_stripe_facts'),
				   'and the same Stripe facts');
SELECT pg_temp.tap((SELECT events = (SELECT count(*) FROM dogdb.stripe_events) FROM dogdb_stripe_replay())
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_mrr', $$SELECT * FROM dogdb_stripe_account_mrr('2020-01-01', '2022-12-01')$$),
				   'dogdb_stripe_replay() on Citus rebuilds the same facts');

-- the legacy import on Citus: the runs of setup.sql again, on the distributed tables
TRUNCATE dogdb.invoice_lines, dogdb.invoices, dogdb.support_interactions, dogdb.interactions, dogdb.licenses,
		 dogdb.sessions, dogdb.subscriptions, dogdb.accounts, dogdb.import_rejects, dogdb.service_reps;
CREATE TEMP TABLE got_import (run int, source text, r jsonb);
INSERT INTO got_import SELECT 1, 'legacy', to_jsonb(i) FROM dogdb_import_legacy('legacy') i;
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_import WHERE run = 1) = 3
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_import WHERE run = 1', 'SELECT * FROM got_import'),
				   'dogdb_import_legacy() on Citus: the same counts as the single node');
INSERT INTO got_import SELECT 2, 'legacy', to_jsonb(i) FROM dogdb_import_legacy('legacy') i;
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_import WHERE run = 2', 'SELECT * FROM got_import WHERE run = 2')
				   AND (SELECT bool_and((r->>'skipped')::int = (r->>'rows_read')::int) FROM got_import WHERE run = 2),
				   'a rerun on Citus skips every row (idempotent)');
INSERT INTO got_import SELECT 3, 'legacy2', to_jsonb(i) FROM dogdb_import_legacy('legacy2') i;
SELECT pg_temp.tap(pg_temp.same_rows('SELECT * FROM lab.exp_import WHERE run = 3', 'SELECT * FROM got_import WHERE run = 3'),
				   'a second source with changed rows: the same counts as the single node');
SELECT pg_temp.tap((SELECT count(*) FROM lab.exp_import_state WHERE t = 'rejects') > 10
				   AND pg_temp.same_rows('SELECT * FROM lab.exp_import_state', 'SELECT * FROM lab.import_state()'),
				   'and the same accounts, subscriptions, interactions, licenses, rejects and reasons');
SELECT pg_temp.tap((SELECT count(*) FROM dogdb.import_rejects
					 WHERE reason = 'license d17cb11cda9ba249c22f67e4aed65d0f65f1a80c was already imported with different data') = 1
				   AND (SELECT array_agg(account_id) FROM dogdb.licenses WHERE license_id = 'd17cb11cda9ba249c22f67e4aed65d0f65f1a80c') = '{1}',
				   'a license id held by another account (on another shard) is rejected, not imported twice');
SELECT pg_temp.tap(pg_relation_size('dogdb.accounts') = 0 AND pg_relation_size('dogdb.licenses') = 0
				   AND pg_relation_size('dogdb.interactions') = 0,
				   'the import wrote nothing into the coordinator''s shell tables');

-- demo data written into the distributed tables
TRUNCATE dogdb.invoice_lines, dogdb.invoices, dogdb.interactions, dogdb.licenses, dogdb.sessions,
		 dogdb.subscriptions, dogdb.accounts;
SELECT pg_temp.tap((SELECT accounts = 400 FROM dogdb_generate_demo_data(400, 12, '2021-01-01', 7)),
				   'dogdb_generate_demo_data() writes into the distributed tables');
SELECT pg_temp.tap((SELECT count(*) FROM dogdb.accounts) = 400 AND
				   pg_relation_size('dogdb.accounts') = 0 AND pg_relation_size('dogdb.sessions') = 0,
				   'its rows are in the shards, none in the coordinator''s shell tables');
SELECT pg_temp.tap((SELECT accounts FROM lab.exp_demo)
				   = (SELECT md5(string_agg(format('%s|%s|%s|%s', account_id, email, company_size, created_at), ',' ORDER BY account_id))
						FROM dogdb.accounts WHERE account_id > 0)
				   AND (SELECT subscriptions FROM lab.exp_demo)
				   = (SELECT md5(string_agg(format('%s|%s|%s|%s', account_id, plan_id, valid_from, valid_to), ',' ORDER BY account_id, valid_from))
						FROM dogdb.subscriptions)
				   AND (SELECT sessions FROM lab.exp_demo)
				   = (SELECT md5(string_agg(format('%s|%s', account_id, created_at), ',' ORDER BY account_id, created_at))
						FROM dogdb.sessions),
				   'the demo data equals the single node''s');

-- back to a single node: Citus's undistribute_table() rebuilds a table under
-- a new name and refuses tables an extension owns (README "Running on Citus")
SELECT pg_temp.tap(pg_temp.sqlstate_of($$SELECT undistribute_table('dogdb.web_events')$$) <> '00000'
				   AND (SELECT count(*) FROM pg_dist_partition WHERE logicalrelid IN (SELECT relation FROM dogdb_internal.distribution_plan())) = 24,
				   'undistribute_table() refuses the extension''s tables: distributing is one-way');
