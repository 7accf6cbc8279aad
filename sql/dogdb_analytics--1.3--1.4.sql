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
		EXECUTE format(CASE TG_TABLE_NAME
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
						   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track()', t.tab);
			EXECUTE format('CREATE TRIGGER support_track_delete AFTER DELETE ON dogdb.%I REFERENCING OLD TABLE AS support_old'
						   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track()', t.tab);
		END IF;
		EXECUTE format('CREATE TRIGGER support_track_update AFTER UPDATE ON dogdb.%I'
					   ' REFERENCING OLD TABLE AS support_old NEW TABLE AS support_new'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track()', t.tab);
		EXECUTE format('CREATE TRIGGER support_track_truncate AFTER TRUNCATE ON dogdb.%I'
					   ' FOR EACH STATEMENT EXECUTE FUNCTION dogdb_internal.support_track()', t.tab);
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
-- the tables.  A month's backlog counts the interactions open at its end.
CREATE FUNCTION dogdb_kpi_support(from_month date, to_month date, group_by text DEFAULT 'channel')
	RETURNS TABLE (month date, segment text, opened bigint, resolved bigint, open_backlog bigint,
				   median_resolution_hours numeric, p90_resolution_hours numeric,
				   active_accounts bigint, interactions_per_active_account numeric)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	g text := lower(group_by);
BEGIN
	IF g IS NULL OR g NOT IN ('channel', 'category', 'rep', 'tier', 'company_size', 'all') THEN
		RAISE EXCEPTION 'group_by must be one of ''channel'', ''category'', ''rep'', ''tier'', ''company_size'' or ''all'', not %',
						coalesce(quote_literal(group_by), 'NULL')
			USING ERRCODE = 'invalid_parameter_value',
				  HINT = 'Letter case does not matter; ''all'' gives one row per month.';
	END IF;
	PERFORM dogdb.kpi_check_arguments(from_month, to_month, 'all');
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

CREATE OR REPLACE FUNCTION dogdb_check_data_quality()
	RETURNS TABLE (check_name text, relation text, failing_rows bigint, sample text)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	-- each check once: its name, the relation it looks at, and the keys of
	-- the rows that fail it
	WITH failures (ord, key) AS (
		SELECT 1, a.account_id::text
		  FROM dogdb.accounts a
		 WHERE EXISTS (SELECT FROM dogdb.accounts b
						WHERE lower(b.email) = lower(a.email) AND b.account_id <> a.account_id)
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
		 WHERE NOT EXISTS (SELECT FROM dogdb.plan_prices p
							WHERE p.plan_id = s.plan_id
							  AND p.effective_from <= (s.valid_from AT TIME ZONE 'UTC')::date)
		UNION ALL
		SELECT 7, l.account_id::text
		  FROM dogdb.licenses l WHERE l.status = 'active'
		 GROUP BY l.account_id HAVING count(*) > 1
		UNION ALL
		SELECT 8, a.account_id::text
		  FROM dogdb.accounts a
		 WHERE NOT EXISTS (SELECT FROM dogdb.subscriptions s WHERE s.account_id = a.account_id)
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
	SELECT * INTO u FROM dogdb.kpi_update_facts(rebuild);
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
