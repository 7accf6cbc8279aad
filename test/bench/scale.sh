#!/bin/bash
# The scale benchmark ("make bench-scale", not in CI): the KPI engine at
# SCALE accounts x 24 months of demo data (default 1,000,000: about 78M
# sessions, 9 GB with indexes, 4+ minutes to generate), on a throwaway
# cluster unless PGHOST/PGDATABASE point at a server.  Prints, each from a
# fresh connection:
#   - the generation time (then VACUUM ANALYZE and a CHECKPOINT, so that
#     the write-back of the generated data does not land in the next step)
#     and the data size;
#   - the full refresh, dogdb_refresh_kpis(true);
#   - three incremental refreshes: nothing to do; one day of new sessions
#     (45 per 1,000 accounts, on random accounts, in the current month);
#     one price change in the current month;
#   - one day at SMALL accounts (default 100,000; SMALL=0 skips it);
#   - for each, the peak private memory of the backend: the highest RssAnon
#     (anonymous memory: palloc, hash tables, sorts; not shared buffers or
#     dynamic shared memory) of /proc/<pid>/status, sampled every 10 ms
#     while the statement runs and once at its end.  Parallel workers, if
#     the engine uses any, are other processes and not counted.
# Works with whatever KPI engine is installed: it only calls
# dogdb_generate_demo_data, dogdb_refresh_kpis and writes the source tables.
#
# STEPS (default 5) more full rebuilds print the engine's steps (its DEBUG1
# timings): min, median and max of each, and the backend's CPU in it.
#
# REUSE=1 keeps data already there: with SCALE accounts in dogdb.accounts
# it skips the generation (and leaves the data in place at the end), so a
# database generated once can be measured again.
#
#	SCALE=200000 SMALL=0 test/bench/scale.sh
#	PGHOST=... PGDATABASE=big REUSE=1 SMALL=0 test/bench/scale.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${1:-}" != "--here" ] && [ -z "${PGHOST:-}${PGDATABASE:-}" ]; then
	# the settings of the other benchmarks (test/bench/run.sh)
	exec test/cluster.sh -o shared_buffers=1GB -o work_mem=64MB -o maintenance_work_mem=512MB \
		-o max_wal_size=8GB -o checkpoint_timeout=30min "$0" --here
fi
SCALE=${SCALE:-1000000}
SMALL=${SMALL:-100000}
REUSE=${REUSE:-0}
STEPS=${STEPS:-5}
MONTHS=24
PSQL="psql -X -q -At -v ON_ERROR_STOP=1"
export PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning"

# a descriptor nothing is ever written to: read -t on it is a sleep without a process
exec {tick}<> <(:)

# run SQL in a fresh backend; print "<ms> <peak RssAnon kB>" of its last statement
measure() {
	local sql=$1 app="dogdb_scale_$$_$RANDOM" out pid peak=0 kb
	out=$(mktemp)
	$PSQL >"$out" <<-EOF &
		SET application_name = '$app';
		SELECT pg_sleep(0.3);
		\\timing on
		$sql
	EOF
	local client=$!
	pid=
	for _ in $(seq 1 100); do
		pid=$($PSQL -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'")
		[ -n "$pid" ] && break
		sleep 0.02
	done
	# sampled with bash builtins only: no process started per sample to
	# take CPU from the refresh measured (2 cores)
	while [ -n "$pid" ] && kill -0 "$client" 2>/dev/null; do
		kb=
		while read -r key value _; do
			[ "$key" = RssAnon: ] && kb=$value
		done <"/proc/$pid/status" 2>/dev/null || true
		[ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
		read -r -t 0.01 -u "$tick" _ || true
	done
	wait "$client"
	# the last timing printed is the measured statement's
	printf '%s %s\n' "$(sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' "$out" | tail -1)" "$peak"
	rm -f "$out"
}

report() {	# label, "<ms> <kB>"
	set -- "$1" $2
	printf '%-58s %10.0f ms %8.1f MB\n' "$1" "$2" "$(echo "$3 / 1024" | bc -l)"
}

generate() {	# accounts
	$PSQL -c "TRUNCATE dogdb.accounts, dogdb.invoice_number_counters CASCADE" \
		-c "DELETE FROM dogdb.plan_prices WHERE effective_from > '2019-01-01'"
	report "generate $1 accounts x $MONTHS months" "$(measure "SELECT * FROM dogdb_generate_demo_data($1, $MONTHS,
		(date_trunc('month', now() AT TIME ZONE 'UTC') - interval '$((MONTHS - 1)) months')::date, 1);")"
	report "VACUUM ANALYZE" "$(measure 'VACUUM ANALYZE dogdb.accounts, dogdb.subscriptions, dogdb.sessions;')"
	# the generation's and VACUUM's dirty pages written out now, not during the next step measured
	report "CHECKPOINT" "$(measure 'CHECKPOINT;')"
}

# one day of sessions: 45 per 1,000 accounts, random accounts (uniform over
# the ids: the random id is drawn once per session, then the first account
# from it), today (UTC)
day_sql() {	# accounts
	echo "INSERT INTO dogdb.sessions (account_id, created_at)
		SELECT a.account_id, (current_date::timestamp + random() * interval '1 day') AT TIME ZONE 'UTC'
		  FROM (SELECT min(account_id) AS lo, max(account_id) AS hi FROM dogdb.accounts) b,
			   generate_series(1, $1 * 45 / 1000) i,
			   LATERAL (SELECT b.lo + floor(random() * (b.hi - b.lo + 1))::bigint + i * 0 AS target OFFSET 0) r,
			   LATERAL (SELECT account_id FROM dogdb.accounts WHERE account_id >= r.target
						 ORDER BY account_id LIMIT 1) a;"
}
# the accounts the next refresh will touch (its queue of session deltas)
queued_accounts() {
	$PSQL -c "SELECT count(DISTINCT a) FROM dogdb_internal.kpi_session_deltas, unnest(account_ids) a"
}
add_day() {	# accounts
	$PSQL -c "$(day_sql "$1")"
	queued_accounts
}
# one day in a connection that has refreshed before (its caches warm)
one_day_warm() {	# accounts, label
	report "$2" "$(measure "SELECT count(*) FROM dogdb_refresh_kpis(); $(day_sql "$1") SELECT count(*) FROM dogdb_refresh_kpis();")"
}

$PSQL -c "CREATE EXTENSION IF NOT EXISTS dogdb_analytics CASCADE" 2>/dev/null
echo "== KPI engine at $SCALE accounts x $MONTHS months ($(date -u '+%F %H:%M') UTC, load $(cut -d' ' -f1-3 /proc/loadavg))"
printf '%-58s %13s %11s\n' "step (each in a fresh connection)" "time" "peak RssAnon"
report "idle connection (baseline of the memory column)" "$(measure 'SELECT 1;')"
if [ "$REUSE" = 1 ] && [ "$($PSQL -c 'SELECT count(*) FROM dogdb.accounts')" = "$SCALE" ]; then
	echo "(reusing the $SCALE accounts already generated)"
	# the days of sessions of an earlier run stay; its price goes (the full refresh follows)
	$PSQL -c "DELETE FROM dogdb.plan_prices WHERE effective_from > '2019-01-01'"
else
	REUSE=0
	generate "$SCALE"
fi
$PSQL -c "SELECT format('%s sessions; database %s, dogdb.sessions %s with indexes, dogdb.accounts %s',
	(SELECT count(*) FROM dogdb.sessions), pg_size_pretty(pg_database_size(current_database())),
	pg_size_pretty(pg_total_relation_size('dogdb.sessions')), pg_size_pretty(pg_total_relation_size('dogdb.accounts')))"
report "full refresh, dogdb_refresh_kpis(true) (first)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis(true);')"
report "full refresh, dogdb_refresh_kpis(true) (again)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis(true);')"
for i in 1 2 3; do
	report "incremental, nothing to do (run $i)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis();')"
done
# the same, the second call of a connection (its catalog caches and plans warm)
for i in 1 2 3; do
	report "incremental, nothing to do (warm connection, run $i)" \
		"$(measure 'SELECT count(*) FROM dogdb_refresh_kpis(); SELECT count(*) FROM dogdb_refresh_kpis();')"
done
for i in 1 2; do
	n=$(add_day "$SCALE")
	report "incremental, one day ($((SCALE * 45 / 1000)) sessions, $n accounts, run $i)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis();')"
done
for i in 1 2; do
	one_day_warm "$SCALE" "incremental, one day (warm connection, run $i)"
done
$PSQL -c "INSERT INTO dogdb.plan_prices (plan_id, monthly_price_cents, effective_from)
	VALUES (3, 52000, date_trunc('month', now() AT TIME ZONE 'UTC')::date + 9)"
report "incremental, one price change in the current month" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis();')"
report "incremental, nothing to do (after)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis();')"
# the incremental result is the full rebuild's
$PSQL -c "CREATE TABLE public.scale_incremental AS SELECT * FROM dogdb_internal.kpi_facts"
$PSQL -c "SELECT count(*) FROM dogdb_refresh_kpis(true)" >/dev/null
$PSQL -c "SELECT 'incremental rows that differ from a full rebuild: ' ||
	((SELECT count(*) FROM (SELECT * FROM public.scale_incremental EXCEPT ALL SELECT * FROM dogdb_internal.kpi_facts) d)
	 + (SELECT count(*) FROM (SELECT * FROM dogdb_internal.kpi_facts EXCEPT ALL SELECT * FROM public.scale_incremental) d))"
$PSQL -c "DROP TABLE public.scale_incremental"

# the full refresh's steps: STEPS more rebuilds, each in a fresh connection,
# with the engine's DEBUG1 step timings (wall, and the CPU of the backend)
if [ "$STEPS" -gt 0 ]; then
	echo "== the full refresh's steps, $STEPS rebuilds: min, median, max ms, and the backend's CPU ms in the median run"
	for _ in $(seq "$STEPS"); do
		PGOPTIONS="$PGOPTIONS -c client_min_messages=debug1" $PSQL -c '\timing on' \
			-c "SELECT count(*) FROM dogdb_refresh_kpis(true)" 2>&1 |
			sed -n -e 's/.*KPI refresh: \([a-z ]*\) took \([0-9.]*\) ms (\([0-9.]*\) ms CPU here).*/\1|\2|\3/p' \
				-e 's/^Time: \([0-9.]*\) ms.*/~ the whole refresh|\1|/p'
	done | sort -t'|' -k1,1 -k2,2n | awk -F'|' '
		function flush() {
			if (n > 0)
				printf "%-32s %8.0f %8.0f %8.0f %8s\n", step, w[1], w[int((n + 1) / 2)], w[n],
					cpu[int((n + 1) / 2)] == "" ? "-" : sprintf("%.0f", cpu[int((n + 1) / 2)])
		}
		$1 != step { flush(); step = $1; n = 0 }
		{ n++; w[n] = $2; cpu[n] = $3 }
		END { flush() }'
fi

if [ "$SMALL" -gt 0 ]; then
	echo "== one day at $SMALL accounts"
	generate "$SMALL"
	report "full refresh, dogdb_refresh_kpis(true)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis(true);')"
	for i in 1 2 3; do
		n=$(add_day "$SMALL")
		report "incremental, one day ($((SMALL * 45 / 1000)) sessions, $n accounts, run $i)" "$(measure 'SELECT count(*) FROM dogdb_refresh_kpis();')"
	done
	for i in 1 2; do
		one_day_warm "$SMALL" "incremental, one day (warm connection, run $i)"
	done
fi
if [ "$REUSE" != 1 ]; then
	$PSQL -c "TRUNCATE dogdb.accounts, dogdb.invoice_number_counters CASCADE" \
		-c "DELETE FROM dogdb.plan_prices WHERE effective_from > '2019-01-01'"
fi
echo "== done (load $(cut -d' ' -f1-3 /proc/loadavg))"
