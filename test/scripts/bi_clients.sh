#!/bin/sh
# TAP: a login granted only dogdb_reader, over TCP with a password, runs the
# documented reads through the drivers BI tools use: pgJDBC (a small Java
# program compiled here: parameters, getTables({TABLE, VIEW}) and REMARKS,
# declared scales), psycopg2 and psqlODBC (pyodbc).  The drivers come from
# Debian (test/install-deps.sh).  Run under test/cluster.sh (PGHOST etc. set).
set -u
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
# number the unnumbered TAP lines a client prints; a client that fails early counts once
client() {
	what=$1; shift
	out=$("$@" 2>&1); status=$?
	lines=$(printf '%s\n' "$out" | grep -E '^(not )?ok - ')
	if [ -n "$lines" ]; then
		while IFS= read -r l; do
			case "$l" in
			"ok - "*) ok 0 "${l#ok - }" ;;
			*) ok 1 "${l#not ok - }" ;;
			esac
		done <<-LINES
		$lines
		LINES
	fi
	[ $status = 0 ] || { ok 1 "$what ran to the end"; printf '%s\n' "$out" | sed 's/^/# /'; }
}
db=dogdb_bi_clients
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP ROLE IF EXISTS bi_reader" >/dev/null 2>&1' EXIT
createdb "$db"
psql -X -q -d "$db" -v ON_ERROR_STOP=1 >/dev/null <<-'SQL'
	SET client_min_messages = warning;
	CREATE EXTENSION dogdb_analytics CASCADE;
	SELECT FROM dogdb_generate_demo_data(60, 6, '2021-01-01', 1);
	SELECT FROM dogdb_generate_invoices('2021-02-01');
	SELECT FROM dogdb_refresh_kpis();
	DROP ROLE IF EXISTS bi_reader;
	CREATE ROLE bi_reader LOGIN PASSWORD 'bi-reader-pw';
	GRANT dogdb_reader TO bi_reader;
SQL
ok $? "a database with demo data and a login granted only dogdb_reader"

# psql over TCP with the password
v=$(PGPASSWORD=bi-reader-pw psql -X -A -t -h 127.0.0.1 -U bi_reader -d "$db" \
	-c "SELECT count(*) > 0 FROM dogdb_kpi_revenue('2021-01-01', '2021-06-01', 'tier')" 2>&1)
[ "$v" = t ]
ok $? "psql: the login reads the revenue KPI over TCP ($v)"

jar=/usr/share/java/postgresql.jar
if [ -f "$jar" ] && command -v javac >/dev/null; then
	javac -d "$tmp" test/clients/BiClient.java 2>&1 | sed 's/^/# /'
	client "JDBC client" java -cp "$jar:$tmp" BiClient "jdbc:postgresql://127.0.0.1:$PGPORT/$db" bi_reader bi-reader-pw
else
	ok 1 "pgJDBC and javac are installed (test/install-deps.sh installs libpostgresql-jdbc-java and a JDK)"
fi

py=/usr/bin/python3
if $py -c 'import psycopg2, pyodbc' 2>/dev/null; then
	client "psycopg2 and ODBC client" $py test/clients/bi_client.py \
		"host=127.0.0.1 port=$PGPORT dbname=$db user=bi_reader password=bi-reader-pw" odbc
else
	ok 1 "python3-psycopg2 and python3-pyodbc are installed (test/install-deps.sh)"
fi
echo "1..$n"
