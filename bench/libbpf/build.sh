#!/usr/bin/env bash
# Builds the libbpf peer of the ring drain benchmarks with the system C
# compiler against Debian's libbpf-dev, installing both when missing.
#
#   libbpf/build.sh [OUTPUT]      default: libbpf/drain next to this script
#
# The Go benchmarks look for the program at libbpf/drain, or where
# EVENTPIPE_LIBBPF_DRAIN says.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/drain}
if ! command -v gcc >/dev/null || [ ! -e /usr/include/bpf/libbpf.h ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc libbpf-dev >/dev/null
fi
gcc -O2 -Wall -Wextra -Werror -o "$out" "$here/drain.c" -lbpf
