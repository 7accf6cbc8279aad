#!/bin/sh
# TAP: the extension refuses a database whose encoding is not UTF-8, with a
# clear error (0A000) and a hint, at CREATE EXTENSION and at the update to
# 1.3; and it works in a UTF-8 database whatever the server's locale.
# Run under test/cluster.sh (PGHOST etc. set).
set -u
n=0
ok() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }
for enc in LATIN1 SQL_ASCII; do
	db=dogdb_enc_$(echo "$enc" | tr 'A-Z' 'a-z')
	createdb -T template0 -E "$enc" --locale=C "$db"
	out=$(psql -X -q -d "$db" -v VERBOSITY=verbose -c "CREATE EXTENSION dogdb_analytics CASCADE" 2>&1)
	echo "$out" | grep -q "ERROR:  0A000: dogdb_analytics requires a database with encoding UTF8, not $enc"
	ok $? "CREATE EXTENSION in a $enc database fails with 0A000"
	echo "$out" | grep -q "HINT:  Create the database with"
	ok $? "and a hint"
	out=$(psql -X -q -d "$db" -c "CREATE EXTENSION dogdb_analytics VERSION '1.2' CASCADE" -c "ALTER EXTENSION dogdb_analytics UPDATE" 2>&1)
	echo "$out" | grep -q "ERROR:  dogdb_analytics requires a database with encoding UTF8"
	ok $? "updating a 1.2 install in a $enc database to 1.3 fails the same way"
	dropdb "$db"
done
createdb -T template0 -E UTF8 --locale=C dogdb_enc_utf8
psql -X -q -d dogdb_enc_utf8 -v ON_ERROR_STOP=1 -c "CREATE EXTENSION dogdb_analytics CASCADE" >/dev/null 2>&1
ok $? "CREATE EXTENSION works in a UTF8 database with the C locale"
v=$(psql -X -A -t -d dogdb_enc_utf8 -c "SELECT license_id || length(license_id) FROM dogdb_parse_license('{“license_id”:“lé”,“role”:“r”,“status”:“s”}')" 2>&1)
[ "$v" = "lé2" ]
ok $? "curly-quoted license text parses to the right characters ($v)"
dropdb dogdb_enc_utf8
echo "1..$n"
