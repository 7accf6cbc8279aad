#!/bin/sh
# The benchmark ("make bench"): on a throwaway PostgreSQL 15 cluster unless
# PGHOST/PGDATABASE point at a server.  Prints C vs plain-SQL ratios.
set -eu
cd "$(dirname "$0")/../.."
if [ "${1:-}" != "--here" ] && [ -z "${PGHOST:-}${PGDATABASE:-}" ]; then
	# settings of a small production server; the defaults (128 MB) are too small
	exec test/cluster.sh -o shared_buffers=1GB -o work_mem=64MB -o maintenance_work_mem=512MB \
		-o max_wal_size=8GB -o checkpoint_timeout=30min "$0" --here
fi
# BENCH="kpi invoice" runs only those scripts
files=
for b in ${BENCH:-}; do files="$files test/bench/$b.sql"; done
[ -n "$files" ] || files=$(ls test/bench/*.sql)
for f in $files; do
	echo "== $f"
	psql -X -q -v ON_ERROR_STOP=1 -f "$f"
done
