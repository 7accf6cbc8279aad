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

-- a changed license is quarantined, a duplicate in the source too (the row updated last wins)
INSERT INTO legacy.customer_licenses VALUES
	(2, '{"license_id": "5e0a2b9c7d1f4e3a8b6c0d9e2f1a3b4c5d6e7f80", "role": "viewer", "status": "active"}', '2021-01-10 14:35', '2021-08-01'),
	(4, '{"license_id": "dup0", "role": "viewer", "status": "active"}', '2021-05-01', '2021-05-02'),
	(5, '{"license_id": "dup0", "role": "admin", "status": "active"}', '2021-05-01', '2021-05-03');
SELECT * FROM dogdb_import_legacy('legacy');
SELECT reason, source_row->>'account_id' AS account_id FROM dogdb.import_rejects
 WHERE reason LIKE 'duplicate license_id%' OR reason LIKE 'license % different data' ORDER BY 1;
SELECT license_id, account_id, role FROM dogdb.licenses WHERE license_id IN ('dup0', '5e0a2b9c7d1f4e3a8b6c0d9e2f1a3b4c5d6e7f80');
SELECT * FROM dogdb_import_legacy('legacy');

-- more than a batch (1000) of licenses of accounts imported before: each
-- is written (the batched account locks run between the writes)
CREATE SCHEMA legacy_many;
CREATE TABLE legacy_many.customer_accounts (LIKE legacy.customer_accounts);
CREATE TABLE legacy_many.customer_interactions (LIKE legacy.customer_interactions);
CREATE TABLE legacy_many.customer_licenses (LIKE legacy.customer_licenses);
INSERT INTO legacy_many.customer_accounts
SELECT i, NULL, 'Free', '2021-01-01', NULL FROM generate_series(1001, 3500) i;
SELECT imported FROM dogdb_import_legacy('legacy_many') WHERE source_table = 'customer_accounts';
INSERT INTO legacy_many.customer_licenses
SELECT 1001 + i % 2500, format('{"license_id": "many%s", "role": "viewer", "status": "active"}', i), '2021-02-01', NULL
  FROM generate_series(1, 5000) i;
SELECT * FROM dogdb_import_legacy('legacy_many');
SELECT count(*) FROM dogdb.licenses WHERE license_id LIKE 'many%';

-- errors
SELECT * FROM dogdb_import_legacy('no_such_schema');
SELECT * FROM dogdb_import_legacy(NULL);

-- only tables are read: a view could run its owner's code as the importer (42809)
CREATE SCHEMA legacy_view;
CREATE TABLE legacy_view.customer_accounts (LIKE legacy.customer_accounts);
CREATE VIEW legacy_view.customer_interactions AS SELECT * FROM legacy.customer_interactions;
CREATE TABLE legacy_view.customer_licenses (LIKE legacy.customer_licenses);
DO $$
BEGIN
	PERFORM dogdb_import_legacy('legacy_view');
EXCEPTION WHEN wrong_object_type THEN
	RAISE NOTICE 'refused (%): %', SQLSTATE, SQLERRM;
END $$;

-- the bulk writer refuses (0A000) what it would bypass: a user's trigger,
-- a user's foreign key, a column of another type
CREATE FUNCTION pg_temp.refused(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	detail text;
BEGIN
	EXECUTE q;
	RETURN 'accepted';
EXCEPTION WHEN feature_not_supported THEN
	GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
	RETURN SQLSTATE || ': ' || SQLERRM || coalesce(' (' || nullif(detail, '') || ')', '');
END $$;
INSERT INTO legacy.customer_licenses VALUES
	(1, '{"license_id": "new1", "role": "viewer", "status": "active"}', '2021-09-01', NULL);
BEGIN;
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER user_trigger BEFORE INSERT ON dogdb.licenses FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT pg_temp.refused($$SELECT dogdb_import_legacy('legacy')$$);
ROLLBACK;
BEGIN;
CREATE TABLE public.license_roles (role text PRIMARY KEY);
ALTER TABLE dogdb.licenses ADD CONSTRAINT user_role_fk FOREIGN KEY (role) REFERENCES public.license_roles NOT VALID;
SELECT pg_temp.refused($$SELECT dogdb_import_legacy('legacy')$$);
ROLLBACK;
BEGIN;
ALTER TABLE dogdb.licenses ALTER created_at TYPE timestamp;
SELECT pg_temp.refused($$SELECT dogdb_import_legacy('legacy')$$);
ROLLBACK;
SELECT imported FROM dogdb_import_legacy('legacy') WHERE source_table = 'customer_licenses';

-- the invoice writer too: a column whose type changed (this crashed the
-- server), a user's foreign key on invoice_lines into a table the writer
-- guarantees for another column (585 violating rows were written)
INSERT INTO dogdb.accounts VALUES (100, 'inv@x.example', 'small', '2020-12-01');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (100, 3, '2020-12-01');
BEGIN;
ALTER TABLE dogdb.invoices ALTER total_cents TYPE numeric;
SELECT pg_temp.refused($$SELECT dogdb_generate_invoices('2021-01-01')$$);
ROLLBACK;
BEGIN;
ALTER TABLE dogdb.invoice_lines ADD CONSTRAINT user_fk FOREIGN KEY (line_no) REFERENCES dogdb.pricing_plans (plan_id);
SELECT pg_temp.refused($$SELECT dogdb_generate_invoices('2021-01-01')$$);
ROLLBACK;
BEGIN;
ALTER TABLE dogdb.invoice_lines ADD CONSTRAINT user_fk FOREIGN KEY (invoice_id) REFERENCES dogdb.accounts (account_id);
SELECT pg_temp.refused($$SELECT dogdb_generate_invoices('2021-01-01')$$);
ROLLBACK;
SELECT count(*) AS invoices FROM dogdb_generate_invoices('2021-01-01');

-- accounts outside the KPI horizon [2000-01-01, 2200-01-01) UTC are
-- quarantined with their reason, not an error from the table's constraint;
-- the accounts the import writes reach the KPI engine as a trigger's would
-- (an incremental refresh after the import equals a full rebuild)
SELECT count(*) FROM dogdb_refresh_kpis();
INSERT INTO legacy.customer_accounts VALUES
	(900, 'old@x.example', 'Free', '1999-12-31 23:59', NULL),
	(901, 'far@x.example', 'Free', '2200-01-01 00:00', NULL),
	(902, 'ok@x.example', 'Medium', '2019-01-01 00:00', NULL);
SELECT * FROM dogdb_import_legacy('legacy') WHERE source_table = 'customer_accounts';
SELECT source_row->>'account_id' AS account_id, reason FROM dogdb.import_rejects
 WHERE source_row->>'account_id' IN ('900', '901') ORDER BY 1;
SELECT DISTINCT full_rebuild FROM dogdb_refresh_kpis();
CREATE TEMP TABLE kpi_incremental AS SELECT * FROM dogdb_internal.kpi_facts;
SELECT count(*) FROM dogdb_refresh_kpis(true);
SELECT count(*) AS differing_facts
  FROM ((TABLE kpi_incremental EXCEPT ALL TABLE dogdb_internal.kpi_facts)
		UNION ALL (TABLE dogdb_internal.kpi_facts EXCEPT ALL TABLE kpi_incremental)) d;
RESET TimeZone;

-- more new accounts than the writer queues subscriptions for at once
-- (65,536, written interleaved for the GiST index): every account gets
-- exactly its one open subscription, on its tier's plan, from its creation
CREATE SCHEMA legacy_chunk;
CREATE TABLE legacy_chunk.customer_accounts (account_id int, email text, current_tier text,
	created_at timestamp, updated_at timestamp);
CREATE TABLE legacy_chunk.customer_interactions (account_id int, channel text, category text,
	service_rep text, status text, created_at timestamp, completed_at timestamp);
CREATE TABLE legacy_chunk.customer_licenses (account_id int, license_data text,
	created_at timestamp, updated_at timestamp);
INSERT INTO legacy_chunk.customer_accounts
SELECT 1000000 + i, NULL, (ARRAY['free', 'medium', 'enterprise'])[1 + i % 3],
	   '2021-01-01'::timestamp + i * interval '1 minute', NULL
  FROM generate_series(1, 70001) i;
INSERT INTO legacy_chunk.customer_interactions
SELECT 1000000 + (i * 7919) % 70001 + 1, 'email', NULL, 'Rep' || i % 3, 'open',
	   '2021-03-01'::timestamp + i * interval '1 second', NULL
  FROM generate_series(1, 2000) i;
SELECT * FROM dogdb_import_legacy('legacy_chunk');
SELECT count(*) AS accounts,
	   count(*) FILTER (WHERE s.n = 1 AND s.plan = (ARRAY['free', 'medium', 'enterprise'])[1 + (a.account_id - 1000000) % 3]
						AND s.valid_from = a.created_at AND s.open) AS with_their_subscription
  FROM dogdb.accounts a
  LEFT JOIN LATERAL (SELECT count(*) AS n, min(p.name) AS plan, min(u.valid_from) AS valid_from,
							bool_and(u.valid_to IS NULL) AS open
					   FROM dogdb.subscriptions u JOIN dogdb.pricing_plans p USING (plan_id)
					  WHERE u.account_id = a.account_id) s ON true
 WHERE a.account_id > 1000000;
SELECT count(*) AS interactions FROM dogdb.interactions i JOIN legacy_chunk.customer_interactions t
	ON t.account_id = i.account_id AND t.created_at AT TIME ZONE 'UTC' = i.created_at;
DROP SCHEMA legacy_chunk CASCADE;

-- the license step streams (one scan, judged in memory, written through the
-- bulk writer).  Duplicate license ids 10,000 rows apart (across write and
-- lock batches): the row updated last wins (NULL updated_at loses, then the
-- later created_at), the other is quarantined; bad rows of every kind
CREATE SCHEMA legacy_dup;
CREATE TABLE legacy_dup.customer_accounts (LIKE legacy.customer_accounts);
CREATE TABLE legacy_dup.customer_interactions (LIKE legacy.customer_interactions);
CREATE TABLE legacy_dup.customer_licenses (account_id bigint, license_data varchar,
	created_at timestamptz, updated_at timestamp, note text);
INSERT INTO legacy_dup.customer_accounts SELECT i, NULL, 'Free', '2021-01-01', NULL FROM generate_series(5001, 5100) i;
INSERT INTO legacy_dup.customer_licenses
SELECT 5001 + i % 100,
	   format('{“license_id”:“dupx%s”,“role”: “%s”,“status”: “active”}', i % 10000, CASE WHEN i < 10000 THEN 'viewer' ELSE 'admin' END),
	   '2021-02-01 00:00+00'::timestamptz + (i % 3) * interval '1 day',
	   CASE WHEN i % 2 = 0 THEN '2021-03-01'::timestamp + i * interval '1 second' END,
	   'n' || i
  FROM generate_series(0, 19999) i;
INSERT INTO legacy_dup.customer_licenses VALUES
	(9999, '{"license_id": "dupx-missing", "role": "viewer", "status": "active"}', '2021-02-01', NULL, 'a'),
	(5001, NULL, '2021-02-01', NULL, 'b'),
	(5001, '{"license_id": "dupx-bad", "role": "viewer"}', '2021-02-01', NULL, 'c'),
	(5001, '{"license_id": "", "role": "viewer", "status": "active"}', '2021-02-01', NULL, 'd'),
	(NULL, '{"license_id": "dupx-noacct", "role": "viewer", "status": "active"}', '2021-02-01', NULL, 'e'),
	(5001, '{"license_id": "dupx-nocreated", "role": "viewer", "status": "active"}', NULL, NULL, 'f'),
	(5002, '{"license_id": "dupx-same", "role": "viewer", "status": "active"}', '2021-02-01', NULL, 'g'),
	(5002, '{"license_id": "dupx-same", "role": "viewer", "status": "active"}', '2021-02-01', NULL, 'g');
-- what an import leaves of licenses and their rejects (surrogate ids and
-- times aside; which of identical rows gets which occurrence number is
-- unspecified, so keys are compared without it)
CREATE FUNCTION pg_temp.license_state() RETURNS TABLE (licenses bigint, rejects bigint, fingerprint text)
LANGUAGE sql AS $$
	SELECT (SELECT count(*) FROM dogdb.licenses), (SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'customer_licenses'),
		   md5(string_agg(r, ',' ORDER BY r))
	  FROM (SELECT row(l.*)::text AS r FROM dogdb.licenses l
			UNION ALL
			SELECT row(split_part(j.source_key, ':', 1), j.source_row, j.reason)::text FROM dogdb.import_rejects j
			 WHERE j.source_table = 'customer_licenses') x
$$;
-- first with too little memory for the scan (maintenance_work_mem 1MB): the
-- staged pipeline, rolled back; then streamed: the same rows, keys and reasons
BEGIN;
SET LOCAL maintenance_work_mem = '1MB';
SELECT * FROM dogdb_import_legacy('legacy_dup');
SELECT licenses, rejects, fingerprint AS staged FROM pg_temp.license_state() \gset
ROLLBACK;
SELECT * FROM dogdb_import_legacy('legacy_dup');
SELECT licenses = :licenses AS same_licenses, rejects = :rejects AS same_rejects,
	   fingerprint = :'staged' AS same_rows_keys_and_reasons
  FROM pg_temp.license_state();
SELECT count(*) AS licenses,
	   count(*) FILTER (WHERE role = 'viewer') AS first_row_won,
	   count(*) FILTER (WHERE role = 'admin') AS second_row_won
  FROM dogdb.licenses WHERE license_id LIKE 'dupx%';
SELECT regexp_replace(reason, 'dupx[0-9]+ ', 'dupxN ') AS reason, count(*) FROM dogdb.import_rejects
 WHERE source_table = 'customer_licenses' AND source_row ? 'note' GROUP BY 1 ORDER BY 1;
-- identical rows: one imported, the other quarantined with its occurrence key
SELECT source_key ~ '^[0-9a-f]{32}:[12]$' AS key_numbered, reason FROM dogdb.import_rejects
 WHERE source_row->>'note' = 'g';
-- a rerun skips everything; a reject deleted is retried (through the keys
-- of the rejects left), staged and streamed alike
SELECT * FROM dogdb_import_legacy('legacy_dup') WHERE source_table = 'customer_licenses';
DELETE FROM dogdb.import_rejects WHERE source_row->>'note' IN ('n0', 'a');
BEGIN;
SET LOCAL maintenance_work_mem = '1MB';
SELECT * FROM dogdb_import_legacy('legacy_dup') WHERE source_table = 'customer_licenses';
SELECT licenses, rejects, fingerprint AS staged FROM pg_temp.license_state() \gset
ROLLBACK;
SELECT * FROM dogdb_import_legacy('legacy_dup') WHERE source_table = 'customer_licenses';
SELECT licenses = :licenses AS same_licenses, rejects = :rejects AS same_rejects,
	   fingerprint = :'staged' AS same_rows_keys_and_reasons
  FROM pg_temp.license_state();
SELECT source_row->>'note' AS note, reason FROM dogdb.import_rejects WHERE source_row->>'note' IN ('n0', 'a') ORDER BY 1;
DROP SCHEMA legacy_dup CASCADE;
