-- dogdb_import_legacy: the legacy sample imports with every row accounted for
\set SHOW_CONTEXT never
-- legacy timestamps have no time zone: they are read as UTC whatever the session says
SET TimeZone = 'America/New_York';
CREATE SCHEMA legacy;
SET search_path = legacy, public;
\i test/legacy_sample.sql
RESET search_path;

SELECT * FROM dogdb_import_legacy('legacy');

-- every source row is in exactly one place: imported or quarantined
SELECT source_table, reason, source_row->>'account_id' AS account_id
  FROM dogdb.import_rejects ORDER BY source_table, reason;

SELECT account_id, email, created_at AT TIME ZONE 'UTC' AS created_utc FROM dogdb.accounts ORDER BY 1;
SELECT s.account_id, p.name AS plan, s.valid_from AT TIME ZONE 'UTC' AS valid_from_utc, s.valid_to
  FROM dogdb.subscriptions s JOIN dogdb.pricing_plans p USING (plan_id) ORDER BY 1;
SELECT name FROM dogdb.service_reps ORDER BY name;
SELECT i.account_id, i.channel, r.name AS rep, i.status, i.completed_at - i.created_at AS took
  FROM dogdb.interactions i LEFT JOIN dogdb.service_reps r USING (rep_id) ORDER BY i.created_at;
SELECT license_id, account_id, role, status FROM dogdb.licenses ORDER BY account_id, license_id;

-- running it again imports nothing twice and rejects nothing twice
SELECT * FROM dogdb_import_legacy('legacy');
SELECT count(*) AS rejects FROM dogdb.import_rejects;

-- new legacy rows are picked up; a changed row is quarantined, not lost
INSERT INTO legacy.customer_accounts VALUES
	(12, 'heidi@initech.example', 'Medium', '2021-06-01 00:00', NULL),
	(2, 'bob@globex.example', 'Enterprise', '2021-01-10 14:30', '2021-07-01 08:00');
SELECT * FROM dogdb_import_legacy('legacy');
SELECT reason FROM dogdb.import_rejects WHERE source_row->>'account_id' = '2';

-- deleting a reject makes the next import retry it
INSERT INTO legacy.customer_accounts VALUES (6, 'ivan@acme.example', 'Free', '2021-03-02 00:00', NULL);
DELETE FROM dogdb.import_rejects WHERE source_row->>'account_id' = '6';
SELECT * FROM dogdb_import_legacy('legacy');
SELECT license_id, account_id FROM dogdb.licenses WHERE account_id = 6;

-- errors
SELECT * FROM dogdb_import_legacy('no_such_schema');
SELECT * FROM dogdb_import_legacy(NULL);
RESET TimeZone;
