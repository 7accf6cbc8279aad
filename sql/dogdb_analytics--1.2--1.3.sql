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
