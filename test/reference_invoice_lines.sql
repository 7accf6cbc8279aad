-- The billing rules in plain SQL, independent of the C engine: the tests
-- compare dogdb_preview_invoice_lines() with it on random data.  Same
-- columns, plan as plan_id.  (Merges back-to-back runs of one plan and
-- price; a day without a price is silently dropped here, an error in C.)
CREATE FUNCTION pg_temp.reference_invoice_lines(m date)
	RETURNS TABLE (account_id bigint, plan_id smallint, line_start date, line_end date,
				   days integer, unit_price_cents bigint, amount_cents bigint)
	LANGUAGE sql STABLE
AS $$
WITH bounds AS (
	SELECT m AS ms, (m + interval '1 month')::date AS me
), covered AS (		-- UTC days of each subscription, clipped to the month
	SELECT s.account_id, s.plan_id,
		   greatest((s.valid_from AT TIME ZONE 'UTC')::date, b.ms) AS d0,
		   least(coalesce((s.valid_to AT TIME ZONE 'UTC')::date, b.me), b.me) AS d1
	  FROM dogdb.subscriptions s, bounds b
), prices AS (		-- each price holds [p0, p1)
	SELECT p.plan_id, p.monthly_price_cents AS price, p.effective_from AS p0,
		   coalesce(lead(p.effective_from) OVER (PARTITION BY p.plan_id ORDER BY p.effective_from),
					'infinity') AS p1
	  FROM dogdb.plan_prices p
), pieces AS (
	SELECT c.account_id, c.plan_id, p.price, greatest(c.d0, p.p0) AS d0, least(c.d1, p.p1) AS d1
	  FROM covered c JOIN prices p ON p.plan_id = c.plan_id AND p.p0 < c.d1 AND p.p1 > c.d0
	 WHERE c.d1 > c.d0
), flagged AS (		-- does a piece continue the previous one's line?
	SELECT x.*, coalesce(lag(x.d1) OVER w = x.d0 AND lag(x.plan_id) OVER w = x.plan_id
						 AND lag(x.price) OVER w = x.price, false) AS continues
	  FROM pieces x WINDOW w AS (PARTITION BY x.account_id ORDER BY x.d0)
), numbered AS (
	SELECT f.*, count(*) FILTER (WHERE NOT f.continues) OVER (PARTITION BY f.account_id ORDER BY f.d0) AS line
	  FROM flagged f
), lines AS (
	SELECT n.account_id, min(n.plan_id) AS plan_id, min(n.price) AS price, min(n.d0) AS d0, max(n.d1) AS d1
	  FROM numbered n GROUP BY n.account_id, n.line
), amounts AS (
	SELECT l.*, round(l.price * (l.d1 - l.d0)::numeric / (b.me - b.ms))::bigint AS amount,
		   sum(round(l.price * (l.d1 - l.d0)::numeric / (b.me - b.ms))) OVER (PARTITION BY l.account_id) AS total
	  FROM lines l, bounds b
)
SELECT a.account_id, a.plan_id, a.d0, a.d1 - 1, a.d1 - a.d0, a.price, a.amount
  FROM amounts a
 WHERE a.total <> 0
$$;
