#!/usr/bin/env bash
# The EventPipe's drain figures (issue 12's targets): BenchmarkPipeOverhead
# (the pipe and the bare reader paired fill by fill in one process),
# BenchmarkPipeDrain (every side, cilium/ebpf's included),
# BenchmarkPipeDrainAcrossCPUs, BenchmarkPerfLoopWake (where a loop's
# wakeup spends its time) and the root package's in-memory
# BenchmarkSimDrain and BenchmarkSimOverhead, ROUNDS rounds (5 by
# default), interleaved.
#
#   ./pipebench.sh [results-pipe.txt]   raw output; load averages in results-pipe.load
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-results-pipe.txt}
load=${out%.txt}.load
rounds=${ROUNDS:-5}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
export EVENTPIPE_REQUIRE_BPF=1
go test -c -o "$dir/bench.test" .
(cd .. && go test -c -o "$dir/root.test" .)
: > "$out"
: > "$load"
for round in $(seq "$rounds"); do
  echo "round $round: $(uptime)" >> "$load"
  "$dir/bench.test" -test.run='^$' -test.benchmem -test.bench='^BenchmarkPipeOverhead$' -test.benchtime=200000x
  "$dir/bench.test" -test.run='^$' -test.benchmem -test.bench='^BenchmarkPipeDrain$' -test.benchtime=200000x
  "$dir/bench.test" -test.run='^$' -test.benchmem -test.bench='^BenchmarkPipeDrainAcrossCPUs$' -test.benchtime=50000x
  "$dir/bench.test" -test.run='^$' -test.bench='^BenchmarkPerfLoopWake$' -test.benchtime=200000x
  (cd .. && "$dir/root.test" -test.run='^$' -test.benchmem -test.bench='^BenchmarkSimDrain$' -test.benchtime=1000000x)
  (cd .. && "$dir/root.test" -test.run='^$' -test.benchmem -test.bench='^BenchmarkSimOverhead$' -test.benchtime=1000000x)
done >> "$out"
echo "end: $(uptime)" >> "$load"
