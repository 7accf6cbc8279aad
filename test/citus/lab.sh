#!/bin/bash
# The Citus lab: dogdb_analytics on a coordinator and two workers on loopback.
#
#	test/citus/lab.sh [CITUS_SOURCE]		(or CITUS_SRC=... test/citus/lab.sh)
#
# Given a Citus source tree (git archive of citusdata/citus v13.2.2, the
# newest release that takes PostgreSQL 15), it
#	1. copies it to a build directory outside the repository, applies the
#	   one compatibility fix PostgreSQL 15.20 needs (the server now exports
#	   have_createdb_privilege(), which Citus also defines: the copy's
#	   definition is renamed), configures it --without-libcurl and installs it
#	   into the PostgreSQL of $PG_CONFIG (skipped when that install already
#	   has this Citus build);
#	2. starts a coordinator and two workers (initdb under a temporary
#	   directory, shared_preload_libraries = citus, loopback only), creates
#	   btree_gist, citus and dogdb_analytics on every node and adds the
#	   workers;
#	3. runs test/citus/setup.sql on the coordinator (data loaded into the
#	   still local tables, the single-node results kept, dogdb_distribute()),
#	   two invoice runs at once, then test/citus/suite.sql: every result on
#	   the distributed tables against the single node's, pushdown asserted
#	   from EXPLAIN (TAP lines; "# TODO" marks what is not supported yet),
#	   then two legacy imports at once claiming one license id;
#	4. stops and removes everything.
# With CITUS_LAB_BENCH=<companies> it runs test/citus/bench.sql instead of
# the suite.  Without a source tree it says "skipped" and exits 0.  Nothing of Citus is
# kept in this repository.  The build needs the headers the server was built
# with: Debian packages libkrb5-dev libzstd-dev liblz4-dev.
set -eu
cd "$(dirname "$0")/../.."
PG_CONFIG=${PG_CONFIG:-pg_config}
src=${1:-${CITUS_SRC:-}}
if [ -z "$src" ]; then
	echo "citus lab: skipped (no Citus source tree given: test/citus/lab.sh PATH or CITUS_SRC=PATH)"
	exit 0
fi
[ -f "$src/configure" ] || { echo "citus lab: $src is not a Citus source tree" >&2; exit 2; }
bindir=$("$PG_CONFIG" --bindir)
pkglibdir=$("$PG_CONFIG" --pkglibdir)
work=$(mktemp -d /tmp/dogdb-citus-lab.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

log() { echo "citus lab: $*"; }

# 1. build and install Citus (outside the repository)
stamp="$pkglibdir/citus.dogdb-lab-stamp"
srcid=$(md5sum <"$src/configure" | cut -c1-32)	# configure names the version
if [ -f "$pkglibdir/citus.so" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$srcid" ]; then
	log "Citus already built from $src ($srcid) in $pkglibdir"
else
	log "building Citus from $src in $work/build (2 to 8 minutes on two cores, with the load)"
	mkdir "$work/build"
	(cd "$src" && tar -cf - --exclude=.git .) | tar -xf - -C "$work/build"
	cd "$work/build"
	# the PostgreSQL 15.20 compat fix: rename Citus's own have_createdb_privilege()
	if grep -q 'have_createdb_privilege' "$("$PG_CONFIG" --includedir-server)/commands/dbcommands.h" &&
	   grep -q '^have_createdb_privilege(void)$' src/include/pg_version_compat.h; then
		sed -i 's/^have_createdb_privilege(void)$/citus_have_createdb_privilege(void)/;
				s/^#define have_createdb_privilege() have_createdb_privilege()$/#define citus_have_createdb_privilege() have_createdb_privilege()/' \
			src/include/pg_version_compat.h
		sed -i 's/\bhave_createdb_privilege()/citus_have_createdb_privilege()/' \
			src/backend/distributed/commands/serialize_distributed_ddls.c
		log "applied the have_createdb_privilege compat fix"
	fi
	./configure --without-libcurl PG_CONFIG="$PG_CONFIG" >"$work/configure.log" 2>&1 ||
		{ tail -20 "$work/configure.log"; exit 1; }
	make -s -j"$(nproc)" >"$work/make.log" 2>&1 || { grep -B3 -A3 -i error "$work/make.log" | tail -40; exit 1; }
	make -s install >>"$work/make.log" 2>&1 || { tail -20 "$work/make.log"; exit 1; }
	echo "$srcid" >"$stamp"
	cd - >/dev/null
	rm -rf "$work/build"
	log "Citus installed into $pkglibdir"
fi

# 2. three nodes on loopback
if [ "$(id -u)" = 0 ]; then
	owner=postgres
	as_owner() { runuser -u postgres -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi
chown "$owner" "$work"
nodes="coord w1 w2"
declare -A port
cleanup() {
	for n in $nodes; do
		[ -d "$work/$n" ] && as_owner "$bindir/pg_ctl" -D "$work/$n" -m immediate -w stop >/dev/null 2>&1 || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
base=$(( 30000 + ($$ * 7) % 20000 ))
for n in $nodes; do
	p=$base
	while (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; do p=$((p + 1)); done
	port[$n]=$p
	base=$((p + 1))
	LC_ALL=C.UTF-8 as_owner "$bindir/initdb" -D "$work/$n" -U postgres --auth=trust -E UTF8 \
		--locale=C.UTF-8 --no-sync >"$work/initdb-$n.log" 2>&1 || { cat "$work/initdb-$n.log"; exit 1; }
	as_owner "$bindir/pg_ctl" -D "$work/$n" -l "$work/$n.log" -w -s -o "-c listen_addresses=127.0.0.1 \
		-p $p -c unix_socket_directories=$work -c shared_preload_libraries=citus -c fsync=off \
		-c max_connections=100 -c citus.log_remote_commands=off" start ||
		{ cat "$work/$n.log"; exit 1; }
	log "node $n on 127.0.0.1:$p"
done
psql_on() { n=$1; shift; "$bindir/psql" -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port[$n]}" -U postgres -d postgres "$@"; }
for n in $nodes; do
	psql_on $n -q -c "CREATE EXTENSION btree_gist" -c "CREATE EXTENSION citus" -c "CREATE EXTENSION dogdb_analytics"
done
psql_on coord -q -c "SELECT citus_set_coordinator_host('127.0.0.1', ${port[coord]})" \
	-c "SELECT citus_add_node('127.0.0.1', ${port[w1]})" -c "SELECT citus_add_node('127.0.0.1', ${port[w2]})" >/dev/null
psql_on coord -c "SELECT citus_version()" -c "SELECT nodename, nodeport, noderole FROM pg_dist_node ORDER BY nodeport"

# the benchmark instead of the suite
if [ -n "${CITUS_LAB_BENCH:-}" ]; then
	psql_on coord -v companies="$CITUS_LAB_BENCH" -f test/citus/bench.sql
	exit
fi

# 3. the suite: setup.sql, two invoice runs at once, suite.sql
status=0
{
	psql_on coord -At -f test/citus/setup.sql &&
	{ psql_on coord -At -c "SELECT 'run 1: ' || count(*) FROM dogdb_generate_invoices('2021-06-01')" & p1=$!
	  psql_on coord -At -c "SELECT 'run 2: ' || count(*) FROM dogdb_generate_invoices('2021-06-01')" & p2=$!
	  wait $p1 && wait $p2; } &&
	psql_on coord -f test/citus/suite.sql &&
	# license ids unique across accounts: two imports at once claim one new
	# license id for accounts 1 and 2 (on different shards)
	for s in 1 2; do
		psql_on coord -q -c "SET client_min_messages = warning" -c "CREATE SCHEMA lic_$s" -c "SET search_path = lic_$s" \
			-f test/legacy_sample.sql -c "TRUNCATE customer_accounts, customer_interactions, customer_licenses" \
			-c "INSERT INTO customer_licenses VALUES ($s, '{\"license_id\": \"cafe0001\", \"role\": \"admin\", \"status\": \"active\"}', '2021-06-01', NULL)" ||
			exit 1
	done &&
	{ psql_on coord -At -c "SELECT 'import 1: ' || imported FROM dogdb_import_legacy('lic_1') WHERE source_table = 'customer_licenses'" & p1=$!
	  psql_on coord -At -c "SELECT 'import 2: ' || imported FROM dogdb_import_legacy('lic_2') WHERE source_table = 'customer_licenses'" & p2=$!
	  wait $p1 && wait $p2; } &&
	psql_on coord -At -c "SELECT CASE WHEN (SELECT count(*) FROM dogdb.licenses WHERE license_id = 'cafe0001') = 1
			AND (SELECT count(*) FROM dogdb.import_rejects WHERE reason = 'license cafe0001 was already imported with different data') = 1
			AND (SELECT count(*) = count(DISTINCT license_id) FROM dogdb.licenses)
		THEN 'ok' ELSE 'not ok' END || ' - two concurrent imports claim one license id for accounts on two shards: one license, one reject'"
} >"$work/suite.out" 2>&1 || status=$?
cat "$work/suite.out"
fails=$(grep '^not ok' "$work/suite.out" | grep -vc '# TODO' || true)
todos=$(grep -c '^not ok.*# TODO' "$work/suite.out" || true)
oks=$(grep -c '^ok' "$work/suite.out" || true)
if [ "$status" != 0 ] || [ "$fails" != 0 ] || [ "$oks" = 0 ]; then
	log "FAILED ($oks ok, $fails not ok, psql exit $status)"
	for n in $nodes; do echo "--- log of $n"; grep -E 'ERROR|FATAL|PANIC' "$work/$n.log" | tail -10; done
	exit 1
fi
log "passed ($oks ok, $todos TODO: not yet supported on Citus)"
