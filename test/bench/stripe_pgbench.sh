#!/bin/sh
# Part (b) of test/bench/stripe.sql (which runs it with \!, after loading
# bench_stripe.deliveries): pgbench -M prepared, 2 clients, one delivery
# per transaction in delivery order, the first 50,000 deliveries once
# each (25,000 per client: a run must end within the 5 minutes the
# signatures are valid), through
# dogdb_ingest_stripe_event() and through the PL/pgSQL baseline, with
# synchronous_commit off and on.  Prints events/s and the ratios, and
# the floors (synchronous_commit off): a one-row INSERT per transaction
# (the commit alone), the outer query alone (it reads the delivery), and
# the outer query inserting the delivery's body into a plain table (the
# raw ledger row and its WAL, which both routes write).
#
# STRIPE_PERF=1 (root, perf installed) records each synchronous_commit =
# off run system-wide (perf record -a -g) and prints the CPU per
# transaction of this cluster's processes by kind (the two backends,
# pgbench, the WAL writer, the rest of the cluster) and of everything else
# on the machine; the data stay in $STRIPE_PERF_DIR (default /tmp) as
# stripe-perf-<run>.data for perf report.
set -eu
cd "$(dirname "$0")"
bindir=$("${PG_CONFIG:-pg_config}" --bindir)
perfdir=${STRIPE_PERF_DIR:-/tmp}
out=$(mktemp)
trap 'rm -f "$out" floor.sql.tmp outer.sql.tmp floorp.sql.tmp' EXIT
printf 'INSERT INTO bench_stripe.floor VALUES (1);\n' >floor.sql.tmp
printf 'SELECT length(payload), length(header) FROM bench_stripe.deliveries WHERE n = (SELECT nextval(%s));\n' \
	"'bench_stripe.seq'" >outer.sql.tmp
printf 'INSERT INTO bench_stripe.floorp SELECT payload FROM bench_stripe.deliveries WHERE n = (SELECT nextval(%s));\n' \
	"'bench_stripe.seq'" >floorp.sql.tmp
psql -Xqc "CREATE TABLE IF NOT EXISTS bench_stripe.floor (x int)" \
	-c "CREATE TABLE IF NOT EXISTS bench_stripe.floorp (payload text)" >/dev/null
walwriter=$(psql -XAtc "SELECT pid FROM pg_stat_activity WHERE backend_type = 'walwriter'")
postmaster=$(awk '{print $4}' "/proc/$walwriter/stat" 2>/dev/null || echo 0)

# CPU µs per transaction by kind of process, from the perf file of one run
cpu_per_tx() {
	freq=$(perf report -i "$1" --header-only 2>/dev/null | sed -n 's/.*sample_freq } = \([0-9]*\).*/\1/p' | head -1)
	perf script -i "$1" --show-task-events -G -F comm,pid 2>/dev/null | awk -v pm="$postmaster" -v ww="$walwriter" \
		-v ntx="$2" -v run="$3" -v us="$((1000000 / ${freq:-4000}))" '
		/PERF_RECORD_FORK/ {
			if (match($0, /FORK\([0-9]+:[0-9]+\):\([0-9]+:/)) {
				split(substr($0, RSTART + 5, RLENGTH - 5), f, /[():]+/)
				parent[f[1]] = f[3]
			}
			next
		}
		/PERF_RECORD/ { next }
		NF >= 2 { n[$NF]++; comm[$NF] = $1 }
		END {
			for (pid in n) {
				q = pid
				for (i = 0; i < 20 && (q in parent) && q != pm; i++)
					q = parent[q]
				t = n[pid] * us / ntx
				if (comm[pid] == "pgbench") k = "pgbench"
				else if (pid == ww) k = "walwriter"
				else if (q == pm || pid == pm) k = t > 5 ? "backends" : "other"
				else k = "elsewhere"
				cpu[k] += t
			}
			printf "  %-8s this cluster and pgbench %4.0f us/tx (backends %.0f, pgbench %.0f, WAL writer %.0f, other %.0f); the rest of the machine %.0f\n",
				run, cpu["backends"] + cpu["pgbench"] + cpu["walwriter"] + cpu["other"], cpu["backends"],
				cpu["pgbench"], cpu["walwriter"], cpu["other"], cpu["elsewhere"]
		}'
}

for sc in off on; do
	for impl in c plpgsql floor outer floorp; do
		[ "$sc" = on ] && case $impl in outer|floorp) continue ;; esac
		case $impl in
		floor) psql -Xqc "TRUNCATE bench_stripe.floor" >/dev/null; script=floor.sql.tmp ;;
		outer) psql -Xqc "SELECT setval('bench_stripe.seq', 1, false)" >/dev/null; script=outer.sql.tmp ;;
		floorp) psql -Xqc "TRUNCATE bench_stripe.floorp" -c "SELECT setval('bench_stripe.seq', 1, false)" >/dev/null
			script=floorp.sql.tmp ;;
		c) psql -Xqc "SELECT bench_stripe.reset_c()" >/dev/null; script=stripe_pgbench.sql ;;
		plpgsql) psql -Xqc "SELECT bench_stripe.reset_sql()" >/dev/null; script=stripe_pgbench_plpgsql.sql ;;
		esac
		# the re-signing UPDATE left a dead version of every delivery: vacuum
		# it now, or both routes' runs pay for pruning and autovacuum of the
		# input table
		psql -Xqc "VACUUM bench_stripe.deliveries" -c "CHECKPOINT" >/dev/null
		w0=$(psql -XAtc "SELECT wal_bytes FROM pg_stat_wal")
		if [ "${STRIPE_PERF:-}" = 1 ] && [ "$sc" = off ]; then
			PGOPTIONS="-c synchronous_commit=$sc" perf record -q -a -g -o "$perfdir/stripe-perf-$impl.data" -- \
				"$bindir/pgbench" -n -M prepared -c 2 -j 2 -t 25000 -f "$script" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
		else
			PGOPTIONS="-c synchronous_commit=$sc" "$bindir/pgbench" -n -M prepared -c 2 -j 2 -t 25000 \
				-f "$script" >"$out" 2>&1 || { cat "$out" >&2; exit 1; }
		fi
		w1=$(psql -XAtc "SELECT wal_bytes FROM pg_stat_wal")
		tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$out" | head -1)
		echo "$impl $sc $tps $(( (w1 - w0) / 50000 ))"
	done
done >"$out.tps"
awk '
	{ tps[$1 " " $2] = $3; wal[$1 " " $2] = $4 }
	END {
		printf "%-32s %12s %12s %8s %8s\n", "pgbench, 2 clients (b)", "C events/s", "PL/pgSQL", "ratio", "target"
		for (i = 0; i < 2; i++) {
			sc = i == 0 ? "off" : "on"
			c = tps["c " sc]; p = tps["plpgsql " sc]
			printf "%-32s %12.0f %12.0f %8.2f %8s %s\n", "synchronous_commit = " sc, c, p, c / p,
				sc == "off" ? "2" : "-", sc == "off" ? (c / p >= 2 ? "met" : "MISSED") : ""
		}
		printf "WAL per event (sync off): C %d bytes, PL/pgSQL %d bytes\n", wal["c off"], wal["plpgsql off"]
		printf "floor: a one-row INSERT per transaction, %.0f/s (sync off), %.0f/s (sync on); C reaches %.0f%% of it with sync on\n",
			tps["floor off"], tps["floor on"], 100 * tps["c on"] / tps["floor on"]
		printf "floors (sync off): the outer query alone %.0f/s; it inserting the body into a plain table %.0f/s (%d bytes of WAL each)\n",
			tps["outer off"], tps["floorp off"], wal["floorp off"]
	}' "$out.tps"
rm -f "$out.tps"
if [ "${STRIPE_PERF:-}" = 1 ]; then
	echo "CPU per transaction, synchronous_commit = off (perf record -a, 50,000 transactions each):"
	for impl in c plpgsql floor outer floorp; do
		cpu_per_tx "$perfdir/stripe-perf-$impl.data" 50000 "$impl"
	done
fi
