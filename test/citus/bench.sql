-- Citus lab benchmark (CITUS_LAB_BENCH=<companies> test/citus/lab.sh PATH):
-- the KPI full refresh and invoice generation on the same data, single node
-- (the coordinator's tables before dogdb_distribute()) against the 3-node lab.
-- All nodes share this machine's cores: information, not a scaling figure.
\set ON_ERROR_STOP on
\set QUIET on
\pset tuples_only on
\pset format unaligned
SET client_min_messages = warning;
CREATE TEMP TABLE t (step text, ms numeric, note text);
CREATE FUNCTION pg_temp.timed(step text, q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz := clock_timestamp();
	n bigint;
BEGIN
	EXECUTE 'SELECT count(*) FROM (' || q || ') x' INTO n;
	INSERT INTO t VALUES (step, round(1000 * extract(epoch FROM clock_timestamp() - t0)), n || ' rows');
END
$$;
SELECT pg_temp.timed('demo data, single node', format('SELECT * FROM dogdb_generate_demo_data(%s, 12)', :'companies'));
SELECT pg_temp.timed('KPI full refresh, single node (C engine)', 'SELECT * FROM dogdb_refresh_kpis(true)');
CREATE TEMP TABLE facts_single AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT pg_temp.timed('invoices 2021-06, single node', $$SELECT * FROM dogdb_generate_invoices('2021-06-01')$$);
CREATE TEMP TABLE inv_single AS SELECT invoice_number, account_id, total_cents FROM dogdb.invoices;
TRUNCATE dogdb.invoices, dogdb.invoice_lines, dogdb.invoice_number_counters;
SELECT pg_temp.timed('dogdb_distribute(32) (moves the data)', 'SELECT * FROM dogdb_distribute(32)');
SELECT pg_temp.timed('KPI full refresh, Citus (one pushed-down query)', 'SELECT * FROM dogdb_refresh_kpis(true)');
SELECT pg_temp.timed('invoices 2021-06, Citus', $$SELECT * FROM dogdb_generate_invoices('2021-06-01')$$);
CREATE TEMP TABLE inv_citus AS SELECT invoice_number, account_id, total_cents FROM dogdb.invoices;
INSERT INTO t SELECT 'check: KPI facts equal', NULL,
	(SELECT count(*) FROM ((TABLE facts_single EXCEPT ALL TABLE dogdb_internal.kpi_facts)
						   UNION ALL (TABLE dogdb_internal.kpi_facts EXCEPT ALL TABLE facts_single)) d) || ' rows differ';
INSERT INTO t SELECT 'check: invoices equal', NULL,
	(SELECT count(*) FROM ((TABLE inv_single EXCEPT ALL TABLE inv_citus)
						   UNION ALL (TABLE inv_citus EXCEPT ALL TABLE inv_single)) d) || ' rows differ';
INSERT INTO t SELECT 'sessions', NULL, (SELECT count(*) FROM dogdb.sessions)::text;
SELECT format('bench: %-50s %10s ms  %s', step, coalesce(ms::text, ''), note) FROM t;
