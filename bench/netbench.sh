#!/usr/bin/env bash
# Runs the network benchmarks (RESP, HTTP, echo, idle connections; see
# cmd/netbench): installs the clients when missing, builds the servers
# (examples/resp, peers/ours, peers/gnet, peers/gonet) and the driver once,
# then runs ROUNDS rounds (5 by default), the server on CPU SERVER_CPU (1),
# the client on CLIENT_CPU (0), and summarises with netpairs.py.
#
#   ./netbench.sh [results-net.txt]   measure (minutes; on a quiet machine)
#   ./netbench.sh -short              tiny runs, only to prove it all works
#
# Extra arguments after the file go to the driver (-suites resp,http, ...).
# The load average at the start of each round goes to <file>.load.
set -euo pipefail
cd "$(dirname "$0")"
short=()
out=results-net.txt
if [ "${1:-}" = "-short" ]; then
  short=(-short)
  shift
  out=$(mktemp --suffix=.txt)
elif [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  out=$1
  shift
fi
load=${out%.txt}.load
bash ./install-peers.sh
bin=$(mktemp -d)
trap 'rm -rf "$bin"; [ ${#short[@]} -eq 0 ] || rm -f "$out" "$load"' EXIT
go build -o "$bin/" ./cmd/netbench ./peers/ours ./peers/gnet ./peers/gonet
go build -o "$bin/resp" github.com/eventpipe/eventpipe/examples/resp
"$bin/netbench" run -bin "$bin" -out "$out" -server-cpu "${SERVER_CPU:-1}" -client-cpu "${CLIENT_CPU:-0}" \
  -rounds "${ROUNDS:-5}" -load "$load" "${short[@]}" "$@"
if [ ${#short[@]} -gt 0 ]; then
  echo "(short run: each row lasted a few clock ticks of server CPU; the ratios below only prove that the pipeline works)"
fi
python3 netpairs.py "$out"
