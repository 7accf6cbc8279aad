-- dogdb_parse_license and the scalar accessors: exact outputs and messages
\set SHOW_CONTEXT never

-- the legacy curly-quoted form
SELECT * FROM dogdb_parse_license('{“license_id”:“d17cb11cda9ba249c22f67e4aed65d0f65f1a80c”,“role”: “analyst”,“status”: “active”}');
-- standard JSON, any key order, whitespace, extra keys of any type
SELECT * FROM dogdb_parse_license(E'{ "status" : "inactive",\n "seats": 25, "role": "admin", "license_id": "abc", "meta": {"a": [1, null]} }');
-- escapes are decoded; an ASCII quote inside a curly string is a character
SELECT * FROM dogdb_parse_license('{"license_id": "a\"b\\c\u00e9", "role": "r", "status": "s"}');
SELECT * FROM dogdb_parse_license('{“license_id”:“say "hi"”,“role”:“r”,“status”:“s”}');
-- NULL in, NULL out
SELECT dogdb_parse_license(NULL) IS NULL AS parse_null, dogdb_license_id(NULL) IS NULL AS id_null,
       dogdb_license_error(NULL) IS NULL AS error_null;

-- the accessors agree with the record form on every row
WITH blobs(b) AS (VALUES
	('{“license_id”:“x1”,“role”:“viewer”,“status”:“active”}'),
	('{"license_id":"x2","role":"admin","status":"revoked","extra":[1,2]}'),
	('{"status":"s3","license_id":"x3","role":"r3"}'))
SELECT dogdb_license_id(b) AS license_id, dogdb_license_role(b) AS role,
       dogdb_license_status(b) AS status, dogdb_license_error(b) AS error,
       (dogdb_license_id(b), dogdb_license_role(b), dogdb_license_status(b))
         = (SELECT p.license_id, p.role, p.status FROM dogdb_parse_license(b) p) AS same
  FROM blobs;

-- malformed input: what is wrong and where
SELECT * FROM dogdb_parse_license('{“license_id”:“abc,“role”: “b”,“status”: “c”}');
SELECT dogdb_license_id('{"license_id":"i" "role":"r"}');
SELECT dogdb_license_role('{"license_id":"i","role":"r"}');
SELECT dogdb_license_status('{"license_id":"i","role":"r","status":42}');
SELECT dogdb_license_id('["license_id"]');
SELECT dogdb_license_id('');
SELECT dogdb_license_id('{"license_id":"i","role":"r","status":"s","role":"again"}');
SELECT dogdb_license_id('{"license_id":"\u0000","role":"r","status":"s"}');
-- deep nesting and large input: an error or a result, never a crash
SELECT dogdb_license_error('{"license_id":' || repeat('[', 100000) || repeat(']', 100000) || '}');
SELECT length(dogdb_license_id('{"role":"r","status":"s","license_id":"' || repeat('x', 10000000) || '"}'));
SELECT length(dogdb_license_id('{"role":"r","status":"s","license_id":"' || repeat('\u00e9', 1000000) || '"}'));

-- dogdb_license_error explains without raising
SELECT b, dogdb_license_error(b)
  FROM (VALUES ('{"license_id":"i","role":"r","status":"s"}'),
               ('{"license_id":"i","role":"r"}'),
               ('{“license_id”:“i”,“role”:“r”,“status”:“s”} trailing'),
               ('not json')) AS v(b);

-- declared properties
SELECT p.oid::regprocedure AS function, p.provolatile, p.proisstrict, p.proparallel
  FROM pg_proc p
 WHERE p.proname LIKE 'dogdb\_%license%'
 ORDER BY 1::text;
