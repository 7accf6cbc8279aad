-- The support model: service reps, dogdb.support_interactions and its
-- refresh, dogdb_kpi_support, the data-quality checks of interactions
TRUNCATE dogdb.accounts, dogdb.service_reps, dogdb.invoice_number_counters RESTART IDENTITY CASCADE;
SET TimeZone = 'Asia/Tokyo';	-- months are UTC months regardless
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;

-- reps: first and last name come from the name when neither is given
INSERT INTO dogdb.service_reps (name) VALUES ('Maria'), ('John  Smith'), ('Ana María de la Cruz');
INSERT INTO dogdb.service_reps (name, email, first_name, last_name, start_date, end_date) VALUES
	('Priya', 'priya@dogdb.example', 'Priya', 'Patel', '2021-02-01', '2021-03-31'),
	('Kim', NULL, 'Kim', NULL, '2021-01-01', NULL);
SELECT rep_id, name, first_name, last_name, email, start_date, end_date FROM dogdb.service_reps ORDER BY rep_id;
-- and their constraints
SELECT pg_temp.try($$INSERT INTO dogdb.service_reps (name, email) VALUES ('X', 'not an email')$$);
SELECT pg_temp.try($$INSERT INTO dogdb.service_reps (name, email) VALUES ('X', 'PRIYA@dogdb.example')$$);
SELECT pg_temp.try($$INSERT INTO dogdb.service_reps (name, start_date, end_date) VALUES ('X', '2021-05-01', '2021-04-30')$$);
SELECT pg_temp.try($$INSERT INTO dogdb.service_reps (name, first_name) VALUES ('X', '')$$);
SELECT pg_temp.try($$INSERT INTO dogdb.service_reps (name, end_date) VALUES ('X', 'infinity')$$);

-- accounts: 1 is medium, enterprise from March 15 (UTC); 2 enterprise
-- until February 1, then nothing; 3 has no size and no plan
INSERT INTO dogdb.accounts (account_id, company_size, created_at) VALUES
	(1, 'small', '2021-01-01Z'), (2, 'large', '2021-01-01Z'), (3, NULL, '2021-01-01Z');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to) VALUES
	(1, 2, '2021-01-01Z', '2021-03-15Z'), (1, 3, '2021-03-15Z', NULL), (2, 3, '2021-01-01Z', '2021-02-01Z');
INSERT INTO dogdb.sessions (account_id, created_at) VALUES
	(1, '2021-01-05Z'), (1, '2021-02-05Z'), (1, '2021-03-05Z'), (2, '2021-01-07Z'), (2, '2021-03-07Z'),
	(3, '2021-03-31 23:30Z');
INSERT INTO dogdb.interactions (interaction_id, account_id, rep_id, channel, category, status, created_at, completed_at) VALUES
	(1, 1, 1, 'email', 'billing', 'closed', '2021-01-05 10:00Z', '2021-01-05 12:00Z'),
	(2, 1, 2, 'chat', 'bug', 'resolved', '2021-01-31 23:00Z', '2021-02-01 01:00Z'),	-- open at the end of January
	(3, 2, 2, 'phone', 'bug', 'closed', '2021-01-20Z', '2021-01-21Z'),
	(4, 2, NULL, 'email', NULL, 'open', '2021-02-15Z', NULL),			-- tier none: no plan then
	(5, 1, 4, 'chat', 'billing', 'pending', '2021-03-15Z', NULL),		-- enterprise from that instant
	(6, 1, 4, 'email', 'upgrade', 'closed', '2021-03-14 23:59Z', '2021-04-02Z'),	-- still medium
	(7, 3, 3, 'phone', 'billing', 'closed', '2021-03-31 23:30Z', '2021-04-01 05:30Z');	-- a March one
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT interaction_id, account_id, company_size, plan_id, tier, rep_id, rep_name, channel, category, status,
	   created_month, completed_month, resolution_hours, is_open
  FROM dogdb.support_interactions ORDER BY interaction_id;

-- the KPIs under every grouping (group_by in any letter case)
SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-04-01');
SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-04-01', 'all');
SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-04-01', 'Tier');
SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-04-01', 'company_size');
SELECT * FROM dogdb_kpi_support('2021-02-01', '2021-03-01', 'REP');
SELECT * FROM dogdb_kpi_support('2021-03-01', '2021-05-01', 'category');

-- arguments are checked like the other KPI functions' (22023)
SELECT pg_temp.try($$SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-02-01', 'account')$$);
SELECT pg_temp.try($$SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-02-01', NULL)$$);
SELECT pg_temp.try($$SELECT * FROM dogdb_kpi_support('2021-01-15', '2021-02-01')$$);
SELECT pg_temp.try($$SELECT * FROM dogdb_kpi_support('2021-03-01', '2021-02-01')$$);
SELECT pg_temp.try($$SELECT * FROM dogdb_kpi_support(NULL, '2021-02-01')$$);
SELECT pg_temp.try($$SELECT * FROM dogdb_kpi_support('2021-01-01', 'infinity')$$);

-- an incremental refresh follows every source of the model
UPDATE dogdb.interactions SET status = 'closed', completed_at = '2021-02-20Z' WHERE interaction_id = 4;
UPDATE dogdb.interactions SET account_id = 3 WHERE interaction_id = 1;
DELETE FROM dogdb.interactions WHERE interaction_id = 3;
INSERT INTO dogdb.interactions (interaction_id, account_id, rep_id, channel, category, status, created_at)
VALUES (8, 2, 5, 'chat', 'bug', 'open', '2021-04-10Z');
UPDATE dogdb.service_reps SET name = 'Maria Rossi' WHERE rep_id = 1;
UPDATE dogdb.service_reps SET email = 'kim@dogdb.example' WHERE rep_id = 5;	-- not in the model: not recorded
UPDATE dogdb.pricing_plans SET name = 'pro' WHERE plan_id = 3;
UPDATE dogdb.accounts SET company_size = 'large' WHERE account_id = 3;
UPDATE dogdb.accounts SET email = 'a@x.example' WHERE account_id = 1;		-- not recorded either
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (2, 1, '2021-02-10Z');
SELECT kind, count(*) FROM dogdb_internal.support_changes GROUP BY 1 ORDER BY 1;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() ORDER BY 1;
SELECT count(*) AS pending_changes FROM dogdb_internal.support_changes;
SELECT interaction_id, account_id, company_size, tier, rep_name, status, completed_month, resolution_hours, is_open
  FROM dogdb.support_interactions ORDER BY interaction_id;
SELECT count(*) AS rows_that_differ_from_the_sources
  FROM ((TABLE dogdb.support_interactions EXCEPT ALL TABLE dogdb_internal.support_source)
		UNION ALL (TABLE dogdb_internal.support_source EXCEPT ALL TABLE dogdb.support_interactions)) d;
CREATE TEMP TABLE support_incremental AS TABLE dogdb.support_interactions;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis(true) WHERE kpi = 'support';
SELECT count(*) AS rows_that_differ_from_a_rebuild
  FROM ((TABLE dogdb.support_interactions EXCEPT ALL TABLE support_incremental)
		UNION ALL (TABLE support_incremental EXCEPT ALL TABLE dogdb.support_interactions)) d;
SELECT * FROM dogdb_kpi_support('2021-01-01', '2021-04-01', 'tier');
UPDATE dogdb.pricing_plans SET name = 'enterprise' WHERE plan_id = 3;

-- nothing changed: nothing to do; a TRUNCATE asks for a rebuild
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() WHERE kpi = 'support';
TRUNCATE dogdb.interactions;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() WHERE kpi = 'support';
SELECT count(*) AS model_rows FROM dogdb.support_interactions;

-- the legacy import fills the reps' first names and records its
-- interactions for the next incremental refresh
BEGIN;
TRUNCATE dogdb.accounts, dogdb.service_reps, dogdb.import_rejects CASCADE;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() WHERE kpi = 'support';
CREATE SCHEMA support_legacy;
SET LOCAL search_path = support_legacy, public;
\i test/legacy_sample.sql
RESET search_path;
SELECT source_table, imported FROM dogdb_import_legacy('support_legacy') ORDER BY 1;
SELECT name, first_name, last_name, email, start_date, end_date FROM dogdb.service_reps ORDER BY name;
SELECT kpi, full_rebuild FROM dogdb_refresh_kpis() WHERE kpi = 'support';
SELECT account_id, tier, rep_name, channel, status, resolution_hours FROM dogdb.support_interactions ORDER BY created_at;
SELECT count(*) AS rows_that_differ_from_the_sources
  FROM ((TABLE dogdb.support_interactions EXCEPT ALL TABLE dogdb_internal.support_source)
		UNION ALL (TABLE dogdb_internal.support_source EXCEPT ALL TABLE dogdb.support_interactions)) d;
ROLLBACK;

-- data-quality checks: a rep outside the employment dates, completed
-- before created (with the table's own check dropped), an unknown status,
-- a status that contradicts completed_at
BEGIN;
ALTER TABLE dogdb.interactions DROP CONSTRAINT interactions_check;
INSERT INTO dogdb.interactions (interaction_id, account_id, rep_id, channel, status, created_at, completed_at) VALUES
	(11, 1, 4, 'email', 'closed', '2021-01-31 23:00Z', '2021-02-01Z'),		-- before Priya's first day
	(12, 1, 4, 'email', 'closed', '2021-04-01 00:30Z', '2021-04-02Z'),		-- after her last day (UTC)
	(13, 1, 4, 'email', 'closed', '2021-03-31 23:30Z', '2021-04-02Z'),		-- her last day
	(14, 1, 5, 'email', 'closed', '2021-03-02Z', '2021-03-01Z'),
	(15, 1, 5, 'email', 'escalated', '2021-03-02Z', NULL),
	(16, 1, 5, 'email', 'resolved', '2021-03-02Z', NULL),
	(17, 1, 5, 'email', 'open', '2021-03-02Z', '2021-03-03Z');
SELECT * FROM dogdb_check_data_quality() WHERE relation = 'dogdb.interactions';
ROLLBACK;

TRUNCATE dogdb.accounts, dogdb.service_reps RESTART IDENTITY CASCADE;
SELECT count(*) FROM dogdb_refresh_kpis(true);
RESET TimeZone;
