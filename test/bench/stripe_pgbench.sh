#!/bin/sh
# Part (b) of test/bench/stripe.sql (which runs it with \!, after loading
# bench_stripe.deliveries): pgbench -M prepared, 2 clients, one delivery
# per transaction in delivery order, the first 50,000 deliveries once
# each (25,000 per client: a run must end within the 5 minutes the
# signatures are valid), through
# dogdb_ingest_stripe_event() and through the PL/pgSQL baseline, with
# synchronous_commit off and on.  Prints events/s and the ratios, and
# the floor: a one-row INSERT per transaction (the commit alone).
set -eu
cd "$(dirname "$0")"
bindir=$("${PG_CONFIG:-pg_config}" --bindir)
n=$(psql -XAtqc "SELECT count(*) FROM bench_stripe.deliveries")
out=$(mktemp)
trap 'rm -f "$out" floor.sql.tmp' EXIT
printf 'INSERT INTO bench_stripe.floor VALUES (1);\n' >floor.sql.tmp
psql -Xqc "CREATE TABLE IF NOT EXISTS bench_stripe.floor (x int)" >/dev/null
for sc in off on; do
	for impl in c plpgsql floor; do
		case $impl in
		floor) script=floor.sql.tmp ;;
		c) psql -Xqc "SELECT bench_stripe.reset_c()" >/dev/null; script=stripe_pgbench.sql ;;
		plpgsql) psql -Xqc "SELECT bench_stripe.reset_sql()" >/dev/null; script=stripe_pgbench_plpgsql.sql ;;
		esac
		# the re-signing UPDATE left a dead version of every delivery: vacuum
		# it now, or both routes' runs pay for pruning and autovacuum of the
		# input table
		psql -Xqc "VACUUM bench_stripe.deliveries" -c "CHECKPOINT" >/dev/null
		PGOPTIONS="-c synchronous_commit=$sc" "$bindir/pgbench" -n -M prepared -c 2 -j 2 -t 25000 \
			-f "$script" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
		tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -1)
		echo "$impl $sc $tps"
	done
done | awk '
	{ tps[$1 " " $2] = $3 }
	END {
		printf "%-32s %12s %12s %8s %8s\n", "pgbench, 2 clients (b)", "C events/s", "PL/pgSQL", "ratio", "target"
		for (i = 0; i < 2; i++) {
			sc = i == 0 ? "off" : "on"
			c = tps["c " sc]; p = tps["plpgsql " sc]
			printf "%-32s %12.0f %12.0f %8.2f %8s %s\n", "synchronous_commit = " sc, c, p, c / p,
				sc == "off" ? "2" : "-", sc == "off" ? (c / p >= 2 ? "met" : "MISSED") : ""
		}
		printf "floor: a one-row INSERT per transaction, %.0f/s (sync off), %.0f/s (sync on); C reaches %.0f%% of it with sync on\n",
			tps["floor off"], tps["floor on"], 100 * tps["c on"] / tps["floor on"]
	}'
