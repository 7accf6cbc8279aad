-- pgTAP: installing the first release and updating through every version
-- yields exactly the objects of a fresh install (definitions, columns,
-- constraints, indexes, comments, privileges, pg_dump configuration), and
-- keeps the rows it had.
\ir setup.psql
SELECT plan(5);

-- every object of the extension, with what defines it
CREATE FUNCTION pg_temp.extension_objects() RETURNS TABLE (object text, definition text)
LANGUAGE sql AS $$
SELECT pg_describe_object(d.classid, d.objid, 0),
	   CASE d.classid
	   WHEN 'pg_proc'::regclass THEN
		   concat_ws(E'\n',
			   CASE WHEN (SELECT prokind FROM pg_proc WHERE oid = d.objid) = 'a'
					THEN (SELECT format('%s %s %s %s %s', a.aggtransfn, a.aggcombinefn, a.aggfinalfn,
										a.aggtranstype::regtype, p.proparallel)
							FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid WHERE a.aggfnoid = d.objid)
					ELSE pg_get_functiondef(d.objid) END,
			   obj_description(d.objid, 'pg_proc'), (SELECT proacl::text FROM pg_proc WHERE oid = d.objid))
	   WHEN 'pg_class'::regclass THEN
		   concat_ws(E'\n',
			   (SELECT relkind::text || ' ' || coalesce(relacl::text, '') FROM pg_class WHERE oid = d.objid),
			   obj_description(d.objid, 'pg_class'),
			   (SELECT string_agg(format('%s %s %s %s %s %s', a.attname, format_type(a.atttypid, a.atttypmod),
										 a.attnotnull, a.attidentity, pg_get_expr(ad.adbin, ad.adrelid),
										 col_description(a.attrelid, a.attnum)), E'\n' ORDER BY a.attnum)
				  FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
				 WHERE a.attrelid = d.objid AND a.attnum > 0 AND NOT a.attisdropped),
			   (SELECT string_agg(c.conname || ' ' || pg_get_constraintdef(c.oid), E'\n' ORDER BY c.conname)
				  FROM pg_constraint c WHERE c.conrelid = d.objid),
			   (SELECT string_agg(pg_get_indexdef(i.indexrelid), E'\n' ORDER BY pg_get_indexdef(i.indexrelid))
				  FROM pg_index i WHERE i.indrelid = d.objid),
			   (SELECT string_agg(pg_get_triggerdef(t.oid), E'\n' ORDER BY t.tgname) FROM pg_trigger t
				 WHERE t.tgrelid = d.objid AND NOT t.tgisinternal),
			   (SELECT pg_get_viewdef(d.objid) WHERE (SELECT relkind FROM pg_class WHERE oid = d.objid) IN ('v', 'm')),
			   (SELECT c FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS u(o, c)
				 WHERE e.extname = 'dogdb_analytics' AND u.o = d.objid))
	   WHEN 'pg_namespace'::regclass THEN obj_description(d.objid, 'pg_namespace')
	   ELSE ''
	   END
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'dogdb_analytics')
$$;

CREATE EXTENSION dogdb_analytics VERSION '1.0' CASCADE;
INSERT INTO dogdb.accounts (account_id, email, created_at) VALUES (1, 'a@x.example', '2021-01-01Z');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (1, 2, '2021-01-01Z');
ALTER EXTENSION dogdb_analytics UPDATE;
SELECT is((SELECT extversion FROM pg_extension WHERE extname = 'dogdb_analytics'),
		  (SELECT default_version FROM pg_available_extensions WHERE name = 'dogdb_analytics'),
		  'updated from 1.0 to the default version');
SELECT results_eq('SELECT account_id, plan_id FROM dogdb.subscriptions', $$VALUES (1::bigint, 2::smallint)$$,
				  'the update keeps the rows');
CREATE TEMP TABLE upgraded AS SELECT * FROM pg_temp.extension_objects();
CREATE TEMP TABLE upgraded_plans AS SELECT * FROM dogdb.plan_prices;

DROP EXTENSION dogdb_analytics;
CREATE EXTENSION dogdb_analytics;
CREATE TEMP TABLE fresh AS SELECT * FROM pg_temp.extension_objects();

SELECT ok((SELECT count(*) FROM fresh WHERE object IN ('function dogdb_generate_invoices(date)',
		'table dogdb.invoice_lines', 'function dogdb_import_legacy(text)', 'schema dogdb')) = 4,
		'the comparison covers objects of every version');
SELECT bag_eq('SELECT * FROM upgraded', 'SELECT * FROM fresh',
			  'the updated extension has the same objects, defined the same way, as a fresh install');
SELECT bag_eq('SELECT * FROM upgraded_plans', 'SELECT * FROM dogdb.plan_prices',
			  'and the same seeded prices');

SELECT * FROM finish();
ROLLBACK;
