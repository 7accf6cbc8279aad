-- The legacy DogDB tables as the analytics team sees them, with their known
-- problems: no keys, tier in the account row, rep first names, license blobs
-- in curly quotes, children of accounts that do not exist (interactions of 7,
-- licenses of 6 and 35), one account with two active licenses.
-- The tables are created in the current schema (the first of search_path).
CREATE TABLE customer_accounts (account_id int, email text, current_tier text,
									   created_at timestamp, updated_at timestamp);
CREATE TABLE customer_interactions (account_id int, channel text, category text,
										   service_rep text, status text,
										   created_at timestamp, completed_at timestamp);
CREATE TABLE customer_licenses (account_id int, license_data text,
									   created_at timestamp, updated_at timestamp);

INSERT INTO customer_accounts VALUES
	(1, 'alice@acme.example', 'Free', '2021-01-04 09:00', '2021-01-04 09:00'),
	(2, 'bob@globex.example', 'Medium', '2021-01-10 14:30', '2021-06-01 08:00'),
	(3, 'carol@old-initech.example', 'Enterprise', '2021-02-01 00:00', '2021-02-01 00:00'),
	(3, 'carol@initech.example', 'Enterprise', '2021-02-01 00:00', '2021-05-20 12:00'),
	(4, 'dave@umbrella.example', 'medium', '2021-02-15 23:30', NULL),
	(5, 'erin@hooli.example', 'ENTERPRISE', '2021-03-01 08:15', '2021-03-02 10:00'),
	(8, 'frank@acme.example', 'Gold', '2021-03-05 10:00', NULL),
	(9, NULL, 'Free', '2021-04-01 12:00', NULL),
	(10, 'grace@hooli.example', 'Medium', '2021-04-12 16:45', NULL),
	(11, 'alice@acme.example', 'Free', '2021-05-02 11:00', NULL);

INSERT INTO customer_interactions VALUES
	(1, 'email', 'billing', 'Maria', 'closed', '2021-01-05 10:00', '2021-01-05 11:30'),
	(2, 'phone', 'onboarding', 'John', 'closed', '2021-01-11 09:00', '2021-01-11 09:45'),
	(2, 'chat', 'bug', ' John ', 'resolved', '2021-02-03 15:00', '2021-02-04 10:00'),
	(3, 'email', 'upgrade', 'Priya', 'open', '2021-02-10 08:00', NULL),
	(5, 'chat', 'billing', NULL, 'pending', '2021-03-03 13:00', NULL),
	(7, 'phone', 'cancellation', 'Maria', 'closed', '2021-03-04 09:00', '2021-03-04 09:20'),
	(8, 'email', 'billing', 'John', 'closed', '2021-03-06 09:00', '2021-03-06 10:00'),
	(10, 'phone', 'bug', 'Priya', 'closed', '2021-04-13 10:00', '2021-04-13 08:00');

INSERT INTO customer_licenses VALUES
	(1, '{“license_id”:“d17cb11cda9ba249c22f67e4aed65d0f65f1a80c”,“role”: “analyst”,“status”: “active”}', '2021-01-04 09:05', NULL),
	(2, '{“license_id”:“5e0a2b9c7d1f4e3a8b6c0d9e2f1a3b4c5d6e7f80”,“role”: “admin”,“status”: “active”}', '2021-01-10 14:35', NULL),
	(3, '{"status": "active", "role": "admin", "license_id": "9a8b7c6d5e4f30211203f4e5d6c7b8a9f0e1d2c3", "seats": 25}', '2021-02-01 00:10', NULL),
	(4, '{“license_id”:“0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c”,“role”: “developer”,“status”: “inactive”}', '2021-02-16 08:00', NULL),
	(5, '{“license_id”:“aa11bb22cc33dd44ee55ff6677889900aabbccdd”,“role”: “admin”,“status”: “active”}', '2021-03-01 08:20', NULL),
	(5, '{“license_id”:“ff00ee11dd22cc33bb44aa5566778899ffeeddcc”,“role”: “analyst”,“status”: “active”}', '2021-03-02 09:00', NULL),
	(6, '{“license_id”:“1234567890abcdef1234567890abcdef12345678”,“role”: “analyst”,“status”: “active”}', '2021-03-03 10:00', NULL),
	(35, '{“license_id”:“abcdef1234567890abcdef1234567890abcdef12”,“role”: “viewer”,“status”: “active”}', '2021-03-04 10:00', NULL),
	(9, '{“license_id”:“c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00,“role”: “viewer”,“status”: “active”}', '2021-04-01 12:10', NULL),
	(10, '{“license_id”:“b16b00b5b16b00b5b16b00b5b16b00b5b16b00b5”,“role”: “viewer”}', '2021-04-12 17:00', NULL);
