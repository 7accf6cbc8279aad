\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.7'" to load this file. \quit
/* dogdb_analytics--1.6--1.7.sql (see sql/dogdb_analytics.sql for the result) */

-- [stripe14] Stripe ingestion without SECURITY DEFINER's per-call GUC work
-- (the C code writes for the function's owner), and the secrets kept by
-- the backends between transactions and the customer mappings they read,
-- both reset by a trigger on any change
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
