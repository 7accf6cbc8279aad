-- Benchmark: license parsing and the license import, C against plain SQL,
-- on the same 1,000,000 rows in the same run.  Prints ratios.  The last row
-- is the write alone: plain SQL / floor is the best ratio any import could
-- reach on this machine.
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
		FROM (SELECT replace(replace(license_data, '“', '"'), '”', '"')::jsonb AS j FROM bench_legacy.curly OFFSET 0) s$$)),
	3;
INSERT INTO results
SELECT 'parse 1M ASCII blobs (3 fields)',
	pg_temp.best_ms($$SELECT count(dogdb_license_id(license_data)), count(dogdb_license_role(license_data)),
		count(dogdb_license_status(license_data)) FROM bench_legacy.ascii$$),
	least(pg_temp.best_ms($$SELECT count(r.license_id), count(r.role), count(r.status) FROM bench_legacy.ascii,
		jsonb_to_record(license_data::jsonb) AS r(license_id text, role text, status text)$$),
		pg_temp.best_ms($$SELECT count(j->>'license_id'), count(j->>'role'), count(j->>'status')
		FROM (SELECT license_data::jsonb AS j FROM bench_legacy.ascii OFFSET 0) s$$)),
	2;
-- the record form, against the same plain-SQL baseline as the curly row above
INSERT INTO results
SELECT 'dogdb_parse_license() record form, curly (info)',
	pg_temp.best_ms($$SELECT count(p.license_id), count(p.role), count(p.status)
		FROM bench_legacy.curly, dogdb_parse_license(license_data) p$$),
	(SELECT sql_ms FROM results WHERE bench = 'parse 1M curly blobs (3 fields)'),
	NULL;

-- (b) the bulk import into dogdb.licenses: the license step of
-- dogdb_import_legacy() (parse, validate, dedupe, quarantine, insert) against
-- a plain-SQL INSERT ... SELECT writing the same rows (each run rolls back)
INSERT INTO bench_legacy.customer_licenses
SELECT account_id, license_data, '2021-06-01', NULL FROM bench_legacy.curly;
CHECKPOINT;
CREATE FUNCTION pg_temp.import_c() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	-- the license step of dogdb_import_legacy(), without re-reading the accounts
	PERFORM * FROM dogdb.import_legacy_licenses('bench_legacy.customer_licenses');
	RAISE EXCEPTION USING ERRCODE = 'P0004';	-- roll back the writes
EXCEPTION WHEN assert_failure THEN NULL;
END $$;
CREATE FUNCTION pg_temp.import_sql() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at, updated_at)
	SELECT r.license_id, l.account_id, r.role, r.status,
		   l.created_at AT TIME ZONE 'UTC', l.updated_at AT TIME ZONE 'UTC'
	  FROM bench_legacy.customer_licenses l,
		   jsonb_to_record(translate(l.license_data, '“”', '""')::jsonb) AS r(license_id text, role text, status text);
	RAISE EXCEPTION USING ERRCODE = 'P0004';
EXCEPTION WHEN assert_failure THEN NULL;
END $$;
-- the write alone (rows already parsed): no import can be faster than this
CREATE TABLE bench_legacy.parsed AS
SELECT dogdb_license_id(license_data) AS license_id, account_id, dogdb_license_role(license_data) AS role,
	   dogdb_license_status(license_data) AS status, created_at, updated_at
  FROM bench_legacy.customer_licenses;
CREATE FUNCTION pg_temp.write_only() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at, updated_at)
	SELECT license_id, account_id, role, status, created_at AT TIME ZONE 'UTC', updated_at AT TIME ZONE 'UTC'
	  FROM bench_legacy.parsed;
	RAISE EXCEPTION USING ERRCODE = 'P0004';
EXCEPTION WHEN assert_failure THEN NULL;
END $$;
INSERT INTO results
SELECT 'import 1M curly licenses', pg_temp.best_ms('SELECT pg_temp.import_c()', 2),
	   pg_temp.best_ms('SELECT pg_temp.import_sql()', 2), 1.5;
INSERT INTO results
SELECT 'write floor: INSERT of pre-parsed rows (info)', pg_temp.best_ms('SELECT pg_temp.write_only()', 2),
	   (SELECT sql_ms FROM results WHERE bench = 'import 1M curly licenses'), NULL;

SELECT * FROM pg_temp.report();
DROP SCHEMA bench_legacy CASCADE;
