#!/usr/bin/env bash
# Installs the network benchmarks' real clients and the C peer when missing:
# redis-server, redis-cli and redis-benchmark (Debian packages redis-server,
# redis-tools) and wrk. Needs root (apt-get); does nothing when all are there.
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
echo "installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${missing[@]}" | sort -u) >/dev/null
