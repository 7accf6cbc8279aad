/* dogdb_analytics--1.3--1.4.sql: BI surface, roles, support model, KPI engine at scale, Citus (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.4'" to load this file. \quit

--
-- [internal] the schema of engine internals
--
CREATE SCHEMA dogdb_internal;
COMMENT ON SCHEMA dogdb_internal IS 'dogdb_analytics engine internals (state tables and helper functions); granted to no one, written only by the extension''s own functions';
REVOKE ALL ON SCHEMA dogdb_internal FROM PUBLIC;

--
-- [hcitus] distributable on Citus: account_id in every fact table's keys,
-- KPI triggers that do not read TG_TABLE_NAME, dogdb_distribute()
--
ALTER TABLE dogdb.subscriptions DROP CONSTRAINT subscriptions_pkey,
	ADD PRIMARY KEY (account_id, subscription_id);
ALTER TABLE dogdb.interactions DROP CONSTRAINT interactions_pkey,
	DROP CONSTRAINT interactions_legacy_key_key,
	ADD PRIMARY KEY (account_id, interaction_id),
	ADD UNIQUE (account_id, legacy_key);
ALTER TABLE dogdb.licenses DROP CONSTRAINT licenses_pkey,
	ADD PRIMARY KEY (account_id, license_id),
	ADD UNIQUE (license_id);
COMMENT ON CONSTRAINT licenses_license_id_key ON dogdb.licenses IS 'A license id belongs to one account only. Citus cannot enforce a unique key without the distribution column: dogdb_distribute() drops it, and the one writer of licenses, dogdb_import_legacy(), keeps the guarantee (imports serialize and look every license id up across all accounts)';
ALTER TABLE dogdb.sessions DROP CONSTRAINT sessions_pkey,
	ADD PRIMARY KEY (account_id, session_id);
-- invoice_lines gets its invoice's account (existing rows migrated)
ALTER TABLE dogdb.invoice_lines ADD COLUMN account_id bigint;
UPDATE dogdb.invoice_lines l SET account_id = i.account_id FROM dogdb.invoices i WHERE i.invoice_id = l.invoice_id;
ALTER TABLE dogdb.invoice_lines DROP CONSTRAINT invoice_lines_invoice_id_fkey,
	DROP CONSTRAINT invoice_lines_pkey,
	ALTER COLUMN account_id SET NOT NULL;
ALTER TABLE dogdb.invoices DROP CONSTRAINT invoices_pkey,
	ADD PRIMARY KEY (account_id, invoice_id);
ALTER TABLE dogdb.invoice_lines ADD PRIMARY KEY (account_id, invoice_id, line_no),
	ADD FOREIGN KEY (account_id, invoice_id) REFERENCES dogdb.invoices ON DELETE CASCADE;
COMMENT ON COLUMN dogdb.invoice_lines.account_id IS 'The invoice''s account (the distribution key: lines live on the shard of their invoice)';
COMMENT ON CONSTRAINT invoices_invoice_number_key ON dogdb.invoices IS 'Invoice numbers are unique. On Citus dogdb_distribute() drops this key (it lacks the distribution column); numbers stay unique and gapless because they are drawn from the locked row of dogdb.invoice_number_counters, a reference table, in the transaction that writes the invoices';
CREATE OR REPLACE FUNCTION dogdb.kpi_track_billing() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb.kpi_dirty_months (from_month) VALUES ('-infinity');
		RETURN NULL;
	END IF;
	FOREACH rel IN ARRAY dogdb.kpi_transition_tables(TG_OP) LOOP
		-- the table is the trigger's argument (on Citus a trigger fires under its shard's name)
		EXECUTE format('INSERT INTO dogdb.kpi_dirty_months (from_month) SELECT min(%s) FROM %I r HAVING count(*) > 0',
			CASE TG_ARGV[0]
			WHEN 'subscriptions' THEN $e$date_trunc('month', r.valid_from AT TIME ZONE 'UTC')::date$e$
			ELSE $e$date_trunc('month', r.effective_from::timestamp)::date$e$
			END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION dogdb.kpi_track_billing() IS 'Trigger: records from which month on the next KPI refresh must recompute revenue and tiers';
-- the tracking triggers name their table in their argument
DO $do$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('sessions', 'kpi_track_sessions'), ('subscriptions', 'kpi_track_billing'),
								   ('plan_prices', 'kpi_track_billing'), ('accounts', 'kpi_track_accounts')) v(tab, fn)
	LOOP
		EXECUTE format('DROP TRIGGER kpi_track_insert ON dogdb.%I', t.tab);
		EXECUTE format('DROP TRIGGER kpi_track_update ON dogdb.%I', t.tab);
		EXECUTE format('DROP TRIGGER kpi_track_delete ON dogdb.%I', t.tab);
		EXECUTE format('DROP TRIGGER kpi_track_truncate ON dogdb.%I', t.tab);
		EXECUTE format('CREATE TRIGGER kpi_track_insert AFTER INSERT ON dogdb.%I REFERENCING NEW TABLE AS kpi_new_rows'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I(%L)', t.tab, t.fn, t.tab);
		EXECUTE format('CREATE TRIGGER kpi_track_update AFTER UPDATE ON dogdb.%I'
					   ' REFERENCING OLD TABLE AS kpi_old_rows NEW TABLE AS kpi_new_rows'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I(%L)', t.tab, t.fn, t.tab);
		EXECUTE format('CREATE TRIGGER kpi_track_delete AFTER DELETE ON dogdb.%I REFERENCING OLD TABLE AS kpi_old_rows'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I(%L)', t.tab, t.fn, t.tab);
		EXECUTE format('CREATE TRIGGER kpi_track_truncate AFTER TRUNCATE ON dogdb.%I'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb.%I(%L)', t.tab, t.fn, t.tab);
	END LOOP;
END
$do$;

--
-- Citus: spreading the tables over a cluster (README "Running on Citus").
-- Reference tables (copied to every node): plans and prices, the seed
-- bookkeeping, reps, the invoice-number counters, the import quarantine,
-- the Stripe secrets, ledger and customer mapping.  Distributed by
-- account_id and co-located with dogdb.accounts: every fact table of an
-- account.  dogdb.web_events is distributed by its visitor.  The KPI
-- engine's state stays on the coordinator.
--
CREATE FUNCTION dogdb_internal.distribution_plan()
	RETURNS TABLE (step integer, relation regclass, column_name text, colocate_with text)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	-- a table is looked up in dogdb, then in dogdb_internal (NULL: missing)
	SELECT v.step, coalesce(pg_catalog.to_regclass('dogdb.' || v.rel), pg_catalog.to_regclass('dogdb_internal.' || v.rel)),
		   v.col, v.coloc
	  FROM (VALUES (1, 'pricing_plans', NULL, NULL), (2, 'plan_prices', NULL, NULL),
				   (3, 'deleted_seed_rows', NULL, NULL), (4, 'service_reps', NULL, NULL),
				   (5, 'invoice_number_counters', NULL, NULL), (6, 'import_rejects', NULL, NULL),
				   (7, 'stripe_webhook_secrets', NULL, NULL), (8, 'stripe_events', NULL, NULL),
				   (9, 'stripe_customer_accounts', NULL, NULL),
				   (10, 'accounts', 'account_id', NULL),
				   (11, 'subscriptions', 'account_id', 'dogdb.accounts'),
				   (12, 'interactions', 'account_id', 'dogdb.accounts'),
				   (13, 'licenses', 'account_id', 'dogdb.accounts'),
				   (14, 'sessions', 'account_id', 'dogdb.accounts'),
				   (15, 'invoices', 'account_id', 'dogdb.accounts'),
				   (16, 'invoice_lines', 'account_id', 'dogdb.accounts'),
				   (17, 'stripe_customers', 'account_id', 'dogdb.accounts'),
				   (18, 'stripe_subscriptions', 'account_id', 'dogdb.accounts'),
				   (19, 'stripe_subscription_versions', 'account_id', 'dogdb.accounts'),
				   (20, 'stripe_invoices', 'account_id', 'dogdb.accounts'),
				   (21, 'stripe_payments', 'account_id', 'dogdb.accounts'),
				   (22, 'stripe_refunds', 'account_id', 'dogdb.accounts'),
				   (23, 'web_events', 'anonymous_id', NULL)) AS v (step, rel, col, coloc)
	 ORDER BY v.step;
END;
COMMENT ON FUNCTION dogdb_internal.distribution_plan() IS 'Internal to dogdb_distribute(): the tables in the order they are distributed (reference tables first, then by foreign keys), with the distribution column (NULL: reference table) and the table to co-locate with';

-- VOLATILE, PARALLEL UNSAFE: DDL.  Runs as its caller (the tables' owner).
-- Citus is reached through dynamic SQL only: the extension does not need it.
CREATE FUNCTION dogdb_distribute(shard_count integer DEFAULT NULL)
	RETURNS TABLE (relation regclass, method text, action text)
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	p record;
	trig record;
	fk record;
	n bigint;
	readd text[] := '{}';
	drops text[] := '{}';
	failed text;
	stmt text;
	is_coordinator boolean;
	current_method "char";
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
		RAISE EXCEPTION 'cannot distribute the dogdb tables: extension "citus" is not installed'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Run CREATE EXTENSION citus and CREATE EXTENSION dogdb_analytics on every node, then call this on the coordinator (README "Running on Citus").';
	END IF;
	IF shard_count IS NOT NULL AND (shard_count < 1 OR shard_count > 64000) THEN
		RAISE EXCEPTION 'shard_count must be from 1 to 64000, not %', shard_count
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'NULL takes citus.shard_count.';
	END IF;
	-- one connection per worker: foreign keys to reference tables are
	-- added in the transaction that created them
	PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
	EXECUTE 'SELECT pg_catalog.citus_is_coordinator()' INTO is_coordinator;
	IF NOT is_coordinator THEN
		RAISE EXCEPTION 'cannot distribute the dogdb tables: this node is not the Citus coordinator'
			USING ERRCODE = 'feature_not_supported',
				  HINT = 'Call it on the coordinator, after citus_set_coordinator_host() and citus_add_node().';
	END IF;

	-- What Citus cannot keep on its tables: triggers (a trigger fires on a
	-- shard, where it can neither write other Citus tables nor know its
	-- table): the extension's are dropped, the KPI change tracking (the KPI
	-- refresh refuses Citus tables) and the seeded-row bookkeeping for
	-- pg_dump (a Citus cluster is not restored from one pg_dump); anyone
	-- else's is an error.  And unique keys without the distribution column,
	-- whose guarantee is kept another way (see these constraints' comments).
	FOR trig IN
		SELECT t.tgname, t.tgrelid::regclass AS rel, t.tgfoid::regprocedure AS fn,
			   EXISTS (SELECT 1 FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
						WHERE d.classid = 'pg_proc'::regclass AND d.objid = t.tgfoid AND d.deptype = 'e'
						  AND e.extname = 'dogdb_analytics') AS ours
		  FROM pg_trigger t
		 WHERE NOT t.tgisinternal
		   AND t.tgrelid IN (SELECT d.relation FROM dogdb_internal.distribution_plan() d)
		 ORDER BY 2, 1
	LOOP
		IF NOT trig.ours THEN
			RAISE EXCEPTION 'cannot distribute table %: it has trigger "%"', trig.rel, trig.tgname
				USING ERRCODE = 'feature_not_supported',
					  DETAIL = format('Trigger "%s" runs %s, which is not part of dogdb_analytics; Citus does not support triggers on its tables.', trig.tgname, trig.fn),
					  HINT = 'Drop the trigger, then call this again.';
		END IF;
		drops := drops || format('DROP TRIGGER IF EXISTS %I ON %s', trig.tgname, trig.rel);
	END LOOP;
	drops := drops || ARRAY(SELECT format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', c.conrelid::regclass, c.conname)
							  FROM pg_constraint c
							 WHERE (c.conrelid, c.conname) IN (('dogdb.licenses'::regclass, 'licenses_license_id_key'),
															   ('dogdb.invoices'::regclass, 'invoices_invoice_number_key'))
							 ORDER BY 1);

	-- The foreign keys between these tables go while they are converted
	-- and come back afterwards, checked: a local table referencing a new
	-- reference table would otherwise be turned into a Citus local table,
	-- whose shell Citus cannot create where the extension made the table.
	FOR fk IN
		SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def
		  FROM pg_constraint c
		 WHERE c.contype = 'f'
		   AND c.conrelid IN (SELECT d.relation FROM dogdb_internal.distribution_plan() d)
		   AND c.confrelid IN (SELECT d.relation FROM dogdb_internal.distribution_plan() d)
		 ORDER BY 1, 2
	LOOP
		EXECUTE 'SELECT count(*) FROM pg_catalog.pg_dist_partition WHERE logicalrelid IN ($1, $2)'
			INTO n USING fk.rel, (SELECT c.confrelid FROM pg_constraint c WHERE c.conrelid = fk.rel AND c.conname = fk.conname);
		IF n < 2 THEN
			drops := drops || format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname);
			readd := readd || format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.conname, fk.def);
		END IF;
	END LOOP;
	-- The workers made these tables with CREATE EXTENSION too: the same
	-- drops on their copies first (through their own connections, so
	-- before this transaction locks anything there; DROP ... IF EXISTS, so
	-- a call that fails later can simply be repeated), then here.
	FOREACH stmt IN ARRAY drops LOOP
		EXECUTE 'SELECT string_agg(format(''%s:%s: %s'', nodename, nodeport, result), ''; '')'
				' FROM pg_catalog.run_command_on_workers($1) WHERE NOT success'
			INTO failed USING stmt;
		IF failed IS NOT NULL THEN
			RAISE EXCEPTION 'cannot distribute the dogdb tables: a worker failed to run "%"', stmt
				USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = failed,
					  HINT = 'Check that CREATE EXTENSION dogdb_analytics was run on every worker.';
		END IF;
	END LOOP;
	FOREACH stmt IN ARRAY drops LOOP
		EXECUTE stmt;
	END LOOP;

	IF EXISTS (SELECT 1 FROM dogdb_internal.distribution_plan() d WHERE d.relation IS NULL) THEN
		RAISE EXCEPTION 'cannot distribute the dogdb tables: a table of the extension is missing'
			USING ERRCODE = 'undefined_table',
				  HINT = 'The dogdb_analytics extension is damaged; reinstall it.';
	END IF;
	FOR p IN SELECT * FROM dogdb_internal.distribution_plan() ORDER BY step LOOP
		EXECUTE 'SELECT partmethod FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1'
			INTO current_method USING p.relation;
		relation := p.relation;
		method := CASE WHEN p.column_name IS NULL THEN 'reference' ELSE 'hash(' || p.column_name || ')' END;
		IF current_method IS NOT NULL THEN
			IF (current_method = 'n') <> (p.column_name IS NULL) THEN
				RAISE EXCEPTION 'cannot distribute table %: it is already a Citus table of another kind', p.relation
					USING ERRCODE = 'object_not_in_prerequisite_state',
						  HINT = format('Undo it with SELECT undistribute_table(%L), then call this again.', p.relation::text);
			END IF;
			action := 'already done';
		ELSE
			IF p.column_name IS NULL THEN
				EXECUTE 'SELECT pg_catalog.create_reference_table($1)' USING p.relation;
			ELSIF p.colocate_with IS NOT NULL THEN
				EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, colocate_with => $3)'
					USING p.relation, p.column_name, p.colocate_with;
			ELSIF shard_count IS NOT NULL THEN
				EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2, shard_count => $3)'
					USING p.relation, p.column_name, shard_count;
			ELSE
				EXECUTE 'SELECT pg_catalog.create_distributed_table($1, $2)' USING p.relation, p.column_name;
			END IF;
			action := 'distributed';
		END IF;
		RETURN NEXT;
	END LOOP;
	-- the foreign keys come back everywhere (Citus adds them to the shards)
	FOREACH stmt IN ARRAY readd LOOP
		EXECUTE stmt;
	END LOOP;
END
$fn$;
COMMENT ON FUNCTION dogdb_distribute(integer) IS 'On a Citus coordinator, after CREATE EXTENSION dogdb_analytics on every node: make the shared tables reference tables and distribute the fact tables by account_id (web events by visitor), co-located, in foreign-key order, with shard_count shards (NULL: citus.shard_count); drops the extension''s triggers on these tables (KPI change tracking, seeded-row bookkeeping) and the unique keys Citus cannot enforce. Idempotent: returns each table and whether it was distributed now or already';
REVOKE ALL ON FUNCTION dogdb_distribute(integer) FROM PUBLIC;

-- checks Citus runs as they are; churn in PL/pgSQL (Citus cannot plan a SQL
-- function's parameters)
CREATE OR REPLACE FUNCTION dogdb_check_data_quality()
	RETURNS TABLE (check_name text, relation text, failing_rows bigint, sample text)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	-- each check once: its name, the relation it looks at, and the keys of
	-- the rows that fail it.  Every join is on account_id or with a
	-- reference table, and every target list has a column, so that Citus
	-- runs it as it is (a shared e-mail is found by grouping, not by a
	-- self-join on e-mail).
	WITH failures (ord, key) AS (
		SELECT 1, a.account_id::text
		  FROM dogdb.accounts a
		 WHERE lower(a.email) IN (SELECT lower(b.email) FROM dogdb.accounts b
								   GROUP BY lower(b.email) HAVING count(*) > 1)
		UNION ALL
		SELECT 2, a.account_id::text FROM dogdb.accounts a WHERE a.email IS NULL
		UNION ALL
		SELECT 3, i.interaction_id::text FROM dogdb.interactions i WHERE i.rep_id IS NULL
		UNION ALL
		SELECT 4, l.license_id
		  FROM dogdb.licenses l
		 WHERE l.status NOT IN ('active', 'inactive', 'suspended', 'expired', 'revoked')
		UNION ALL
		SELECT 5, i.interaction_id::text
		  FROM dogdb.interactions i
		 WHERE i.status NOT IN ('open', 'pending', 'resolved', 'closed')
		UNION ALL
		SELECT 6, s.subscription_id::text
		  FROM dogdb.subscriptions s
		 WHERE NOT EXISTS (SELECT 1 FROM dogdb.plan_prices p
							WHERE p.plan_id = s.plan_id
							  AND p.effective_from <= (s.valid_from AT TIME ZONE 'UTC')::date)
		UNION ALL
		SELECT 7, l.account_id::text
		  FROM dogdb.licenses l WHERE l.status = 'active'
		 GROUP BY l.account_id HAVING count(*) > 1
		UNION ALL
		SELECT 8, a.account_id::text
		  FROM dogdb.accounts a
		 WHERE NOT EXISTS (SELECT 1 FROM dogdb.subscriptions s WHERE s.account_id = a.account_id)
		UNION ALL
		SELECT 9, r.source_table || ':' || r.reject_id FROM dogdb.import_rejects r
	)
	SELECT c.check_name, c.relation, count(f.key),
		   (SELECT string_agg(k.key, ', ' ORDER BY length(k.key), k.key)
			  FROM (SELECT f2.key FROM failures f2 WHERE f2.ord = c.ord
					 ORDER BY length(f2.key), f2.key LIMIT 5) k)
	  FROM (VALUES (1, 'unique_email', 'dogdb.accounts'),
				   (2, 'not_null_email', 'dogdb.accounts'),
				   (3, 'not_null_rep_id', 'dogdb.interactions'),
				   (4, 'accepted_values_status', 'dogdb.licenses'),
				   (5, 'accepted_values_status', 'dogdb.interactions'),
				   (6, 'relationships_plan_prices', 'dogdb.subscriptions'),
				   (7, 'multiple_active_licenses', 'dogdb.licenses'),
				   (8, 'accounts_without_subscription', 'dogdb.accounts'),
				   (9, 'rejects_in_quarantine', 'dogdb.import_rejects')) AS c (ord, check_name, relation)
	  LEFT JOIN failures f ON f.ord = c.ord
	 GROUP BY c.ord, c.check_name, c.relation
	 ORDER BY c.ord;
END;
COMMENT ON FUNCTION dogdb_check_data_quality() IS 'Data-quality report: one row per check with the number of failing rows and up to five sample keys';
CREATE OR REPLACE FUNCTION dogdb_account_churn(as_of date DEFAULT current_date)
	RETURNS TABLE (account_id bigint, first_month date, last_active_month date, churn_month date)
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	RETURN QUERY
	SELECT a.account_id, f.first_month,
		   @extschema@.dogdb_last_active_month(m.active),
		   @extschema@.dogdb_first_inactive_month(m.active, f.first_month, as_of)
	  FROM dogdb.accounts a
	 CROSS JOIN LATERAL (SELECT date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date AS first_month) f
	  LEFT JOIN (SELECT s.account_id, @extschema@.dogdb_active_months(s.created_at) AS active
				   FROM dogdb.sessions s
				  WHERE s.created_at < ((date_trunc('month', as_of::timestamp) + interval '1 month') AT TIME ZONE 'UTC')
				  GROUP BY s.account_id) m ON m.account_id = a.account_id;
END
$fn$;
COMMENT ON FUNCTION dogdb_account_churn(date) IS 'Per account: first month (UTC month of created_at), last month with a session, and churn month = first month from the first month through the month of as_of with no session (NULL if none)';

-- web events: duplicates found by ON CONFLICT (Citus plans no correlated NOT EXISTS here)
CREATE OR REPLACE FUNCTION dogdb_load_web_events(source regclass, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	cols CONSTANT text[] := ARRAY['event_id', 'occurred_at', 'anonymous_id', 'session_id', 'account_id',
								  'event_name', 'page_path', 'referrer', 'client', 'campaign', 'properties'];
	missing text[];
BEGIN
	IF source IS NULL OR source = 'dogdb.web_events'::regclass OR source = 'dogdb.import_rejects'::regclass THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = format('source must be a staging table other than dogdb.web_events and dogdb.import_rejects, not %s',
							 coalesce(source::text, 'NULL')),
			HINT = 'COPY the events into a table with the columns of dogdb.web_events, then pass it, such as dogdb_load_web_events(''web_events_staging'').';
	END IF;
	SELECT array_agg(c ORDER BY o) INTO missing
	  FROM unnest(cols) WITH ORDINALITY u(c, o)
	 WHERE NOT EXISTS (SELECT FROM pg_catalog.pg_attribute a
						WHERE a.attrelid = source AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped);
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION USING ERRCODE = '22023',
			MESSAGE = format('source must have the columns %s; %s lacks %s',
							 array_to_string(cols, ', '), source, array_to_string(missing, ', ')),
			HINT = 'Create the staging table with CREATE TABLE ... (LIKE dogdb.web_events) or give it these columns (any of them may be NULL).';
	END IF;
	-- one loader at a time (the lock conflicts with itself), readers go on
	LOCK TABLE dogdb.web_events IN SHARE ROW EXCLUSIVE MODE;
	EXECUTE format($q$
		WITH src AS (
			SELECT s.event_id::text AS event_id, s.occurred_at::timestamptz AS occurred_at,
				   s.anonymous_id::text AS anonymous_id, s.session_id::text AS session_id,
				   s.account_id::bigint AS account_id, s.event_name::text AS event_name,
				   s.page_path::text AS page_path, s.referrer::text AS referrer, s.client::text AS client,
				   s.campaign::text AS campaign, s.properties::jsonb AS properties
			  FROM %s s),
		checked AS (
			SELECT src.*,
				   CASE WHEN anonymous_id IS NULL OR anonymous_id = '' THEN 'no visitor id (anonymous_id)'
						WHEN event_id IS NULL OR event_id = '' THEN 'no event id'
						WHEN occurred_at IS NULL THEN 'no time (occurred_at is NULL)'
						WHEN NOT isfinite(occurred_at) THEN 'infinite time (occurred_at)'
						WHEN event_name IS NULL OR event_name = '' THEN 'unknown event shape: no event_name'
						WHEN event_name IN ('page_view', 'page_ping') AND page_path IS NULL THEN
							 'unknown event shape: ' || event_name || ' without page_path'
						WHEN event_name IN ('page_view', 'page_ping') AND page_path NOT LIKE '/%%' THEN
							 'unknown event shape: page_path does not start with /'
						WHEN properties IS NOT NULL AND jsonb_typeof(properties) <> 'object' THEN
							 'unknown event shape: properties is not a JSON object'
				   END AS reason
			  FROM src),
		rejects AS (
			INSERT INTO dogdb.import_rejects (source_table, source_key, source_row, reason)
			SELECT 'web_events', md5(j::text), j, reason
			  FROM (SELECT jsonb_build_object('event_id', event_id, 'occurred_at', occurred_at, 'anonymous_id', anonymous_id,
											  'session_id', session_id, 'account_id', account_id, 'event_name', event_name,
											  'page_path', page_path, 'referrer', referrer, 'client', client,
											  'campaign', campaign, 'properties', properties) AS j, reason
					  FROM checked WHERE reason IS NOT NULL) b
			ON CONFLICT (source_table, source_key) DO NOTHING),
		fresh AS (
			INSERT INTO dogdb.web_events (anonymous_id, event_id, occurred_at, session_id, account_id,
										  event_name, page_path, referrer, client, campaign, properties)
			SELECT DISTINCT ON (c.anonymous_id, c.event_id)
				   c.anonymous_id, c.event_id, c.occurred_at, c.session_id, c.account_id, c.event_name,
				   c.page_path, c.referrer, c.client, c.campaign, coalesce(c.properties, '{}')
			  FROM checked c
			 WHERE c.reason IS NULL
			 ORDER BY c.anonymous_id, c.event_id, c.occurred_at, c.event_name, c.page_path
			-- (not a correlated NOT EXISTS: Citus cannot plan one here)
			ON CONFLICT (anonymous_id, event_id) DO NOTHING
			RETURNING 1)
		SELECT (SELECT count(*) FROM fresh),
			   count(*) FILTER (WHERE reason IS NULL) - (SELECT count(*) FROM fresh),
			   count(*) FILTER (WHERE reason IS NOT NULL)
		  FROM checked$q$, source)
	INTO loaded, duplicates, rejected;
END
$fn$;
COMMENT ON FUNCTION dogdb_load_web_events(regclass) IS 'Load web events from a staging table: each (visitor, event id) stored once (later copies count as duplicates), malformed rows to dogdb.import_rejects with the reason; returns the counts';

-- The KPI facts in one query, for Citus (the C engine reads local heaps):
-- everything per account (sessions per month, the churn month from the
-- active-month bitmap, the month's invoice amounts by the billing rules, the
-- tier) runs on the workers, shard by shard, and only the sums by month,
-- company size and plan come back.  The same rules as the engine (README
-- "KPIs"); test/pgtap/citus.sql and the lab compare the two.  STABLE: reads
-- the tables and the current month.
CREATE FUNCTION dogdb_internal.kpi_facts_sql()
	RETURNS TABLE (month date, company_size text, plan_id smallint, active_accounts bigint,
				   churned_accounts bigint, sessions bigint, revenue_cents bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
-- (PL/pgSQL: Citus plans a query with the values of m0 and m1, not with parameters)
DECLARE
	m0 date;
	m1 date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
BEGIN
	SELECT min(date_trunc('month', a.created_at AT TIME ZONE 'UTC'))::date INTO m0 FROM dogdb.accounts a;
	IF m0 IS NULL THEN
		RETURN;
	END IF;
	RETURN QUERY
	WITH usage AS (
		SELECT s.account_id, date_trunc('month', s.created_at AT TIME ZONE 'UTC')::date AS month, count(*) AS n
		  FROM dogdb.sessions s GROUP BY 1, 2
	), churn AS (
		SELECT a.account_id,
			   @extschema@.dogdb_first_inactive_month(u.active, date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date, m1) AS month
		  FROM dogdb.accounts a
		  LEFT JOIN (SELECT s.account_id, @extschema@.dogdb_active_months(s.created_at) AS active
					   FROM dogdb.sessions s
					  WHERE s.created_at < ((m1 + interval '1 month') AT TIME ZONE 'UTC')
					  GROUP BY s.account_id) u ON u.account_id = a.account_id
	), prices AS (		-- each price holds [p0, p1)
		SELECT p.plan_id, p.monthly_price_cents AS price, p.effective_from AS p0,
			   coalesce(lead(p.effective_from) OVER (PARTITION BY p.plan_id ORDER BY p.effective_from),
						'infinity') AS p1
		  FROM dogdb.plan_prices p
	), covered AS (		-- UTC days of each subscription in each month, clipped to it
		SELECT s.account_id, s.plan_id, m.ms,
			   (m.ms + interval '1 month')::date AS me,
			   greatest((s.valid_from AT TIME ZONE 'UTC')::date, m.ms) AS d0,
			   least(coalesce((s.valid_to AT TIME ZONE 'UTC')::date, 'infinity'), (m.ms + interval '1 month')::date) AS d1
		  FROM dogdb.subscriptions s
		  JOIN (SELECT g::date AS ms FROM generate_series(m0, m1, interval '1 month') g) m
			ON s.valid_from < ((m.ms + interval '1 month') AT TIME ZONE 'UTC')
		   AND (s.valid_to IS NULL OR s.valid_to > (m.ms AT TIME ZONE 'UTC'))
	), pieces AS (
		SELECT c.account_id, c.ms, c.me, c.plan_id, p.price, greatest(c.d0, p.p0) AS d0, least(c.d1, p.p1) AS d1
		  FROM covered c JOIN prices p ON p.plan_id = c.plan_id AND p.p0 < c.d1 AND p.p1 > c.d0
		 WHERE c.d1 > c.d0
	), flagged AS (		-- does a piece continue the previous one's line?
		SELECT x.*, coalesce(lag(x.d1) OVER w = x.d0 AND lag(x.plan_id) OVER w = x.plan_id
							 AND lag(x.price) OVER w = x.price, false) AS continues
		  FROM pieces x WINDOW w AS (PARTITION BY x.account_id, x.ms ORDER BY x.d0)
	), numbered AS (
		SELECT f.*, count(*) FILTER (WHERE NOT f.continues) OVER (PARTITION BY f.account_id, f.ms ORDER BY f.d0) AS line
		  FROM flagged f
	), lines AS (
		SELECT n.account_id, n.ms, n.me, min(n.price) AS price, min(n.d0) AS d0, max(n.d1) AS d1
		  FROM numbered n GROUP BY n.account_id, n.ms, n.me, n.line
	), revenue AS (
		SELECT l.account_id, l.ms AS month,
			   sum(round(l.price * (l.d1 - l.d0)::numeric / (l.me - l.ms))) AS cents
		  FROM lines l GROUP BY 1, 2
	), per_account AS (
		SELECT x.account_id, x.month, sum(x.n) AS n, sum(x.c) AS c, sum(x.cents) AS cents
		  FROM (SELECT u.account_id, u.month, u.n, 0 AS c, 0 AS cents FROM usage u
				UNION ALL SELECT ch.account_id, ch.month, 0, 1, 0 FROM churn ch WHERE ch.month IS NOT NULL
				UNION ALL SELECT r.account_id, r.month, 0, 0, r.cents FROM revenue r WHERE r.cents <> 0) x
		 GROUP BY 1, 2
	), tiered AS (		-- the tier: the plan on the month's first day, else the last one ended, else the first one of the month
		SELECT p.*, s.plan_id,
			   row_number() OVER (PARTITION BY p.account_id, p.month
								  ORDER BY CASE WHEN (s.valid_from AT TIME ZONE 'UTC')::date <= p.month
												 AND coalesce((s.valid_to AT TIME ZONE 'UTC')::date, 'infinity') > p.month THEN 0
												WHEN (s.valid_to AT TIME ZONE 'UTC')::date <= p.month THEN 1 ELSE 2 END,
										   CASE WHEN (s.valid_to AT TIME ZONE 'UTC')::date <= p.month THEN -extract(epoch FROM s.valid_from)
												ELSE extract(epoch FROM s.valid_from) END) AS pick
		  FROM per_account p
		  LEFT JOIN dogdb.subscriptions s
			ON s.account_id = p.account_id
		   AND (s.valid_from AT TIME ZONE 'UTC')::date < (p.month + interval '1 month')::date
	)
	SELECT t.month, coalesce(a.company_size, 'unknown'), t.plan_id,
		   count(*) FILTER (WHERE t.n > 0), sum(t.c)::bigint, sum(t.n)::bigint, sum(t.cents)::bigint
	  FROM tiered t JOIN dogdb.accounts a ON a.account_id = t.account_id
	 WHERE t.pick = 1
	 GROUP BY 1, 2, 3;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.kpi_facts_sql() IS 'The rows of the KPI facts computed by one query that Citus pushes down to the workers (per-account work on the shards, sums by month, company size and plan on the coordinator); used by the KPI refresh when the tables are distributed';
REVOKE ALL ON FUNCTION dogdb_internal.kpi_facts_sql() FROM PUBLIC;
