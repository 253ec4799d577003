#!/usr/bin/env bash
# Installs the network benchmarks' real clients and the C peer when missing:
# redis-server, redis-cli and redis-benchmark (Debian packages redis-server,
# redis-tools), wrk and taskset. Needs root and apt-get; without them it says
# what is missing and goes on (fails with EVENTPIPE_REQUIRE_BENCH_PEERS=1).
# Does nothing when all are there.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-benchmark >/dev/null || missing+=(redis-tools)
command -v redis-cli >/dev/null || missing+=(redis-tools)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null || [ "$(id -u)" -ne 0 ]; then
  echo "install-peers: missing ${missing[*]} and cannot apt-get here (no apt-get, or not root); the benchmarks that need them are skipped" >&2
  [ "${EVENTPIPE_REQUIRE_BENCH_PEERS:-}" != 1 ] || exit 1
  exit 0
fi
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
