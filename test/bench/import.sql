-- Benchmark: the whole legacy import, dogdb_import_legacy() against a
-- plain-SQL import doing the same work (parse, map tiers, reps, quarantine
-- by INSERT ... SELECT), over 1,000,000 accounts, 1,000,000 interactions
-- and 1,000,000 licenses, with a few bad rows of each kind.  Both write the
-- same rows (checked below, EXCEPT ALL both ways).  Prints the ratio.
--
-- The plain-SQL import is the strongest found that is correct on this
-- data: one statement per table (data-modifying CTEs, so the source is read
-- once), the license fields cut out with split_part (the blobs have a fixed
-- key order here), no occurrence numbering of legacy keys (no identity
-- repeats here), duplicates ranked with one window.  It keeps the foreign
-- keys and the extension's triggers, as any user's INSERT does.
\ir helpers.psql
-- rows per legacy table (psql -v rows=N for a quick run)
\if :{?rows}
\else
\set rows 1000000
\endif
\set keep (:rows - :rows / 1000)

DROP SCHEMA IF EXISTS bench_import CASCADE;
CREATE SCHEMA bench_import;
CREATE TABLE bench_import.customer_accounts (account_id int, email text, current_tier text,
	created_at timestamp, updated_at timestamp);
CREATE TABLE bench_import.customer_interactions (account_id int, channel text, category text,
	service_rep text, status text, created_at timestamp, completed_at timestamp);
CREATE TABLE bench_import.customer_licenses (account_id int, license_data text,
	created_at timestamp, updated_at timestamp);

-- 999,000 accounts, 1 in 1000 with an unknown tier, and 1,000 older
-- duplicates of existing ids
INSERT INTO bench_import.customer_accounts
SELECT CASE WHEN i <= :keep THEN i ELSE i - :keep END,
	   'user' || i || '@example.com',
	   CASE WHEN i % 1000 = 7 THEN 'Gold' ELSE (ARRAY['Free', 'Medium', 'Enterprise', ' medium '])[1 + i % 4] END,
	   '2021-01-01'::timestamp + i * interval '1 minute',
	   CASE WHEN i <= :keep THEN timestamp '2021-06-01' ELSE timestamp '2021-01-01' END
  FROM generate_series(1, :rows) i;
-- interactions: some of accounts that do not exist (or were rejected), some
-- completed before they were created; 50 reps, written sloppily
INSERT INTO bench_import.customer_interactions
SELECT 1 + (i::bigint * 7919) % (:rows + :rows / 2000),
	   (ARRAY['email', 'phone', 'chat'])[1 + i % 3],
	   (ARRAY['billing', 'bug', 'onboarding', 'upgrade', NULL])[1 + i % 5],
	   CASE WHEN i % 100 = 0 THEN NULL ELSE (CASE WHEN i % 7 = 0 THEN ' ' ELSE '' END) || 'Rep' || (i % 50) END,
	   (ARRAY['open', 'pending', 'resolved', 'closed'])[1 + i % 4],
	   '2021-02-01'::timestamp + i * interval '1 second',
	   '2021-02-01'::timestamp + i * interval '1 second' + CASE WHEN i % 997 = 0 THEN interval '-1 hour' ELSE interval '30 minutes' END
  FROM generate_series(1, :rows) i;
-- licenses: curly-quoted blobs with 40-hex ids; some of rejected accounts
INSERT INTO bench_import.customer_licenses
SELECT 1 + i % :keep,
	   format('{“license_id”:“%s”,“role”: “%s”,“status”: “%s”}', encode(sha224(int4send(i)), 'hex')::char(40),
			  (ARRAY['analyst', 'admin', 'developer', 'viewer'])[1 + i % 4],
			  (ARRAY['active', 'inactive'])[1 + i % 2]),
	   '2021-06-01'::timestamp + i * interval '1 second', NULL
  FROM generate_series(1, :rows) i;
VACUUM ANALYZE bench_import.customer_accounts, bench_import.customer_interactions, bench_import.customer_licenses;

-- everything an import writes, surrogate ids and times left out
CREATE FUNCTION pg_temp.imported() RETURNS TABLE (tab text, r text) LANGUAGE sql AS $$
	SELECT 'accounts', row(a.*)::text FROM dogdb.accounts a
	UNION ALL
	SELECT 'subscriptions', row(s.account_id, s.plan_id, s.valid_from, s.valid_to)::text FROM dogdb.subscriptions s
	UNION ALL
	SELECT 'service_reps', name FROM dogdb.service_reps
	UNION ALL
	SELECT 'interactions', row(i.account_id, r.name, i.channel, i.category, i.status, i.created_at,
							   i.completed_at, i.legacy_key)::text
	  FROM dogdb.interactions i LEFT JOIN dogdb.service_reps r USING (rep_id)
	UNION ALL
	SELECT 'licenses', row(l.*)::text FROM dogdb.licenses l
	UNION ALL
	SELECT 'import_rejects', row(j.source_table, j.source_key, j.source_row, j.reason)::text FROM dogdb.import_rejects j
$$;
CREATE FUNCTION pg_temp.clear() RETURNS void LANGUAGE sql AS $$
	TRUNCATE dogdb.accounts, dogdb.subscriptions, dogdb.service_reps, dogdb.interactions,
			 dogdb.licenses, dogdb.import_rejects CASCADE;
	DELETE FROM dogdb_internal.kpi_dirty_months WHERE NOT full_rebuild;
$$;

CREATE FUNCTION pg_temp.import_sql() RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
	WITH s AS MATERIALIZED (
		SELECT t, t.account_id::bigint AS account_id, t.email, p.plan_id, lower(btrim(t.current_tier)) AS tier,
			   t.created_at AT TIME ZONE 'UTC' AS created_at, t.updated_at AT TIME ZONE 'UTC' AS updated_at,
			   CASE WHEN t.account_id IS NULL THEN 'account_id is null'
					WHEN t.created_at IS NULL THEN 'created_at is null'
					WHEN t.current_tier IS NULL THEN 'current_tier is null'
					WHEN p.plan_id IS NULL THEN format('unknown tier %L', t.current_tier) END AS reason
		  FROM bench_import.customer_accounts t
		  LEFT JOIN dogdb.pricing_plans p ON p.name = lower(btrim(t.current_tier))),
	d AS MATERIALIZED (
		SELECT s.*, CASE WHEN reason IS NULL AND row_number() OVER (PARTITION BY account_id, reason IS NULL
							 ORDER BY updated_at DESC NULLS LAST, created_at DESC, email, tier) > 1
						 THEN format('duplicate account_id %s in source; the row updated last was imported', account_id)
						 ELSE reason END AS verdict
		  FROM s),
	a AS (INSERT INTO dogdb.accounts (account_id, email, created_at, updated_at)
		  SELECT account_id, email, created_at, updated_at FROM d WHERE verdict IS NULL),
	u AS (INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from)
		  SELECT account_id, plan_id, created_at FROM d WHERE verdict IS NULL)
	INSERT INTO dogdb.import_rejects (source_table, source_key, source_row, reason)
	SELECT 'customer_accounts', h || ':' || row_number() OVER (PARTITION BY h), j, verdict
	  FROM (SELECT to_jsonb(t) AS j, md5(to_jsonb(t)::text) AS h, verdict FROM d WHERE verdict IS NOT NULL) r;

	INSERT INTO dogdb.service_reps (name)
	SELECT DISTINCT nullif(btrim(service_rep), '') FROM bench_import.customer_interactions
	 WHERE nullif(btrim(service_rep), '') IS NOT NULL
	ON CONFLICT (name) DO NOTHING;
	WITH s AS MATERIALIZED (
		SELECT t, t.account_id::bigint AS account_id, t.channel, t.category, r.rep_id, t.status,
			   t.created_at AT TIME ZONE 'UTC' AS created_at, t.completed_at AT TIME ZONE 'UTC' AS completed_at,
			   md5(jsonb_build_array(t.account_id, t.channel, t.category, t.service_rep, t.created_at)::text) AS identity,
			   CASE WHEN t.account_id IS NULL THEN 'account_id is null'
					WHEN a.account_id IS NULL THEN format('account %s does not exist', t.account_id)
					WHEN t.created_at IS NULL THEN 'created_at is null'
					WHEN t.channel IS NULL THEN 'channel is null'
					WHEN t.status IS NULL THEN 'status is null'
					WHEN t.completed_at < t.created_at THEN 'completed_at is before created_at' END AS reason
		  FROM bench_import.customer_interactions t
		  LEFT JOIN dogdb.accounts a ON a.account_id = t.account_id
		  LEFT JOIN dogdb.service_reps r ON r.name = nullif(btrim(t.service_rep), '')),
	i AS (INSERT INTO dogdb.interactions (account_id, rep_id, channel, category, status, created_at, completed_at, legacy_key)
		  SELECT account_id, rep_id, channel, category, status, created_at, completed_at, identity || ':1'
			FROM s WHERE reason IS NULL)
	INSERT INTO dogdb.import_rejects (source_table, source_key, source_row, reason)
	SELECT 'customer_interactions', h || ':' || row_number() OVER (PARTITION BY h), j, reason
	  FROM (SELECT to_jsonb(t) AS j, md5(to_jsonb(t)::text) AS h, reason FROM s WHERE reason IS NOT NULL) r;

	WITH s AS MATERIALIZED (
		SELECT t, t.account_id::bigint AS account_id,
			   split_part(j, '"', 4) AS license_id, split_part(j, '"', 8) AS role, split_part(j, '"', 12) AS status,
			   t.created_at AT TIME ZONE 'UTC' AS created_at, t.updated_at AT TIME ZONE 'UTC' AS updated_at,
			   CASE WHEN t.account_id IS NULL THEN 'account_id is null'
					WHEN a.account_id IS NULL THEN format('account %s does not exist', t.account_id)
					WHEN t.created_at IS NULL THEN 'created_at is null' END AS reason
		  FROM bench_import.customer_licenses t
		  CROSS JOIN LATERAL translate(t.license_data, '“”', '""') j
		  LEFT JOIN dogdb.accounts a ON a.account_id = t.account_id),
	l AS (INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at, updated_at)
		  SELECT license_id, account_id, role, status, created_at, updated_at FROM s WHERE reason IS NULL)
	INSERT INTO dogdb.import_rejects (source_table, source_key, source_row, reason)
	SELECT 'customer_licenses', h || ':' || row_number() OVER (PARTITION BY h), j, reason
	  FROM (SELECT to_jsonb(t) AS j, md5(to_jsonb(t)::text) AS h, reason FROM s WHERE reason IS NOT NULL) r;
END
$fn$;

-- each side once for real, checked equal; then once more rolled back.
-- Both start from empty tables (other benchmarks of the run leave rows).
SELECT pg_temp.clear();
CREATE TEMP TABLE c_rows AS SELECT * FROM pg_temp.imported() LIMIT 0;
CHECKPOINT;
SELECT pg_temp.best_ms($$SELECT * FROM dogdb_import_legacy('bench_import')$$, 1) AS c_ms \gset
SELECT tab, count(*) FROM pg_temp.imported() GROUP BY 1 ORDER BY 1;
INSERT INTO c_rows SELECT * FROM pg_temp.imported();
SELECT pg_temp.clear();
CHECKPOINT;
SELECT pg_temp.best_ms('SELECT pg_temp.import_sql()', 1) AS sql_ms \gset
SELECT (SELECT count(*) FROM (SELECT * FROM c_rows EXCEPT ALL SELECT * FROM pg_temp.imported()) x) AS only_c,
	   (SELECT count(*) FROM (SELECT * FROM pg_temp.imported() EXCEPT ALL SELECT * FROM c_rows) x) AS only_sql
\gset
CREATE FUNCTION pg_temp.check_same(only_c bigint, only_sql bigint) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	IF only_c + only_sql <> 0 THEN
		RAISE EXCEPTION 'the plain-SQL import does not write the same rows as dogdb_import_legacy(): % only by C, % only by SQL',
			only_c, only_sql;
	END IF;
	RETURN 'same rows';
END $$;
SELECT pg_temp.check_same(:only_c, :only_sql);
SELECT pg_temp.clear();
CHECKPOINT;

CREATE FUNCTION pg_temp.rolled_back(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RAISE EXCEPTION USING ERRCODE = 'P0004';	-- roll back the writes
EXCEPTION WHEN assert_failure THEN NULL;
END $$;
INSERT INTO results
SELECT format('whole import: %s accounts + interactions + licenses', :rows),
	   least(:c_ms, pg_temp.best_ms($$SELECT pg_temp.rolled_back('SELECT * FROM dogdb_import_legacy(''bench_import'')')$$, 1)),
	   least(:sql_ms, pg_temp.best_ms($$SELECT pg_temp.rolled_back('SELECT pg_temp.import_sql()')$$, 1)),
	   1.5;

SELECT * FROM pg_temp.report();
DROP SCHEMA bench_import CASCADE;
