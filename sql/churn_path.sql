-- The grouped scan of dogdb_active_months() (src/churn_path*.c): the plan
-- it gets, the shapes it leaves to the standard plan, and the same rows and
-- errors as the standard plan (dogdb_analytics.enable_grouped_scan = off).
SET TimeZone = 'UTC';
CREATE TABLE cp_sessions (k int, k8 bigint, k2 smallint, ts timestamptz, ts2 timestamptz, note text);
-- 20,000 rows in random time order, 200 keys (k8 far apart), NULL keys and NULL times
INSERT INTO cp_sessions
SELECT CASE WHEN i % 97 = 0 THEN NULL ELSE i % 200 END,
	   CASE WHEN i % 89 = 0 THEN NULL ELSE (i % 150) * 1000000007::bigint - 5000000000 END,
	   (i % 7)::smallint,
	   CASE WHEN i % 31 = 0 THEN NULL
			ELSE timestamptz '2019-06-01' + ((i * 7919) % 2900) * interval '1 day' + (i % 86400) * interval '1 second' END,
	   timestamptz '2020-01-01' + i * interval '1 hour', 'n' || i
  FROM generate_series(1, 20000) i;
-- a key with only NULL times, a key whose months span 30 years (several chunks)
INSERT INTO cp_sessions (k, k8, ts) VALUES (500, 500, NULL), (501, 501, '1995-03-01'), (501, 501, '2024-12-31 23:59:59'),
	(501, 501, '2010-07-04'), (502, 502, '0001-01-01 00:00:00'), (502, 502, '9999-12-31 23:59:59');
ANALYZE cp_sessions;

-- the first query of a fresh session already gets the grouped scan: the
-- transition function's support function loads the library in time
\c
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k;
SHOW dogdb_analytics.enable_grouped_scan;
SET TimeZone = 'UTC';

-- readers over the aggregate and the key are projected by the node; ORDER BY on top
EXPLAIN (COSTS OFF, VERBOSE)
SELECT k + 1 AS k1, dogdb_last_active_month(dogdb_active_months(ts)),
	   dogdb_first_inactive_month(dogdb_active_months(ts), '2019-06-01', '2027-06-01')
  FROM cp_sessions GROUP BY k ORDER BY 1;

-- shapes left to the standard plan
CREATE TABLE cp_other (k int PRIMARY KEY);
EXPLAIN (COSTS OFF) SELECT k, k2, dogdb_active_months(ts) FROM cp_sessions GROUP BY k, k2;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k HAVING count(*) > 1;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k HAVING k > 1;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FILTER (WHERE k2 > 0) FROM cp_sessions GROUP BY k;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(DISTINCT ts) FROM cp_sessions GROUP BY k;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts), count(*) FROM cp_sessions GROUP BY k;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts), dogdb_active_months(ts2) FROM cp_sessions GROUP BY k;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions WHERE ts > '2020-01-01' GROUP BY k;
EXPLAIN (COSTS OFF) SELECT note, dogdb_active_months(ts) FROM cp_sessions GROUP BY note;
EXPLAIN (COSTS OFF) SELECT k + 0, dogdb_active_months(ts) FROM cp_sessions GROUP BY k + 0;
EXPLAIN (COSTS OFF) SELECT s.k, dogdb_active_months(ts) FROM cp_sessions s JOIN cp_other o ON o.k = s.k GROUP BY s.k;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY GROUPING SETS ((k), ());
EXPLAIN (COSTS OFF) SELECT dogdb_active_months(ts) FROM cp_sessions;
CREATE TABLE cp_parted (k int, ts timestamptz) PARTITION BY RANGE (k);
CREATE TABLE cp_parted_1 PARTITION OF cp_parted FOR VALUES FROM (0) TO (100);
CREATE TABLE cp_parted_2 PARTITION OF cp_parted FOR VALUES FROM (100) TO (1000);
INSERT INTO cp_parted SELECT k, ts FROM cp_sessions WHERE k IS NOT NULL;
ANALYZE cp_parted;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_parted GROUP BY k;
CREATE TABLE cp_inh (k int, ts timestamptz);
CREATE TABLE cp_inh_child () INHERITS (cp_inh);
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_inh GROUP BY k;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM ONLY cp_inh GROUP BY k;
-- a plain aggregate not of the extension: untouched
CREATE AGGREGATE pg_temp.my_active_months(timestamptz) (SFUNC = dogdb_active_months_transfn, STYPE = bytea);
EXPLAIN (COSTS OFF) SELECT k, pg_temp.my_active_months(ts) FROM cp_sessions GROUP BY k;

-- the same rows as the standard plan, both ways; the months through a reader
-- (a hash aggregate reading rows out of time order may build a longer
-- bitmap), the bytes against the sorted plan over a (key, time) index
CREATE INDEX ON cp_sessions (k, ts);
CREATE INDEX ON cp_sessions (k8, ts);
CREATE FUNCTION pg_temp.differ(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	a bigint;
	b bigint;
BEGIN
	EXECUTE 'CREATE TEMP TABLE cp_new AS ' || q;
	SET LOCAL dogdb_analytics.enable_grouped_scan = off;
	EXECUTE 'CREATE TEMP TABLE cp_old AS ' || q;
	SET LOCAL dogdb_analytics.enable_grouped_scan = on;
	SELECT count(*) INTO a FROM (SELECT * FROM cp_new EXCEPT ALL SELECT * FROM cp_old) d;
	SELECT count(*) INTO b FROM (SELECT * FROM cp_old EXCEPT ALL SELECT * FROM cp_new) d;
	DROP TABLE cp_new, cp_old;
	RETURN format('%s rows differ', a + b);
END $$;
CREATE FUNCTION pg_temp.months(b bytea) RETURNS date[] LANGUAGE sql AS
	$$SELECT array(SELECT dogdb_active_month_list(b))$$;
SELECT pg_temp.differ('SELECT k, pg_temp.months(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k') AS int4_key;
SELECT pg_temp.differ('SELECT k8, pg_temp.months(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k8') AS int8_key;
SELECT pg_temp.differ('SELECT k2, pg_temp.months(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k2') AS int2_key;
SET enable_hashagg = off;
SET enable_sort = off;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k;
SELECT pg_temp.differ('SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k') AS int4_bytes;
SELECT pg_temp.differ('SELECT k8, dogdb_active_months(ts) FROM cp_sessions GROUP BY k8') AS int8_bytes;
RESET enable_hashagg;
RESET enable_sort;
-- the NULL key, a key with only NULL times, keys spanning decades and the whole range
SELECT k, octet_length(m), substr(m, 1, 8) AS head, array_length(pg_temp.months(m), 1) AS months,
	   (pg_temp.months(m))[1:2] AS first_months, dogdb_last_active_month(m)
  FROM (SELECT k, dogdb_active_months(ts) AS m FROM cp_sessions GROUP BY k OFFSET 0) s
 WHERE k IS NULL OR k >= 500 ORDER BY k;
SET dogdb_analytics.enable_grouped_scan = off;
SELECT k, octet_length(m), substr(m, 1, 8) AS head, array_length(pg_temp.months(m), 1) AS months,
	   (pg_temp.months(m))[1:2] AS first_months, dogdb_last_active_month(m)
  FROM (SELECT k, dogdb_active_months(ts) AS m FROM cp_sessions GROUP BY k OFFSET 0) s
 WHERE k IS NULL OR k >= 500 ORDER BY k;
RESET dogdb_analytics.enable_grouped_scan;
-- keys in an order that moves keys of the hash table into the directly
-- indexed window as it grows (churn_groups.c), and negative and extreme keys
CREATE TABLE cp_keys (k bigint, ts timestamptz);
INSERT INTO cp_keys VALUES (1000, '2024-01-01'), (5000, '2024-02-01'), (-9223372036854775808, '2024-03-01'),
	(9223372036854775807, '2024-04-01');
INSERT INTO cp_keys SELECT i, timestamptz '2020-01-01' + (i % 40) * interval '1 month' FROM generate_series(-300, 6000) i;
INSERT INTO cp_keys SELECT i, timestamptz '1990-01-01' + (i % 7) * interval '5 years' FROM generate_series(5990, 6010) i;
SELECT pg_temp.differ('SELECT k, pg_temp.months(dogdb_active_months(ts)) FROM cp_keys GROUP BY k') AS key_order;
CREATE INDEX ON cp_keys (k, ts);
SET enable_hashagg = off;
SET enable_sort = off;
SELECT pg_temp.differ('SELECT k, dogdb_active_months(ts) FROM cp_keys GROUP BY k') AS key_order_bytes;
RESET enable_hashagg;
RESET enable_sort;
SELECT count(*), count(DISTINCT m) FROM (SELECT k, dogdb_active_months(ts) AS m FROM cp_keys GROUP BY k) s;
DROP TABLE cp_keys;

-- readers and the key in expressions, ORDER BY and LIMIT on top
SELECT pg_temp.differ($$SELECT k * 2 AS kk, dogdb_last_active_month(dogdb_active_months(ts)) AS l,
	   dogdb_first_inactive_month(dogdb_active_months(ts), '2019-06-01', '2027-06-01') AS c
  FROM cp_sessions GROUP BY k$$) AS readers;
SELECT k, dogdb_last_active_month(dogdb_active_months(ts)),
	   dogdb_first_inactive_month(dogdb_active_months(ts), '2019-06-01', '2027-06-01')
  FROM cp_sessions GROUP BY k ORDER BY k LIMIT 5;
-- a set-returning reader (a ProjectSet on top) and a correlated subquery over the key
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_month_list(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k;
SELECT pg_temp.differ('SELECT k, dogdb_active_month_list(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k') AS set_returning;
SELECT pg_temp.differ($$SELECT k, (SELECT count(*) FROM cp_other o WHERE o.k = s.k) AS n,
	   dogdb_last_active_month(dogdb_active_months(ts)) FROM cp_sessions s GROUP BY k$$) AS subquery;
SELECT count(*), count(l), min(l), max(l)
  FROM (SELECT k8, dogdb_last_active_month(dogdb_active_months(ts)) AS l FROM cp_sessions GROUP BY k8) s;

-- generic plans of a prepared statement with parameters in the readers
PREPARE cp_q(date, date) AS
SELECT count(*), count(c), min(c), max(c)
  FROM (SELECT k, dogdb_first_inactive_month(dogdb_active_months(ts), $1, $2) AS c FROM cp_sessions GROUP BY k) s;
EXECUTE cp_q('2019-06-01', '2027-06-01');
EXECUTE cp_q('2019-06-01', '2027-06-01');
EXECUTE cp_q('2019-06-01', '2027-06-01');
EXECUTE cp_q('2019-06-01', '2027-06-01');
EXECUTE cp_q('2019-06-01', '2027-06-01');
EXECUTE cp_q('2019-06-01', '2027-06-01');
EXECUTE cp_q('2020-01-01', '2020-12-01');
EXPLAIN (COSTS OFF) EXECUTE cp_q('2020-01-01', '2020-12-01');
SET dogdb_analytics.enable_grouped_scan = off;
EXECUTE cp_q('2020-01-01', '2020-12-01');
RESET dogdb_analytics.enable_grouped_scan;
DEALLOCATE cp_q;

-- rescans: a LATERAL subquery whose readers take the outer row, in a nested loop
SET enable_hashjoin = off;
SET enable_mergejoin = off;
SET enable_material = off;
EXPLAIN (COSTS OFF)
SELECT g.m, x.* FROM (VALUES (date '2019-07-01'), ('2020-03-01'), ('2021-01-01')) g(m)
 CROSS JOIN LATERAL (SELECT count(c) AS churned, min(c) FROM
	(SELECT k, dogdb_first_inactive_month(dogdb_active_months(ts), g.m, '2027-06-01') AS c
	   FROM cp_sessions GROUP BY k) s) x;
SELECT pg_temp.differ($$SELECT g.m, x.* FROM (VALUES (date '2019-07-01'), ('2020-03-01'), ('2021-01-01')) g(m)
 CROSS JOIN LATERAL (SELECT count(c) AS churned, min(c) FROM
	(SELECT k, dogdb_first_inactive_month(dogdb_active_months(ts), g.m, '2027-06-01') AS c
	   FROM cp_sessions GROUP BY k) s) x$$) AS lateral_rescan;
EXPLAIN (COSTS OFF)
SELECT o.k, s.l FROM cp_other o
  JOIN (SELECT k, dogdb_last_active_month(dogdb_active_months(ts)) AS l FROM cp_sessions GROUP BY k) s
	ON s.k = o.k;
INSERT INTO cp_other SELECT generate_series(0, 9);
SELECT pg_temp.differ($$SELECT o.k, s.l FROM cp_other o
  JOIN (SELECT k, dogdb_last_active_month(dogdb_active_months(ts)) AS l FROM cp_sessions GROUP BY k) s
	ON s.k = o.k$$) AS nested_loop;
RESET enable_hashjoin;
RESET enable_mergejoin;
RESET enable_material;

-- a scrollable cursor (a Materialize on top: the node reads forward only)
SET cursor_tuple_fraction = 1;
BEGIN;
EXPLAIN (COSTS OFF) DECLARE cp_c SCROLL CURSOR FOR SELECT k, dogdb_last_active_month(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k;
DECLARE cp_c SCROLL CURSOR FOR SELECT k, dogdb_last_active_month(dogdb_active_months(ts)) FROM cp_sessions GROUP BY k;
MOVE FORWARD ALL IN cp_c;
MOVE BACKWARD ALL IN cp_c;
FETCH 3 FROM cp_c;
FETCH BACKWARD 2 FROM cp_c;
FETCH ABSOLUTE 3 FROM cp_c;
FETCH RELATIVE -2 FROM cp_c;
COMMIT;
RESET cursor_tuple_fraction;

-- parallel workers give the same rows as one process
SET parallel_setup_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE FUNCTION pg_temp.workers(q text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO plan;
	RETURN (plan -> 0 -> 'Plan' ->> 'Workers Launched')::int;
END $$;
SELECT pg_temp.workers('CREATE TEMP TABLE cp_parallel AS SELECT k8, dogdb_active_months(ts) AS m FROM cp_sessions GROUP BY k8') > 0 AS parallel;
SET max_parallel_workers_per_gather = 0;
SELECT pg_temp.workers('CREATE TEMP TABLE cp_serial AS SELECT k8, dogdb_active_months(ts) AS m FROM cp_sessions GROUP BY k8') AS serial_workers;
SELECT (SELECT count(*) FROM (SELECT * FROM cp_parallel EXCEPT ALL SELECT * FROM cp_serial) a) +
	   (SELECT count(*) FROM (SELECT * FROM cp_serial EXCEPT ALL SELECT * FROM cp_parallel) b) AS parallel_vs_serial,
	   (SELECT count(*) FROM cp_serial) AS keys;
RESET parallel_setup_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

-- privileges: checked as for the standard plan (the same error), column privileges suffice
CREATE ROLE regress_cp_cols;
CREATE ROLE regress_cp_key;
GRANT SELECT (k, ts) ON cp_sessions TO regress_cp_cols;
GRANT SELECT (k) ON cp_sessions TO regress_cp_key;
SET ROLE regress_cp_cols;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k;
SELECT count(*), count(m) FROM (SELECT k, dogdb_active_months(ts) AS m FROM cp_sessions GROUP BY k) s;
SET ROLE regress_cp_key;
SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k;
SET dogdb_analytics.enable_grouped_scan = off;
SELECT k, dogdb_active_months(ts) FROM cp_sessions GROUP BY k;
RESET dogdb_analytics.enable_grouped_scan;
RESET ROLE;

-- row-level security that applies: the standard plan; the owner (not subject to it): the node
CREATE TABLE cp_rls AS SELECT k, ts FROM cp_sessions;
ALTER TABLE cp_rls ENABLE ROW LEVEL SECURITY;
CREATE POLICY cp_rls_small ON cp_rls FOR SELECT USING (k < 10);
GRANT SELECT ON cp_rls TO regress_cp_cols;
SET ROLE regress_cp_cols;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_rls GROUP BY k;
SELECT count(*) FROM (SELECT k, dogdb_active_months(ts) FROM cp_rls GROUP BY k) s;
RESET ROLE;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_rls GROUP BY k;

-- what the aggregate rejects: the node runs the standard plan, which raises
-- the aggregate's own error (same SQLSTATE and message)
CREATE FUNCTION pg_temp.error_of(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
CREATE TABLE cp_bad (k bigint, ts timestamptz);
INSERT INTO cp_bad SELECT i % 10, '2024-01-01' FROM generate_series(1, 100) i;
INSERT INTO cp_bad VALUES (3, 'infinity');
SELECT pg_temp.error_of('SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k') AS grouped_scan;
SET dogdb_analytics.enable_grouped_scan = off;
SELECT pg_temp.error_of('SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k') AS standard;
RESET dogdb_analytics.enable_grouped_scan;
UPDATE cp_bad SET ts = '-infinity' WHERE ts = 'infinity';
SELECT pg_temp.error_of('SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k') AS minus_infinity;
UPDATE cp_bad SET ts = '10000-01-01' WHERE ts = '-infinity';
SELECT pg_temp.error_of('SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k') AS year_10000;
SET dogdb_analytics.enable_grouped_scan = off;
SELECT pg_temp.error_of('SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k') AS standard_year_10000;
RESET dogdb_analytics.enable_grouped_scan;
-- empty table: no group
TRUNCATE cp_bad;
SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k;

-- memory bound: more keys than the planner expected (stale statistics):
-- the node gives up at the bound and runs the standard plan
SET max_parallel_workers_per_gather = 0;
INSERT INTO cp_bad SELECT i % 3, '2024-01-01' FROM generate_series(1, 300) i;
ANALYZE cp_bad;
INSERT INTO cp_bad SELECT i, '2024-02-01'::timestamptz + i * interval '1 second' FROM generate_series(10, 1000009) i;
EXPLAIN (COSTS OFF) SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k;
CREATE FUNCTION pg_temp.fell_back(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	plan json;
BEGIN
	EXECUTE 'EXPLAIN (ANALYZE, FORMAT JSON) ' || q INTO plan;
	RETURN (plan -> 0 -> 'Plan' ->> 'Standard Plan Run') || ', ' || (plan -> 0 -> 'Plan' ->> 'Actual Rows');
END $$;
SELECT pg_temp.fell_back('SELECT k, dogdb_active_months(ts) FROM cp_bad GROUP BY k') AS "standard plan run, rows";
SELECT count(*), count(DISTINCT m), min(dogdb_last_active_month(m)), max(dogdb_last_active_month(m))
  FROM (SELECT k, dogdb_active_months(ts) AS m FROM cp_bad GROUP BY k) s;
RESET max_parallel_workers_per_gather;

DROP TABLE cp_sessions, cp_other, cp_inh, cp_inh_child, cp_parted, cp_rls, cp_bad;
DROP ROLE regress_cp_cols;
DROP ROLE regress_cp_key;
