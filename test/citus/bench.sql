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
-- incremental on Citus: block fingerprints on the workers, changed blocks recomputed
SELECT pg_temp.timed('KPI refresh, Citus, nothing changed', 'SELECT * FROM dogdb_refresh_kpis()');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT a, '2021-11-20Z' FROM generate_series(1, 1000, 100) a;
SELECT pg_temp.timed('KPI refresh, Citus, 10 accounts of one block changed', 'SELECT * FROM dogdb_refresh_kpis()');
INSERT INTO t SELECT 'check: blocks recomputed', NULL,
	(SELECT blocks_changed FROM dogdb_internal.citus_refresh_state WHERE consumer = 'kpi')::text;
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT a, '2021-11-21Z' FROM generate_series(1, :'companies'::int, 1000) a;
SELECT pg_temp.timed('KPI refresh, Citus, 1 account in every block changed', 'SELECT * FROM dogdb_refresh_kpis()');
INSERT INTO t SELECT 'check: blocks recomputed', NULL,
	(SELECT blocks_changed FROM dogdb_internal.citus_refresh_state WHERE consumer = 'kpi')::text;
CREATE TEMP TABLE facts_inc AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT pg_temp.timed('KPI full refresh, Citus, same data', 'SELECT * FROM dogdb_refresh_kpis(true)');
INSERT INTO t SELECT 'check: incremental = full', NULL,
	(SELECT count(*) FROM ((TABLE facts_inc EXCEPT ALL TABLE dogdb_internal.kpi_facts)
						   UNION ALL (TABLE dogdb_internal.kpi_facts EXCEPT ALL TABLE facts_inc)) d) || ' rows differ';
DELETE FROM dogdb.sessions WHERE created_at IN ('2021-11-20Z', '2021-11-21Z');
SELECT pg_temp.timed('KPI refresh, Citus, back to the data of the single node', 'SELECT * FROM dogdb_refresh_kpis()');
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
