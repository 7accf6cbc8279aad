-- Invoices: the billing rules, exact to the cent (README "Billing")
TRUNCATE dogdb.accounts RESTART IDENTITY CASCADE;
TRUNCATE dogdb.invoice_number_counters;
-- days are UTC days whatever the session's time zone
SET TimeZone = 'Pacific/Auckland';

INSERT INTO dogdb.accounts (account_id, email, created_at)
SELECT i, 'a' || i || '@x.example', '2019-01-01Z' FROM generate_series(1, 12) i;
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to) VALUES
	-- 1: the README example: medium, then enterprise from 2021-03-16 10:00 UTC
	(1, 2, '2021-01-01 00:00Z', '2021-03-16 10:00Z'), (1, 3, '2021-03-16 10:00Z', NULL),
	-- 2: starts mid-month, 23:30 UTC still bills that whole day
	(2, 2, '2021-03-20 23:30Z', NULL),
	-- 3: ends mid-month: the day of valid_to is not billed
	(3, 3, '2021-01-01Z', '2021-03-11 00:00Z'),
	-- 4: several changes in one month: free, medium, enterprise, medium
	(4, 1, '2021-01-01Z', '2021-03-05 08:00Z'), (4, 2, '2021-03-05 08:00Z', '2021-03-10 12:00Z'),
	(4, 3, '2021-03-10 12:00Z', '2021-03-20Z'), (4, 2, '2021-03-20Z', '2021-04-01Z'),
	-- 5: free all month: total 0, no invoice
	(5, 1, '2021-01-01Z', NULL),
	-- 6: two back-to-back medium subscriptions make one line
	(6, 2, '2021-03-01Z', '2021-03-10 09:00Z'), (6, 2, '2021-03-10 09:00Z', NULL),
	-- 7: a subscription inside one day covers no day; the next one starts that day
	(7, 3, '2021-03-31 01:00Z', '2021-03-31 02:00Z'), (7, 2, '2021-03-31 02:00Z', NULL),
	-- 8: midnight in Auckland is still the previous day in UTC
	(8, 2, '2021-03-01 00:00+13', NULL),
	-- 9: no subscription in March at all
	(9, 3, '2021-01-01Z', '2021-03-01 00:00Z'),
	-- 10: whole month enterprise, for the month-length table below
	(10, 3, '2019-01-01Z', NULL),
	-- 11: a gap inside the month
	(11, 2, '2021-03-01Z', '2021-03-05Z'), (11, 2, '2021-03-25Z', NULL),
	-- 12: no subscription at all
	(12, 1, '2030-01-01Z', NULL);

-- March 2021 (31 days)
SELECT * FROM dogdb_preview_invoice_lines('2021-03-01') ORDER BY account_id, line_start;

-- month lengths 28, 29 (leap year), 30 and 31 days: 15 days
-- (account 3) and the whole month of enterprise (account 10)
UPDATE dogdb.subscriptions SET valid_to = '2021-02-16Z' WHERE account_id = 3;
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to) VALUES
	(3, 2, '2024-02-01Z', '2024-02-16Z'), (3, 2, '2021-04-01Z', '2021-04-16Z'), (3, 2, '2021-05-01Z', '2021-05-16Z');
SELECT m::date AS month, (m + interval '1 month')::date - m::date AS days_in_month,
	   (SELECT string_agg(format('%s:%s %s/%s=%s', account_id, plan, days, unit_price_cents, amount_cents), ' '
						  ORDER BY account_id)
		  FROM dogdb_preview_invoice_lines(m::date) WHERE account_id IN (3, 10)) AS lines
  FROM (VALUES (date '2021-02-01'), ('2024-02-01'), ('2021-04-01'), ('2021-05-01')) v(m);

-- a price change mid-month (from 2021-03-10 enterprise costs 60000) splits
-- the line; halves round away from zero (1 cent for 15 of 30 days)
INSERT INTO dogdb.plan_prices VALUES (3, 60000, '2021-03-10');
INSERT INTO dogdb.pricing_plans VALUES (4, 'metered');
INSERT INTO dogdb.plan_prices VALUES (4, 1, '2019-01-01');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to) VALUES
	(12, 4, '2021-04-01Z', '2021-04-16Z');
SELECT * FROM dogdb_preview_invoice_lines('2021-03-01') WHERE account_id IN (1, 4, 10) ORDER BY account_id, line_start;
SELECT * FROM dogdb_preview_invoice_lines('2021-04-01') WHERE account_id = 12;

-- generate: the invoices, their lines, numbers in order of issue
SELECT * FROM dogdb_generate_invoices('2021-03-01') ORDER BY invoice_id;
SELECT i.invoice_number, l.line_no, p.name AS plan, l.line_start, l.line_end, l.days,
	   l.unit_price_cents, l.amount_cents
  FROM dogdb.invoices i JOIN dogdb.invoice_lines l USING (invoice_id)
  JOIN dogdb.pricing_plans p USING (plan_id)
 ORDER BY i.invoice_id, l.line_no;
-- each total is the sum of its lines, and what the preview said
SELECT count(*) AS invoices,
	   count(*) FILTER (WHERE total_cents = (SELECT sum(amount_cents) FROM dogdb.invoice_lines l
											  WHERE l.invoice_id = i.invoice_id)) AS totals_match_lines,
	   sum(total_cents) = (SELECT sum(amount_cents) FROM dogdb_preview_invoice_lines('2021-03-01'))
		   AS matches_preview
  FROM dogdb.invoices i;

-- re-running creates nothing and changes nothing
CREATE TEMP TABLE issued AS SELECT * FROM dogdb.invoices;
SELECT * FROM dogdb_generate_invoices('2021-03-01');
SELECT count(*) AS changed FROM (SELECT * FROM dogdb.invoices EXCEPT SELECT * FROM issued) c;
-- a subscription added later for the month is billed by the next run;
-- issued invoices stay as they were
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from) VALUES (9, 2, '2021-03-31Z');
UPDATE dogdb.subscriptions SET plan_id = 3 WHERE account_id = 2;
SELECT * FROM dogdb_generate_invoices('2021-03-01');
SELECT count(*) AS changed FROM (SELECT * FROM issued EXCEPT SELECT * FROM dogdb.invoices) c;
-- the next month continues the numbers; another year starts again at 1
SELECT invoice_number, account_id, total_cents FROM dogdb_generate_invoices('2021-04-01') ORDER BY invoice_id;
SELECT invoice_number, account_id, total_cents FROM dogdb_generate_invoices('2024-02-01') ORDER BY invoice_id;
SELECT * FROM dogdb.invoice_number_counters ORDER BY year;

-- bad input: an error with a hint (SQLSTATE 22023: test/pgtap/invoice.sql)
SELECT * FROM dogdb_generate_invoices(NULL);
SELECT * FROM dogdb_generate_invoices('2021-03-15');
SELECT * FROM dogdb_preview_invoice_lines('infinity');
-- both functions take the same months, 0001-01 to 9999-12 (an invoice number
-- has a four-digit year); generate used to fail on a CHECK (23514) instead
SELECT * FROM dogdb_generate_invoices('0001-12-01 BC');
SELECT * FROM dogdb_preview_invoice_lines('0001-12-01 BC');
SELECT * FROM dogdb_generate_invoices('10000-01-01');
SELECT * FROM dogdb_preview_invoice_lines('10000-01-01');
-- the first and the last month are valid
SELECT count(*) AS lines FROM dogdb_preview_invoice_lines('0001-01-01');
BEGIN;
SELECT invoice_number, account_id, total_cents FROM dogdb_generate_invoices('9999-12-01') ORDER BY invoice_id LIMIT 2;
ROLLBACK;
-- a covered day without a price in force names the account and the day
INSERT INTO dogdb.pricing_plans VALUES (5, 'startup');
INSERT INTO dogdb.plan_prices VALUES (5, 9900, '2021-06-10');
INSERT INTO dogdb.subscriptions (account_id, plan_id, valid_from, valid_to) VALUES (12, 5, '2021-06-01Z', '2021-07-01Z');
SELECT * FROM dogdb_preview_invoice_lines('2021-06-01');
SELECT * FROM dogdb_generate_invoices('2021-06-01');
SELECT count(*) AS june_invoices FROM dogdb.invoices WHERE period_start = '2021-06-01';
-- amounts that do not fit bigint are an error, not a wrap-around
UPDATE dogdb.plan_prices SET effective_from = '2021-06-01' WHERE plan_id = 5;
UPDATE dogdb.plan_prices SET monthly_price_cents = 9223372036854775807 WHERE plan_id = 5;
SELECT * FROM dogdb_preview_invoice_lines('2021-06-01');

-- the extension's tables take no user triggers: refused, not skipped
CREATE FUNCTION pg_temp.noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
CREATE TRIGGER audit AFTER INSERT ON dogdb.invoice_lines FOR EACH ROW EXECUTE FUNCTION pg_temp.noop();
SELECT * FROM dogdb_generate_invoices('2021-05-01');
DROP TRIGGER audit ON dogdb.invoice_lines;

-- nothing of the caller's schemas runs in the queries of either function:
-- with public first in search_path, operators and an aggregate that shadow
-- the catalog's ones these queries use, and say when they run, are not called
BEGIN;
DO $$
DECLARE
	op record;
BEGIN
	FOR op IN SELECT * FROM (VALUES ('<', 'lt', 'timestamptz'), ('>', 'gt', 'timestamptz'),
									('=', 'eq', 'bigint'), ('=', 'eq', 'date'), ('=', 'eq', 'integer'),
									('=', 'eq', 'smallint')) v(name, fn, type)
	LOOP
		EXECUTE format($f$CREATE FUNCTION public.trap_%3$s(%2$s, %2$s) RETURNS boolean LANGUAGE plpgsql
						  AS 'BEGIN RAISE NOTICE ''public.%1$s(%2$s, %2$s) called''; RETURN $1 OPERATOR(pg_catalog.%1$s) $2; END'$f$,
					   op.name, op.type, op.fn);
		EXECUTE format('CREATE OPERATOR public.%1$s (LEFTARG = %2$s, RIGHTARG = %2$s, FUNCTION = public.trap_%3$s)',
					   op.name, op.type, op.fn);
	END LOOP;
END
$$;
CREATE FUNCTION public.trap_count(bigint) RETURNS bigint LANGUAGE plpgsql
	AS $$BEGIN RAISE NOTICE 'public.count(*) called'; RETURN $1 + 1; END$$;
CREATE AGGREGATE public.count(*) (SFUNC = public.trap_count, STYPE = bigint, INITCOND = '0');
SET LOCAL search_path = public, pg_catalog;
-- the traps work: an ordinary query calls them
SELECT now() < now() AS lt, count(*) FROM (VALUES (1)) v;
-- the invoice functions do not
SELECT pg_catalog.count(*) AS lines FROM dogdb_preview_invoice_lines('2021-03-01');
SELECT pg_catalog.count(*) AS invoices FROM dogdb_generate_invoices('2021-05-01');
-- and the caller's search_path is back once they return
SHOW search_path;
ROLLBACK;
RESET TimeZone;
