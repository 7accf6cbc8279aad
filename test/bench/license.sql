-- Benchmark: license parsing and the license import, C against the
-- strongest plain SQL found, on the same 1,000,000 rows in the same run.
-- Prints ratios.  The last row is the write alone through the executor
-- (foreign-key triggers included): what an import by INSERT costs at best.
\ir helpers.psql

DROP SCHEMA IF EXISTS bench_legacy CASCADE;
CREATE SCHEMA bench_legacy;
CREATE TABLE bench_legacy.customer_accounts (account_id int, email text, current_tier text,
	created_at timestamp, updated_at timestamp);
CREATE TABLE bench_legacy.customer_interactions (account_id int, channel text, category text,
	service_rep text, status text, created_at timestamp, completed_at timestamp);
CREATE TABLE bench_legacy.customer_licenses (account_id int, license_data text,
	created_at timestamp, updated_at timestamp);
INSERT INTO bench_legacy.customer_accounts
SELECT i, 'user' || i || '@example.com', (ARRAY['Free', 'Medium', 'Enterprise'])[1 + i % 3],
	   '2021-01-01'::timestamp + i * interval '1 minute', NULL
  FROM generate_series(1, 100000) i;
SELECT count(*) FROM dogdb_import_legacy('bench_legacy');

-- 1,000,000 curly-quoted blobs with 40-hex ids like the real ones, and the
-- same blobs in ASCII quotes
CREATE TABLE bench_legacy.curly AS
SELECT 1 + i % 100000 AS account_id,
	   format('{“license_id”:“%s”,“role”: “%s”,“status”: “%s”}', encode(sha224(int4send(i)), 'hex')::char(40),
			  (ARRAY['analyst', 'admin', 'developer', 'viewer'])[1 + i % 4],
			  (ARRAY['active', 'inactive'])[1 + i % 2]) AS license_data
  FROM generate_series(1, 1000000) i;
CREATE TABLE bench_legacy.ascii AS
SELECT account_id, translate(license_data, '“”', '""') AS license_data FROM bench_legacy.curly;
VACUUM ANALYZE bench_legacy.curly, bench_legacy.ascii;

-- (a) extract the three fields from every row
INSERT INTO results
SELECT 'parse 1M curly blobs (3 fields)',
	pg_temp.best_ms($$SELECT count(dogdb_license_id(license_data)), count(dogdb_license_role(license_data)),
		count(dogdb_license_status(license_data)) FROM bench_legacy.curly$$),
	least(pg_temp.best_ms($$SELECT count(r.license_id), count(r.role), count(r.status) FROM bench_legacy.curly,
		jsonb_to_record(translate(license_data, '“”', '""')::jsonb) AS r(license_id text, role text, status text)$$),
		pg_temp.best_ms($$SELECT count(j->>'license_id'), count(j->>'role'), count(j->>'status')
		FROM (SELECT replace(replace(license_data, '“', '"'), '”', '"')::jsonb AS j FROM bench_legacy.curly OFFSET 0) s$$),
		-- correct on these blobs only (fixed key order, no escapes)
		pg_temp.best_ms($$SELECT count(split_part(j, '"', 4)), count(split_part(j, '"', 8)), count(split_part(j, '"', 12))
		FROM bench_legacy.curly, translate(license_data, '“”', '""') j$$)),
	3;
INSERT INTO results
SELECT 'parse 1M ASCII blobs (3 fields)',
	pg_temp.best_ms($$SELECT count(dogdb_license_id(license_data)), count(dogdb_license_role(license_data)),
		count(dogdb_license_status(license_data)) FROM bench_legacy.ascii$$),
	least(pg_temp.best_ms($$SELECT count(r.license_id), count(r.role), count(r.status) FROM bench_legacy.ascii,
		jsonb_to_record(license_data::jsonb) AS r(license_id text, role text, status text)$$),
		pg_temp.best_ms($$SELECT count(j->>'license_id'), count(j->>'role'), count(j->>'status')
		FROM (SELECT license_data::jsonb AS j FROM bench_legacy.ascii OFFSET 0) s$$),
		pg_temp.best_ms($$SELECT count(split_part(license_data, '"', 4)), count(split_part(license_data, '"', 8)),
		count(split_part(license_data, '"', 12)) FROM bench_legacy.ascii$$)),
	2;
-- the record form, against the same plain-SQL baseline as the curly row above
INSERT INTO results
SELECT 'dogdb_parse_license() record form, curly (info)',
	pg_temp.best_ms($$SELECT count(p.license_id), count(p.role), count(p.status)
		FROM bench_legacy.curly, dogdb_parse_license(license_data) p$$),
	(SELECT sql_ms FROM results WHERE bench = 'parse 1M curly blobs (3 fields)'),
	NULL;

-- (b) the bulk import into dogdb.licenses: the license step of
-- dogdb_import_legacy() (parse, validate, dedupe, quarantine, insert; the
-- legacy accounts were imported above and their table is emptied, so the
-- import does the license step alone) against the strongest plain-SQL
-- INSERT ... SELECT writing the same rows: the fields cut out with
-- split_part, which is correct on these blobs (fixed key order, no escapes).
-- The jsonb_to_record() baseline stays as an info row.  Each timed run rolls
-- back; one run of each is committed first and checked to write the same rows.
TRUNCATE bench_legacy.customer_accounts;
INSERT INTO bench_legacy.customer_licenses
SELECT account_id, license_data, '2021-06-01', NULL FROM bench_legacy.curly;
VACUUM ANALYZE bench_legacy.customer_licenses;
CREATE FUNCTION pg_temp.rolled_back(q text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RAISE EXCEPTION USING ERRCODE = 'P0004';	-- roll back the writes
EXCEPTION WHEN assert_failure THEN NULL;
END $$;
CREATE FUNCTION pg_temp.import_c() RETURNS void LANGUAGE sql AS $$
	SELECT count(*) FROM dogdb_import_legacy('bench_legacy');
$$;
CREATE FUNCTION pg_temp.import_sql() RETURNS void LANGUAGE sql AS $$
	INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at, updated_at)
	SELECT split_part(j, '"', 4), l.account_id, split_part(j, '"', 8), split_part(j, '"', 12),
		   l.created_at AT TIME ZONE 'UTC', l.updated_at AT TIME ZONE 'UTC'
	  FROM bench_legacy.customer_licenses l, translate(l.license_data, '“”', '""') j;
$$;
CREATE FUNCTION pg_temp.import_sql_jsonb() RETURNS void LANGUAGE sql AS $$
	INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at, updated_at)
	SELECT r.license_id, l.account_id, r.role, r.status,
		   l.created_at AT TIME ZONE 'UTC', l.updated_at AT TIME ZONE 'UTC'
	  FROM bench_legacy.customer_licenses l,
		   jsonb_to_record(translate(l.license_data, '“”', '""')::jsonb) AS r(license_id text, role text, status text);
$$;

-- the same rows: once each for real, compared both ways
CREATE TEMP TABLE c_licenses AS SELECT * FROM dogdb.licenses LIMIT 0;
CHECKPOINT;
SELECT pg_temp.best_ms('SELECT pg_temp.import_c()', 1) AS c_ms \gset
INSERT INTO c_licenses SELECT * FROM dogdb.licenses;
TRUNCATE dogdb.licenses;
CHECKPOINT;
SELECT pg_temp.best_ms('SELECT pg_temp.import_sql()', 1) AS sql_ms \gset
CREATE FUNCTION pg_temp.check_same() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	only_c bigint := (SELECT count(*) FROM (TABLE c_licenses EXCEPT ALL TABLE dogdb.licenses) x);
	only_sql bigint := (SELECT count(*) FROM (TABLE dogdb.licenses EXCEPT ALL TABLE c_licenses) x);
BEGIN
	IF only_c + only_sql <> 0 OR (SELECT count(*) FROM dogdb.licenses) <> 1000000 THEN
		RAISE EXCEPTION 'the plain-SQL license import does not write the same rows: % only by C, % only by SQL',
			only_c, only_sql;
	END IF;
	RETURN 'same rows';
END $$;
SELECT pg_temp.check_same();
TRUNCATE dogdb.licenses;
CHECKPOINT;

-- the write alone (rows already parsed): no import through the executor can be faster
CREATE TABLE bench_legacy.parsed AS
SELECT dogdb_license_id(license_data) AS license_id, account_id, dogdb_license_role(license_data) AS role,
	   dogdb_license_status(license_data) AS status, created_at, updated_at
  FROM bench_legacy.customer_licenses;
INSERT INTO results
SELECT 'import 1M curly licenses (license step)',
	   least(:c_ms, pg_temp.best_ms($$SELECT pg_temp.rolled_back('SELECT pg_temp.import_c()')$$, 1)),
	   least(:sql_ms, pg_temp.best_ms($$SELECT pg_temp.rolled_back('SELECT pg_temp.import_sql()')$$, 1)),
	   1.5;
INSERT INTO results
SELECT 'import 1M curly licenses, jsonb_to_record baseline (info)',
	   (SELECT c_ms FROM results WHERE bench = 'import 1M curly licenses (license step)'),
	   pg_temp.best_ms($$SELECT pg_temp.rolled_back('SELECT pg_temp.import_sql_jsonb()')$$, 1), NULL;
INSERT INTO results
SELECT 'write floor: INSERT of pre-parsed rows (info)',
	   pg_temp.best_ms($$SELECT pg_temp.rolled_back($q$INSERT INTO dogdb.licenses
			SELECT license_id, account_id, role, status, created_at AT TIME ZONE 'UTC', updated_at AT TIME ZONE 'UTC'
			  FROM bench_legacy.parsed$q$)$$, 1),
	   (SELECT sql_ms FROM results WHERE bench = 'import 1M curly licenses (license step)'), NULL;

SELECT * FROM pg_temp.report();
DROP SCHEMA bench_legacy CASCADE;
