-- pgTAP: invoice generation (errors and SQLSTATEs, the C engine against an
-- independent plain-SQL computation on random data, idempotence, gapless
-- numbers, function properties)
\ir setup.psql
CREATE EXTENSION dogdb_analytics CASCADE;
\ir ../reference_invoice_lines.sql
SELECT plan(42);

-- bad input: 22023, one message for every month argument (DogdbMonthArg)
SELECT throws_ok('SELECT * FROM dogdb_generate_invoices(NULL)', '22023',
	'billing_month must be the first day of a month from 0001-01-01 to 9999-12-01, not NULL', 'NULL month: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_generate_invoices('2021-03-02')$$, '22023',
	'billing_month must be the first day of a month from 0001-01-01 to 9999-12-01, not 2021-03-02',
	'not a first of month: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_preview_invoice_lines('-infinity')$$, '22023',
	'billing_month must be the first day of a month from 0001-01-01 to 9999-12-01, not -infinity',
	'infinite month: 22023');
SELECT throws_ok($$SELECT * FROM dogdb_preview_invoice_lines(NULL)$$, '22023', NULL,
	'preview: NULL month is an error too, not an empty result');
-- years outside 1..9999: both functions refuse them alike (generate used to
-- fail on the counter's CHECK with 23514, preview accepted them)
SELECT throws_ok(format('SELECT * FROM %s(%L)', f, m), '22023', NULL,
				 format('%s(%s): 22023', f, m))
  FROM unnest(ARRAY['dogdb_generate_invoices', 'dogdb_preview_invoice_lines']) f,
	   unnest(ARRAY[date '0001-12-01 BC', '10000-01-01', '0001-01-01 BC']) m;
SELECT lives_ok($$SELECT * FROM dogdb_preview_invoice_lines('0001-01-01')$$, 'the first month 0001-01 is valid');
SELECT lives_ok($$SELECT * FROM dogdb_preview_invoice_lines('9999-12-01')$$, 'the last month 9999-12 is valid');

-- random data: 3000 accounts over four months, random plan changes at random
-- times (some within one day, some back-to-back on the same plan), random
-- price changes of every plan
SELECT setseed(0.42);
INSERT INTO dogdb.pricing_plans VALUES (4, 'startup');
INSERT INTO dogdb.plan_prices VALUES (4, 1999, '2019-01-01');
INSERT INTO dogdb.plan_prices
SELECT DISTINCT ON (p, d) p, (random() * 90000)::bigint, d
  FROM (SELECT 1 + (random() * 3)::int AS p,
			   date '2021-01-01' + (random() * 120)::int AS d FROM generate_series(1, 12)) x;
INSERT INTO dogdb.accounts (account_id, email, created_at)
SELECT i, NULL, '2020-12-01Z' FROM generate_series(1, 3000) i;
-- each account: a chain of periods starting at random times
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to)
SELECT account_id, plan_id, t0, CASE WHEN last AND random() < 0.5 THEN NULL ELSE t1 END
  FROM (SELECT a AS account_id, 1 + (random() * 3)::int AS plan_id, t AS t0,
			   lead(t) OVER (PARTITION BY a ORDER BY t) AS t1,
			   row_number() OVER (PARTITION BY a ORDER BY t DESC) = 1 AS last
		  FROM (SELECT a, timestamptz '2020-12-15Z' + random() * interval '130 days' AS t
				  FROM generate_series(1, 3000) a, generate_series(1, 1 + (random() * 6)::int) k) times) chain
 WHERE t1 IS NOT NULL OR last;
-- gaps: drop some periods
DELETE FROM dogdb.subscriptions WHERE random() < 0.1;

SELECT ok((SELECT count(DISTINCT date_trunc('day', valid_from)) FROM dogdb.subscriptions) > 100,
	'random data changes plans on more than 100 different days');
SELECT bag_eq(format($$SELECT account_id, p.plan_id, line_start, line_end, days, unit_price_cents, amount_cents
						 FROM dogdb_preview_invoice_lines(%L) l JOIN dogdb.pricing_plans p ON p.name = l.plan$$, m),
			  format('SELECT * FROM pg_temp.reference_invoice_lines(%L)', m),
			  format('preview of %s equals the plain-SQL computation', m))
  FROM unnest(ARRAY[date '2021-01-01', '2021-02-01', '2021-03-01', '2021-04-01']) m;

-- the lines of the random data do cover the interesting cases
SELECT ok((SELECT count(*) FROM (SELECT account_id FROM dogdb_preview_invoice_lines('2021-02-01')
								 GROUP BY account_id HAVING count(*) >= 3) x) > 100,
	'many accounts have three or more lines in a month');

-- generate writes exactly the preview; a second run writes nothing
SET TimeZone = 'America/St_Johns';	-- UTC-3:30: does not move any day
SELECT is((SELECT count(*) FROM dogdb_generate_invoices('2021-02-01')),
		  (SELECT count(DISTINCT account_id) FROM dogdb_preview_invoice_lines('2021-02-01')),
		  'one invoice per account with a non-zero total');
SELECT bag_eq($$SELECT i.account_id, l.plan_id, l.line_start, l.line_end, l.days, l.unit_price_cents, l.amount_cents
				  FROM dogdb.invoices i JOIN dogdb.invoice_lines l USING (invoice_id)$$,
			  $$SELECT * FROM pg_temp.reference_invoice_lines('2021-02-01')$$,
			  'the written lines are the plain-SQL lines');
SELECT is((SELECT count(*) FROM dogdb.invoices i
			WHERE total_cents <> (SELECT sum(amount_cents) FROM dogdb.invoice_lines l WHERE l.invoice_id = i.invoice_id)),
		  0::bigint, 'every total is the sum of its lines');
SELECT is((SELECT count(*) FROM dogdb.invoice_lines l
			WHERE line_no <> (SELECT count(*) FROM dogdb.invoice_lines k
							   WHERE k.invoice_id = l.invoice_id AND k.line_start <= l.line_start)),
		  0::bigint, 'lines are numbered 1..n in date order');
SELECT is_empty($$SELECT * FROM dogdb_generate_invoices('2021-02-01')$$, 'a second run creates nothing');
RESET TimeZone;

-- gapless numbers: a run that rolls back leaves no hole
SAVEPOINT before_march;
SELECT ok((SELECT count(*) FROM dogdb_generate_invoices('2021-03-01')) > 0, 'March issued');
ROLLBACK TO SAVEPOINT before_march;
SELECT is((SELECT count(*) FROM dogdb_generate_invoices('2021-03-01')),
		  (SELECT count(DISTINCT account_id) FROM dogdb_preview_invoice_lines('2021-03-01')),
		  'March issued again after the rollback');
SELECT results_eq($$SELECT invoice_number FROM dogdb.invoices ORDER BY invoice_id$$,
				  $$SELECT format('INV-2021-%s', lpad(n::text, 6, '0'))
					  FROM generate_series(1, (SELECT count(*) FROM dogdb.invoices)::int) n$$,
				  'numbers are gapless in the order of issue');

-- privileges: generate is SECURITY DEFINER, so EXECUTE alone lets a role
-- bill, without any privilege on the tables; that role cannot change the
-- issued invoices.  The preview runs as its caller and needs SELECT.
CREATE ROLE dogdb_test_billing NOLOGIN;
CREATE ROLE dogdb_test_nobody NOLOGIN;
GRANT USAGE ON SCHEMA dogdb TO dogdb_test_billing, dogdb_test_nobody;
GRANT EXECUTE ON FUNCTION dogdb_generate_invoices(date), dogdb_preview_invoice_lines(date) TO dogdb_test_billing;
-- the outcome of a statement run as a role: 'ok' or its SQLSTATE (run as
-- the test's user, so pgTAP's own tables are never touched by the role)
CREATE FUNCTION pg_temp.run_as(role name, q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE format('SET LOCAL ROLE %I', role);
	BEGIN
		EXECUTE q;
	EXCEPTION WHEN OTHERS THEN
		RESET ROLE;
		RETURN SQLSTATE;
	END;
	RESET ROLE;
	RETURN 'ok';
END $$;
SELECT count(DISTINCT account_id) AS april_accounts FROM dogdb_preview_invoice_lines('2021-04-01') \gset
SELECT is(pg_temp.run_as('dogdb_test_billing',
						 $$CREATE TEMP TABLE april AS SELECT * FROM dogdb_generate_invoices('2021-04-01')$$),
		  'ok', 'a role with EXECUTE only can generate invoices');
SELECT is((SELECT count(*) FROM april), :april_accounts::bigint, 'and it issued the month''s invoices');
SELECT is((SELECT count(*) FROM dogdb.invoices WHERE period_start = '2021-04-01'), :april_accounts::bigint,
		  'they are written');
SELECT is(pg_temp.run_as('dogdb_test_billing', $$UPDATE dogdb.invoices SET total_cents = 0$$), '42501',
		  'that role cannot rewrite issued invoices');
SELECT is(pg_temp.run_as('dogdb_test_billing', $$DELETE FROM dogdb.invoice_lines$$), '42501',
		  'nor delete their lines');
SELECT is(pg_temp.run_as('dogdb_test_billing', $$SELECT * FROM dogdb_preview_invoice_lines('2021-04-01')$$),
		  '42501', 'the preview runs as its caller: it needs SELECT on the tables');
SELECT is(pg_temp.run_as('dogdb_test_nobody', $$SELECT * FROM dogdb_generate_invoices('2021-04-01')$$), '42501',
		  'a role without EXECUTE cannot generate');
GRANT SELECT ON dogdb.pricing_plans, dogdb.plan_prices, dogdb.subscriptions TO dogdb_test_nobody;
SELECT is(pg_temp.run_as('dogdb_test_nobody', $$SELECT * FROM dogdb_preview_invoice_lines('2021-04-01')$$), 'ok',
		  'SELECT on the tables is all the preview needs');

-- deleting an invoice deletes its lines
SELECT lives_ok($$DELETE FROM dogdb.invoices WHERE account_id = 1$$, 'invoice deletion cascades to its lines');

-- function properties
SELECT volatility_is('public', 'dogdb_preview_invoice_lines', ARRAY['date'], 'stable', 'preview is STABLE');
SELECT volatility_is('public', 'dogdb_generate_invoices', ARRAY['date'], 'volatile', 'generate is VOLATILE');
SELECT ok(NOT has_function_privilege('public', 'dogdb_generate_invoices(date)', 'EXECUTE'),
	'PUBLIC may not generate invoices');
SELECT ok(has_function_privilege('public', 'dogdb_preview_invoice_lines(date)', 'EXECUTE'),
	'PUBLIC may preview (it needs SELECT on the tables)');
SELECT is_definer('public', 'dogdb_generate_invoices', ARRAY['date'], 'generate is SECURITY DEFINER');
SELECT isnt_definer('public', 'dogdb_preview_invoice_lines', ARRAY['date'], 'preview is SECURITY INVOKER');
SELECT is((SELECT proconfig FROM pg_proc WHERE oid = 'dogdb_generate_invoices(date)'::regprocedure),
		  ARRAY['search_path=pg_catalog, pg_temp'], 'generate pins search_path, pg_temp last');

SELECT * FROM finish();
ROLLBACK;
