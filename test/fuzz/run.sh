#!/bin/sh
# Run every fuzzer for a bounded time over its seed corpus: the license
# parser, the window-funnel core and the Stripe signature header parser.
# New inputs go to test/fuzz/work/<name> (not committed); a finding leaves
# a crash-*/leak-*/timeout-* file in test/fuzz and fails the run.
set -u
cd "$(dirname "$0")"
seconds=${1:-45}
status=0
run() {
	name=$1; max_len=$2; corpus=$3
	mkdir -p "work/$name"
	echo "== fuzz_$name ($seconds s)"
	"./fuzz_$name" -max_total_time="$seconds" -max_len="$max_len" -rss_limit_mb=2048 \
		-timeout=10 -print_final_stats=1 -artifact_prefix=./ "work/$name" $corpus > "work/$name.log" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		tail -60 "work/$name.log"
		status=$rc
	fi
	grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)|^Done' "work/$name.log"
}
run license 4096 corpus
run funnel 64 ""
run stripe_header 8192 corpus_stripe
exit $status
