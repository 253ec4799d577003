#!/usr/bin/env bash
# Reproduces the figures in RESULTS.md: builds the benchmark binary once,
# then runs every group of benchmarks once per round, ROUNDS rounds (10 by
# default). Interleaving the rounds, rather than -count N per benchmark,
# spreads load drift on a shared machine over every side alike.
#
#   ./measure.sh [results.txt]     raw output, for benchstat
#
# The load average at the start of each round goes to results.load next to it.
set -euo pipefail
cd "$(dirname "$0")"
out=${1:-results.txt}
load=${out%.txt}.load
rounds=${ROUNDS:-10}
bin=$(mktemp -d)/bench.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
export EVENTPIPE_REQUIRE_BPF=1 # a ring benchmark that would skip fails instead
go test -c -o "$bin" .
libbpf/build.sh # the libbpf peer of the ring drains, at libbpf/drain
: > "$out"
: > "$load"
for round in $(seq "$rounds"); do
  echo "round $round: $(uptime)" >> "$load"
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkPost$' -test.benchtime=1s
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkWakeupLatency$' -test.benchtime=10000x
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkTimers$' -test.benchtime=1000000x
  "$bin" -test.run='^$' -test.benchmem -test.bench='^Benchmark(Perf|Ring)Drain$' -test.benchtime=200000x
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkRingWakeupLatency$' -test.benchtime=2000x
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkPipeDrain$' -test.benchtime=200000x
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkPipeMaxLatency$' -test.benchtime=2000x
  "$bin" -test.run='^$' -test.benchmem -test.bench='^BenchmarkMillionTimers$' -test.benchtime=1000000x
done >> "$out"
echo "end: $(uptime)" >> "$load"
