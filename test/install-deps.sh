#!/bin/sh
# Install the Debian packages that building, testing, fuzzing and
# benchmarking dogdb_analytics need (Debian 12, PostgreSQL 15), and the BI
# drivers test/scripts/bi_clients.sh connects with (pgJDBC, psycopg2, psqlODBC).
set -eu
pkgs="postgresql-15 postgresql-contrib postgresql-server-dev-15 libjansson-dev pkg-config
	make gcc clang libclang-rt-14-dev postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	openjdk-17-jdk-headless libpostgresql-jdbc-java python3-psycopg2 unixodbc odbc-postgresql python3-pyodbc"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
echo "installing:$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
