#!/bin/sh
# The whole test suite ("make check-all" runs it after building and
# installing): parser unit tests and fuzzing outside the server, then
# pg_regress, isolation and pgTAP against throwaway PostgreSQL 15 clusters
# (test/cluster.sh: UTF-8, whatever the caller's locale).
set -u
cd "$(dirname "$0")/.."
PG_CONFIG=${PG_CONFIG:-pg_config}
export PG_CONFIG
passed=0
failed=0
suite() {
	name=$1; shift
	echo "=== $name"
	if "$@"; then
		passed=$((passed + 1)); echo "=== $name: ok"
	else
		failed=$((failed + 1)); echo "=== $name: FAILED"
	fi
}

suite "unit tests" make -s unit
suite "fuzzing (${FUZZ_SECONDS:-45} s, ASan+UBSan)" make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-45}"
suite "pg_regress + isolation" test/cluster.sh -o fsync=off sh -c '
	make -s installcheck PG_CONFIG="$PG_CONFIG" ||
		{ cat regression.diffs 2>/dev/null; cat output_iso/regression.diffs 2>/dev/null; exit 1; }'
suite "pg_regress on an install upgraded from 1.0" test/cluster.sh -o fsync=off test/upgraded-regress.sh
suite "scripts: dump/restore, encoding" test/cluster.sh -o fsync=off prove test/scripts/*.sh
suite "pgTAP" test/cluster.sh -o fsync=off sh -c 'psql -Xq -c "CREATE EXTENSION pgtap" && pg_prove -f test/pgtap/*.sql'

echo "suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
