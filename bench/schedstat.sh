#!/usr/bin/env bash
# Counts what the Go runtime's scheduler costs a network server: for each
# server, one `wrk -t1 -c CONNS -d 5s` HTTP run (server pinned to CPU 1,
# wrk to CPU 0), with `perf stat` on the server process: server CPU per
# request, and context switches, futex calls and nanosleep calls (sysmon's
# sleeps) per 1000 requests. Servers: peers/ours and peers/gnet from this
# tree, and peers/ours as of BASE when BASE=<git revision> is given (to
# compare the loop before and after a change). ROUNDS rounds, alternated.
#
#   ./schedstat.sh                 ours and gnet, 5 rounds, 50 connections
#   BASE=bc64423 LOOPS=2 ./schedstat.sh
#
# Needs perf (Debian package linux-perf; installed when missing, as root)
# and wrk (install-peers.sh). Not run by CI.
set -euo pipefail
cd "$(dirname "$0")"
bash ./install-peers.sh
if ! command -v perf >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends linux-perf >/dev/null
  else
    echo "schedstat: needs perf (linux-perf)" >&2
    exit 1
  fi
fi
rounds=${ROUNDS:-5}
conns=${CONNS:-50}
loops=${LOOPS:-1}
bin=$(mktemp -d)
wt=""
cleanup() {
  rm -rf "$bin"
  if [ -n "$wt" ]; then git worktree remove --force "$wt" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
go build -o "$bin/" ./peers/ours ./peers/gnet
servers=(ours gnet)
if [ -n "${BASE:-}" ]; then
  wt=$(mktemp -d)
  git worktree add --detach "$wt" "$BASE" >/dev/null 2>&1
  (cd "$wt/bench" && go build -o "$bin/ours-base" ./peers/ours)
  servers+=(ours-base)
fi
port=18700
echo "# $(uptime)"
for round in $(seq "$rounds"); do
  for s in "${servers[@]}"; do
    port=$((port + 1))
    taskset -c 1 "$bin/$s" -proto http -loops "$loops" -addr "127.0.0.1:$port" >/dev/null 2>&1 &
    pid=$!
    sleep 0.5
    perf stat -x, -e task-clock,context-switches,syscalls:sys_enter_futex,syscalls:sys_enter_nanosleep \
      -p "$pid" -o "$bin/stat" -- sleep 5.2 &
    sp=$!
    out=$(taskset -c 0 wrk -t1 -c"$conns" -d5s --latency "http://127.0.0.1:$port/" 2>&1)
    wait "$sp"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    reqs=$(echo "$out" | awk '/requests in/{print $1}')
    p99=$(echo "$out" | awk '$1=="99%"{print $2}')
    awk -F, -v s="$s" -v r="$reqs" -v p99="$p99" -v round="$round" -v c="$conns" -v l="$loops" '
      /^[0-9]/ {
        n = $3; sub(/.*sys_enter_/, "", n)
        if ($3 == "task-clock") v["cpu-us/req"] = $1 * 1000 / r; else v[n "/1k-req"] = $1 * 1000 / r
      }
      END {
        printf "round=%d server=%s loops=%d conns=%d requests=%d p99=%s cpu-us/req=%.2f context-switches/1k-req=%.1f futex/1k-req=%.1f nanosleep/1k-req=%.1f\n",
          round, s, l, c, r, p99, v["cpu-us/req"], v["context-switches/1k-req"], v["futex/1k-req"], v["nanosleep/1k-req"]
      }' "$bin/stat"
  done
done
echo "# $(uptime)"
