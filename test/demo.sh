#!/bin/sh
# The demo ("make demo"): create the extension, load the legacy sample,
# import it, print the import summary and the data-quality report.
#
# Runs on a throwaway local PostgreSQL 15 cluster, or on your server when
# PGHOST or PGDATABASE is set (it then writes to that database's dogdb
# schema and replaces its dogdb_demo_legacy schema).
set -eu
cd "$(dirname "$0")/.."

if [ "${1:-}" != "--here" ] && [ -z "${PGHOST:-}${PGDATABASE:-}" ]; then
	echo "No PGHOST/PGDATABASE: running on a throwaway local cluster"
	chmod -R a+rX . 2>/dev/null || true
	exec pg_virtualenv -v 15 "$0" --here
fi

psql -X -v ON_ERROR_STOP=1 -q <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS dogdb_analytics CASCADE;
DROP SCHEMA IF EXISTS dogdb_demo_legacy CASCADE;
CREATE SCHEMA dogdb_demo_legacy;
SET search_path = dogdb_demo_legacy, public;
\i test/legacy_sample.sql
RESET search_path;
\echo
\echo '== Import of the legacy tables (every source row imported, rejected or skipped)'
SELECT * FROM dogdb_import_legacy('dogdb_demo_legacy');
\echo '== Quarantined rows'
SELECT source_table, source_row->>'account_id' AS account_id, reason
  FROM dogdb.import_rejects ORDER BY source_table, reject_id;
\echo '== Data-quality report'
SELECT * FROM dogdb_check_data_quality();
SQL
