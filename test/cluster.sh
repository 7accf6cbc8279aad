#!/bin/bash
# Run a command against a throwaway PostgreSQL cluster:
#
#	test/cluster.sh [-o name=value]... command [args...]
#
# The cluster is made with the initdb of $PG_CONFIG (default pg_config) in
# a new temporary directory, UTF-8 with the C.UTF-8 locale whatever the
# caller's locale, listening only on a Unix socket in that directory and on
# a free loopback port.  The command runs with PGHOST, PGPORT, PGUSER and
# PGDATABASE set to reach it as a superuser; the cluster is stopped and
# removed afterwards, and the command's exit status is returned.
#
# The server refuses to run as root: as root the cluster belongs to the
# "postgres" user (created by Debian's postgresql-common), otherwise to the
# caller.  Several of these clusters can run at once.
set -eu
PG_CONFIG=${PG_CONFIG:-pg_config}
bindir=$("$PG_CONFIG" --bindir)

opts=
while [ $# -gt 0 ] && [ "$1" = "-o" ]; do
	opts="$opts -c $2"
	shift 2
done
[ $# -gt 0 ] || { echo "usage: $0 [-o name=value]... command [args...]" >&2; exit 2; }

if [ "$(id -u)" = 0 ]; then
	owner=postgres
	as_owner() { runuser -u postgres -- "$@"; }
else
	owner=$(id -un)
	as_owner() { "$@"; }
fi

dir=$(mktemp -d /tmp/dogdb-cluster.XXXXXX)
chmod 755 "$dir"
chown "$owner" "$dir"
cleanup() {
	as_owner "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# a free TCP port on loopback (tests connect over TCP too)
port=
for try in $(seq 1 50); do
	p=$(( 20000 + ($$ * 7 + try * 131) % 30000 ))
	if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then port=$p; break; fi
done 2>/dev/null
[ -n "$port" ] || { echo "$0: no free port" >&2; exit 1; }

LC_ALL=C.UTF-8 as_owner "$bindir/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
	-E UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s \
	-o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir $opts" start ||
	{ cat "$dir/server.log" >&2; exit 1; }

export PGHOST="$dir" PGPORT="$port" PGUSER=postgres PGDATABASE=postgres
export DOGDB_CLUSTER_LOG="$dir/server.log"
status=0
"$@" || status=$?
exit $status
