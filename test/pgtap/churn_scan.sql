-- pgTAP: dogdb_account_churn (one pass over the sessions, src/churn_scan.c)
-- against its SQL definition (dogdb_active_months() grouped by account and
-- its readers): compact and sparse account ids, histories longer than 64
-- months, every as_of, and each case where the scan must hand over to the
-- SQL definition (row-level security, column privileges, inheritance,
-- data the SQL route rejects, bitmaps over the memory limit)
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
SELECT plan(23);

-- the SQL definition, as README "dogdb_account_churn" states it
CREATE FUNCTION pg_temp.churn_sql(as_of date)
	RETURNS TABLE (account_id bigint, first_month date, last_active_month date, churn_month date)
	LANGUAGE sql STABLE AS $$
	SELECT a.account_id, f.first_month,
		   dogdb_last_active_month(m.active),
		   dogdb_first_inactive_month(m.active, f.first_month, as_of)
	  FROM dogdb.accounts a
	 CROSS JOIN LATERAL (SELECT date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date AS first_month) f
	  LEFT JOIN (SELECT s.account_id, dogdb_active_months(s.created_at) AS active
				   FROM dogdb.sessions s
				  WHERE s.created_at < ((date_trunc('month', as_of::timestamp) + interval '1 month') AT TIME ZONE 'UTC')
				  GROUP BY s.account_id) m ON m.account_id = a.account_id
$$;
-- both routes give the same rows for these as_of dates
CREATE FUNCTION pg_temp.differ(dates date[]) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	d date;
	bad text := '';
BEGIN
	FOREACH d IN ARRAY dates LOOP
		IF EXISTS (SELECT * FROM dogdb_account_churn(d) EXCEPT ALL SELECT * FROM pg_temp.churn_sql(d))
		   OR EXISTS (SELECT * FROM pg_temp.churn_sql(d) EXCEPT ALL SELECT * FROM dogdb_account_churn(d)) THEN
			bad := bad || ' ' || d;
		END IF;
	END LOOP;
	RETURN bad;
END $$;

SELECT is(count(*), 0::bigint, 'no accounts: no rows') FROM dogdb_account_churn('2021-06-01');
SELECT accounts FROM dogdb_generate_demo_data(1500, 14, '2021-01-01', 3) \g /dev/null
-- comebacks after churn, and sessions before an account's first month
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT account_id, timestamptz '2021-09-20Z' FROM dogdb.accounts WHERE account_id % 4 = 0;
UPDATE dogdb.accounts SET created_at = '2021-03-31 23:59:59Z' WHERE account_id % 7 = 0;
SELECT is(pg_temp.differ('{2020-06-01,2021-01-01,2021-01-31,2021-03-15,2021-04-01,2021-09-30,2022-02-28,2022-03-01,2030-01-01}'), '', 'demo data (compact ids): the same rows for as_of before, inside and after the data');
SELECT ok((SELECT count(churn_month) FROM dogdb_account_churn('2022-02-01')) > 100
		  AND (SELECT count(*) FROM dogdb_account_churn('2022-02-01') WHERE churn_month IS NULL) > 100,
		  'some accounts churned, some did not');
SELECT is((SELECT count(*) FROM dogdb_account_churn('2020-06-01') WHERE churn_month IS NOT NULL OR last_active_month IS NOT NULL),
		  0::bigint, 'as_of before every account: no churn, no active month');

-- histories longer than 64 months (several words per account), sparse ids
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES
	(1000000000000, 'small', '2003-05-17Z'), (5000000000000000, 'large', '2003-05-01Z'),
	(-42, NULL, '2008-12-31 23:00Z'), (777777777777, 'small', '2015-02-01Z');
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT id, m + interval '3 days'
  FROM (VALUES (1000000000000::bigint), (5000000000000000), (-42), (777777777777)) a(id),
	   generate_series(timestamptz '2003-05-01Z', '2021-06-01Z', '1 month') m
 WHERE m < timestamptz '2003-05-01Z' + (id % 97 + 60) * interval '1 month' OR m >= '2019-01-01Z';
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (-42, '2003-01-01Z'), (777777777777, '2014-12-31 23:59:59Z');
SELECT is(pg_temp.differ('{2003-04-01,2003-05-01,2008-06-30,2008-12-01,2009-01-01,2012-05-31,2021-01-01,2021-12-31,2099-12-31}'), '', 'sparse ids and 18-year histories: the same rows');
SELECT results_eq($$SELECT first_month, last_active_month, churn_month FROM dogdb_account_churn('2021-12-31')
					 WHERE account_id = 1000000000000$$,
				  $$VALUES ('2003-05-01'::date, '2021-06-01'::date, '2012-07-01'::date)$$,
				  'a churn month 110 months after the first month (no 63-month limit)');
SET LOCAL min_parallel_table_scan_size = 0;
SET LOCAL max_parallel_workers_per_gather = 2;
SELECT is(pg_temp.differ('{2003-05-01,2012-05-31,2021-06-01,2021-12-31}'), '',
		  'scanned by parallel workers (uncommitted rows included): the same rows');
UPDATE dogdb.sessions SET created_at = created_at + interval '1 month' WHERE account_id % 5 = 1;
SELECT is(pg_temp.differ('{2021-06-01,2021-12-31}'), '', 'the same after an update in this transaction');
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- the same answer as the SQL route when the scan must hand over to it
CREATE TABLE pg_temp.child_sessions () INHERITS (dogdb.sessions);
INSERT INTO pg_temp.child_sessions (session_id, account_id, created_at) VALUES (-1, 1000000000000, '2012-07-10Z');
SELECT is(pg_temp.differ('{2013-06-01,2021-12-31}'), '', 'a table inheriting from dogdb.sessions is read, as by the SQL route');
SELECT is(churn_month, '2012-08-01', 'its session moves the churn month')
  FROM dogdb_account_churn('2021-12-31') WHERE account_id = 1000000000000;
DROP TABLE pg_temp.child_sessions;

CREATE ROLE churn_reader;
GRANT SELECT (account_id, created_at) ON dogdb.accounts, dogdb.sessions TO churn_reader;
SET LOCAL ROLE churn_reader;
SELECT throws_ok($$SELECT * FROM dogdb_account_churn('2021-06-01')$$, '42501',
				 'permission denied for schema dogdb', 'without USAGE on the schema dogdb: refused');
RESET ROLE;
GRANT USAGE ON SCHEMA dogdb TO churn_reader;
SET LOCAL ROLE churn_reader;
SELECT is(pg_temp.differ('{2021-06-01,2021-12-31}'), '', 'a role with column privileges only: the same rows');
RESET ROLE;
REVOKE SELECT (created_at) ON dogdb.sessions FROM churn_reader;
SET LOCAL ROLE churn_reader;
SELECT throws_ok($$SELECT * FROM dogdb_account_churn('2021-06-01')$$, '42501',
				 'permission denied for table sessions', 'without SELECT on sessions.created_at: refused');
RESET ROLE;
GRANT SELECT ON dogdb.accounts, dogdb.sessions TO churn_reader;
ALTER TABLE dogdb.sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY odd_only ON dogdb.sessions FOR SELECT TO churn_reader USING (account_id % 2 = 1);
SET LOCAL ROLE churn_reader;
SELECT is(pg_temp.differ('{2021-06-01,2021-12-31}'), '', 'under row-level security: the rows the policy lets the role see');
SELECT is(count(last_active_month), 0::bigint, 'even accounts have no visible session')
  FROM dogdb_account_churn('2021-12-31') WHERE account_id % 2 = 0;
RESET ROLE;
SELECT ok(count(last_active_month) > 0, 'the owner still sees every session')
  FROM dogdb_account_churn('2021-12-31') WHERE account_id % 2 = 0;
DROP POLICY odd_only ON dogdb.sessions;
ALTER TABLE dogdb.sessions DISABLE ROW LEVEL SECURITY;

-- data the SQL route rejects: the same errors
ALTER TABLE dogdb.sessions DROP CONSTRAINT sessions_created_at_kpi_horizon;
ALTER TABLE dogdb.accounts DROP CONSTRAINT accounts_created_at_kpi_horizon;
-- (each case is undone by hand: a rollback to a savepoint would undo pgTAP's count too)
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (-42, '-infinity');
SELECT throws_ok($$SELECT * FROM dogdb_account_churn('2021-06-01')$$, '22008',
				 'session time must be finite, not -infinity', 'a session at -infinity: the aggregate''s error');
DELETE FROM dogdb.sessions WHERE created_at = '-infinity';
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (-42, 'infinity'), (-42, '4000-01-01Z');
SELECT is(pg_temp.differ('{2021-06-01,9999-12-31}'), '', 'sessions after as_of, infinity included, are not counted');
DELETE FROM dogdb.sessions WHERE created_at >= '4000-01-01Z';
INSERT INTO dogdb.sessions (account_id, created_at) VALUES (-42, '0044-03-15 BC');
SELECT throws_ok($$SELECT * FROM dogdb_account_churn('2021-06-01')$$, '22008',
				 'session time 0044-03-15 00:00:00+00 BC is out of range', 'a session before the year 1: the aggregate''s error');
DELETE FROM dogdb.sessions WHERE created_at < '0001-01-01Z';
UPDATE dogdb.accounts SET created_at = 'infinity' WHERE account_id = -42;
SELECT throws_ok($$SELECT * FROM dogdb_account_churn('2021-06-01')$$, '22008',
				 'from_month must be a date from 0001-01-01 to 9999-12-31, not infinity',
				 'an account created at infinity: the reader''s error');
UPDATE dogdb.accounts SET created_at = '2008-12-31 23:00Z' WHERE account_id = -42;
SELECT throws_ok($$SELECT * FROM dogdb_account_churn('infinity')$$, '22008',
				 'to_month must be a date from 0001-01-01 to 9999-12-31, not infinity', 'as_of infinity: the reader''s error');
SELECT is((SELECT count(*) FROM dogdb_account_churn(NULL)), 0::bigint, 'as_of NULL: no rows (STRICT)');
-- accounts from the year 1: 120,000 months of bitmap each, over the memory limit
INSERT INTO dogdb.accounts (account_id, created_at)
SELECT -1000 - i, timestamptz '0001-01-01Z' + i * interval '1 day' FROM generate_series(1, 5000) i;
INSERT INTO dogdb.sessions (account_id, created_at)
SELECT -1000 - i, timestamptz '0001-01-01Z' + i * interval '40 days' FROM generate_series(1, 5000) i;
SELECT is(pg_temp.differ('{0001-06-01,2021-12-31,9999-12-31}'), '', 'bitmaps over the memory limit: the same rows');

SELECT * FROM finish();
ROLLBACK;
