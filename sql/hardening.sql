-- Hardening (issue 8): the churn aggregate, the bitmap readers and the
-- license parser against hostile input.  Each call either gives a correct
-- result or an error with a SQLSTATE; the server stays up throughout.
\set SHOW_CONTEXT never
SET TimeZone = 'UTC';

-- result of a query as text, or its error as "ERROR <sqlstate>: <message>"
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
	r text;
BEGIN
	EXECUTE q INTO r;
	RETURN coalesce(r, 'NULL');
EXCEPTION WHEN OTHERS THEN
	RETURN 'ERROR ' || SQLSTATE || ': ' || SQLERRM;
END $$;

--
-- Finding 1: the aggregate support functions started from a state they did
-- not build (both crashed the server with SIGSEGV before 1.3)
--
CREATE AGGREGATE pg_temp.evil2(bytea) (SFUNC = dogdb_active_months_combinefn, STYPE = bytea, INITCOND = '');
SELECT pg_temp.try($$SELECT pg_temp.evil2(b) FROM (VALUES ('\x00000040ff'::bytea)) v(b)$$) AS combine_from_empty_state;
CREATE AGGREGATE pg_temp.evil(timestamptz) (SFUNC = dogdb_active_months_transfn, STYPE = bytea, INITCOND = '');
SELECT pg_temp.try($$SELECT pg_temp.evil(t) FROM (VALUES ('294276-12-31'::timestamptz)) v(t)$$) AS trans_from_empty_state;
-- states of every length 0..5 and hostile headers, through both functions
CREATE TABLE pg_temp.hostile_bitmaps (label text, b bytea);
INSERT INTO pg_temp.hostile_bitmaps VALUES
	('0 bytes', '\x'), ('1 byte', '\x00'), ('2 bytes', '\x0000'), ('3 bytes', '\x000000'),
	('empty bitmap', '\x00000000'), ('2000-01 set', '\x0000000001'),
	('first month INT32_MAX', '\xffffff7f01'), ('first month INT32_MIN', '\x00000080ff'),
	('first month 2^23 (issue)', '\x0000008001'), ('first month -23996', '\x44a2ffff01'),
	('month before 0001-01 set', '\x48a2ffff01'), ('0001-01 set', '\x48a2ffff10'),
	('10000-01 set', '\xff76010002'), ('9999-12 set', '\xf77601000001'),
	('20 kB of zeros', '\x00000000' || decode(repeat('00', 20000), 'hex')),
	('longest valid', '\x48a2ffff' || decode(repeat('00', 15012), 'hex')),
	('one byte too long', '\x48a2ffff' || decode(repeat('00', 15013), 'hex'));
DO $$
DECLARE
	init text;
BEGIN
	FOR init IN SELECT b::text FROM pg_temp.hostile_bitmaps WHERE length(b) < 16 LOOP
		EXECUTE format('CREATE AGGREGATE pg_temp.t_%s(timestamptz) (SFUNC = dogdb_active_months_transfn, STYPE = bytea, INITCOND = %L)',
					   substr(md5(init), 1, 8), init);
		EXECUTE format('CREATE AGGREGATE pg_temp.c_%s(bytea) (SFUNC = dogdb_active_months_combinefn, STYPE = bytea, INITCOND = %L)',
					   substr(md5(init), 1, 8), init);
	END LOOP;
END $$;
SELECT label,
	   pg_temp.try(format($$SELECT string_agg(m::text, ',') FROM dogdb_active_month_list(
			(SELECT pg_temp.t_%s(t) FROM (VALUES ('2021-03-05'::timestamptz)) v(t))) m$$, substr(md5(b::text), 1, 8))) AS as_trans_state,
	   pg_temp.try(format($$SELECT string_agg(m::text, ',') FROM dogdb_active_month_list(
			(SELECT pg_temp.c_%s(x) FROM (VALUES ('\x0000000001'::bytea)) v(x))) m$$, substr(md5(b::text), 1, 8))) AS as_combine_state
  FROM pg_temp.hostile_bitmaps WHERE length(b) < 16 ORDER BY length(b), label;
-- the same bytes as the combine function's other argument
CREATE AGGREGATE pg_temp.combine_all(bytea) (SFUNC = dogdb_active_months_combinefn, STYPE = bytea);
SELECT label, pg_temp.try(format($$SELECT pg_temp.combine_all(x) FROM (VALUES (%L::bytea)) v(x)$$, b)) AS as_other
  FROM pg_temp.hostile_bitmaps WHERE length(b) < 16 ORDER BY length(b), label;
-- outside an aggregate: refused
SELECT pg_temp.try($$SELECT dogdb_active_months_transfn('\x00000000', now())$$) AS trans_direct,
	   pg_temp.try($$SELECT dogdb_active_months_combinefn(NULL, '\x00000000')$$) AS combine_direct;

--
-- session times: infinite and out-of-range ones are errors (22008); the
-- years 0001 to 9999 are counted
--
SELECT t, pg_temp.try(format($$SELECT dogdb_active_months(x) FROM (VALUES (NULL::timestamptz), (%L::timestamptz)) v(x)$$, t)) AS bitmap
  FROM unnest(ARRAY['infinity', '-infinity', '294276-12-31 23:59:59', '4714-11-24 00:00 BC', '0001-12-31 23:59:59 BC',
					'0001-01-01 00:00', '9999-12-31 23:59:59.999999', '10000-01-01 00:00']) t;
SELECT pg_temp.try($$SELECT dogdb_active_months(x) FROM (VALUES (NULL::timestamptz)) v(x)$$) AS only_nulls;
-- first and last supported months, both readable back as dates
WITH b AS (SELECT dogdb_active_months(t) AS b
			 FROM (VALUES ('9999-12-31 23:59:59.999999'::timestamptz), ('0001-01-01 00:00'), ('2021-03-05')) v(t))
SELECT dogdb_last_active_month(b), dogdb_last_active_month(b)::text::date,
	   (SELECT array_agg(m) FROM dogdb_active_month_list(b) m) AS months,
	   dogdb_first_inactive_month(b, '0001-01-15', '9999-12-31') AS first_gap
  FROM b;
-- growing a state in both directions, and combining far-apart states
SELECT (SELECT array_agg(m) FROM dogdb_active_month_list(dogdb_active_months(t)) m)
  FROM (VALUES ('2021-03-05'::timestamptz), ('9999-01-01'), ('0001-05-01'), ('2021-04-05')) v(t);
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
CREATE TABLE pg_temp.far (t timestamptz);
INSERT INTO pg_temp.far SELECT CASE WHEN i % 2 = 0 THEN '0001-01-01'::timestamptz + i * interval '1 day'
									ELSE '9999-12-31'::timestamptz - i * interval '1 day' END
  FROM generate_series(1, 20000) i;
ANALYZE pg_temp.far;
SELECT count(*) AS months, min(m), max(m) FROM dogdb_active_month_list((SELECT dogdb_active_months(t) FROM pg_temp.far)) m;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather;

--
-- Finding 9: the readers never return a date that cannot be read back;
-- invalid bitmaps are 22P03, dates outside 0001..9999 are 22008
--
SELECT pg_temp.try($$SELECT dogdb_last_active_month('\x0000008001'::bytea)$$) AS issue_last_active;
SELECT pg_temp.try($$SELECT dogdb_first_inactive_month(NULL, '4714-11-24 BC', '4714-12-01 BC')$$) AS issue_first_inactive;
SELECT label,
	   pg_temp.try(format($$SELECT dogdb_last_active_month(%L::bytea)$$, b)) AS last_active,
	   pg_temp.try(format($$SELECT dogdb_first_inactive_month(%L::bytea, '2000-01-01', '2000-03-01')$$, b)) AS first_inactive,
	   pg_temp.try(format($$SELECT string_agg(m::text, ',') FROM dogdb_active_month_list(%L::bytea) m$$, b)) AS month_list
  FROM pg_temp.hostile_bitmaps ORDER BY length(b), label;
SELECT f, t, pg_temp.try(format($$SELECT dogdb_first_inactive_month(NULL, %L, %L)$$, f, t)) AS first_inactive
  FROM (VALUES ('infinity', '2021-01-01'), ('2021-01-01', 'infinity'), ('-infinity', '2021-01-01'),
			   ('4714-11-24 BC', '2021-01-01'), ('0001-01-01', '0001-03-01'), ('9999-12-31', '9999-12-31'),
			   ('9999-12-01', '10000-01-01'), ('5874897-12-31', '5874897-12-31'), ('2021-05-01', '2021-01-01'),
			   (NULL, '2021-01-01'), ('2021-01-01', NULL)) v(f, t);
SELECT dogdb_last_active_month(NULL) IS NULL AS last_null, (SELECT count(*) FROM dogdb_active_month_list(NULL)) AS list_of_null;

--
-- Finding 3: no invalid UTF-8 escapes the license parser.  convert_from()
-- verifies the encoding, so it fails on a lone byte.
--
SELECT convert_from(convert_to(dogdb_license_error('{“license_id”:“a\”b”,“role”:“r”,“status”:“s”}'), 'UTF8'), 'UTF8') AS escaped_curly_close;
SELECT convert_from(convert_to(dogdb_license_error(b), 'UTF8'), 'UTF8') AS message
  FROM (VALUES ('{“license_id”:“a\“b”,“role”:“r”,“status”:“s”}'),
			   ('{"license_id":"\”","role":"r","status":"s"}'),
			   ('{"license_id":"\é","role":"r","status":"s"}'),
			   ('{"license_id":"\ud800","role":"r","status":"s"}'),
			   ('{"license_id":"a" ' || repeat('é', 200) || '}')) v(b);
SELECT pg_temp.try($$SELECT dogdb_license_id('{“license_id”:“a\”b”,“role”:“r”,“status”:“s”}')$$) AS raised;
-- a jansson message cut at its 160-byte limit stays valid UTF-8
SELECT octet_length(m) > 0 AS cut_message_is_valid
  FROM (SELECT convert_from(convert_to(dogdb_license_error('{"license_id":"\' || repeat('é', 300) || '","role":"r"}'), 'UTF8'), 'UTF8') AS m) x;

--
-- license parser: hostile sizes.  Finding 6: memory is bounded (the
-- accessors raise 54000, dogdb_license_error() explains, so the import
-- quarantines the row), the parse is cancellable, the server lives on.
--
SELECT dogdb_license_error(NULL) IS NULL AS null_in, dogdb_license_error('') AS empty,
	   dogdb_license_error(' ') AS blank, dogdb_license_error('{}') AS empty_object;
SELECT pg_temp.try($$SELECT dogdb_license_error('{"license_id":' || repeat('[', 3000) || repeat(']', 3000) || '}')$$) AS deep;
SELECT pg_temp.try($$SELECT dogdb_license_error('{"a":[' || repeat('[],', 13000000) || '[]]}')$$) AS nested_arrays_39mb;
SELECT pg_temp.try($$SELECT dogdb_license_id('{"a":[' || repeat('[1,{"b":2}],', 3000000) || '[]],"license_id":"i","role":"r","status":"s"}')$$) AS objects_39mb;
SELECT pg_temp.try($$SELECT length(dogdb_license_id('{"role":"r","status":"s","license_id":"' || repeat('\u00e9', 2000000) || '"}'))$$) AS escaped_12mb_value;
-- the parser's memory is returned after each parse, even a failed one
SELECT total_bytes < 1024 * 1024 AS parser_memory_released
  FROM pg_backend_memory_contexts WHERE name = 'dogdb license parser';
CREATE TABLE pg_temp.big_license AS SELECT '{"a":[' || repeat('[],', 2000000) || '[]]}' AS b;
SET statement_timeout = '20ms';
SELECT dogdb_license_error(b) FROM pg_temp.big_license;
RESET statement_timeout;
SELECT dogdb_license_error(b) FROM pg_temp.big_license;
SELECT * FROM dogdb_parse_license((SELECT b FROM pg_temp.big_license));

-- the server is alive
SELECT 1 AS alive;
