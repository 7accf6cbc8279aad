/* dogdb_analytics--1.4--1.5.sql: faster ingestion paths, the KPI engine's cold path, Citus completion (see sql/dogdb_analytics.sql for the result) */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION dogdb_analytics UPDATE TO '1.5'" to load this file. \quit

-- [citus2] Citus: incremental KPI and support refreshes by blocks of 1024
-- accounts (fingerprints computed on the workers instead of triggers).

-- The KPI facts of blocks of 1024 accounts (block = account_id >> 10), for
-- Citus (the C engine reads local heaps): everything per account (sessions
-- per month, the churn month from the active-month bitmap, the month's
-- invoice amounts by the billing rules, the tier) runs on the workers, shard
-- by shard, and only the sums by block, month, company size and plan come
-- back.  blocks: the blocks to compute (NULL: all); an account's facts
-- depend on its own rows, the prices and the first and current months
-- only, so the facts of a block can be recomputed alone.  The same rules as
-- the engine (README "KPIs"); test/pgtap/citus.sql and the lab compare the
-- two.  STABLE: reads the tables and the current month.
CREATE FUNCTION dogdb_internal.kpi_block_facts_sql(blocks bigint[])
	RETURNS TABLE (block bigint, month date, company_size text, plan_id smallint, active_accounts bigint,
				   churned_accounts bigint, sessions bigint, revenue_cents bigint)
	LANGUAGE plpgsql STABLE CALLED ON NULL INPUT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
#variable_conflict use_column
-- (PL/pgSQL: Citus plans a query with the values of m0, m1 and blocks, not with parameters)
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
		  FROM dogdb.sessions s WHERE (blocks IS NULL OR (s.account_id >> 10) = ANY (blocks)) GROUP BY 1, 2
	), churn AS (
		SELECT a.account_id,
			   @extschema@.dogdb_first_inactive_month(u.active, date_trunc('month', a.created_at AT TIME ZONE 'UTC')::date, m1) AS month
		  FROM dogdb.accounts a
		  LEFT JOIN (SELECT s.account_id, @extschema@.dogdb_active_months(s.created_at) AS active
					   FROM dogdb.sessions s
					  WHERE s.created_at < ((m1 + interval '1 month') AT TIME ZONE 'UTC') AND (blocks IS NULL OR (s.account_id >> 10) = ANY (blocks))
					  GROUP BY s.account_id) u ON u.account_id = a.account_id
		 WHERE (blocks IS NULL OR (a.account_id >> 10) = ANY (blocks))
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
		 WHERE (blocks IS NULL OR (s.account_id >> 10) = ANY (blocks))
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
	SELECT t.account_id >> 10, t.month, coalesce(a.company_size, 'unknown'), t.plan_id,
		   count(*) FILTER (WHERE t.n > 0), sum(t.c)::bigint, sum(t.n)::bigint, sum(t.cents)::bigint
	  FROM tiered t JOIN dogdb.accounts a ON a.account_id = t.account_id
	 WHERE t.pick = 1
	 GROUP BY 1, 2, 3, 4;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.kpi_block_facts_sql(bigint[]) IS 'The KPI facts of the blocks of 1024 accounts given (NULL: all), by block, month, company size and plan, computed by one query that Citus pushes down to the workers; used by the KPI refresh when the tables are distributed';
REVOKE ALL ON FUNCTION dogdb_internal.kpi_block_facts_sql(bigint[]) FROM PUBLIC;

-- The KPI facts in one query, for Citus: the sums over all blocks.
-- STABLE: reads the tables and the current month.
CREATE OR REPLACE FUNCTION dogdb_internal.kpi_facts_sql()
	RETURNS TABLE (month date, company_size text, plan_id smallint, active_accounts bigint,
				   churned_accounts bigint, sessions bigint, revenue_cents bigint)
	LANGUAGE sql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
BEGIN ATOMIC
	SELECT f.month, f.company_size, f.plan_id, sum(f.active_accounts)::bigint, sum(f.churned_accounts)::bigint,
		   sum(f.sessions)::bigint, sum(f.revenue_cents)::bigint
	  FROM dogdb_internal.kpi_block_facts_sql(NULL) f
	 GROUP BY 1, 2, 3;
END;
COMMENT ON FUNCTION dogdb_internal.kpi_facts_sql() IS 'The rows of the KPI facts computed by one query that Citus pushes down to the workers (per-account work on the shards, sums by month, company size and plan on the coordinator): the sums of dogdb_internal.kpi_block_facts_sql(NULL)';
REVOKE ALL ON FUNCTION dogdb_internal.kpi_facts_sql() FROM PUBLIC;

-- Change tracking on Citus, where triggers cannot run on the shards
-- (dogdb_distribute() drops the extension's): the workers compute, for each
-- block of 1024 accounts (block = account_id >> 10) and each source table, the
-- number of rows and a sum of row hashes (pushed-down partial aggregates, one
-- row per block and shard back to the coordinator); a refresh compares them
-- with the ones it stored and recomputes only the blocks that differ.  Every
-- refresh reads the sources once on the workers, but computes and moves only
-- what changed.  What every block depends on (prices, plans, reps, the first
-- and current months) is kept as one array: when it differs, a rebuild.
CREATE TABLE dogdb_internal.citus_fingerprints (
	consumer	text NOT NULL,
	tab			text NOT NULL,
	block		bigint NOT NULL,
	row_count	bigint NOT NULL,
	row_hash	bigint NOT NULL,
	PRIMARY KEY (consumer, tab, block)
);
COMMENT ON TABLE dogdb_internal.citus_fingerprints IS 'Change tracking on Citus: per refresh (consumer kpi or support), source table and block of 1024 accounts, the row count and sum of row hashes seen by its last refresh';
CREATE TABLE dogdb_internal.citus_refresh_state (
	consumer	text PRIMARY KEY,
	global_state bigint[] NOT NULL,
	refreshed_at timestamptz NOT NULL,
	blocks_changed integer
);
COMMENT ON TABLE dogdb_internal.citus_refresh_state IS 'Change tracking on Citus: per refresh (kpi, support), what every block depends on as of its last refresh, and how many blocks it recomputed (NULL: it rebuilt)';
CREATE TABLE dogdb_internal.kpi_block_facts (
	block		bigint NOT NULL,
	month		date NOT NULL,
	company_size text NOT NULL,
	plan_id		smallint,
	active_accounts bigint NOT NULL,
	churned_accounts bigint NOT NULL,
	sessions	bigint NOT NULL,
	revenue_cents bigint NOT NULL
);
CREATE INDEX kpi_block_facts_block_idx ON dogdb_internal.kpi_block_facts (block);
COMMENT ON TABLE dogdb_internal.kpi_block_facts IS 'The KPI facts by block of 1024 accounts on Citus (dogdb_internal.kpi_block_facts_sql()); dogdb_internal.kpi_facts holds their sums';
REVOKE ALL ON dogdb_internal.citus_fingerprints, dogdb_internal.citus_refresh_state, dogdb_internal.kpi_block_facts
	FROM PUBLIC;

-- The fingerprints of the tables tabs (accounts, sessions, subscriptions,
-- interactions) by block: the columns the KPIs and the support model read.
-- STABLE: reads the tables.
CREATE FUNCTION dogdb_internal.citus_block_fingerprints(tabs text[])
	RETURNS TABLE (tab text, block bigint, row_count bigint, row_hash bigint)
	LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	IF 'accounts' = ANY (tabs) THEN
		RETURN QUERY
		SELECT 'accounts'::text, a.account_id >> 10, count(*),
			   coalesce(sum(hashtextextended(concat_ws('|', a.account_id, a.company_size, date_part('epoch', a.created_at)), 0)) % 9223372036854775807, 0)::bigint
		  FROM dogdb.accounts a GROUP BY 2;
	END IF;
	IF 'sessions' = ANY (tabs) THEN
		RETURN QUERY
		SELECT 'sessions'::text, s.account_id >> 10, count(*),
			   coalesce(sum(hashint8extended(s.account_id, 0) # hashfloat8extended(date_part('epoch', s.created_at), 0)) % 9223372036854775807, 0)::bigint
		  FROM dogdb.sessions s GROUP BY 2;
	END IF;
	IF 'subscriptions' = ANY (tabs) THEN
		RETURN QUERY
		SELECT 'subscriptions'::text, u.account_id >> 10, count(*),
			   coalesce(sum(hashtextextended(concat_ws('|', u.account_id, u.subscription_id, u.plan_id, date_part('epoch', u.valid_from),
											   date_part('epoch', u.valid_to)), 0)) % 9223372036854775807, 0)::bigint
		  FROM dogdb.subscriptions u GROUP BY 2;
	END IF;
	IF 'interactions' = ANY (tabs) THEN
		RETURN QUERY
		SELECT 'interactions'::text, i.account_id >> 10, count(*),
			   coalesce(sum(hashtextextended(format('%s|%s|%s|%s|%s|%s|%s|%s', i.account_id, i.interaction_id, i.rep_id, i.channel,
											i.category, i.status, date_part('epoch', i.created_at),
											date_part('epoch', i.completed_at)), 0)) % 9223372036854775807, 0)::bigint
		  FROM dogdb.interactions i GROUP BY 2;
	END IF;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.citus_block_fingerprints(text[]) IS 'Change tracking on Citus: per table of tabs and block of 1024 accounts, the row count and sum of row hashes, computed on the workers';
REVOKE ALL ON FUNCTION dogdb_internal.citus_block_fingerprints(text[]) FROM PUBLIC;

-- The blocks whose rows of tabs changed since the last call for consumer
-- (an empty array: none), or NULL when everything is to be recomputed
-- (rebuild asked, no earlier call, or global_state differs); stores the new
-- fingerprints.  VOLATILE: writes the state.
CREATE FUNCTION dogdb_internal.citus_changed_blocks(who text, tabs text[], global_state bigint[], rebuild boolean)
	RETURNS bigint[]
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	f_tab text[];
	f_block bigint[];
	f_count bigint[];
	f_hash bigint[];
	old_state bigint[];
	changed bigint[];
BEGIN
	SELECT s.global_state INTO old_state FROM dogdb_internal.citus_refresh_state s WHERE s.consumer = who FOR UPDATE;
	SELECT coalesce(array_agg(f.tab), '{}'), coalesce(array_agg(f.block), '{}'),
		   coalesce(array_agg(f.row_count), '{}'), coalesce(array_agg(f.row_hash), '{}')
	  INTO f_tab, f_block, f_count, f_hash
	  FROM dogdb_internal.citus_block_fingerprints(tabs) f;
	IF NOT rebuild AND old_state = global_state THEN
		SELECT coalesce(array_agg(DISTINCT coalesce(n.block, o.block)), '{}') INTO changed
		  FROM unnest(f_tab, f_block, f_count, f_hash) AS n (tab, block, row_count, row_hash)
		  FULL JOIN (SELECT x.tab, x.block, x.row_count, x.row_hash FROM dogdb_internal.citus_fingerprints x
					  WHERE x.consumer = who) o
			ON o.tab = n.tab AND o.block = n.block
		 WHERE n.block IS NULL OR o.block IS NULL OR n.row_count <> o.row_count OR n.row_hash <> o.row_hash;
	END IF;
	IF changed IS NULL OR changed <> '{}' THEN
		DELETE FROM dogdb_internal.citus_fingerprints x WHERE x.consumer = who;
		INSERT INTO dogdb_internal.citus_fingerprints (consumer, tab, block, row_count, row_hash)
		SELECT who, n.* FROM unnest(f_tab, f_block, f_count, f_hash) AS n;
	END IF;
	INSERT INTO dogdb_internal.citus_refresh_state AS s (consumer, global_state, refreshed_at, blocks_changed)
	VALUES (who, global_state, clock_timestamp(), cardinality(changed))
	ON CONFLICT (consumer) DO UPDATE
	   SET global_state = excluded.global_state, refreshed_at = excluded.refreshed_at,
		   blocks_changed = excluded.blocks_changed;
	RETURN changed;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.citus_changed_blocks(text, text[], bigint[], boolean) IS 'Change tracking on Citus: the blocks of 1024 accounts whose rows of tabs changed since the last call for who (empty: none; NULL: recompute all); stores the new fingerprints';
REVOKE ALL ON FUNCTION dogdb_internal.citus_changed_blocks(text, text[], bigint[], boolean) FROM PUBLIC;

-- The KPI refresh on Citus (dogdb_internal.kpi_update_facts() hands over):
-- the facts of the changed blocks recomputed on the workers, the others kept;
-- kpi_facts their sums.  VOLATILE: writes the facts.
CREATE FUNCTION dogdb_internal.kpi_citus_refresh(rebuild boolean, OUT months integer, OUT rebuilt boolean,
												 OUT changed boolean)
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	m0 date;
	m1 date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
	g bigint[];
	blocks bigint[];
BEGIN
	-- one refresh at a time; the views' readers are not blocked
	LOCK TABLE dogdb_internal.kpi_facts IN EXCLUSIVE MODE;
	-- what every block depends on: the first and current months, the prices
	SELECT min(date_trunc('month', a.created_at AT TIME ZONE 'UTC'))::date INTO m0 FROM dogdb.accounts a;
	SELECT ARRAY[coalesce(m0 - date '2000-01-01', -1), m1 - date '2000-01-01', count(*),
				 coalesce(sum(hashtextextended(concat_ws('|', p.plan_id, p.effective_from, p.monthly_price_cents), 0)) % 9223372036854775807, 0)::bigint]
	  INTO g FROM dogdb.plan_prices p;
	blocks := dogdb_internal.citus_changed_blocks('kpi', ARRAY['accounts', 'sessions', 'subscriptions'], g, rebuild);
	rebuilt := blocks IS NULL;
	changed := rebuilt OR blocks <> '{}';
	IF rebuilt THEN
		DELETE FROM dogdb_internal.kpi_block_facts;
		INSERT INTO dogdb_internal.kpi_block_facts SELECT * FROM dogdb_internal.kpi_block_facts_sql(NULL);
	ELSIF changed THEN
		DELETE FROM dogdb_internal.kpi_block_facts f WHERE f.block = ANY (blocks);
		INSERT INTO dogdb_internal.kpi_block_facts SELECT * FROM dogdb_internal.kpi_block_facts_sql(blocks);
	END IF;
	IF changed THEN
		DELETE FROM dogdb_internal.kpi_facts;
		INSERT INTO dogdb_internal.kpi_facts (month, company_size, plan_id, active_accounts, churned_accounts,
											  sessions, revenue_cents)
		SELECT f.month, f.company_size, f.plan_id, sum(f.active_accounts), sum(f.churned_accounts), sum(f.sessions),
			   sum(f.revenue_cents)
		  FROM dogdb_internal.kpi_block_facts f GROUP BY 1, 2, 3;
	END IF;
	SELECT count(DISTINCT f.month)::integer INTO months FROM dogdb_internal.kpi_facts f;
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.kpi_citus_refresh(boolean) IS 'Internal to the KPI refresh on Citus: recomputes the facts of the blocks of accounts whose sources changed (all when rebuild is true or the prices or months moved) and sums them into dogdb_internal.kpi_facts';
REVOKE ALL ON FUNCTION dogdb_internal.kpi_citus_refresh(boolean) FROM PUBLIC;

-- The support refresh on Citus (dogdb_internal.support_refresh() asks):
-- the accounts whose support rows to recompute, those of the blocks whose
-- interactions, accounts or subscriptions changed; NULL: rebuild (asked,
-- first time, or the reps or plans changed); empty when the tables are not
-- distributed.  VOLATILE: writes the change-tracking state.
CREATE FUNCTION dogdb_internal.support_citus_accounts(rebuild boolean) RETURNS bigint[]
	LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
	distributed boolean;
	g bigint[];
	blocks bigint[];
BEGIN
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NULL THEN
		RETURN '{}';
	END IF;
	EXECUTE 'SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition WHERE logicalrelid = $1)'
	   INTO distributed USING 'dogdb.interactions'::regclass;
	IF NOT distributed THEN
		RETURN '{}';
	END IF;
	SELECT ARRAY[(SELECT count(*) FROM dogdb.service_reps),
				 (SELECT coalesce(sum(hashtextextended(concat_ws('|', r.rep_id, r.name), 0)) % 9223372036854775807, 0)::bigint FROM dogdb.service_reps r),
				 (SELECT count(*) FROM dogdb.pricing_plans),
				 (SELECT coalesce(sum(hashtextextended(concat_ws('|', p.plan_id, p.name), 0)) % 9223372036854775807, 0)::bigint FROM dogdb.pricing_plans p)]
	  INTO g;
	blocks := dogdb_internal.citus_changed_blocks('support', ARRAY['accounts', 'subscriptions', 'interactions'], g, rebuild);
	IF blocks IS NULL OR blocks = '{}' THEN
		RETURN blocks;
	END IF;
	RETURN ARRAY(SELECT a.account_id FROM dogdb.accounts a WHERE (a.account_id >> 10) = ANY (blocks)
				 UNION
				 SELECT m.account_id FROM dogdb.support_interactions m WHERE (m.account_id >> 10) = ANY (blocks));
END
$fn$;
COMMENT ON FUNCTION dogdb_internal.support_citus_accounts(boolean) IS 'Internal to the support refresh on Citus: the accounts of the blocks whose sources changed (NULL: rebuild; empty: nothing, or not distributed)';
REVOKE ALL ON FUNCTION dogdb_internal.support_citus_accounts(boolean) FROM PUBLIC;

-- the support refresh asks dogdb_internal.support_citus_accounts() on Citus
CREATE OR REPLACE FUNCTION dogdb_internal.support_refresh(rebuild boolean) RETURNS boolean
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
	more bigint[];
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
	-- (dogdb_distribute() removes them): the accounts to recompute come from
	-- fingerprints of blocks of accounts (NULL: rebuild)
	IF pg_catalog.to_regclass('pg_catalog.pg_dist_partition') IS NOT NULL THEN
		more := dogdb_internal.support_citus_accounts(full_rebuild);
		full_rebuild := full_rebuild OR more IS NULL;
		IF more <> '{}' THEN
			accts := coalesce(accts, '{}') || more;
		END IF;
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
-- [funnel2] dogdb_funnel_report counts in one ordered pass of C over the
-- events (dogdb_internal.funnel_tally); breakdowns by account keep the
-- route through dogdb_funnel_visit
-- the report's counts in one ordered pass of C over the events (breakdowns taken from the events)
-- (STABLE: reads the tables; PARALLEL RESTRICTED: it pins search_path)
CREATE FUNCTION dogdb_internal.funnel_tally(steps text[], from_ts timestamptz, to_ts timestamptz, "window" interval,
									mode text, exclusions text[], breakdown text)
	RETURNS TABLE (segment text, step_no integer, reached bigint, open_here bigint, dropped bigint,
				   median_s double precision, p90_s double precision)
	AS 'MODULE_PATHNAME', 'dogdb_funnel_tally'
	LANGUAGE C STABLE CALLED ON NULL INPUT PARALLEL RESTRICTED;
COMMENT ON FUNCTION dogdb_internal.funnel_tally(text[], timestamptz, timestamptz, interval, text, text[], text) IS 'Per segment and step of dogdb_funnel_report: users, in progress, closed drop-offs, median and p90 seconds from the previous step; step 0 counts excluded visitors (not for company_size/tier)';

-- STABLE: reads the tables
CREATE OR REPLACE FUNCTION dogdb_funnel_report(steps text[], from_ts timestamptz, to_ts timestamptz,
									"window" interval DEFAULT '1 day', breakdown text DEFAULT NULL,
									mode text DEFAULT NULL, exclusions text[] DEFAULT NULL)
	RETURNS TABLE (segment text, step_no integer, step text, users bigint, conversion_from_start numeric,
				   conversion_from_previous numeric, drop_off bigint, is_largest_drop_off boolean,
				   median_seconds_from_previous double precision, p90_seconds_from_previous double precision,
				   in_progress bigint)
	LANGUAGE plpgsql STABLE PARALLEL SAFE
	SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
	PERFORM dogdb_internal.funnel_check_arguments(steps, from_ts, to_ts, "window", mode, exclusions, breakdown);
	-- per segment and step: reached, open_here, dropped (NULL at step 1), median_s, p90_s;
	-- step 0: the excluded visitors.  In C from the events; by account through the aggregate.
	RETURN QUERY
	WITH fv AS (
		SELECT * FROM dogdb_internal.funnel_visitors(steps, from_ts, to_ts, "window", mode, exclusions, breakdown)
		 WHERE breakdown IN ('company_size', 'tier')),
	counted AS (
		SELECT f.segment AS seg, gs.n AS k,
			   count(*) FILTER (WHERE f.level >= gs.n) AS reached,
			   count(*) FILTER (WHERE f.level = gs.n AND f.still_open) AS open_here,
			   count(*) FILTER (WHERE f.level = gs.n - 1 AND NOT f.still_open) AS dropped,
			   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM f.times[gs.n] - f.times[gs.n - 1]))
				   FILTER (WHERE f.level >= gs.n AND gs.n > 1) AS median_s,
			   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM f.times[gs.n] - f.times[gs.n - 1]))
				   FILTER (WHERE f.level >= gs.n AND gs.n > 1) AS p90_s
		  FROM fv f CROSS JOIN generate_series(1, cardinality(steps)) gs(n)
		 WHERE NOT f.excluded
		 GROUP BY 1, 2),
	segs AS (SELECT DISTINCT f.segment AS seg FROM fv f),
	tally AS (
		SELECT t.segment AS seg, t.step_no AS k, t.reached, t.open_here, t.dropped, t.median_s, t.p90_s
		  FROM dogdb_internal.funnel_tally(steps, from_ts, to_ts, "window", mode, exclusions, breakdown) t
		 WHERE breakdown IS NULL OR breakdown NOT IN ('company_size', 'tier')
		UNION ALL
		SELECT s.seg, gs.n, coalesce(c.reached, 0), coalesce(c.open_here, 0),
			   CASE WHEN gs.n > 1 THEN coalesce(c.dropped, 0) END, c.median_s, c.p90_s
		  FROM segs s CROSS JOIN generate_series(1, cardinality(steps)) gs(n)
		  LEFT JOIN counted c ON c.seg IS NOT DISTINCT FROM s.seg AND c.k = gs.n
		UNION ALL
		SELECT f.segment, 0, count(*), NULL, NULL, NULL, NULL
		  FROM fv f WHERE exclusions IS NOT NULL AND f.excluded GROUP BY f.segment),
	grid AS (SELECT * FROM tally WHERE tally.k > 0),
	rated AS (
		SELECT g.*, first_value(g.reached) OVER w1 AS first_reached,
			   lag(g.reached) OVER w1 AS prev_reached,
			   CASE WHEN g.reached + g.dropped > 0 THEN g.dropped::numeric / (g.reached + g.dropped) END AS drop_rate
		  FROM grid g WINDOW w1 AS (PARTITION BY g.seg ORDER BY g.k)),
	largest AS (
		SELECT DISTINCT ON (r.seg) r.seg, r.k FROM rated r
		 WHERE r.drop_rate IS NOT NULL AND r.dropped > 0
		 ORDER BY r.seg, r.drop_rate DESC, r.k)
	SELECT r.seg, r.k, steps[r.k], r.reached,
		   round(r.reached::numeric / nullif(r.first_reached, 0), 4),
		   CASE WHEN r.k > 1 THEN round(r.reached::numeric / nullif(r.reached + r.dropped, 0), 4) END,
		   r.dropped,
		   coalesce(l.k = r.k, false),
		   r.median_s, r.p90_s, r.open_here
	  FROM rated r LEFT JOIN largest l ON l.seg IS NOT DISTINCT FROM r.seg
	UNION ALL
	SELECT t.seg, 0, '(excluded)', t.reached, NULL, NULL, NULL, false, NULL, NULL, NULL
	  FROM tally t WHERE t.k = 0
	ORDER BY 1 NULLS FIRST, 2;
END
$fn$;
ALTER FUNCTION dogdb_funnel_report(text[], timestamptz, timestamptz, interval, text, text, text[])
	SECURITY DEFINER PARALLEL RESTRICTED;
-- [funnel2] deserializing a window funnel state is dear: grouped by visitor
-- the planner keeps the serial plan over the visitor/time index
ALTER FUNCTION dogdb_window_funnel_deserialfn(bytea, internal) COST 1000;
-- [kpi3] dogdb_refresh_kpis() in C (src/kpi_top.c): the refresh with
-- nothing to do takes no PL/pgSQL and no statement but the log's
CREATE OR REPLACE FUNCTION dogdb_refresh_kpis(rebuild boolean DEFAULT false)
	RETURNS TABLE (kpi text, refreshed_at timestamptz, full_rebuild boolean, duration_ms numeric)
	AS 'MODULE_PATHNAME', 'dogdb_refresh_kpis'
	LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE SECURITY DEFINER
	SET search_path = pg_catalog, pg_temp;
