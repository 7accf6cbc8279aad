#!/bin/sh
# The pg_regress suite on a catalog upgraded from the first release (as
# postgresql-hll does): a database gets dogdb_analytics 1.0, updated
# through every version, and pg_regress runs in it as it is (no fresh
# CREATE EXTENSION).  Run under test/cluster.sh (PGHOST etc. set).
set -eu
db=dogdb_upgraded_regress
createdb -T template0 "$db"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL'
CREATE EXTENSION btree_gist;
CREATE EXTENSION dogdb_analytics VERSION '1.0';
ALTER EXTENSION dogdb_analytics UPDATE;
SQL
make -s installcheck PG_CONFIG="${PG_CONFIG:-pg_config}" ISOLATION= \
	REGRESS_OPTS="--inputdir=. --use-existing --dbname=$db" ||
	{ cat regression.diffs 2>/dev/null; exit 1; }
