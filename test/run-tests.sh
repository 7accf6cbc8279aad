#!/bin/sh
# The whole test suite ("make check-all" runs it after building and
# installing): parser unit tests and fuzzing outside the server, then
# pg_regress, isolation and pgTAP against a throwaway PostgreSQL 15 cluster.
set -u
cd "$(dirname "$0")/.."
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

suite "parser unit tests" make -s unit
suite "fuzzing (${FUZZ_SECONDS:-45} s, ASan+UBSan)" make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-45}"
# pg_virtualenv runs the cluster as postgres: its scratch files must be writable
chmod -R a+rwX . 2>/dev/null || true
suite "pg_regress + isolation" pg_virtualenv -v 15 sh -c '
	make -s installcheck || { cat regression.diffs 2>/dev/null; cat output_iso/regression.diffs 2>/dev/null; exit 1; }'
suite "pgTAP" pg_virtualenv -v 15 sh -c 'psql -Xq -c "CREATE EXTENSION pgtap" && pg_prove -f test/pgtap/*.sql'

echo "suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
