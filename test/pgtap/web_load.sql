-- pgTAP: the web event loader's C route (dogdb_internal.load_web_events_bulk)
-- against its SQL route (dogdb_internal.load_web_events_sql) on the same
-- data from the same starting state: counts, stored rows and quarantined
-- rows equal; the winners, each reject reason, re-loads, a non-empty
-- table, a sort larger than maintenance_work_mem, NULLs in every column,
-- the cases that take the SQL route, a cancelled load
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
CREATE EXTENSION amcheck;	-- bt_index_check of the loaded indexes
SET TimeZone = 'UTC';
SELECT plan(44);

-- what a route did: its counts, then digests of dogdb.web_events and of the
-- loader's quarantined rows (the whole rows, in key order)
CREATE FUNCTION pg_temp.load(route text, src regclass) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	counts text;
BEGIN
	EXECUTE format('SELECT row(l.*)::text FROM dogdb_internal.load_web_events%s(%L::regclass) l', route, src) INTO counts;
	RETURN counts || ' events ' ||
		   (SELECT count(*) || ':' || coalesce(md5(string_agg(e::text, '|' ORDER BY e.anonymous_id, e.event_id)), '')
			  FROM dogdb.web_events e) || ' rejects ' ||
		   (SELECT count(*) || ':' || coalesce(md5(string_agg(concat_ws(',', r.source_key, r.source_row::text, r.reason), '|'
															   ORDER BY r.source_key)), '')
			  FROM dogdb.import_rejects r WHERE r.source_table = 'web_events');
END $$;

TRUNCATE dogdb.web_events;
DELETE FROM dogdb.import_rejects WHERE source_table = 'web_events';

-- every case in one staging table
CREATE TABLE stage (LIKE dogdb.web_events);
ALTER TABLE stage ALTER anonymous_id DROP NOT NULL, ALTER event_id DROP NOT NULL,
	ALTER occurred_at DROP NOT NULL, ALTER event_name DROP NOT NULL, ALTER properties DROP NOT NULL;
INSERT INTO stage (anonymous_id, event_id, occurred_at, session_id, account_id, event_name, page_path, referrer, client, campaign, properties) VALUES
	-- delivered three times, identically
	('v1', 'e1', '2024-01-01 10:00Z', 's1', 7, 'page_view', '/', 'r', 'acme', 'c', '{"a": 1}'),
	('v1', 'e1', '2024-01-01 10:00Z', 's1', 7, 'page_view', '/', 'r', 'acme', 'c', '{"a": 1}'),
	('v1', 'e1', '2024-01-01 10:00Z', 's1', 7, 'page_view', '/', 'r', 'acme', 'c', '{"a": 1}'),
	-- copies with different times: the earliest is kept, wherever it stands
	('v1', 'e2', '2024-01-01 10:05Z', 'late', NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	('v1', 'e2', '2024-01-01 10:01Z', 'early', NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	('v1', 'e2', '2024-01-01 10:03Z', 'middle', NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	-- the same time: the smaller event_name, then the smaller page_path (NULLs last)
	('v2', 'e1', '2024-01-02Z', 'b', NULL, 'zoom', NULL, NULL, NULL, NULL, NULL),
	('v2', 'e1', '2024-01-02Z', 'a', NULL, 'page_view', '/b', NULL, NULL, NULL, NULL),
	('v2', 'e1', '2024-01-02Z', 'a2', NULL, 'page_view', '/a', NULL, NULL, NULL, NULL),
	('v2', 'e2', '2024-01-02Z', 'null path', NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	('v2', 'e2', '2024-01-02Z', 'a path', NULL, 'click', 'x', NULL, NULL, NULL, NULL),
	-- the same event id, another visitor; ids that are prefixes of each other
	('v2', 'e', '2024-01-03Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	('v', '2e', '2024-01-03Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	('v3', 'e1', '2024-01-01 09:00Z', NULL, NULL, 'page_ping', '/p', NULL, NULL, NULL, '{}'),
	-- NULL in every column that may be NULL (properties becomes {})
	('v4', 'e1', '2024-01-04Z', NULL, NULL, 'signup', NULL, NULL, NULL, NULL, NULL),
	-- each reject reason, in the SQL route's order
	(NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	('', 'e1', '2024-01-01Z', NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
	('v5', NULL, '2024-01-01Z', NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
	('v5', '', '2024-01-01Z', NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e3', NULL, NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e4', 'infinity', NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e5', '-infinity', NULL, NULL, 'x', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e6', '2024-01-01Z', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
	('v5', 'e7', '2024-01-01Z', NULL, NULL, '', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e8', '2024-01-01Z', NULL, NULL, 'page_view', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e9', '2024-01-01Z', NULL, NULL, 'page_ping', NULL, NULL, NULL, NULL, NULL),
	('v5', 'e10', '2024-01-01Z', NULL, NULL, 'page_view', 'pricing', NULL, NULL, NULL, NULL),
	('v5', 'e11', '2024-01-01Z', NULL, NULL, 'page_ping', '', NULL, NULL, NULL, NULL),
	('v5', 'e12', '2024-01-01Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, '[1]'),
	('v5', 'e13', '2024-01-01Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, '"s"'),
	('v5', 'e14', '2024-01-01Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, 'null'),
	-- a bad row delivered twice: stored once, counted twice
	('v5', 'e12', '2024-01-01Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, '[1]'),
	-- a reject shares its key with a valid row: the valid row is loaded
	('v6', 'e1', 'infinity', NULL, NULL, 'click', NULL, NULL, NULL, NULL, NULL),
	('v6', 'e1', '2024-01-05Z', NULL, NULL, 'click', NULL, NULL, NULL, NULL, NULL);

SAVEPOINT empty;
SELECT pg_temp.load('_sql', 'stage') AS sql_result \gset
ROLLBACK TO empty;
SELECT is(pg_temp.load('_bulk', 'stage'), :'sql_result', 'C route = SQL route: counts, stored rows, quarantined rows');
SELECT ok(:'sql_result' LIKE '(9,7,18) %', 'counts: loaded, duplicates, rejected');
-- into the empty table the C route built the indexes from the finished table:
-- every index holds exactly the table's rows (amcheck, heapallindexed)
SELECT is((SELECT count(*) FROM pg_index i, LATERAL bt_index_check(i.indexrelid::regclass, true)
			WHERE i.indrelid = 'dogdb.web_events'::regclass), 3::bigint,
		  'the first load: the three indexes built at the end pass bt_index_check with every heap row indexed');
SET LOCAL enable_seqscan = off;
SET LOCAL enable_bitmapscan = off;
SELECT is((SELECT count(*) FROM dogdb.web_events WHERE anonymous_id >= ''), 9::bigint,
		  'an index scan finds every loaded row');
RESET enable_seqscan;
RESET enable_bitmapscan;
SELECT is(row(l.*)::text, '(0,16,18)', 'delivered again: every valid row a duplicate, the rejects counted again')
  FROM dogdb_internal.load_web_events_bulk('stage') l;
SELECT is((SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events'), 17::bigint,
		  'the rejects stay single (the bad row delivered twice once)');
SELECT is((SELECT string_agg(session_id, ',' ORDER BY anonymous_id, event_id) FROM dogdb.web_events WHERE anonymous_id IN ('v1', 'v2') AND event_id IN ('e1', 'e2')),
		  's1,early,a2,a path', 'the winners: the earliest copy, then event_name, then page_path');
SELECT is((SELECT properties::text || coalesce(session_id, '-') || coalesce(account_id::text, '-') || coalesce(page_path, '-')
				  || coalesce(referrer, '-') || coalesce(client, '-') || coalesce(campaign, '-')
			 FROM dogdb.web_events WHERE anonymous_id = 'v4'), '{}------', 'NULLs stay NULL; properties {}');
SELECT is((SELECT occurred_at FROM dogdb.web_events WHERE anonymous_id = 'v6'), '2024-01-05Z'::timestamptz,
		  'a reject does not hide a valid copy');
SELECT set_eq($$SELECT reason, count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events' GROUP BY 1$$,
			  $$VALUES ('no visitor id (anonymous_id)', 2::bigint), ('no event id', 2), ('no time (occurred_at is NULL)', 1),
					   ('infinite time (occurred_at)', 3), ('unknown event shape: no event_name', 2),
					   ('unknown event shape: page_view without page_path', 1),
					   ('unknown event shape: page_ping without page_path', 1),
					   ('unknown event shape: page_path does not start with /', 2),
					   ('unknown event shape: properties is not a JSON object', 3)$$,
			  'each reject reason');

-- a second load into the non-empty table, rejects re-loaded: the stored rows win
CREATE TABLE stage2 (LIKE stage);
INSERT INTO stage2 SELECT * FROM stage WHERE anonymous_id IS NULL OR anonymous_id <> 'v4';
INSERT INTO stage2 (anonymous_id, event_id, occurred_at, event_name, session_id) VALUES
	('v1', 'e2', '2023-12-31Z', 'click', 'earlier than the stored copy'),
	('v1', 'e3', '2024-01-01 10:07Z', 'click', 'new'),
	('v0', 'e1', '2024-01-01Z', 'click', 'new, before every stored key'),
	('v9', 'e9', '2024-01-01Z', 'click', 'new, after every stored key'),
	('v9', 'e9', '2024-01-01Z', 'click', 'new, after every stored key');
SAVEPOINT loaded;
SELECT pg_temp.load('_sql', 'stage2') AS sql_result \gset
ROLLBACK TO loaded;
SELECT is(pg_temp.load('_bulk', 'stage2'), :'sql_result', 'into a non-empty table: C route = SQL route');
SELECT ok(:'sql_result' LIKE '(3,17,18) %', 'the new keys loaded; copies of stored keys duplicates, even earlier ones');
SELECT is((SELECT session_id FROM dogdb.web_events WHERE anonymous_id = 'v1' AND event_id = 'e2'), 'early', 'the stored row wins');
SELECT is((SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events'), 17::bigint, 'no reject quarantined twice');

-- the public loader takes the C route; it gives what the SQL route gives
ROLLBACK TO empty;
SELECT isnt((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage')), NULL, 'the C route loads a plain staging table');
ROLLBACK TO empty;
SAVEPOINT s1;
SELECT pg_temp.load('_sql', 'stage') AS sql_result \gset
ROLLBACK TO s1;
SELECT is(pg_temp.load('', 'stage'), :'sql_result', 'load_web_events() = SQL route');
ROLLBACK TO empty;

-- other column types the C route reads (varchar, integer), and a staging
-- table whose columns stand in another order among other columns
CREATE TABLE stage_types (extra int, properties jsonb, account_id integer, event_name varchar(40),
						  anonymous_id varchar, event_id varchar, occurred_at timestamptz, session_id text,
						  page_path varchar, referrer text, client text, campaign varchar, more text DEFAULT 'x');
INSERT INTO stage_types (properties, account_id, event_name, anonymous_id, event_id, occurred_at, session_id, page_path, referrer, client, campaign)
SELECT properties, account_id::int, event_name, anonymous_id, event_id, occurred_at, session_id, page_path, referrer, client, campaign FROM stage;
ALTER TABLE stage_types DROP COLUMN extra;
SAVEPOINT s2;
SELECT pg_temp.load('_sql', 'stage_types') AS sql_result \gset
ROLLBACK TO s2;
SELECT is(pg_temp.load('_bulk', 'stage_types'), :'sql_result', 'varchar, integer, other column order: C route = SQL route');
ROLLBACK TO empty;

-- what takes the SQL route: the C route returns NULL, the loader still loads
CREATE TABLE stage_json (LIKE stage);
ALTER TABLE stage_json ALTER properties TYPE json;
INSERT INTO stage_json SELECT * FROM stage;
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage_json')), NULL, 'a json column: SQL route');
SELECT is(pg_temp.load('', 'stage_json'), :'sql_result', 'which loads the same');
ROLLBACK TO empty;
CREATE TABLE stage_parted (LIKE stage) PARTITION BY LIST (client);
CREATE TABLE stage_parted_all PARTITION OF stage_parted DEFAULT;
INSERT INTO stage_parted SELECT * FROM stage;
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage_parted')), NULL, 'a partitioned staging table: SQL route');
SELECT is(pg_temp.load('', 'stage_parted'), :'sql_result', 'which loads the same');
ROLLBACK TO empty;
ALTER TABLE dogdb.web_events ENABLE ROW LEVEL SECURITY;
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage')), NULL, 'row-level security on dogdb.web_events: SQL route');
SELECT is(pg_temp.load('', 'stage'), :'sql_result', 'which loads the same');
ROLLBACK TO empty;
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER noop BEFORE INSERT ON dogdb.web_events FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage')), NULL, 'a trigger on dogdb.web_events: SQL route');
SELECT is(pg_temp.load('', 'stage'), :'sql_result', 'which loads the same');
ROLLBACK TO empty;
ALTER TABLE dogdb.web_events ADD COLUMN note text;
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage')), NULL, 'another column in dogdb.web_events: SQL route');
ROLLBACK TO empty;
SET LOCAL transaction_read_only = on;
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('stage')), NULL, 'a read-only transaction: SQL route');
SELECT throws_ok($$SELECT dogdb_internal.load_web_events('stage')$$, '25006', NULL, 'which raises its error');
ROLLBACK TO empty;
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk(NULL)), NULL, 'NULL: SQL route (its error)');
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('dogdb.web_events')), NULL, 'the table itself: SQL route (its error)');
SELECT throws_ok($$SELECT dogdb_internal.load_web_events('dogdb.import_rejects')$$, '22023', NULL, 'which raises it');
CREATE TABLE thin_stage (event_id text, occurred_at timestamptz);
SELECT is((SELECT loaded FROM dogdb_internal.load_web_events_bulk('thin_stage')), NULL, 'missing columns: SQL route (its error)');
SELECT throws_ok($$SELECT dogdb_internal.load_web_events('thin_stage')$$, '22023', NULL, 'which raises it');
ROLLBACK TO empty;

-- larger than maintenance_work_mem (the key hashes outgrow it, every row
-- is sorted, the sorts spill to disk), with more rejects than one batch of
-- the quarantine's copy; then the same within it
CREATE TABLE stage_big AS SELECT * FROM dogdb_internal.demo_web_events(6000, '2024-01-01', 28, 5);
INSERT INTO stage_big (anonymous_id, event_id, occurred_at, event_name)
SELECT NULL, 'bad' || i, '2024-01-01Z', 'click' FROM generate_series(1, 12000) i;
SELECT cmp_ok(pg_relation_size('stage_big'), '>', 8 * 1024 * 1024::bigint, 'the staging table is 8 times maintenance_work_mem');
SET maintenance_work_mem = '1MB';
INSERT INTO dogdb.web_events SELECT anonymous_id, event_id, occurred_at, session_id, account_id, event_name, page_path,
								   referrer, client, campaign, coalesce(properties, '{}')
  FROM stage_big WHERE anonymous_id LIKE '%7' AND event_id LIKE '%1' AND occurred_at IS NOT NULL ON CONFLICT DO NOTHING;
SAVEPOINT big;
SELECT pg_temp.load('_sql', 'stage_big') AS sql_result \gset
ROLLBACK TO big;
SELECT is(pg_temp.load('_bulk', 'stage_big'), :'sql_result', 'larger than maintenance_work_mem, into a non-empty table: C route = SQL route');
SELECT is((SELECT count(*) FROM dogdb.web_events), (SELECT count(DISTINCT (anonymous_id, event_id)) FROM stage_big WHERE anonymous_id IS NOT NULL),
		  'every key once');
RESET maintenance_work_mem;
ROLLBACK TO big;
SELECT is(pg_temp.load('_bulk', 'stage_big'), :'sql_result', 'the same within maintenance_work_mem: C route = SQL route');
SELECT is((SELECT count(*) FROM pg_index i, LATERAL bt_index_check(i.indexrelid::regclass, true)
			WHERE i.indrelid = 'dogdb.web_events'::regclass), 3::bigint,
		  'after a load into the non-empty table (entries inserted, the time index sorted) the indexes pass bt_index_check');
TRUNCATE dogdb.web_events;
DELETE FROM dogdb.import_rejects WHERE source_table = 'web_events';

-- a cancelled load leaves nothing
-- (throws_ok's WHEN OTHERS does not catch a cancel)
CREATE FUNCTION pg_temp.cancelled() RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	PERFORM dogdb_load_web_events('stage_big');
	RETURN 'not cancelled';
EXCEPTION WHEN query_canceled THEN
	RETURN SQLSTATE;
END $$;
SELECT is((SELECT row(l.*)::text FROM dogdb_load_web_events('stage') l), '(9,7,18)', 'a first load');
SET LOCAL statement_timeout = '100ms';
SELECT is(pg_temp.cancelled(), '57014', 'a load cancelled by statement_timeout');
RESET statement_timeout;
SELECT is((SELECT count(*) FROM dogdb.web_events), 9::bigint, 'leaves no event');
SELECT is((SELECT count(*) FROM dogdb.import_rejects WHERE source_table = 'web_events'), 17::bigint, 'and no reject');
SELECT is(to_regclass('pg_temp.dogdb_web_load_rejects'), NULL, 'nor its temporary table');
SELECT is((SELECT row(l.*)::text FROM dogdb_load_web_events('stage') l), '(0,16,18)', 'the next load runs');

SELECT * FROM finish();
ROLLBACK;
