#!/bin/sh
# Run the license parser fuzzer for a bounded time over the seed corpus.
# New inputs go to test/fuzz/work (not committed); a finding leaves a
# crash-*/leak-*/timeout-* file in test/fuzz and fails the run.
set -u
cd "$(dirname "$0")"
seconds=${1:-45}
mkdir -p work
./fuzz_license -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 \
	-timeout=10 -print_final_stats=1 -artifact_prefix=./ work corpus > work/fuzz.log 2>&1
rc=$?
if [ $rc -ne 0 ]; then
	tail -60 work/fuzz.log
	exit $rc
fi
grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)|^Done' work/fuzz.log
