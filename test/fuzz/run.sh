#!/bin/sh
# Run the license parser fuzzer for a bounded time over the seed corpus.
# New inputs go to test/fuzz/work (not committed); a crash leaves a
# crash-* file in test/fuzz and fails the run.
set -eu
cd "$(dirname "$0")"
seconds=${1:-45}
mkdir -p work
exec ./fuzz_license -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 \
	-timeout=10 -print_final_stats=1 -artifact_prefix=./ work corpus
