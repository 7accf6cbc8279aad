\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.7'" to load this file. \quit
/* dogdb_analytics--1.6--1.7.sql (see sql/dogdb_analytics.sql for the result) */

-- [stripe14] Stripe ingestion without SECURITY DEFINER's per-call GUC work
-- (the C code writes for the function's owner), and the secrets kept by
-- the backends between transactions and the customer mappings they read,
-- both reset by a trigger on any change; the events that wait for a
-- customer's mapping or a charge in a table of their own instead of an
-- index entry of every event in the ledger
ALTER FUNCTION dogdb_ingest_stripe_event(text, text) SECURITY INVOKER RESET search_path;
CREATE FUNCTION dogdb_internal.stripe_cache_reset() RETURNS trigger
	AS 'MODULE_PATHNAME', 'dogdb_stripe_cache_reset'
	LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION dogdb_internal.stripe_cache_reset() IS 'Statement trigger: makes every backend drop what it keeps of the table (the Stripe secrets, the customer mapping) at commit';
REVOKE ALL ON FUNCTION dogdb_internal.stripe_cache_reset() FROM PUBLIC;
CREATE TRIGGER stripe_webhook_secrets_cache_reset
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dogdb.stripe_webhook_secrets
	FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.stripe_cache_reset();
ALTER TABLE dogdb.stripe_webhook_secrets ENABLE ALWAYS TRIGGER stripe_webhook_secrets_cache_reset;
CREATE TRIGGER stripe_customer_accounts_cache_reset
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON dogdb.stripe_customer_accounts
	FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.stripe_cache_reset();
ALTER TABLE dogdb.stripe_customer_accounts ENABLE ALWAYS TRIGGER stripe_customer_accounts_cache_reset;
CREATE TABLE dogdb_internal.stripe_waiting (
	link_id		text NOT NULL,
	arrival		bigint NOT NULL,
	event_id	text NOT NULL,
	PRIMARY KEY (link_id, arrival)
);
REVOKE ALL ON dogdb_internal.stripe_waiting FROM PUBLIC;
COMMENT ON TABLE dogdb_internal.stripe_waiting IS 'Stripe events that waited for their customer''s mapping (link_id: the customer id) or their refund''s charge (the charge id) when they arrived: applied again when it comes';
SELECT pg_catalog.pg_extension_config_dump('dogdb_internal.stripe_waiting', '');
-- the events waiting now: a customer not mapped, a refund's charge not seen
INSERT INTO dogdb_internal.stripe_waiting (link_id, arrival, event_id)
SELECT e.link_id, e.arrival, e.event_id
  FROM dogdb.stripe_events e
 WHERE e.link_id IS NOT NULL
   AND NOT EXISTS (SELECT 1 FROM dogdb.stripe_customer_accounts m WHERE m.customer_id = e.link_id)
   AND NOT EXISTS (SELECT 1 FROM dogdb.stripe_payments p WHERE p.charge_id = e.link_id);
DROP INDEX dogdb.stripe_events_link_idx;
