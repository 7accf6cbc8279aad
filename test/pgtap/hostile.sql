-- pgTAP: a hostile-input pass over every SQL-callable function of the
-- extension (found in the catalog, so functions added later are covered
-- without editing this file).  Each function is called with NULLs,
-- infinities, extreme dates, empty and huge strings, malformed bytes and
-- extreme numbers, one argument at a time and all at once, each call in
-- its own subtransaction with a statement timeout.  Every call must return
-- or raise an error with a SQLSTATE that is not an internal error (class
-- XX) and not a timeout, and the server must still answer afterwards.
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
SELECT plan(6);

-- some data, so that functions that read tables have rows to read
CREATE TEMP TABLE demo AS SELECT * FROM dogdb_generate_demo_data(30, 3, '2021-01-01', 3);

-- hostile values of each argument type (as SQL literals), the first one of
-- each list being an ordinary value
CREATE TEMP TABLE hostile_values (typ regtype, ord int, lit text);
INSERT INTO hostile_values
SELECT t::regtype, ord, lit
  FROM (VALUES
	('date', ARRAY['date ''2021-03-01''', 'NULL::date', 'date ''infinity''', 'date ''-infinity''',
				   'date ''4714-11-24 BC''', 'date ''5874897-12-31''', 'date ''2021-03-15''', 'date ''0001-01-01''',
				   'date ''9999-12-01''', 'date ''10000-01-01''']),
	('timestamptz', ARRAY['timestamptz ''2021-03-01 12:00Z''', 'NULL::timestamptz', 'timestamptz ''infinity''',
				   'timestamptz ''-infinity''', 'timestamptz ''4714-11-24 00:00Z BC''', 'timestamptz ''294276-12-31 00:00Z''',
				   'timestamptz ''5000-01-01Z''']),
	('text', ARRAY['''all''', 'NULL::text', '''''', 'repeat(''x'', 2000000)', '''{"license_id":"a","role":"r","status":"s"}''',
				   'repeat(''['', 100000)', '''company_size''', 'E''\u201c''', '''pg_catalog''']),
	('bytea', ARRAY['''\x00000000''::bytea', 'NULL::bytea', '''''::bytea', '''\x00''::bytea', '''\x000000''::bytea',
				   '''\xffffff7fff''::bytea', '''\x00000080ff''::bytea', '''\x0000008001''::bytea',
				   'decode(repeat(''ff'', 100000), ''hex'')']),
	('integer', ARRAY['3', 'NULL::integer', '0', '-1', '2147483647', '-2147483648']),
	('bigint', ARRAY['1::bigint', 'NULL::bigint', '0::bigint', '-1::bigint', '9223372036854775807::bigint',
				   '(-9223372036854775807 - 1)::bigint']),
	('smallint', ARRAY['1::smallint', 'NULL::smallint', '0::smallint', '-32768::smallint', '32767::smallint']),
	('boolean', ARRAY['false', 'NULL::boolean', 'true']),
	('interval', ARRAY['interval ''1 day''', 'NULL::interval', 'interval ''0''', 'interval ''-1 day''',
				   'interval ''178000000 years''', 'interval ''1 microsecond''']),
	('numeric', ARRAY['1::numeric', 'NULL::numeric', '''NaN''::numeric', '-1e100::numeric']),
	('text[]', ARRAY['ARRAY[''landing'', ''signup'']', 'NULL::text[]', '''{}''::text[]', 'ARRAY[NULL]::text[]',
				   'array_fill(''x''::text, ARRAY[100000])']),
	('boolean[]', ARRAY['ARRAY[true, false]', 'NULL::boolean[]', '''{}''::boolean[]', 'ARRAY[NULL]::boolean[]',
				   'array_fill(true, ARRAY[1000])']),
	('regclass', ARRAY['''dogdb.accounts''::regclass', 'NULL::regclass', '''pg_class''::regclass']),
	('name', ARRAY['''created_at''::name', 'NULL::name', '''''::name'])
  ) v(t, lits), unnest(lits) WITH ORDINALITY AS u(lit, ord);

-- the extension's functions that SQL can call: not triggers, no internal
-- or polymorphic arguments
CREATE TEMP TABLE targets AS
SELECT p.oid::regprocedure AS fn, p.oid, p.prokind, p.proretset, p.proargtypes::regtype[] AS args
  FROM pg_depend d JOIN pg_proc p ON p.oid = d.objid
 WHERE d.classid = 'pg_proc'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dogdb_analytics')
   AND p.prorettype <> 'trigger'::regtype
   AND NOT EXISTS (SELECT FROM unnest(p.proargtypes) a(t) JOIN pg_type ty ON ty.oid = a.t
				   WHERE ty.typtype = 'p');

SELECT ok((SELECT count(*) FROM targets) >= 20,
		  format('the pass covers every SQL-callable function (%s)', (SELECT count(*) FROM targets)));

-- argument lists to try for one function: the ordinary values; each
-- argument hostile in turn; every argument at its n-th hostile value
CREATE FUNCTION pg_temp.calls(args regtype[]) RETURNS SETOF text[]
LANGUAGE sql AS $$
	WITH a AS (SELECT i, t FROM unnest(args) WITH ORDINALITY u(t, i)),
	ordinary AS (SELECT i, coalesce((SELECT lit FROM hostile_values h WHERE h.typ = a.t AND h.ord = 1),
									  format('NULL::%s', a.t)) AS lit FROM a)
	SELECT array_agg(o.lit ORDER BY o.i) FROM ordinary o
	UNION ALL
	SELECT (SELECT array_agg(CASE WHEN o.i = a.i THEN h.lit ELSE o.lit END ORDER BY o.i) FROM ordinary o)
	  FROM a JOIN hostile_values h ON h.typ = a.t AND h.ord > 1
	UNION ALL
	SELECT (SELECT array_agg(coalesce((SELECT h.lit FROM hostile_values h WHERE h.typ = a.t AND h.ord = n),
									  o.lit) ORDER BY o.i)
			  FROM ordinary o JOIN a USING (i))
	  FROM generate_series(2, 10) n
$$;

CREATE TEMP TABLE outcomes (fn regprocedure, call text, sqlstate text, message text);

DO $do$
DECLARE
	t record;
	c text[];
	q text;
	st text;
	msg text;
BEGIN
	FOR t IN SELECT * FROM targets ORDER BY fn::text LOOP
		FOR c IN SELECT DISTINCT x FROM pg_temp.calls(t.args) x LOOP
			q := CASE WHEN t.prokind = 'a'
					  THEN format('SELECT %s(%s)', t.oid::regproc, array_to_string(c, ', '))
					  WHEN t.proretset THEN format('SELECT count(*) FROM %s(%s)', t.oid::regproc, array_to_string(c, ', '))
					  ELSE format('SELECT %s(%s)', t.oid::regproc, array_to_string(c, ', ')) END;
			BEGIN
				SET LOCAL statement_timeout = '20s';
				EXECUTE q;
				st := '00000';
				msg := NULL;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
			END;
			INSERT INTO outcomes VALUES (t.fn, left(q, 300), st, left(msg, 300));
		END LOOP;
	END LOOP;
	SET LOCAL statement_timeout = 0;
END
$do$;

SELECT is((SELECT count(*) FROM outcomes WHERE sqlstate LIKE 'XX%'), 0::bigint,
		  'no call raises an internal error (class XX)')
UNION ALL
SELECT is((SELECT count(*) FROM outcomes WHERE sqlstate = '57014'), 0::bigint,
		  'no call runs into the 20 s statement timeout');
SELECT diag(format('%s: %s -> %s %s', fn, call, sqlstate, message))
  FROM outcomes WHERE sqlstate LIKE 'XX%' OR sqlstate = '57014';
-- the support functions of every aggregate with a non-internal state,
-- started from hostile states by aggregates any role can create (the
-- transition function as SFUNC with each hostile INITCOND; the combine
-- function as SFUNC over hostile states)
CREATE TEMP TABLE agg_outcomes (agg text, sqlstate text, message text);
DO $do$
DECLARE
	a record;
	v record;
	w record;
	st text;
	msg text;
	n int := 0;
BEGIN
	FOR a IN SELECT g.aggfnoid::regprocedure AS agg, g.aggtransfn, g.aggcombinefn, g.aggtranstype::regtype AS stype,
					p.proargtypes[0]::regtype AS argtype
			   FROM pg_aggregate g JOIN pg_proc p ON p.oid = g.aggfnoid
			   JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = g.aggfnoid AND d.deptype = 'e'
			  WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dogdb_analytics')
				AND g.aggtranstype <> 'internal'::regtype AND p.pronargs = 1 LOOP
		FOR v IN SELECT h.lit FROM hostile_values h WHERE h.typ = a.stype AND h.lit NOT LIKE 'NULL%' LOOP
			n := n + 1;
			BEGIN
				-- INITCOND is the text form of the state
				EXECUTE format('SELECT %s', v.lit) INTO st;
				EXECUTE format('CREATE AGGREGATE pg_temp.hostile_t%s(%s) (SFUNC = %s, STYPE = %s, INITCOND = %L)',
							   n, a.argtype, a.aggtransfn::regproc, a.stype, st);
				IF a.aggcombinefn <> 0 THEN
					EXECUTE format('CREATE AGGREGATE pg_temp.hostile_c%s(%s) (SFUNC = %s, STYPE = %s, INITCOND = %L)',
								   n, a.stype, a.aggcombinefn::regproc, a.stype, st);
				END IF;
			EXCEPTION WHEN OTHERS THEN
				GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
				INSERT INTO agg_outcomes VALUES (a.agg::text || ' create', st, msg);
				CONTINUE;
			END;
			FOR w IN SELECT h.lit FROM hostile_values h WHERE h.typ = a.argtype LOOP
				BEGIN
					EXECUTE format('SELECT pg_temp.hostile_t%s(x) FROM (VALUES (%s), (%s)) v(x)', n, w.lit, w.lit);
					st := '00000'; msg := NULL;
				EXCEPTION WHEN OTHERS THEN
					GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
				END;
				INSERT INTO agg_outcomes VALUES (format('%s from %s over %s', a.aggtransfn::regproc, v.lit, w.lit), st, msg);
			END LOOP;
			IF a.aggcombinefn <> 0 THEN
				FOR w IN SELECT h.lit FROM hostile_values h WHERE h.typ = a.stype LOOP
					BEGIN
						EXECUTE format('SELECT pg_temp.hostile_c%s(x) FROM (VALUES (%s), (%s)) v(x)', n, w.lit, w.lit);
						st := '00000'; msg := NULL;
					EXCEPTION WHEN OTHERS THEN
						GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
					END;
					INSERT INTO agg_outcomes VALUES (format('%s from %s over %s', a.aggcombinefn::regproc, v.lit, w.lit), st, msg);
				END LOOP;
			END IF;
		END LOOP;
	END LOOP;
END
$do$;
SELECT ok((SELECT count(*) FROM agg_outcomes) > 0, format('aggregate support functions started from hostile states: %s calls',
		  (SELECT count(*) FROM agg_outcomes)));
SELECT is((SELECT count(*) FROM agg_outcomes WHERE sqlstate LIKE 'XX%'), 0::bigint,
		  'no hostile state makes an aggregate support function fail internally');
SELECT diag(format('%s -> %s %s', agg, sqlstate, message)) FROM agg_outcomes WHERE sqlstate LIKE 'XX%';

SELECT is((SELECT 1), 1, format('the server is alive after %s calls', (SELECT count(*) FROM outcomes)));

SELECT * FROM finish();
ROLLBACK;
