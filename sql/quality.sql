-- dogdb_check_data_quality: each check counts what fails and samples keys
BEGIN;
TRUNCATE dogdb.accounts, dogdb.subscriptions, dogdb.interactions, dogdb.licenses,
         dogdb.sessions, dogdb.service_reps, dogdb.import_rejects, dogdb.invoices, dogdb.invoice_lines RESTART IDENTITY;

-- a clean database passes every check
INSERT INTO dogdb.accounts (account_id, email, created_at) VALUES
	(1, 'a@x.example', '2021-01-01'), (2, 'b@x.example', '2021-01-01');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES
	(1, 2, '2021-01-01'), (2, 1, '2021-01-01');
SELECT * FROM dogdb_check_data_quality();

-- now one failure (or more) of each kind
INSERT INTO dogdb.accounts (account_id, email, created_at) VALUES
	(3, 'A@X.example', '2021-01-01'), (4, NULL, '2021-01-01'), (5, NULL, '2021-01-01');
INSERT INTO dogdb.plan_prices VALUES (3, 60000, '2030-01-01');
INSERT INTO dogdb.pricing_plans VALUES (4, 'startup');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (3, 4, '2021-01-01');
INSERT INTO dogdb.service_reps (name) VALUES ('Maria');
INSERT INTO dogdb.interactions (account_id, rep_id, channel, status, created_at) VALUES
	(1, NULL, 'email', 'open', '2021-01-02'),
	(1, (SELECT rep_id FROM dogdb.service_reps), 'chat', 'escalated', '2021-01-03');
INSERT INTO dogdb.licenses (license_id, account_id, role, status, created_at) VALUES
	('l1', 1, 'admin', 'active', '2021-01-01'), ('l2', 1, 'viewer', 'active', '2021-01-01'),
	('l3', 2, 'admin', 'Active', '2021-01-01');
INSERT INTO dogdb.import_rejects (source_table, source_key, source_row, reason)
	VALUES ('customer_accounts', 'k:1', '{"account_id": 9}', 'unknown tier ''Gold''');
SELECT * FROM dogdb_check_data_quality();
ROLLBACK;
