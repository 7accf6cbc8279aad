/* dogdb_analytics--1.2--1.3.sql: hardening and renovation (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.3'" to load this file. \quit

--
-- [encoding] the extension needs a UTF-8 database
--

--
-- [hardening] aggregates, bitmap readers, license parsing
--

--
-- [import] one legacy-import pipeline through the bulk writer
--

--
-- [billing] invoices: privileges, month range
--

--
-- [kpi] KPI engine: facts keyed by plan id, change tracking, privileges
--

--
-- [dump] pg_dump keeps every row, seeded ones included
--

--
-- [stripe] Stripe webhooks, payments ledger, MRR movements, LTV and cohorts
--
--
-- Stripe webhook events into an append-only ledger and the facts derived
-- from it (README "Stripe payments").  Money is integer cents with its
-- currency; times are timestamptz; months are UTC calendar months.
--
-- Distribution keys: every fact table has account_id in its primary key.
-- Two tables are keyed without it, on purpose: the ledger
-- dogdb.stripe_events (the unique Stripe event id is the exactly-once
-- guarantee, so the ledger is a reference table keyed by event id) and the
-- mapping dogdb.stripe_customer_accounts (a Stripe customer id decides the
-- account, so it cannot be keyed by it).

-- roles (global objects: created when missing, never dropped)
DO $do$
BEGIN
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dogdb_ingest') THEN
		CREATE ROLE dogdb_ingest NOLOGIN;
	END IF;
	IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'dogdb_reader') THEN
		CREATE ROLE dogdb_reader NOLOGIN;
	END IF;
END
$do$;

CREATE TABLE dogdb.stripe_webhook_secrets (
	secret		text PRIMARY KEY CHECK (secret <> ''),
	note		text,
	added_at	timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON dogdb.stripe_webhook_secrets FROM PUBLIC;
COMMENT ON TABLE dogdb.stripe_webhook_secrets IS 'Stripe endpoint signing secrets (whsec_...), readable and writable by superusers only; several while a secret is rolled; none = events are taken unsigned';

CREATE TABLE dogdb.stripe_events (
	event_id	text PRIMARY KEY CHECK (event_id <> ''),
	event_type	text NOT NULL,
	object_id	text,
	link_id		text,
	created		timestamptz NOT NULL,
	arrival		bigint GENERATED ALWAYS AS IDENTITY,
	received_at timestamptz NOT NULL DEFAULT now(),
	payload		text NOT NULL
);
CREATE INDEX stripe_events_link_idx ON dogdb.stripe_events (link_id);
REVOKE ALL ON dogdb.stripe_events FROM PUBLIC;
COMMENT ON TABLE dogdb.stripe_events IS 'Ledger: every accepted Stripe event, raw and once (keyed by the Stripe event id, a reference table); append-only, the facts are derived from it';
COMMENT ON COLUMN dogdb.stripe_events.link_id IS 'The customer id (the charge id for a refund event) whose mapping an event waits for';
COMMENT ON COLUMN dogdb.stripe_events.arrival IS 'Arrival order: breaks ties between events of one object with the same created second and rank';
COMMENT ON COLUMN dogdb.stripe_events.payload IS 'The raw request body, as signed';

CREATE TABLE dogdb.stripe_customer_accounts (
	customer_id text PRIMARY KEY CHECK (customer_id <> ''),
	account_id	bigint NOT NULL CHECK (account_id > 0),
	source		text NOT NULL DEFAULT 'manual' CHECK (source IN ('metadata', 'manual'))
);
CREATE INDEX stripe_customer_accounts_account_idx ON dogdb.stripe_customer_accounts (account_id);
COMMENT ON TABLE dogdb.stripe_customer_accounts IS 'Which DogDB account a Stripe customer is: from metadata.account_id of its first customer event that has one, or added by hand (source manual; run dogdb_stripe_replay() after adding)';

CREATE TABLE dogdb.stripe_customers (
	account_id	bigint NOT NULL,
	customer_id text NOT NULL,
	email		text,
	deleted		boolean NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, customer_id)
);
COMMENT ON TABLE dogdb.stripe_customers IS 'Stripe customers as of their newest event';

CREATE TABLE dogdb.stripe_subscriptions (
	account_id	bigint NOT NULL,
	subscription_id text NOT NULL,
	customer_id text NOT NULL,
	status		text NOT NULL,
	currency	text NOT NULL,
	mrr_cents	bigint NOT NULL,
	price_id	text NOT NULL,
	quantity	bigint NOT NULL,
	"interval"	text NOT NULL,
	interval_count bigint NOT NULL,
	discount_percent_off numeric,
	discount_amount_off_cents bigint,
	discount_end timestamptz,
	started_at	timestamptz,
	canceled_at timestamptz,
	ended_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, subscription_id)
);
COMMENT ON TABLE dogdb.stripe_subscriptions IS 'Stripe subscriptions as of their newest event (price, quantity and interval of the first item; MRR of all items)';
COMMENT ON COLUMN dogdb.stripe_subscriptions.mrr_cents IS 'Monthly recurring revenue in cents: items normalized to a month, less the discount; 0 unless active or past_due';

CREATE TABLE dogdb.stripe_subscription_versions (
	account_id	bigint NOT NULL,
	subscription_id text NOT NULL,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	status		text NOT NULL,
	currency	text NOT NULL,
	mrr_cents	bigint NOT NULL,
	PRIMARY KEY (account_id, subscription_id, event_id)
);
COMMENT ON TABLE dogdb.stripe_subscription_versions IS 'Every subscription event, stale ones included: the MRR history (at a time, the version with the greatest event_created, event_rank, event_arrival before it holds)';

CREATE TABLE dogdb.stripe_invoices (
	account_id	bigint NOT NULL,
	invoice_id	text NOT NULL,
	customer_id text NOT NULL,
	subscription_id text,
	status		text NOT NULL,
	currency	text NOT NULL,
	total_cents bigint NOT NULL,
	tax_cents	bigint NOT NULL,
	amount_paid_cents bigint NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, invoice_id)
);
COMMENT ON TABLE dogdb.stripe_invoices IS 'Stripe invoices as of their newest event';

CREATE TABLE dogdb.stripe_payments (
	account_id	bigint NOT NULL,
	charge_id	text NOT NULL,
	customer_id text NOT NULL,
	invoice_id	text,
	status		text NOT NULL,
	currency	text NOT NULL,
	amount_cents bigint NOT NULL,
	amount_refunded_cents bigint NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, charge_id)
);
CREATE INDEX stripe_payments_charge_idx ON dogdb.stripe_payments (charge_id);
COMMENT ON TABLE dogdb.stripe_payments IS 'Payments: Stripe charges as of their newest event (status succeeded = money received)';

CREATE TABLE dogdb.stripe_refunds (
	account_id	bigint NOT NULL,
	refund_id	text NOT NULL,
	charge_id	text NOT NULL,
	status		text NOT NULL,
	currency	text NOT NULL,
	amount_cents bigint NOT NULL,
	created_at	timestamptz,
	event_id	text NOT NULL,
	event_created timestamptz NOT NULL,
	event_rank	smallint NOT NULL,
	event_arrival bigint NOT NULL,
	PRIMARY KEY (account_id, refund_id)
);
COMMENT ON TABLE dogdb.stripe_refunds IS 'Refunds of payments as of their newest event (status succeeded = money returned)';

SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_webhook_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_events', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_customer_accounts', '');
-- the facts are registered too, though dogdb_stripe_replay() rebuilds them
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_customers', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_subscription_versions', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_invoices', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_payments', '');
SELECT pg_catalog.pg_extension_config_dump('dogdb.stripe_refunds', '');

-- IMMUTABLE: a function of its arguments alone (the time is an argument)
CREATE FUNCTION dogdb_stripe_verify_signature(payload text, signature_header text, secrets text[],
											  tolerance interval DEFAULT '5 minutes',
											  at timestamptz DEFAULT now())
	RETURNS boolean
	AS 'MODULE_PATHNAME', 'dogdb_stripe_verify_signature'
	LANGUAGE C IMMUTABLE CALLED ON NULL INPUT PARALLEL SAFE;
COMMENT ON FUNCTION dogdb_stripe_verify_signature(text, text, text[], interval, timestamptz) IS 'True if the Stripe-Signature header is well formed, its t within tolerance of at (past or future), and one of its v1 signatures the HMAC-SHA256 of "t.payload" with one of the secrets';

-- VOLATILE: writes the ledger and the facts; SECURITY DEFINER: reads the secrets
CREATE FUNCTION dogdb_ingest_stripe_event(payload text, signature_header text,
										  OUT event_id text, OUT event_type text, OUT outcome text)
	RETURNS record
	AS 'MODULE_PATHNAME', 'dogdb_ingest_stripe_event'
	LANGUAGE C VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
COMMENT ON FUNCTION dogdb_ingest_stripe_event(text, text) IS 'Take one Stripe webhook delivery (raw body and Stripe-Signature header) into the ledger and the facts: applied, duplicate, stale or ignored';
REVOKE ALL ON FUNCTION dogdb_ingest_stripe_event(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dogdb_ingest_stripe_event(text, text) TO dogdb_ingest;

-- VOLATILE: rewrites the facts
CREATE FUNCTION dogdb_stripe_replay(OUT events bigint, OUT applied bigint, OUT stale bigint, OUT ignored bigint)
	RETURNS record
	AS 'MODULE_PATHNAME', 'dogdb_stripe_replay'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION dogdb_stripe_replay() IS 'Rebuild every Stripe fact from the ledger, in arrival order (after a manual customer mapping, or to check the facts)';
REVOKE ALL ON FUNCTION dogdb_stripe_replay() FROM PUBLIC;

-- MRR and its movements, LTV, cohorts (README "Stripe payments")
-- STABLE: read the subscription history.  PARALLEL RESTRICTED: they pin
-- search_path for their queries, which a parallel worker may not do.
CREATE FUNCTION dogdb_stripe_account_mrr(from_month date, to_month date)
	RETURNS TABLE (account_id bigint, currency text, month date, mrr_cents bigint, active boolean)
	AS 'MODULE_PATHNAME', 'dogdb_stripe_account_mrr'
	LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dogdb_stripe_account_mrr(date, date) IS 'Per account, currency and month: MRR in cents at the end of the month and whether it is a customer then (a subscription active or past_due); rows only where either holds';

CREATE FUNCTION dogdb.stripe_mrr_movement_totals(from_month date, to_month date,
	OUT month date, OUT currency text, OUT mrr_start_cents bigint, OUT new_cents bigint,
	OUT expansion_cents bigint, OUT contraction_cents bigint, OUT churned_cents bigint,
	OUT reactivation_cents bigint, OUT mrr_end_cents bigint, OUT customers_start bigint,
	OUT new_customers bigint, OUT reactivated_customers bigint, OUT churned_customers bigint,
	OUT customers_end bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME', 'dogdb_stripe_mrr_movements'
	LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dogdb.stripe_mrr_movement_totals(date, date) IS 'Internal to dogdb_mrr_movements(): the movement totals per month and currency';

CREATE FUNCTION dogdb_mrr_movements(from_month date, to_month date)
	RETURNS TABLE (month date, currency text, mrr_start_cents bigint, new_cents bigint,
				   expansion_cents bigint, contraction_cents bigint, churned_cents bigint,
				   reactivation_cents bigint, net_cents bigint, mrr_end_cents bigint,
				   customers_start bigint, new_customers bigint, reactivated_customers bigint,
				   churned_customers bigint, customers_end bigint,
				   gross_mrr_churn_rate numeric, net_mrr_churn_rate numeric, customer_churn_rate numeric)
	LANGUAGE sql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT t.month, t.currency, t.mrr_start_cents, t.new_cents, t.expansion_cents, t.contraction_cents,
		   t.churned_cents, t.reactivation_cents,
		   t.new_cents + t.expansion_cents + t.contraction_cents + t.churned_cents + t.reactivation_cents,
		   t.mrr_end_cents, t.customers_start, t.new_customers, t.reactivated_customers,
		   t.churned_customers, t.customers_end,
		   round(-(t.churned_cents + t.contraction_cents)::numeric / nullif(t.mrr_start_cents, 0), 4),
		   round(-(t.churned_cents + t.contraction_cents + t.expansion_cents + t.reactivation_cents)::numeric
				 / nullif(t.mrr_start_cents, 0), 4),
		   round(t.churned_customers::numeric / nullif(t.customers_start, 0), 4)
	  FROM dogdb.stripe_mrr_movement_totals(from_month, to_month) t
	 ORDER BY t.month, t.currency;
END;
COMMENT ON FUNCTION dogdb_mrr_movements(date, date) IS 'Per month and currency: MRR at the start, its movements (new, expansion, contraction, churned, reactivation; signed cents), net, MRR at the end, customer counts, and gross/net MRR churn and customer churn rates (ChartMogul''s definitions)';

-- STABLE: reads the facts
CREATE FUNCTION dogdb_customer_ltv(as_of date DEFAULT current_date)
	RETURNS TABLE (account_id bigint, currency text, first_payment_at timestamptz, months_active integer,
				   realized_ltv_cents bigint, mrr_cents bigint, arpa_cents numeric,
				   customer_churn_rate numeric, predicted_ltv_cents bigint, predicted_ltv_note text)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	this_month date;
	last_month date;
	first_month date;
BEGIN
	IF as_of IS NULL OR NOT isfinite(as_of) OR as_of < '0001-07-01' OR as_of > '9999-12-31' THEN
		RAISE EXCEPTION 'as_of must be a date from 0001-07-01 to 9999-12-31, not %', coalesce(as_of::text, 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'For a timestamptz x use (x AT TIME ZONE ''UTC'')::date.';
	END IF;
	this_month := date_trunc('month', as_of)::date;
	last_month := (this_month - interval '1 month')::date;		-- the last complete month
	first_month := (this_month - interval '6 months')::date;
	RETURN QUERY
	WITH am AS (
		SELECT a.account_id, a.currency, count(*) FILTER (WHERE a.active)::integer AS months_active,
			   sum(a.mrr_cents) FILTER (WHERE a.month = last_month)::bigint AS mrr_cents
		  FROM @extschema@.dogdb_stripe_account_mrr('0001-01-01', last_month) a
		 GROUP BY 1, 2
	), paid AS (
		SELECT p.account_id, p.currency, min(p.created_at) AS first_payment_at, sum(p.amount_cents) AS cents
		  FROM dogdb.stripe_payments p
		 WHERE p.status = 'succeeded' AND p.created_at < ((as_of + 1)::timestamp AT TIME ZONE 'UTC')
		 GROUP BY 1, 2
	), refunded AS (
		SELECT r.account_id, r.currency, sum(r.amount_cents) AS cents
		  FROM dogdb.stripe_refunds r
		 WHERE r.status = 'succeeded' AND r.created_at < ((as_of + 1)::timestamp AT TIME ZONE 'UTC')
		 GROUP BY 1, 2
	), rates AS (		-- per currency: ARPA at the last complete month, trailing six-month churn
		SELECT m.currency,
			   round(sum(m.mrr_end_cents) FILTER (WHERE m.month = last_month)::numeric
					 / nullif(sum(m.customers_end) FILTER (WHERE m.month = last_month), 0), 2) AS arpa,
			   avg(m.churned_customers::numeric / nullif(m.customers_start, 0)) AS churn
		  FROM @extschema@.dogdb_mrr_movements(first_month, last_month) m
		 GROUP BY 1
	), accounts AS (
		SELECT x.account_id, x.currency FROM am x
		UNION SELECT x.account_id, x.currency FROM paid x
		UNION SELECT x.account_id, x.currency FROM refunded x
	)
	SELECT a.account_id, a.currency, p.first_payment_at, coalesce(am.months_active, 0),
		   (coalesce(p.cents, 0) - coalesce(r.cents, 0))::bigint, coalesce(am.mrr_cents, 0),
		   rt.arpa, round(rt.churn, 4),
		   CASE WHEN rt.churn > 0 THEN round(rt.arpa / rt.churn)::bigint END,
		   CASE WHEN rt.arpa IS NULL THEN 'no customers in this currency at the end of the last complete month'
				WHEN rt.churn IS NULL THEN 'no customers in this currency at the start of the six months before as_of''s month'
				WHEN rt.churn = 0 THEN 'no customer churned in the six months before as_of''s month: lifetime unbounded'
		   END
	  FROM accounts a
	  LEFT JOIN am ON am.account_id = a.account_id AND am.currency = a.currency
	  LEFT JOIN paid p ON p.account_id = a.account_id AND p.currency = a.currency
	  LEFT JOIN refunded r ON r.account_id = a.account_id AND r.currency = a.currency
	  LEFT JOIN rates rt ON rt.currency = a.currency
	 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_customer_ltv(date) IS 'Per account and currency: realized LTV (succeeded payments less succeeded refunds up to as_of), months as a customer, and predicted LTV = ARPA / trailing six-month average customer churn rate (complete months before as_of''s month; NULL with the reason when that churn is 0)';

-- the month arguments of dogdb_cohort_retention(), as the C functions check theirs
CREATE FUNCTION dogdb.stripe_check_months(from_month date, to_month date) RETURNS void
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	arg record;
BEGIN
	FOR arg IN SELECT * FROM (VALUES ('from_month', from_month), ('to_month', to_month)) v(name, d) LOOP
		IF arg.d IS NULL OR NOT isfinite(arg.d) OR extract(day FROM arg.d) <> 1
		   OR arg.d < '0001-01-01' OR arg.d > '9999-12-01' THEN
			RAISE EXCEPTION '% must be the first day of a month from 0001-01-01 to 9999-12-01, not %',
				arg.name, coalesce(arg.d::text, 'NULL')
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Months are UTC calendar months, such as date ''2021-03-01''; for a timestamptz x use date_trunc(''month'', x AT TIME ZONE ''UTC'')::date.';
		END IF;
	END LOOP;
	IF from_month > to_month THEN
		RAISE EXCEPTION 'from_month must be on or before to_month'
			USING ERRCODE = 'invalid_parameter_value', HINT = 'Both months are included.';
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb.stripe_check_months(date, date) IS 'Internal to dogdb_cohort_retention(): validates its months';

-- STABLE: reads the facts
CREATE FUNCTION dogdb_cohort_retention(from_month date, to_month date, basis text DEFAULT 'logo')
	RETURNS TABLE (cohort_month date, months_since integer, cohort_size bigint, retained bigint,
				   retention_rate numeric, revenue_cents bigint, currency text)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	b text := lower(basis);
BEGIN
	IF b IS NULL OR b NOT IN ('logo', 'revenue') THEN
		RAISE EXCEPTION 'basis must be ''logo'' or ''revenue'', not %', coalesce(quote_literal(basis), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = '''logo'' counts customers retained; ''revenue'' is net revenue retention (MRR against the cohort month''s).';
	END IF;
	PERFORM dogdb.stripe_check_months(from_month, to_month);
	RETURN QUERY
	WITH first_paid AS (	-- the cohort: month of the first succeeded payment, in its currency
		SELECT DISTINCT ON (p.account_id) p.account_id, p.currency,
			   date_trunc('month', p.created_at AT TIME ZONE 'UTC')::date AS cohort
		  FROM dogdb.stripe_payments p
		 WHERE p.status = 'succeeded'
		 ORDER BY p.account_id, p.created_at, p.charge_id
	), c AS (
		SELECT * FROM first_paid f WHERE f.cohort BETWEEN from_month AND to_month
	), am AS (
		SELECT a.* FROM @extschema@.dogdb_stripe_account_mrr(from_month, to_month) a
		 WHERE a.account_id IN (SELECT c.account_id FROM c)
	), grid AS (
		SELECT c.cohort, c.currency, k::integer AS k, count(*) AS size
		  FROM c, generate_series(0, (extract(year FROM age(to_month, c.cohort)) * 12
									  + extract(month FROM age(to_month, c.cohort)))::integer) k
		 GROUP BY 1, 2, 3
	), cells AS (
		SELECT g.cohort, g.currency, g.k, g.size,
			   count(am.account_id) FILTER (WHERE am.active) AS kept,
			   coalesce(sum(am.mrr_cents), 0)::bigint AS mrr
		  FROM grid g
		  LEFT JOIN c ON c.cohort = g.cohort AND c.currency = g.currency
		  LEFT JOIN am ON am.account_id = c.account_id AND am.currency = c.currency
					  AND am.month = (g.cohort + make_interval(months => g.k))::date
		 GROUP BY 1, 2, 3, 4
	)
	SELECT x.cohort, x.k, x.size, x.kept,
		   CASE b WHEN 'logo' THEN round(x.kept::numeric / x.size, 4)
				  ELSE round(x.mrr::numeric / nullif(first_value(x.mrr) OVER w, 0), 4) END,
		   x.mrr, x.currency
	  FROM cells x
	WINDOW w AS (PARTITION BY x.cohort, x.currency ORDER BY x.k)
	 ORDER BY 1, 7, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_cohort_retention(date, date, text) IS 'Per cohort (month of the first succeeded payment, and its currency) and months since: cohort size, customers retained at the month end, retention rate (logo: retained / size; revenue: MRR / the cohort month''s MRR, may exceed 1), MRR in cents';

-- who may read (dogdb_ingest gets nothing here)
REVOKE ALL ON FUNCTION dogdb_stripe_account_mrr(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb.stripe_mrr_movement_totals(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb_mrr_movements(date, date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb_customer_ltv(date) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb_cohort_retention(date, date, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION dogdb.stripe_check_months(date, date) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dogdb_stripe_account_mrr(date, date), dogdb.stripe_mrr_movement_totals(date, date),
	dogdb_mrr_movements(date, date), dogdb_customer_ltv(date), dogdb_cohort_retention(date, date, text),
	dogdb.stripe_check_months(date, date) TO dogdb_reader;
GRANT USAGE ON SCHEMA dogdb TO dogdb_reader;
GRANT SELECT ON dogdb.stripe_customer_accounts, dogdb.stripe_customers, dogdb.stripe_subscriptions,
	dogdb.stripe_subscription_versions, dogdb.stripe_invoices, dogdb.stripe_payments, dogdb.stripe_refunds
	TO dogdb_reader;
