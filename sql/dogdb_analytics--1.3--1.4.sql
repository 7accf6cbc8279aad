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
-- the tracking triggers name their table in their argument (the billing
-- trigger's body that reads it is in the [hkpi2] section below)
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
				   (23, 'web_events', 'anonymous_id', NULL),
				   (24, 'support_interactions', 'account_id', 'dogdb.accounts')) AS v (step, rel, col, coloc)
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

--
-- [hkpi2] the KPI engine at a million accounts: its state in small rows by
-- block of accounts, its tables and helper functions in dogdb_internal
--
-- the state is rebuilt by the next refresh: drop it, mark a full rebuild
DROP TABLE dogdb.kpi_month_activity, dogdb.kpi_churn_state;
DROP TABLE dogdb.kpi_session_deltas;
ALTER TABLE dogdb.kpi_dirty_months SET SCHEMA dogdb_internal;
ALTER TABLE dogdb.kpi_dirty_accounts SET SCHEMA dogdb_internal;
ALTER TABLE dogdb.kpi_facts SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_transition_tables(text) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_track_sessions() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_track_billing() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_track_accounts() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.kpi_update_facts(boolean) SET SCHEMA dogdb_internal;
COMMENT ON FUNCTION dogdb_internal.kpi_update_facts(boolean) IS 'Internal to dogdb_refresh_kpis(): brings dogdb_internal.kpi_facts up to date, incrementally unless a full rebuild is asked for or needed';

CREATE TABLE dogdb_internal.kpi_month_activity (
	month		date NOT NULL,
	block		bigint NOT NULL,
	session_counts bytea NOT NULL,
	plan_ids	bytea NOT NULL,
	PRIMARY KEY (month, block)
);
ALTER TABLE dogdb_internal.kpi_month_activity ALTER session_counts SET STORAGE PLAIN,
	ALTER plan_ids SET STORAGE PLAIN;	-- 2-6 kB a row: stays in the heap page, read and written whole
COMMENT ON TABLE dogdb_internal.kpi_month_activity IS 'KPI engine state: per month and block of 1024 account ids (block = account_id >> 10), each account''s session count and tier that month (plan_id, -32768 = none) by account_id & 1023, each array a width byte (1, 2 or 4) then 1024 values of that width (src/kpi_matrix.c); rows for every block with accounts in the months the last refresh covered, and for months with sessions';

CREATE TABLE dogdb_internal.kpi_churn_state (
	block		bigint PRIMARY KEY,
	first_months bytea NOT NULL,
	churn_months bytea NOT NULL,
	company_sizes bytea NOT NULL
);
ALTER TABLE dogdb_internal.kpi_churn_state ALTER first_months SET STORAGE PLAIN,
	ALTER churn_months SET STORAGE PLAIN, ALTER company_sizes SET STORAGE PLAIN;
COMMENT ON TABLE dogdb_internal.kpi_churn_state IS 'KPI engine state: per block of 1024 account ids (block = account_id >> 10), each account''s first month (int2 months since 2000-01, -32768 = no such account), churn month (int2, -1 = none) and company size (one byte: 0 small, 1 large, 2 unknown), as of the last refresh';

CREATE TABLE dogdb_internal.kpi_coverage (
	singleton	boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	first_month date NOT NULL,
	last_month	date NOT NULL
);
COMMENT ON TABLE dogdb_internal.kpi_coverage IS 'KPI engine state: the months [first_month, last_month] whose churn and revenue the last refresh computed (first account month to the then current month); no row: the next refresh rebuilds';
CREATE TABLE dogdb_internal.kpi_session_deltas (
	months		date[] NOT NULL,
	account_ids bigint[] NOT NULL,
	sessions	bigint[] NOT NULL,
	CHECK (cardinality(months) = cardinality(account_ids) AND cardinality(months) = cardinality(sessions))
);
COMMENT ON TABLE dogdb_internal.kpi_session_deltas IS 'KPI engine input: session count changes per account and month since the last refresh, as three arrays side by side (one row per statement on dogdb.sessions, written by its triggers), so that a refresh consumes a day of sessions in a few rows';

REVOKE ALL ON dogdb_internal.kpi_month_activity, dogdb_internal.kpi_churn_state, dogdb_internal.kpi_coverage,
	dogdb_internal.kpi_session_deltas FROM PUBLIC;
INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);

-- the triggers write the moved tables
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_track_sessions() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);
		RETURN NULL;
	END IF;
	-- per account and month: + the new rows, - the old ones
	FOREACH rel IN ARRAY dogdb_internal.kpi_transition_tables(TG_OP) LOOP
		EXECUTE format($q$INSERT INTO dogdb_internal.kpi_session_deltas (months, account_ids, sessions)
						  SELECT array_agg(g.month), array_agg(g.account_id), array_agg(g.n)
							FROM (SELECT date_trunc('month', r.created_at AT TIME ZONE 'UTC')::date AS month,
										 r.account_id, %s count(*) AS n
									FROM %I r GROUP BY 1, 2) g
						  HAVING count(*) > 0$q$,
					   CASE rel WHEN 'kpi_old_rows' THEN '-' ELSE '' END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;

-- Subscriptions and prices: months whose revenue (and tier) changed.  A
-- subscription counts from the month of valid_from on, open-ended: the tier
-- rule carries an ended subscription's plan into the months after it.
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_track_billing() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.kpi_dirty_months (from_month) VALUES ('-infinity');
		RETURN NULL;
	END IF;
	FOREACH rel IN ARRAY dogdb_internal.kpi_transition_tables(TG_OP) LOOP
		-- the table is the trigger's argument (on Citus a trigger fires under its shard's name)
		EXECUTE format('INSERT INTO dogdb_internal.kpi_dirty_months (from_month) SELECT min(%s) FROM %I r HAVING count(*) > 0',
			CASE TG_ARGV[0]
			WHEN 'subscriptions' THEN $e$date_trunc('month', r.valid_from AT TIME ZONE 'UTC')::date$e$
			ELSE $e$date_trunc('month', r.effective_from::timestamp)::date$e$
			END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;

-- Accounts: the accounts whose KPI columns (id, company_size, created_at)
-- changed, and the months from their first month on
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_track_accounts() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.kpi_dirty_months (from_month, full_rebuild) VALUES ('-infinity', true);
		RETURN NULL;
	END IF;
	EXECUTE format($q$WITH changed AS (%s), a AS (INSERT INTO dogdb_internal.kpi_dirty_accounts (account_id)
												SELECT DISTINCT account_id FROM changed)
					  INSERT INTO dogdb_internal.kpi_dirty_months (from_month)
					  SELECT min(date_trunc('month', created_at AT TIME ZONE 'UTC')::date) FROM changed
					  HAVING count(*) > 0$q$,
		CASE TG_OP
		WHEN 'INSERT' THEN 'SELECT account_id, created_at FROM kpi_new_rows'
		WHEN 'DELETE' THEN 'SELECT account_id, created_at FROM kpi_old_rows'
		ELSE $e$SELECT account_id, created_at
				  FROM ((SELECT account_id, company_size, created_at FROM kpi_new_rows
						 EXCEPT ALL SELECT account_id, company_size, created_at FROM kpi_old_rows)
						UNION ALL
						(SELECT account_id, company_size, created_at FROM kpi_old_rows
						 EXCEPT ALL SELECT account_id, company_size, created_at FROM kpi_new_rows)) c$e$
		END);
	RETURN NULL;
END
$fn$;


-- the engine's entry point moved
-- VOLATILE: refreshes the views.  SECURITY DEFINER: refreshing a
-- materialized view needs its owner; EXECUTE is granted by the owner.

--
-- [hkbench] dogdb_account_churn in C: one pass over the sessions, no GROUP BY
--
CREATE OR REPLACE FUNCTION dogdb_account_churn(as_of date DEFAULT current_date)
	RETURNS TABLE (account_id bigint, first_month date, last_active_month date, churn_month date)
	AS 'MODULE_PATHNAME', 'dogdb_account_churn'
	LANGUAGE C STABLE STRICT PARALLEL SAFE ROWS 1000;

--
-- [hsupport] the support model: service reps' names, email and employment
-- dates; dogdb.support_interactions and its refresh step; dogdb_kpi_support;
-- data-quality checks of interactions
--
ALTER TABLE dogdb.service_reps
	ADD COLUMN email text CONSTRAINT service_reps_email_check CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
	ADD COLUMN first_name text CONSTRAINT service_reps_first_name_check CHECK (first_name <> ''),
	ADD COLUMN last_name text CONSTRAINT service_reps_last_name_check CHECK (last_name <> ''),
	ADD COLUMN start_date date CONSTRAINT service_reps_start_date_check CHECK (isfinite(start_date)),
	ADD COLUMN end_date date CONSTRAINT service_reps_end_date_check CHECK (isfinite(end_date)),
	ADD CONSTRAINT service_reps_employment_check CHECK (end_date >= start_date);
-- the reps there are: first and last name from the name, as new ones get them
UPDATE dogdb.service_reps
   SET first_name = substring(btrim(name) FROM '^[^[:space:]]+'),
	   last_name = nullif(btrim(substring(btrim(name) FROM '^[^[:space:]]+[[:space:]]+(.*)$')), '');

--
-- Support model.  dogdb.support_interactions is the analysts' model of
-- support interactions: one row per interaction with its account's
-- company size and tier at the time, its rep, and resolution time; it is
-- materialized (a table) and indexed, and dogdb_refresh_kpis() keeps it up
-- to date in a step of its own (dogdb_internal.support_refresh()).
--
-- Change tracking is isolated: one statement-trigger function,
-- dogdb_internal.support_track(), is the only writer of
-- dogdb_internal.support_changes, and the refresh reads nothing else to
-- know what changed.  The changes are keys: (account_id, interaction_id)
-- of interactions written, account_ids whose company size or subscriptions
-- changed, rep_ids and plan_ids renamed, or 'all'.  A sharded install can
-- replace the triggers (by change data capture, say) by anything that
-- fills the same table.  The bulk writers (legacy import, demo data) do
-- the trigger's work themselves (import_write.c, demo_data.c).
--

-- service reps: the legacy import knows only a name; a rep inserted with
-- neither first nor last name gets them split from the name
CREATE UNIQUE INDEX service_reps_email_key ON dogdb.service_reps (lower(email));
COMMENT ON COLUMN dogdb.service_reps.rep_id IS 'The rep';
COMMENT ON COLUMN dogdb.service_reps.name IS 'Display name, unique (the legacy import matches reps by it: legacy rows carry a first name)';
COMMENT ON COLUMN dogdb.service_reps.email IS 'Work email, unique ignoring case; NULL if unknown (the legacy import does not know it)';
COMMENT ON COLUMN dogdb.service_reps.first_name IS 'First name; filled from name (its first word) when a rep is inserted with neither first nor last name';
COMMENT ON COLUMN dogdb.service_reps.last_name IS 'Last name; filled from name (what follows its first word, NULL if nothing) when a rep is inserted with neither first nor last name';
COMMENT ON COLUMN dogdb.service_reps.start_date IS 'First day of employment (UTC date), NULL if unknown; interactions before it fail the data-quality check rep_outside_employment';
COMMENT ON COLUMN dogdb.service_reps.end_date IS 'Last day of employment (UTC date, included), NULL if still employed or unknown';

-- VOLATILE, PARALLEL UNSAFE: a trigger
CREATE FUNCTION dogdb_internal.service_reps_fill_names() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	NEW.first_name := substring(btrim(NEW.name) FROM '^[^[:space:]]+');
	NEW.last_name := nullif(btrim(substring(btrim(NEW.name) FROM '^[^[:space:]]+[[:space:]]+(.*)$')), '');
	RETURN NEW;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.service_reps_fill_names() IS 'Trigger: a rep inserted with neither first nor last name gets them from name (first word; the rest)';
REVOKE ALL ON FUNCTION dogdb_internal.service_reps_fill_names() FROM PUBLIC;
CREATE TRIGGER service_reps_fill_names BEFORE INSERT ON dogdb.service_reps
	FOR EACH ROW WHEN (NEW.first_name IS NULL AND NEW.last_name IS NULL)
	EXECUTE FUNCTION dogdb_internal.service_reps_fill_names();

-- the model: one row per interaction; account_id leads the primary key
-- (the distribution key on a sharded install)
CREATE TABLE dogdb.support_interactions (
	account_id	bigint NOT NULL,
	interaction_id bigint NOT NULL,
	company_size text NOT NULL,
	plan_id		smallint,
	tier		text NOT NULL,
	rep_id		integer,
	rep_name	text,
	channel		text NOT NULL,
	category	text,
	status		text NOT NULL,
	created_at	timestamptz NOT NULL,
	completed_at timestamptz,
	created_month date NOT NULL,
	completed_month date,
	resolution_hours double precision,
	is_open		boolean NOT NULL,
	PRIMARY KEY (account_id, interaction_id)
);
CREATE INDEX support_interactions_created_month_idx ON dogdb.support_interactions (created_month);
CREATE INDEX support_interactions_completed_month_idx ON dogdb.support_interactions (completed_month);
CREATE INDEX support_interactions_rep_idx ON dogdb.support_interactions (rep_id);
CREATE INDEX support_interactions_plan_idx ON dogdb.support_interactions (plan_id);
CREATE INDEX support_interactions_interaction_idx ON dogdb.support_interactions (interaction_id);
REVOKE ALL ON dogdb.support_interactions FROM PUBLIC;
COMMENT ON TABLE dogdb.support_interactions IS 'Support interactions model for analysts: one row per interaction of dogdb.interactions with its account''s company size and tier at the time, its rep and resolution time; materialized, kept up to date by dogdb_refresh_kpis() (as of the last refresh; see dogdb_kpi_last_refresh())';
COMMENT ON COLUMN dogdb.support_interactions.account_id IS 'The account (dogdb.accounts); the distribution key';
COMMENT ON COLUMN dogdb.support_interactions.interaction_id IS 'The interaction (dogdb.interactions)';
COMMENT ON COLUMN dogdb.support_interactions.company_size IS 'The account''s company size now: small, large, or unknown when the account has none (as the KPIs count it)';
COMMENT ON COLUMN dogdb.support_interactions.plan_id IS 'The account''s plan at created_at: the subscription whose [valid_from, valid_to) holds created_at; NULL if none';
COMMENT ON COLUMN dogdb.support_interactions.tier IS 'The name of plan_id (the tier at the time of the interaction), or none';
COMMENT ON COLUMN dogdb.support_interactions.rep_id IS 'The rep who handled it (dogdb.service_reps), NULL if none is recorded';
COMMENT ON COLUMN dogdb.support_interactions.rep_name IS 'The rep''s name (dogdb.service_reps.name), NULL if no rep';
COMMENT ON COLUMN dogdb.support_interactions.channel IS 'Contact channel, as recorded (email, phone, chat, ...)';
COMMENT ON COLUMN dogdb.support_interactions.category IS 'Topic, as recorded (billing, bug, ...), NULL if none';
COMMENT ON COLUMN dogdb.support_interactions.status IS 'Status as recorded (open, pending, resolved, closed); open and resolved in this model are defined by completed_at';
COMMENT ON COLUMN dogdb.support_interactions.created_at IS 'When the interaction was opened';
COMMENT ON COLUMN dogdb.support_interactions.completed_at IS 'When it was resolved, NULL while open';
COMMENT ON COLUMN dogdb.support_interactions.created_month IS 'UTC calendar month of created_at (its first day)';
COMMENT ON COLUMN dogdb.support_interactions.completed_month IS 'UTC calendar month of completed_at (its first day), NULL while open';
COMMENT ON COLUMN dogdb.support_interactions.resolution_hours IS 'completed_at - created_at in hours, NULL while open';
COMMENT ON COLUMN dogdb.support_interactions.is_open IS 'Whether it is open: completed_at is NULL';

-- the model computed from the sources: the full rebuild reads it whole, an
-- incremental refresh for the keys that changed
CREATE VIEW dogdb_internal.support_source AS
	SELECT i.account_id, i.interaction_id, coalesce(a.company_size, 'unknown') AS company_size,
		   s.plan_id, coalesce(p.name, 'none') AS tier, i.rep_id, r.name AS rep_name,
		   i.channel, i.category, i.status, i.created_at, i.completed_at,
		   date_trunc('month', i.created_at AT TIME ZONE 'UTC')::date AS created_month,
		   date_trunc('month', i.completed_at AT TIME ZONE 'UTC')::date AS completed_month,
		   ((extract(epoch FROM i.completed_at) - extract(epoch FROM i.created_at)) / 3600)::double precision
			   AS resolution_hours,
		   i.completed_at IS NULL AS is_open
	  FROM dogdb.interactions i
	  JOIN dogdb.accounts a ON a.account_id = i.account_id
	  LEFT JOIN dogdb.subscriptions s		-- periods of an account never overlap: one at most
			 ON s.account_id = i.account_id AND s.valid_from <= i.created_at
			AND (s.valid_to IS NULL OR s.valid_to > i.created_at)
	  LEFT JOIN dogdb.pricing_plans p ON p.plan_id = s.plan_id
	  LEFT JOIN dogdb.service_reps r ON r.rep_id = i.rep_id;
COMMENT ON VIEW dogdb_internal.support_source IS 'Internal to the support refresh: dogdb.support_interactions as the sources say now';

CREATE TABLE dogdb_internal.support_changes (
	kind		text NOT NULL CHECK (kind IN ('interaction', 'account', 'rep', 'plan', 'all')),
	account_id	bigint,
	id			bigint,
	CHECK (CASE kind WHEN 'interaction' THEN account_id IS NOT NULL AND id IS NOT NULL
					 WHEN 'account' THEN account_id IS NOT NULL
					 WHEN 'all' THEN true
					 ELSE id IS NOT NULL END)
);
REVOKE ALL ON dogdb_internal.support_changes FROM PUBLIC;
COMMENT ON TABLE dogdb_internal.support_changes IS 'Support refresh input: what changed since the last refresh (interaction: account_id and interaction_id of a row written; account: its company size or subscriptions; rep, plan: id renamed or removed; all: rebuild)';
COMMENT ON COLUMN dogdb_internal.support_changes.kind IS 'What changed: interaction, account, rep, plan, or all (rebuild)';
COMMENT ON COLUMN dogdb_internal.support_changes.account_id IS 'interaction: the account the row had (old or new); account: the account; else NULL';
COMMENT ON COLUMN dogdb_internal.support_changes.id IS 'interaction: interaction_id; rep: rep_id; plan: plan_id; else NULL';
-- a new installation (or a restored one) starts with a full rebuild
INSERT INTO dogdb_internal.support_changes (kind) VALUES ('all');

-- VOLATILE, PARALLEL UNSAFE: a trigger writing the refresh's input.
-- SECURITY DEFINER: writers of the sources need no privilege on it.
CREATE FUNCTION dogdb_internal.support_track() RETURNS trigger
	LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	rel text;
BEGIN
	IF TG_OP = 'TRUNCATE' THEN
		INSERT INTO dogdb_internal.support_changes (kind) VALUES ('all');
		RETURN NULL;
	END IF;
	FOREACH rel IN ARRAY CASE TG_OP WHEN 'INSERT' THEN ARRAY['support_new'] WHEN 'DELETE' THEN ARRAY['support_old']
									ELSE ARRAY['support_new', 'support_old'] END LOOP
		EXECUTE format(CASE TG_ARGV[0]
			WHEN 'interactions' THEN
				'INSERT INTO dogdb_internal.support_changes (kind, account_id, id)
				 SELECT ''interaction'', r.account_id, r.interaction_id FROM %I r'
			WHEN 'subscriptions' THEN
				'INSERT INTO dogdb_internal.support_changes (kind, account_id)
				 SELECT DISTINCT ''account'', r.account_id FROM %I r'
			-- accounts, reps, plans: updates only (inserted ones have no
			-- interactions; deleting a referenced one is refused), and only
			-- the rows whose columns the model copies changed
			WHEN 'accounts' THEN
				'INSERT INTO dogdb_internal.support_changes (kind, account_id)
				 SELECT ''account'', r.account_id FROM %I r
				  WHERE NOT EXISTS (SELECT FROM support_new n, support_old o
									 WHERE n.account_id = r.account_id AND o.account_id = r.account_id
									   AND n.company_size IS NOT DISTINCT FROM o.company_size)'
			WHEN 'service_reps' THEN
				'INSERT INTO dogdb_internal.support_changes (kind, id)
				 SELECT ''rep'', r.rep_id FROM %I r
				  WHERE NOT EXISTS (SELECT FROM support_new n, support_old o
									 WHERE n.rep_id = r.rep_id AND o.rep_id = r.rep_id AND n.name = o.name)'
			ELSE
				'INSERT INTO dogdb_internal.support_changes (kind, id)
				 SELECT ''plan'', r.plan_id FROM %I r
				  WHERE NOT EXISTS (SELECT FROM support_new n, support_old o
									 WHERE n.plan_id = r.plan_id AND o.plan_id = r.plan_id AND n.name = o.name)'
			END, rel);
	END LOOP;
	RETURN NULL;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.support_track() IS 'Trigger: records the keys whose rows of dogdb.support_interactions the next refresh must recompute';
REVOKE ALL ON FUNCTION dogdb_internal.support_track() FROM PUBLIC;

-- statement triggers with transition tables: no per-row cost
DO $do$
DECLARE
	t record;
BEGIN
	FOR t IN SELECT * FROM (VALUES ('interactions', true), ('subscriptions', true), ('accounts', false),
								   ('service_reps', false), ('pricing_plans', false)) v(tab, all_ops)
	LOOP
		IF t.all_ops THEN
			EXECUTE format('CREATE TRIGGER support_track_insert AFTER INSERT ON dogdb.%I REFERENCING NEW TABLE AS support_new'
						   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track(%1$L)', t.tab);
			EXECUTE format('CREATE TRIGGER support_track_delete AFTER DELETE ON dogdb.%I REFERENCING OLD TABLE AS support_old'
						   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track(%1$L)', t.tab);
		END IF;
		EXECUTE format('CREATE TRIGGER support_track_update AFTER UPDATE ON dogdb.%I'
					   ' REFERENCING OLD TABLE AS support_old NEW TABLE AS support_new'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track(%1$L)', t.tab);
		EXECUTE format('CREATE TRIGGER support_track_truncate AFTER TRUNCATE ON dogdb.%I'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track(%1$L)', t.tab);
	END LOOP;
END
$do$;

-- The refresh step of dogdb_refresh_kpis(): recomputes the rows of the
-- keys recorded (all of them when rebuild is true or a rebuild was
-- recorded), and logs itself as the KPI 'support'.  Refreshes serialize on
-- an EXCLUSIVE lock on the model (readers are not blocked).  A change
-- committed while it runs is either consumed and seen, or left for the
-- next refresh (its rows are recomputed again: harmless).
-- VOLATILE: writes the model and the log
CREATE FUNCTION dogdb_internal.support_refresh(rebuild boolean) RETURNS boolean
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t0 timestamptz := clock_timestamp();
	full_rebuild boolean;
	ids bigint[];
	accts bigint[];
	reps integer[];
	plans smallint[];
	gone bigint[];
BEGIN
	LOCK TABLE dogdb.support_interactions IN EXCLUSIVE MODE;
	WITH c AS (DELETE FROM dogdb_internal.support_changes RETURNING kind, account_id, id)
	SELECT coalesce(bool_or(c.kind = 'all'), false),
		   array_agg(DISTINCT c.id) FILTER (WHERE c.kind = 'interaction'),
		   array_agg(DISTINCT c.account_id) FILTER (WHERE c.kind = 'account'),
		   array_agg(DISTINCT c.id::integer) FILTER (WHERE c.kind = 'rep'),
		   array_agg(DISTINCT c.id::smallint) FILTER (WHERE c.kind = 'plan')
	  INTO full_rebuild, ids, accts, reps, plans
	  FROM c;
	full_rebuild := full_rebuild OR rebuild;
	-- distributed on Citus, the sources have no change-tracking triggers
	-- (dogdb_distribute() removes them): every refresh rebuilds
	IF NOT full_rebuild AND pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
		   INTO full_rebuild USING 'dogdb.interactions'::regclass;
	END IF;
	IF full_rebuild THEN
		DELETE FROM dogdb.support_interactions;
		INSERT INTO dogdb.support_interactions SELECT * FROM dogdb_internal.support_source;
	ELSIF ids IS NOT NULL OR accts IS NOT NULL OR reps IS NOT NULL OR plans IS NOT NULL THEN
		-- the stored rows of the keys (an interaction id is unique, whichever
		-- account it had), then the rows the sources give them now; each
		-- condition has its index
		WITH d AS (
			DELETE FROM dogdb.support_interactions m
			 WHERE m.interaction_id = ANY (ids) OR m.account_id = ANY (accts)
				OR m.rep_id = ANY (reps) OR m.plan_id = ANY (plans)
			RETURNING m.interaction_id)
		SELECT array_agg(d.interaction_id) INTO gone FROM d;
		INSERT INTO dogdb.support_interactions
		SELECT * FROM dogdb_internal.support_source s
		 WHERE s.interaction_id = ANY (ids || gone) OR s.account_id = ANY (accts);
	END IF;
	INSERT INTO dogdb.kpi_refresh_log AS l (kpi, refreshed_at, full_rebuild, duration_ms)
	VALUES ('support', clock_timestamp(), full_rebuild, round(1000 * extract(epoch FROM clock_timestamp() - t0), 1))
	ON CONFLICT ON CONSTRAINT kpi_refresh_log_pkey DO UPDATE
	   SET refreshed_at = excluded.refreshed_at, full_rebuild = excluded.full_rebuild,
		   duration_ms = excluded.duration_ms;
	RETURN full_rebuild;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.support_refresh(boolean) IS 'Internal to dogdb_refresh_kpis(): brings dogdb.support_interactions up to date, incrementally unless rebuild is true or a rebuild was recorded; returns whether it rebuilt';
REVOKE ALL ON FUNCTION dogdb_internal.support_refresh(boolean) FROM PUBLIC;

-- Support KPIs per UTC month and segment, read from the model (and the
-- active accounts from the KPI engine's dogdb.kpi_usage).  STABLE: reads
-- the tables; SECURITY DEFINER like the other KPI reads (EXECUTE is all a
-- reader needs), so PARALLEL RESTRICTED.  A month's backlog counts the interactions open at its end.
CREATE FUNCTION dogdb_kpi_support(from_month date, to_month date, group_by text DEFAULT 'channel')
	RETURNS TABLE (month date, segment text, opened bigint, resolved bigint, open_backlog bigint,
				   median_resolution_hours numeric, p90_resolution_hours numeric,
				   active_accounts bigint, interactions_per_active_account numeric)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	g text := dogdb_internal.kpi_check_arguments(from_month, to_month, group_by,
												 ARRAY['channel', 'category', 'rep', 'tier', 'company_size', 'all']);
BEGIN
	RETURN QUERY
	WITH r AS (			-- the interactions that count in the months: open at some time in them
		SELECT CASE g WHEN 'channel' THEN x.channel WHEN 'category' THEN coalesce(x.category, '(none)')
					  WHEN 'rep' THEN coalesce(x.rep_name, '(none)') WHEN 'tier' THEN x.tier
					  WHEN 'company_size' THEN x.company_size ELSE 'all' END AS seg,
			   x.created_month, x.completed_month, x.resolution_hours
		  FROM dogdb.support_interactions x
		 WHERE x.created_month <= to_month AND (x.completed_month IS NULL OR x.completed_month >= from_month)
	), grid AS (
		SELECT s.seg, m::date AS month
		  FROM (SELECT DISTINCT r.seg FROM r) s,
			   generate_series(from_month::timestamp, to_month::timestamp, interval '1 month') m
	), opened AS (
		SELECT r.seg, r.created_month AS month, count(*) AS n FROM r WHERE r.created_month >= from_month GROUP BY 1, 2
	), resolved AS (
		SELECT r.seg, r.completed_month AS month, count(*) AS n,
			   percentile_cont(0.5) WITHIN GROUP (ORDER BY r.resolution_hours) AS med,
			   percentile_cont(0.9) WITHIN GROUP (ORDER BY r.resolution_hours) AS p90
		  FROM r WHERE r.completed_month <= to_month GROUP BY 1, 2
	), delta AS (		-- backlog changes: +1 when opened (from the first month on), -1 when resolved
		SELECT e.seg, e.month, sum(e.d) AS d
		  FROM (SELECT r.seg, greatest(r.created_month, from_month) AS month, 1 AS d FROM r
				UNION ALL
				SELECT r.seg, r.completed_month, -1 FROM r WHERE r.completed_month <= to_month) e
		 GROUP BY 1, 2
	), cells AS (
		SELECT gr.seg, gr.month, coalesce(o.n, 0) AS opened, coalesce(v.n, 0) AS resolved,
			   sum(coalesce(dl.d, 0)) OVER (PARTITION BY gr.seg ORDER BY gr.month) AS backlog, v.med, v.p90
		  FROM grid gr
		  LEFT JOIN opened o ON o.seg = gr.seg AND o.month = gr.month
		  LEFT JOIN resolved v ON v.seg = gr.seg AND v.month = gr.month
		  LEFT JOIN delta dl ON dl.seg = gr.seg AND dl.month = gr.month
	), act AS (			-- active accounts (a session in the month), by size or tier when those are the segments
		SELECT k.month, CASE g WHEN 'tier' THEN coalesce(p.name, 'none') WHEN 'company_size' THEN k.company_size END AS seg,
			   sum(k.active_accounts) AS n
		  FROM dogdb.kpi_usage k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
		 WHERE k.month BETWEEN from_month AND to_month
		 GROUP BY 1, 2
	)
	SELECT c.month, c.seg, c.opened, c.resolved, c.backlog::bigint,
		   round(c.med::numeric, 2), round(c.p90::numeric, 2),
		   coalesce(a.n, 0)::bigint, round(c.opened / nullif(a.n, 0), 4)
	  FROM cells c
	  LEFT JOIN act a ON a.month = c.month
					 AND a.seg IS NOT DISTINCT FROM CASE WHEN g IN ('tier', 'company_size') THEN c.seg END
	 WHERE c.opened > 0 OR c.resolved > 0 OR c.backlog > 0
	 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_support(date, date, text) IS 'Per UTC month and segment (group_by channel, category, rep, tier at the time of the interaction, company_size, or all; any letter case): interactions opened, resolved, open at the month end, median and 90th percentile hours to resolve (of those resolved in the month), active accounts (a session in the month, as the KPIs count them: of the segment''s size or tier, else all) and interactions opened per active account; months and segments with no interaction open in them are left out; read from dogdb.support_interactions as of the last dogdb_refresh_kpis()';
REVOKE ALL ON FUNCTION dogdb_kpi_support(date, date, text) FROM PUBLIC;

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
		UNION ALL
		SELECT 10, i.interaction_id::text
		  FROM dogdb.interactions i JOIN dogdb.service_reps r ON r.rep_id = i.rep_id
		 WHERE (i.created_at AT TIME ZONE 'UTC')::date < r.start_date
			OR (i.created_at AT TIME ZONE 'UTC')::date > r.end_date
		UNION ALL
		SELECT 11, i.interaction_id::text FROM dogdb.interactions i WHERE i.completed_at < i.created_at
		UNION ALL
		SELECT 12, i.interaction_id::text
		  FROM dogdb.interactions i
		 WHERE (i.status IN ('open', 'pending') AND i.completed_at IS NOT NULL)
			OR (i.status IN ('resolved', 'closed') AND i.completed_at IS NULL)
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
				   (9, 'rejects_in_quarantine', 'dogdb.import_rejects'),
				   (10, 'rep_outside_employment', 'dogdb.interactions'),
				   (11, 'completed_before_created', 'dogdb.interactions'),
				   (12, 'status_matches_completed_at', 'dogdb.interactions')) AS c (ord, check_name, relation)
	  LEFT JOIN failures f ON f.ord = c.ord
	 GROUP BY c.ord, c.check_name, c.relation
	 ORDER BY c.ord;
END;
COMMENT ON FUNCTION dogdb_check_data_quality() IS 'Data-quality report: one row per check with the number of failing rows and up to five sample keys (for interactions: status not open, pending, resolved or closed; rep_outside_employment: created on a UTC date outside the rep''s start_date..end_date; completed_before_created; status_matches_completed_at: open or pending with completed_at, resolved or closed without)';

CREATE OR REPLACE FUNCTION dogdb_refresh_kpis(rebuild boolean DEFAULT false)
	RETURNS TABLE (kpi text, refreshed_at timestamptz, full_rebuild boolean, duration_ms numeric)
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	t0 timestamptz := clock_timestamp();
	u record;
BEGIN
	SELECT * INTO u FROM dogdb_internal.kpi_update_facts(rebuild);
	-- a view whose facts did not change is already up to date
	IF u.retention_changed OR rebuild THEN
		REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_retention;
	END IF;
	IF u.usage_changed OR rebuild THEN
		REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_usage;
	END IF;
	IF u.revenue_changed OR rebuild THEN
		REFRESH MATERIALIZED VIEW CONCURRENTLY dogdb.kpi_revenue;
	END IF;
	PERFORM dogdb_internal.support_refresh(rebuild);	-- the support model, a step of its own (logs itself)
	INSERT INTO dogdb.kpi_refresh_log AS l (kpi, refreshed_at, full_rebuild, duration_ms)
	SELECT k, clock_timestamp(), u.rebuilt, round(1000 * extract(epoch FROM clock_timestamp() - t0), 1)
	  FROM unnest(ARRAY['retention', 'usage', 'revenue']) k
	ON CONFLICT ON CONSTRAINT kpi_refresh_log_pkey DO UPDATE
	   SET refreshed_at = excluded.refreshed_at, full_rebuild = excluded.full_rebuild,
		   duration_ms = excluded.duration_ms;
	RETURN QUERY SELECT l.kpi, l.refreshed_at, l.full_rebuild, l.duration_ms FROM dogdb.kpi_refresh_log l ORDER BY 1;
END
$fn$;

--
-- [hbi] least-privilege roles, engine internals out of sight, browsable KPI
-- views, comments, clearer KPI errors (sql/dogdb_analytics.sql has each
-- object where it belongs; here in the order the update needs)
--

-- internals to dogdb_internal
ALTER TABLE dogdb.deleted_seed_rows SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.is_pristine_seed(smallint, text, bigint, date) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.keep_seed_rows() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.restore_seed_deletion() SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.check_month(date, text) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.funnel_check_arguments(text[], timestamptz, timestamptz, interval, text, text[], text) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.funnel_check_arguments(text[], timestamptz, timestamptz, interval, text, text[], text, text) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.funnel_visitors(text[], timestamptz, timestamptz, interval, text, text[], text) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.demo_web_events(integer, timestamptz, integer, bigint) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.stripe_mrr_movement_totals(date, date) SET SCHEMA dogdb_internal;
ALTER FUNCTION dogdb.stripe_check_months(date, date) SET SCHEMA dogdb_internal;
REVOKE ALL ON FUNCTION dogdb_internal.stripe_mrr_movement_totals(date, date),
	dogdb_internal.stripe_check_months(date, date) FROM dogdb_reader;
DROP FUNCTION dogdb.kpi_check_arguments(date, date, text);
DROP FUNCTION dogdb.kpi_segment(text, text, text);
-- the web event loader itself, behind the new dogdb_load_web_events() below
ALTER FUNCTION @extschema@.dogdb_load_web_events(regclass) RENAME TO load_web_events;
ALTER FUNCTION @extschema@.load_web_events(regclass) SET SCHEMA dogdb_internal;
COMMENT ON FUNCTION dogdb_internal.load_web_events(regclass) IS 'Internal to dogdb_load_web_events() and the demo: the loader, without the check of the caller';

-- PL/pgSQL bodies name what they call as text: the same bodies with the
-- new names
DO $do$
DECLARE
	f regprocedure;
	def text;
	n text;
BEGIN
	FOREACH f IN ARRAY ARRAY['dogdb_internal.keep_seed_rows()', 'dogdb_internal.restore_seed_deletion()',
		'dogdb_internal.funnel_visitors(text[], timestamptz, timestamptz, interval, text, text[], text)',
		'@extschema@.dogdb_funnel_report(text[], timestamptz, timestamptz, interval, text, text, text[])',
		'@extschema@.dogdb_funnel_trend(text[], timestamptz, timestamptz, interval, text, text, text)',
		'dogdb_internal.stripe_check_months(date, date)', '@extschema@.dogdb_cohort_retention(date, date, text)',
		'@extschema@.dogdb_generate_demo_web_events(integer, timestamptz, integer, bigint)']::regprocedure[] LOOP
		def := pg_catalog.pg_get_functiondef(f);
		FOREACH n IN ARRAY ARRAY['deleted_seed_rows', 'is_pristine_seed', 'check_month', 'funnel_check_arguments',
								 'funnel_visitors', 'demo_web_events', 'stripe_check_months'] LOOP
			def := pg_catalog.replace(def, 'dogdb.' || n, 'dogdb_internal.' || n);
		END LOOP;
		def := pg_catalog.replace(def, '@extschema@.dogdb_load_web_events(', 'dogdb_internal.load_web_events(');
		EXECUTE def;
	END LOOP;
END
$do$;
COMMENT ON TABLE dogdb_internal.deleted_seed_rows IS 'Seeded plans (effective_from -infinity) and seeded prices that were deleted, so that a restore deletes them again; kept by the extension''s triggers';
COMMENT ON FUNCTION dogdb_internal.keep_seed_rows() IS 'Trigger: keeps seeded plans and prices exact across pg_dump and restore (see dogdb_internal.deleted_seed_rows)';
COMMENT ON FUNCTION dogdb_internal.restore_seed_deletion() IS 'Trigger: a restored row of dogdb_internal.deleted_seed_rows deletes the seeded row again';

-- the KPI functions: arguments named in the message, group_by case-insensitive,
-- SECURITY DEFINER
-- the arguments of the KPI functions: 22023 naming the allowed values
-- unless valid.  Returns group_by in lower case: it is case-insensitive
-- ('Tier' is 'tier').
CREATE FUNCTION dogdb_internal.kpi_check_arguments(from_month date, to_month date, group_by text,
	allowed text[] DEFAULT ARRAY['company_size', 'tier', 'all']) RETURNS text
	LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	g text := lower(btrim(group_by));
	n integer := cardinality(allowed);
BEGIN
	IF g IS NULL OR NOT g = ANY (allowed) THEN
		RAISE EXCEPTION 'unknown KPI grouping %: group_by must be %', coalesce(quote_literal(group_by), 'NULL'),
			(SELECT string_agg(quote_literal(a), ', ' ORDER BY o) FROM unnest(allowed[1:n - 1]) WITH ORDINALITY u(a, o))
			|| ' or ' || quote_literal(allowed[n])
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'group_by is case-insensitive; ''all'' gives one segment named ''all''.';
	END IF;
	PERFORM dogdb_internal.check_month(from_month, 'from_month');
	PERFORM dogdb_internal.check_month(to_month, 'to_month');
	IF from_month > to_month THEN
		RAISE EXCEPTION 'KPI month range is reversed: from % to %', from_month, to_month
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'from_month must be on or before to_month; both are included.';
	END IF;
	RETURN g;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.kpi_check_arguments(date, date, text, text[]) IS 'Internal to the dogdb_kpi_* functions: validates their arguments (group_by one of allowed, case-insensitive) and returns group_by in lower case';

-- the segment of a KPI row under a grouping
CREATE FUNCTION dogdb_internal.kpi_segment(group_by text, company_size text, tier text) RETURNS text
	LANGUAGE sql IMMUTABLE PARALLEL SAFE
	RETURN CASE group_by WHEN 'company_size' THEN company_size WHEN 'tier' THEN tier ELSE 'all' END;
COMMENT ON FUNCTION dogdb_internal.kpi_segment(text, text, text) IS 'Internal to the dogdb_kpi_* functions: the segment label of a row';

-- The KPI functions: STABLE, they read the materialized views and the
-- plan names (a tier is the name of the plan now, 'none' without one).
-- SECURITY DEFINER, so that EXECUTE (granted to dogdb_reader) is all a
-- caller needs: they read only the published views and call the internal
-- helpers of dogdb_internal, which is granted to no one.  They take no
-- object names, pin search_path and qualify every object.  PARALLEL
-- RESTRICTED: a parallel worker may not set search_path.
CREATE OR REPLACE FUNCTION dogdb_kpi_retention(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, active_accounts bigint, churned_accounts bigint)
	LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	g text := dogdb_internal.kpi_check_arguments(from_month, to_month, group_by);
BEGIN
	RETURN QUERY
	SELECT k.month, dogdb_internal.kpi_segment(g, k.company_size, coalesce(p.name, 'none')),
		   sum(k.active_accounts)::bigint, sum(k.churned_accounts)::bigint
	  FROM dogdb.kpi_retention k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_retention(date, date, text) IS 'Per UTC month and segment (group_by ''company_size'', ''tier'' or ''all'', case-insensitive): active accounts (at least one session in the month) and churned accounts (whose churn month it is: the first month from their first month on without a session)';

CREATE OR REPLACE FUNCTION dogdb_kpi_usage(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, active_accounts bigint, sessions bigint, avg_sessions numeric)
	LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	g text := dogdb_internal.kpi_check_arguments(from_month, to_month, group_by);
BEGIN
	RETURN QUERY
	SELECT k.month, dogdb_internal.kpi_segment(g, k.company_size, coalesce(p.name, 'none')),
		   sum(k.active_accounts)::bigint, sum(k.sessions)::bigint,
		   round(sum(k.sessions) / nullif(sum(k.active_accounts), 0), 2)
	  FROM dogdb.kpi_usage k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_usage(date, date, text) IS 'Per UTC month and segment: active accounts, sessions, and sessions per active account (2 decimals)';

CREATE OR REPLACE FUNCTION dogdb_kpi_revenue(from_month date, to_month date, group_by text DEFAULT 'company_size')
	RETURNS TABLE (month date, segment text, revenue_cents bigint)
	LANGUAGE plpgsql STABLE PARALLEL RESTRICTED SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	g text := dogdb_internal.kpi_check_arguments(from_month, to_month, group_by);
BEGIN
	RETURN QUERY
	SELECT k.month, dogdb_internal.kpi_segment(g, k.company_size, coalesce(p.name, 'none')),
		   sum(k.revenue_cents)::bigint
	  FROM dogdb.kpi_revenue k LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 WHERE k.month BETWEEN from_month AND to_month
	 GROUP BY 1, 2 ORDER BY 1, 2;
END
$fn$;
COMMENT ON FUNCTION dogdb_kpi_revenue(date, date, text) IS 'Per UTC month and segment: the billable amount in cents (USD) by the invoice rules (equals the month''s invoice totals once they are issued)';
REVOKE ALL ON FUNCTION dogdb_kpi_retention(date, date, text), dogdb_kpi_usage(date, date, text),
	dogdb_kpi_revenue(date, date, text) FROM PUBLIC;

-- A staging table a SECURITY DEFINER loader may read for its caller: an
-- ordinary table (a view or foreign table would run code of its owner's,
-- as the extension's owner), whose columns are all of built-in types (a
-- cast of a user's type could run the user's code, as the extension's
-- owner), that the caller may read.  The caller is the role in effect
-- outside the function: the SET ROLE, else the session user.  STABLE:
-- reads the catalogs; PARALLEL RESTRICTED: it pins search_path.
CREATE FUNCTION dogdb_internal.check_source(source regclass) RETURNS void
	LANGUAGE plpgsql STABLE PARALLEL RESTRICTED
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	caller name := coalesce(nullif(current_setting('role'), 'none'), session_user);
BEGIN
	IF source IS NULL THEN
		RAISE EXCEPTION 'source must be a staging table, not NULL'
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'COPY the rows into a staging table (a temporary table will do) and pass it.';
	END IF;
	IF (SELECT c.relkind FROM pg_class c WHERE c.oid = source) NOT IN ('r', 'p') THEN
		RAISE EXCEPTION 'source must be an ordinary table, not %', source
			USING ERRCODE = 'wrong_object_type',
				  HINT = 'COPY the rows into a staging table (a temporary table will do) and pass it.';
	END IF;
	IF EXISTS (SELECT FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
				WHERE a.attrelid = source AND a.attnum > 0 AND NOT a.attisdropped
				  AND t.typnamespace <> 'pg_catalog'::regnamespace) THEN
		RAISE EXCEPTION 'the columns of % must have built-in types', source
			USING ERRCODE = 'datatype_mismatch',
				  HINT = 'Use the types of the target table''s columns (text, bigint, timestamptz, jsonb).';
	END IF;
	IF NOT has_table_privilege(caller, source, 'SELECT') THEN
		RAISE EXCEPTION 'permission denied for table %', source
			USING ERRCODE = 'insufficient_privilege',
				  DETAIL = format('The loader reads the staging table for role %s, which may not read it.', caller),
				  HINT = 'Load from a table the role may read, such as a temporary table it created.';
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.check_source(regclass) IS 'Internal to the SECURITY DEFINER loaders: refuses a staging table that is not an ordinary table of built-in column types readable by the calling role';

-- The loader dogdb_ingest runs.  SECURITY DEFINER, so that EXECUTE is all
-- a role needs (no read of dogdb.web_events, no lock privilege); it reads
-- the staging table as its owner, so it checks first that the caller may.
-- VOLATILE, PARALLEL UNSAFE: writes web_events and import_rejects.
CREATE OR REPLACE FUNCTION dogdb_load_web_events(source regclass, OUT loaded bigint, OUT duplicates bigint, OUT rejected bigint)
	RETURNS record
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF source IS NOT NULL AND source <> 'dogdb.web_events'::regclass AND source <> 'dogdb.import_rejects'::regclass THEN
		PERFORM dogdb_internal.check_source(source);
	END IF;
	SELECT l.loaded, l.duplicates, l.rejected INTO loaded, duplicates, rejected
	  FROM dogdb_internal.load_web_events(source) l;
END
$fn$;
COMMENT ON FUNCTION dogdb_load_web_events(regclass) IS 'Load web events from a staging table (an ordinary table the caller may read): each (visitor, event id) stored once (later copies count as duplicates), malformed rows to dogdb.import_rejects with the reason; returns the counts. Runs as the extension''s owner: a role needs only EXECUTE (granted to dogdb_ingest)';
REVOKE ALL ON FUNCTION dogdb_load_web_events(regclass) FROM PUBLIC;

-- The session loader dogdb_ingest runs, the same way: SECURITY DEFINER,
-- the staging table checked for the caller.  VOLATILE: writes sessions.
CREATE FUNCTION dogdb_load_sessions(source regclass, OUT loaded bigint)
	RETURNS bigint
	LANGUAGE plpgsql VOLATILE CALLED ON NULL INPUT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb_internal.check_source(source);
	EXECUTE format('INSERT INTO dogdb.sessions (account_id, created_at) SELECT s.account_id, s.created_at FROM %s s', source);
	GET DIAGNOSTICS loaded = ROW_COUNT;
END
$fn$;
COMMENT ON FUNCTION dogdb_load_sessions(regclass) IS 'Load usage sessions from a staging table (an ordinary table the caller may read, with columns account_id bigint and created_at timestamptz); returns the number loaded. Runs as the extension''s owner: a role needs only EXECUTE (granted to dogdb_ingest)';
REVOKE ALL ON FUNCTION dogdb_load_sessions(regclass) FROM PUBLIC;

--
-- Browsable KPI views: plain views (relkind 'v') that query builders and
-- JDBC getTables({TABLE, VIEW}) list, over the published materialized
-- views; dogdb_reader may read them.
--

-- How far the KPIs are complete.  A month is complete when it ended before
-- the last refresh and is not after the newest month with sessions (months
-- after the newest data would otherwise show every account as churned).
CREATE VIEW dogdb.kpi_data_through AS
	SELECT ((least(date_trunc('month', r.refreshed_at AT TIME ZONE 'UTC'),
				   d.newest_month + interval '1 month')) AT TIME ZONE 'UTC') AS data_through,
		   d.newest_month, r.refreshed_at
	  FROM (SELECT max(u.month) AS newest_month FROM dogdb.kpi_usage u WHERE u.sessions > 0) d,
		   (SELECT min(l.refreshed_at) AS refreshed_at FROM dogdb.kpi_refresh_log l
			 WHERE l.kpi IN ('retention', 'usage', 'revenue')) r;

-- One row per UTC month, company size and tier: retention, usage and revenue
CREATE VIEW dogdb.kpi_monthly AS
	SELECT k.month, to_char(k.month, 'YYYY-MM') AS month_label, k.company_size,
		   coalesce(p.name, 'none') AS tier,
		   max(k.active_accounts)::bigint AS active_accounts,
		   sum(k.churned_accounts)::bigint AS churned_accounts,
		   sum(k.sessions)::bigint AS sessions,
		   round(sum(k.sessions)::numeric / nullif(max(k.active_accounts), 0), 2)::numeric(10,2) AS avg_sessions,
		   sum(k.revenue_cents)::bigint AS revenue_cents,
		   (sum(k.revenue_cents) / 100.0)::numeric(20,2) AS revenue,
		   'USD'::text AS currency,
		   coalesce(k.month + interval '1 month' <= (d.data_through AT TIME ZONE 'UTC'), false) AS is_complete
	  FROM (SELECT r.month, r.company_size, r.plan_id, r.active_accounts, r.churned_accounts,
				   0::bigint AS sessions, 0::bigint AS revenue_cents
			  FROM dogdb.kpi_retention r
			UNION ALL
			SELECT u.month, u.company_size, u.plan_id, u.active_accounts, 0, u.sessions, 0 FROM dogdb.kpi_usage u
			UNION ALL
			SELECT v.month, v.company_size, v.plan_id, 0, 0, 0, v.revenue_cents FROM dogdb.kpi_revenue v) k
	  LEFT JOIN dogdb.pricing_plans p ON p.plan_id = k.plan_id
	 CROSS JOIN dogdb.kpi_data_through d
	 GROUP BY k.month, k.company_size, k.plan_id, p.name, d.data_through;

-- The support model by month for query builders (a plain view): per UTC
-- month, channel, category, tier at the time and company size, the
-- interactions opened, resolved and open at the month end, and their
-- resolution hours.  Counts add up across rows; percentiles do not, so
-- they stay in dogdb_kpi_support().
CREATE VIEW dogdb.support_monthly AS
	SELECT m.month, to_char(m.month, 'YYYY-MM') AS month_label, x.channel,
		   coalesce(x.category, '(none)') AS category, x.tier, x.company_size,
		   count(*) FILTER (WHERE x.created_month = m.month) AS opened,
		   count(*) FILTER (WHERE x.completed_month = m.month) AS resolved,
		   count(*) FILTER (WHERE x.completed_month IS NULL OR x.completed_month > m.month) AS open_backlog,
		   round(sum(x.resolution_hours) FILTER (WHERE x.completed_month = m.month)::numeric, 2)::numeric(20,2)
			   AS resolution_hours_sum,
		   coalesce(m.month + interval '1 month' <= (d.data_through AT TIME ZONE 'UTC'), false) AS is_complete
	  FROM (SELECT g::date AS month
			  FROM (SELECT min(s.created_month) AS lo,
						   greatest(max(s.created_month), max(s.completed_month)) AS hi
					  FROM dogdb.support_interactions s) b,
				   generate_series(b.lo::timestamp, b.hi::timestamp, interval '1 month') g) m
	  JOIN dogdb.support_interactions x
		ON x.created_month <= m.month AND (x.completed_month IS NULL OR x.completed_month >= m.month)
	 CROSS JOIN dogdb.kpi_data_through d
	 GROUP BY m.month, x.channel, coalesce(x.category, '(none)'), x.tier, x.company_size, d.data_through;
COMMENT ON VIEW dogdb.support_monthly IS 'Support interactions per UTC month, channel, category, tier at the time and company size, for query builders: opened, resolved and open at the month end (they add up across rows); medians and percentiles: dogdb_kpi_support()';
COMMENT ON COLUMN dogdb.support_monthly.month IS 'The UTC month (its first day)';
COMMENT ON COLUMN dogdb.support_monthly.month_label IS 'The month as YYYY-MM';
COMMENT ON COLUMN dogdb.support_monthly.channel IS 'The channel of the interactions';
COMMENT ON COLUMN dogdb.support_monthly.category IS 'Their category, (none) if not recorded';
COMMENT ON COLUMN dogdb.support_monthly.tier IS 'The plan name the account was on when the interaction was created, none without a plan';
COMMENT ON COLUMN dogdb.support_monthly.company_size IS 'The account''s company size: small, large or unknown';
COMMENT ON COLUMN dogdb.support_monthly.opened IS 'Interactions created in the month';
COMMENT ON COLUMN dogdb.support_monthly.resolved IS 'Interactions completed in the month';
COMMENT ON COLUMN dogdb.support_monthly.open_backlog IS 'Interactions open at the end of the month (created by then, not completed in or before it)';
COMMENT ON COLUMN dogdb.support_monthly.resolution_hours_sum IS 'Sum of the resolution hours of the interactions completed in the month (divide by resolved for the mean)';
COMMENT ON COLUMN dogdb.support_monthly.is_complete IS 'false for months not complete: not ended at the last KPI refresh';

-- [hbi] comments: what every column holds (BI tools show them as REMARKS).
-- Times are timestamptz; a month is a UTC calendar month, given as its
-- first day; money is integer cents.
COMMENT ON COLUMN dogdb.pricing_plans.plan_id IS 'The plan (tier) id';
COMMENT ON COLUMN dogdb.pricing_plans.name IS 'The plan''s name, lower case: the tier name KPIs report (free, medium, enterprise)';
COMMENT ON COLUMN dogdb.plan_prices.plan_id IS 'The plan this price is for';
COMMENT ON COLUMN dogdb.plan_prices.monthly_price_cents IS 'Price of a whole month on the plan, in cents (USD)';
COMMENT ON COLUMN dogdb.plan_prices.effective_from IS 'First day the price holds; it holds until the plan''s next price';
COMMENT ON COLUMN dogdb.accounts.account_id IS 'The customer account';
COMMENT ON COLUMN dogdb.accounts.email IS 'Contact email (unique, case-insensitively, when clean; see dogdb_check_data_quality())';
COMMENT ON COLUMN dogdb.accounts.company_size IS 'small or large; the company_size segment of the KPIs';
COMMENT ON COLUMN dogdb.accounts.created_at IS 'When the account was created; its UTC month is the account''s first KPI month';
COMMENT ON COLUMN dogdb.accounts.updated_at IS 'When the account was last changed at the source, if known';
COMMENT ON COLUMN dogdb.subscriptions.subscription_id IS 'The subscription period';
COMMENT ON COLUMN dogdb.subscriptions.account_id IS 'The subscribing account';
COMMENT ON COLUMN dogdb.subscriptions.plan_id IS 'The plan (tier) subscribed to';
COMMENT ON COLUMN dogdb.subscriptions.valid_from IS 'Start of the period (included)';
COMMENT ON COLUMN dogdb.subscriptions.valid_to IS 'End of the period (excluded); NULL = still running';
COMMENT ON COLUMN dogdb.interactions.interaction_id IS 'The support interaction';
COMMENT ON COLUMN dogdb.interactions.account_id IS 'The customer account the interaction is with';
COMMENT ON COLUMN dogdb.interactions.rep_id IS 'The representative who handled it; NULL if unknown';
COMMENT ON COLUMN dogdb.interactions.channel IS 'Contact channel, such as email, phone or chat';
COMMENT ON COLUMN dogdb.interactions.category IS 'Topic of the interaction, if classified';
COMMENT ON COLUMN dogdb.interactions.status IS 'open, pending, resolved or closed';
COMMENT ON COLUMN dogdb.interactions.created_at IS 'When the interaction was opened';
COMMENT ON COLUMN dogdb.interactions.completed_at IS 'When it was completed; NULL while open';
COMMENT ON COLUMN dogdb.licenses.license_id IS 'The license id, from the license blob';
COMMENT ON COLUMN dogdb.licenses.account_id IS 'The account holding the license';
COMMENT ON COLUMN dogdb.licenses.role IS 'The role the license grants, from the license blob';
COMMENT ON COLUMN dogdb.licenses.status IS 'active, inactive, suspended, expired or revoked (from the license blob)';
COMMENT ON COLUMN dogdb.licenses.created_at IS 'When the license was created';
COMMENT ON COLUMN dogdb.licenses.updated_at IS 'When the license was last changed, if known';
COMMENT ON COLUMN dogdb.sessions.session_id IS 'The usage session';
COMMENT ON COLUMN dogdb.sessions.account_id IS 'The account that used the product';
COMMENT ON COLUMN dogdb.sessions.created_at IS 'When the session started; an account is active in the UTC month of any of its sessions';
COMMENT ON COLUMN dogdb.import_rejects.reject_id IS 'The quarantined row';
COMMENT ON COLUMN dogdb.import_rejects.source_table IS 'The legacy table (or loader) the row came from';
COMMENT ON COLUMN dogdb.import_rejects.source_row IS 'The whole source row, as JSON';
COMMENT ON COLUMN dogdb.import_rejects.reason IS 'Why the row was not imported';
COMMENT ON COLUMN dogdb.import_rejects.rejected_at IS 'When the row was quarantined';

-- [hbi] comments: the invoice columns (money in cents, months as their first day)
COMMENT ON COLUMN dogdb.invoices.invoice_id IS 'The invoice';
COMMENT ON COLUMN dogdb.invoices.account_id IS 'The billed account';
COMMENT ON COLUMN dogdb.invoices.period_start IS 'The billing month: first day of the UTC month billed';
COMMENT ON COLUMN dogdb.invoices.total_cents IS 'Invoice total in cents (sum of its lines'' amount_cents)';
COMMENT ON COLUMN dogdb.invoices.currency IS 'ISO 4217 currency code of the amounts (USD)';
COMMENT ON COLUMN dogdb.invoices.issued_at IS 'When the invoice was issued';
COMMENT ON COLUMN dogdb.invoice_lines.invoice_id IS 'The invoice the line belongs to';
COMMENT ON COLUMN dogdb.invoice_lines.line_no IS 'Line number within the invoice, from 1';
COMMENT ON COLUMN dogdb.invoice_lines.plan_id IS 'The plan billed on this line';
COMMENT ON COLUMN dogdb.invoice_lines.line_start IS 'First day billed (included)';
COMMENT ON COLUMN dogdb.invoice_lines.line_end IS 'Last day billed (included)';
COMMENT ON COLUMN dogdb.invoice_lines.days IS 'Days billed: line_end - line_start + 1';
COMMENT ON COLUMN dogdb.invoice_lines.unit_price_cents IS 'The plan''s monthly price in cents on these days';
COMMENT ON COLUMN dogdb.invoice_lines.amount_cents IS 'Amount in cents: round(unit_price_cents * days / days in the month)';
COMMENT ON COLUMN dogdb.invoice_number_counters.year IS 'The year of the billing periods numbered';
COMMENT ON COLUMN dogdb.invoice_number_counters.last_number IS 'The last invoice number issued for that year';

-- [hbi] comments: the KPI views.  Active: an account with at least one
-- session in the UTC month.  Churned: an account whose churn month it is,
-- the first month from its first month (the UTC month of created_at) on
-- in which it has no session.
COMMENT ON COLUMN dogdb.kpi_retention.month IS 'The UTC month (its first day)';
COMMENT ON COLUMN dogdb.kpi_retention.company_size IS 'The accounts'' company size: small, large or none';
COMMENT ON COLUMN dogdb.kpi_retention.plan_id IS 'The tier: the plan (dogdb.pricing_plans) the accounts were on in the month, NULL for none';
COMMENT ON COLUMN dogdb.kpi_retention.active_accounts IS 'Accounts with at least one session in the month';
COMMENT ON COLUMN dogdb.kpi_retention.churned_accounts IS 'Accounts whose churn month it is (the first month from their first month on without a session)';
COMMENT ON COLUMN dogdb.kpi_usage.month IS 'The UTC month (its first day)';
COMMENT ON COLUMN dogdb.kpi_usage.company_size IS 'The accounts'' company size: small, large or none';
COMMENT ON COLUMN dogdb.kpi_usage.plan_id IS 'The tier: the plan (dogdb.pricing_plans) the accounts were on in the month, NULL for none';
COMMENT ON COLUMN dogdb.kpi_usage.active_accounts IS 'Accounts with at least one session in the month';
COMMENT ON COLUMN dogdb.kpi_usage.sessions IS 'Sessions in the month';
COMMENT ON COLUMN dogdb.kpi_revenue.month IS 'The UTC month (its first day)';
COMMENT ON COLUMN dogdb.kpi_revenue.company_size IS 'The accounts'' company size: small, large or none';
COMMENT ON COLUMN dogdb.kpi_revenue.plan_id IS 'The tier: the plan (dogdb.pricing_plans) billed, NULL for none';
COMMENT ON COLUMN dogdb.kpi_revenue.revenue_cents IS 'Billable amount in cents (USD) by the invoice rules: the month''s invoice totals once issued';
COMMENT ON COLUMN dogdb.kpi_refresh_log.kpi IS 'The KPI view: retention, usage or revenue';
COMMENT ON COLUMN dogdb.kpi_refresh_log.refreshed_at IS 'When dogdb_refresh_kpis() last brought it up to date';
COMMENT ON COLUMN dogdb.kpi_refresh_log.full_rebuild IS 'Whether that refresh rebuilt everything rather than the months that changed';
COMMENT ON COLUMN dogdb.kpi_refresh_log.duration_ms IS 'How long that refresh took, in milliseconds';
COMMENT ON VIEW dogdb.kpi_data_through IS 'How far the KPIs are complete (one row): a UTC month is complete when it ended before the last refresh and is not after the newest month with sessions';
COMMENT ON COLUMN dogdb.kpi_data_through.data_through IS 'The KPIs are complete up to this time (excluded): the start of the first incomplete UTC month';
COMMENT ON COLUMN dogdb.kpi_data_through.newest_month IS 'The newest UTC month with sessions, as of the last refresh';
COMMENT ON COLUMN dogdb.kpi_data_through.refreshed_at IS 'When the KPI views were last refreshed (the oldest of the three); NULL if never';
COMMENT ON VIEW dogdb.kpi_monthly IS 'Retention, usage and revenue per UTC month, company size and tier, one row each, for query builders (the dogdb_kpi_* functions give the same figures by segment); filter on is_complete for charts';
COMMENT ON COLUMN dogdb.kpi_monthly.month IS 'The UTC month (its first day)';
COMMENT ON COLUMN dogdb.kpi_monthly.month_label IS 'The month as YYYY-MM';
COMMENT ON COLUMN dogdb.kpi_monthly.company_size IS 'The accounts'' company size: small, large or none';
COMMENT ON COLUMN dogdb.kpi_monthly.tier IS 'The plan name the accounts were on in the month (its name now), or none';
COMMENT ON COLUMN dogdb.kpi_monthly.active_accounts IS 'Active accounts: at least one session in the month';
COMMENT ON COLUMN dogdb.kpi_monthly.churned_accounts IS 'Churned accounts: whose churn month it is, the first month from their first month (of created_at) on without a session';
COMMENT ON COLUMN dogdb.kpi_monthly.sessions IS 'Sessions in the month';
COMMENT ON COLUMN dogdb.kpi_monthly.avg_sessions IS 'Sessions per active account, 2 decimals; NULL without active accounts';
COMMENT ON COLUMN dogdb.kpi_monthly.revenue_cents IS 'Billable amount in cents by the invoice rules';
COMMENT ON COLUMN dogdb.kpi_monthly.revenue IS 'Billable amount in currency units (revenue_cents / 100)';
COMMENT ON COLUMN dogdb.kpi_monthly.currency IS 'ISO 4217 currency of revenue and revenue_cents (USD)';
COMMENT ON COLUMN dogdb.kpi_monthly.is_complete IS 'false for months not complete: not ended at the last refresh (the current month), or after the newest month with sessions (every account would show as churned)';

-- [hbi] comments: the web event columns not described above
COMMENT ON COLUMN dogdb.web_events.event_id IS 'The tracker''s event id (unique per visitor)';
COMMENT ON COLUMN dogdb.web_events.occurred_at IS 'When the event happened, by the tracker''s clock';
COMMENT ON COLUMN dogdb.web_events.page_path IS 'The page''s path (starting with /) for page_view and page_ping';
COMMENT ON COLUMN dogdb.web_events.referrer IS 'The referring URL, if any';
COMMENT ON COLUMN dogdb.web_events.campaign IS 'The marketing campaign, if any';
COMMENT ON COLUMN dogdb.web_events.properties IS 'Further event properties (a JSON object; funnels break down by properties.<key>)';

-- [hbi] comments: the Stripe columns not described above.  Amounts are
-- integer cents (the currency's minor unit) with their currency.
DO $do$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['stripe_customers', 'stripe_subscriptions', 'stripe_subscription_versions',
							 'stripe_invoices', 'stripe_payments', 'stripe_refunds'] LOOP
		EXECUTE pg_catalog.format('COMMENT ON COLUMN dogdb.%I.account_id IS %L', t,
			'The DogDB account (dogdb.stripe_customer_accounts maps the Stripe customer); the distribution key');
		EXECUTE pg_catalog.format('COMMENT ON COLUMN dogdb.%I.event_id IS %L', t, 'The Stripe event this row is as of');
		EXECUTE pg_catalog.format('COMMENT ON COLUMN dogdb.%I.event_created IS %L', t, 'When Stripe created that event');
		EXECUTE pg_catalog.format('COMMENT ON COLUMN dogdb.%I.event_rank IS %L', t,
			'Rank of the event type among events of the same second (README "Ordering rules")');
		EXECUTE pg_catalog.format('COMMENT ON COLUMN dogdb.%I.event_arrival IS %L', t,
			'Arrival order of that event in the ledger (dogdb.stripe_events.arrival)');
	END LOOP;
END
$do$;
COMMENT ON COLUMN dogdb.stripe_webhook_secrets.secret IS 'An endpoint signing secret (whsec_...)';
COMMENT ON COLUMN dogdb.stripe_webhook_secrets.note IS 'Free text: which endpoint, why';
COMMENT ON COLUMN dogdb.stripe_webhook_secrets.added_at IS 'When the secret was added';
COMMENT ON COLUMN dogdb.stripe_events.event_id IS 'The Stripe event id (evt_...): each event is taken once';
COMMENT ON COLUMN dogdb.stripe_events.event_type IS 'The Stripe event type, such as invoice.paid';
COMMENT ON COLUMN dogdb.stripe_events.object_id IS 'The id of the event''s object (customer, subscription, invoice, charge or refund)';
COMMENT ON COLUMN dogdb.stripe_events.created IS 'When Stripe created the event';
COMMENT ON COLUMN dogdb.stripe_events.received_at IS 'When the event was taken into the ledger';
COMMENT ON COLUMN dogdb.stripe_customer_accounts.customer_id IS 'The Stripe customer id (cus_...)';
COMMENT ON COLUMN dogdb.stripe_customer_accounts.account_id IS 'The DogDB account it is';
COMMENT ON COLUMN dogdb.stripe_customer_accounts.source IS 'metadata (from the customer''s metadata.account_id) or manual';
COMMENT ON COLUMN dogdb.stripe_customers.customer_id IS 'The Stripe customer id (cus_...)';
COMMENT ON COLUMN dogdb.stripe_customers.email IS 'The customer''s email at Stripe';
COMMENT ON COLUMN dogdb.stripe_customers.deleted IS 'Whether the customer was deleted at Stripe';
COMMENT ON COLUMN dogdb.stripe_customers.created_at IS 'When the customer was created at Stripe';
COMMENT ON COLUMN dogdb.stripe_subscriptions.subscription_id IS 'The Stripe subscription id (sub_...)';
COMMENT ON COLUMN dogdb.stripe_subscriptions.customer_id IS 'The Stripe customer id';
COMMENT ON COLUMN dogdb.stripe_subscriptions.status IS 'Stripe status: active, past_due, canceled, trialing, incomplete, ...';
COMMENT ON COLUMN dogdb.stripe_subscriptions.currency IS 'Currency of the amounts (lower-case ISO 4217, as Stripe gives it)';
COMMENT ON COLUMN dogdb.stripe_subscriptions.price_id IS 'The first item''s Stripe price id';
COMMENT ON COLUMN dogdb.stripe_subscriptions.quantity IS 'The first item''s quantity';
COMMENT ON COLUMN dogdb.stripe_subscriptions."interval" IS 'The first item''s billing interval: day, week, month or year';
COMMENT ON COLUMN dogdb.stripe_subscriptions.interval_count IS 'Intervals per billing period';
COMMENT ON COLUMN dogdb.stripe_subscriptions.discount_percent_off IS 'Percentage discount, if any';
COMMENT ON COLUMN dogdb.stripe_subscriptions.discount_amount_off_cents IS 'Fixed discount per period in cents, if any';
COMMENT ON COLUMN dogdb.stripe_subscriptions.discount_end IS 'When the discount ends; NULL = forever';
COMMENT ON COLUMN dogdb.stripe_subscriptions.started_at IS 'When the subscription started';
COMMENT ON COLUMN dogdb.stripe_subscriptions.canceled_at IS 'When it was canceled, if it was';
COMMENT ON COLUMN dogdb.stripe_subscriptions.ended_at IS 'When it ended, if it has';
COMMENT ON COLUMN dogdb.stripe_subscription_versions.subscription_id IS 'The Stripe subscription id (sub_...)';
COMMENT ON COLUMN dogdb.stripe_subscription_versions.status IS 'Stripe status as of this event';
COMMENT ON COLUMN dogdb.stripe_subscription_versions.currency IS 'Currency of mrr_cents';
COMMENT ON COLUMN dogdb.stripe_subscription_versions.mrr_cents IS 'Monthly recurring revenue in cents as of this event (0 unless active or past_due)';
COMMENT ON COLUMN dogdb.stripe_invoices.invoice_id IS 'The Stripe invoice id (in_...)';
COMMENT ON COLUMN dogdb.stripe_invoices.customer_id IS 'The Stripe customer id';
COMMENT ON COLUMN dogdb.stripe_invoices.subscription_id IS 'The subscription billed, if any';
COMMENT ON COLUMN dogdb.stripe_invoices.status IS 'Stripe status: draft, open, paid, uncollectible or void';
COMMENT ON COLUMN dogdb.stripe_invoices.currency IS 'Currency of the amounts';
COMMENT ON COLUMN dogdb.stripe_invoices.total_cents IS 'Invoice total in cents, tax included';
COMMENT ON COLUMN dogdb.stripe_invoices.tax_cents IS 'Tax in cents';
COMMENT ON COLUMN dogdb.stripe_invoices.amount_paid_cents IS 'Amount paid in cents';
COMMENT ON COLUMN dogdb.stripe_invoices.created_at IS 'When the invoice was created at Stripe';
COMMENT ON COLUMN dogdb.stripe_payments.charge_id IS 'The Stripe charge id (ch_...)';
COMMENT ON COLUMN dogdb.stripe_payments.customer_id IS 'The Stripe customer id';
COMMENT ON COLUMN dogdb.stripe_payments.invoice_id IS 'The invoice paid, if any';
COMMENT ON COLUMN dogdb.stripe_payments.status IS 'succeeded (money received), pending or failed';
COMMENT ON COLUMN dogdb.stripe_payments.currency IS 'Currency of the amounts';
COMMENT ON COLUMN dogdb.stripe_payments.amount_cents IS 'Amount charged in cents';
COMMENT ON COLUMN dogdb.stripe_payments.amount_refunded_cents IS 'Amount refunded so far in cents';
COMMENT ON COLUMN dogdb.stripe_payments.created_at IS 'When the charge was created at Stripe';
COMMENT ON COLUMN dogdb.stripe_refunds.refund_id IS 'The Stripe refund id (re_...)';
COMMENT ON COLUMN dogdb.stripe_refunds.charge_id IS 'The charge refunded';
COMMENT ON COLUMN dogdb.stripe_refunds.status IS 'succeeded (money returned), pending, failed or canceled';
COMMENT ON COLUMN dogdb.stripe_refunds.currency IS 'Currency of the amount';
COMMENT ON COLUMN dogdb.stripe_refunds.amount_cents IS 'Amount refunded in cents';
COMMENT ON COLUMN dogdb.stripe_refunds.created_at IS 'When the refund was created at Stripe';

--
-- Roles: one per job, created when missing (global objects, never dropped),
-- each granted exactly what its job needs (SECURITY.md):
--   dogdb_reader   every KPI and report function, and SELECT on the
--                  user-facing tables and views of dogdb (not the Stripe
--                  secrets, nor the raw Stripe ledger); writes nothing
--   dogdb_billing  invoice preview and generation
--   dogdb_ingest   the loading functions (sessions, web events, Stripe
--                  events); reads nothing
--   dogdb_admin    KPI refresh, legacy import, demo data, Stripe replay and
--                  the manual Stripe customer mapping
-- Nothing is granted on dogdb_internal.  Functions that call its helpers
-- or write what their caller may not are SECURITY DEFINER (owner's rights,
-- search_path pinned, every object qualified); those that read a table
-- the caller names check that the caller may read it.
--
DO $do$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['dogdb_reader', 'dogdb_billing', 'dogdb_ingest', 'dogdb_admin'] LOOP
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = r) THEN
			EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
		END IF;
	END LOOP;
END
$do$;

-- run as the owner: they call helpers of dogdb_internal (the KPI, funnel
-- and cohort reads), write the engine's change tracking (import, demo
-- data), or rebuild facts their caller may not write (replay)
ALTER FUNCTION dogdb_funnel_report(text[], timestamptz, timestamptz, interval, text, text, text[])
	SECURITY DEFINER PARALLEL RESTRICTED;
ALTER FUNCTION dogdb_funnel_trend(text[], timestamptz, timestamptz, interval, text, text, text)
	SECURITY DEFINER PARALLEL RESTRICTED;
ALTER FUNCTION dogdb_mrr_movements(date, date) SECURITY DEFINER;
ALTER FUNCTION dogdb_cohort_retention(date, date, text) SECURITY DEFINER;
ALTER FUNCTION dogdb_generate_demo_web_events(integer, timestamptz, integer, bigint) SECURITY DEFINER;
ALTER FUNCTION dogdb_generate_demo_data(integer, integer, date, bigint)
	SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
ALTER FUNCTION dogdb_stripe_replay() SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
-- reads the legacy tables for its caller: import.c checks that the caller
-- may read them and that their columns have built-in types
ALTER FUNCTION dogdb_import_legacy(text) SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
REVOKE ALL ON FUNCTION dogdb_funnel_report(text[], timestamptz, timestamptz, interval, text, text, text[]),
	dogdb_funnel_trend(text[], timestamptz, timestamptz, interval, text, text, text),
	dogdb_import_legacy(text) FROM PUBLIC;

-- dogdb_reader: every user-facing relation of dogdb but the Stripe secrets
-- and ledger (and the KPI engine's own tables, until they leave dogdb), and
-- every KPI and report function.  Keep this section last: it covers the
-- dogdb_kpi_* functions and the views of every section above it.
GRANT USAGE ON SCHEMA dogdb TO dogdb_reader;
DO $do$
DECLARE
	o oid;
BEGIN
	FOR o IN SELECT c.oid FROM pg_catalog.pg_class c
			  WHERE c.relnamespace = 'dogdb'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
				AND c.relname NOT IN ('stripe_webhook_secrets', 'stripe_events')
				AND NOT (c.relkind = 'r' AND c.relname LIKE 'kpi\_%' AND c.relname <> 'kpi_refresh_log')
	LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON %s TO dogdb_reader', o::regclass);
	END LOOP;
	FOR o IN SELECT p.oid FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_depend d
				 ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
				AND d.refobjid = (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'dogdb_analytics')
			  WHERE p.pronamespace <> 'dogdb_internal'::regnamespace AND p.prokind = 'f'
				AND (p.proname LIKE 'dogdb\_kpi\_%' AND p.proname <> 'dogdb_kpi_update_facts'
					 OR p.proname IN ('dogdb_funnel_report', 'dogdb_funnel_trend', 'dogdb_page_views',
									  'dogdb_page_time_summary', 'dogdb_account_churn', 'dogdb_check_data_quality'))
	LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO dogdb_reader', o::regprocedure);
	END LOOP;
END
$do$;

-- dogdb_billing: the preview runs as its caller (it reads the
-- subscriptions and prices); generation as the owner.  It reads the
-- invoices it issued, and changes nothing by hand.
GRANT USAGE ON SCHEMA dogdb TO dogdb_billing;
GRANT SELECT ON dogdb.pricing_plans, dogdb.plan_prices, dogdb.subscriptions, dogdb.invoices, dogdb.invoice_lines
	TO dogdb_billing;
GRANT EXECUTE ON FUNCTION dogdb_preview_invoice_lines(date), dogdb_generate_invoices(date) TO dogdb_billing;

-- dogdb_ingest: EXECUTE on the loaders, all SECURITY DEFINER; no schema,
-- no table
GRANT EXECUTE ON FUNCTION dogdb_load_sessions(regclass), dogdb_load_web_events(regclass),
	dogdb_ingest_stripe_event(text, text) TO dogdb_ingest;

-- dogdb_admin: refresh, import (and the quarantine it fills: read it,
-- delete a row to retry it), demo data, Stripe replay and the manual
-- customer mapping it follows
GRANT USAGE ON SCHEMA dogdb TO dogdb_admin;
GRANT SELECT, DELETE ON dogdb.import_rejects TO dogdb_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON dogdb.stripe_customer_accounts TO dogdb_admin;
GRANT EXECUTE ON FUNCTION dogdb_refresh_kpis(boolean), dogdb_import_legacy(text),
	dogdb_generate_demo_data(integer, integer, date, bigint),
	dogdb_generate_demo_web_events(integer, timestamptz, integer, bigint), dogdb_stripe_replay() TO dogdb_admin;
