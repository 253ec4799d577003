#!/usr/bin/env python3
"""Per-round paired ratios of the network benchmarks (cmd/netbench output),
in the style of pairs.py: the i-th run of our server is paired with the
i-th run of the peer's (same round, minutes apart at most); each pair
prints the median and range of its per-round ratios, and each comparison
the geometric mean of those medians over its rows, which is what a target
is judged on.

Ratios are always "above 1: ours is better": ours/peer for requests (or
messages) per server CPU-second and per second, peer/ours for p99 latency,
and peer/ours for memory per idle connection (so 4.0 against Go net means
a quarter of its memory).

    python3 netpairs.py results-net.txt
"""
import collections, math, re, statistics, sys

runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("Benchmark"):
        f = line.split()
        runs[f[0]].append({f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)})

def cases(suite, server):
    """The row names (without /server=) that server ran in suite, in order."""
    out = []
    for name in runs:
        m = re.fullmatch(rf"Benchmark{suite}/(.*)/server={re.escape(server)}", name)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return out

def ratios(a, b, unit, higher_better):
    ra = [r[unit] for r in a]
    rb = [r[unit] for r in b]
    return [(x / y if higher_better else y / x) for x, y in zip(ra, rb) if x > 0 and y > 0]

def compare(suite, ours, peer, unit, higher_better=True, target=None):
    medians = []
    for case in cases(suite, ours):
        a, b = runs.get(f"Benchmark{suite}/{case}/server={ours}"), runs.get(f"Benchmark{suite}/{case}/server={peer}")
        if not a or not b:
            continue
        r = ratios(a, b, unit, higher_better)
        if not r:
            continue
        m = statistics.median(r)
        medians.append(m)
        print(f"  {suite} {case}: {ours} vs {peer} [{unit}]: median {m:.2f}, range {min(r):.2f}-{max(r):.2f}, rounds {len(r)}")
    if medians:
        g = math.exp(sum(math.log(m) for m in medians) / len(medians))
        verdict = ""
        if target is not None:
            verdict = f" (target >= {target}: {'met' if g >= target else 'missed'})"
        print(f"{suite}: {ours} vs {peer} [{unit}]: geometric mean {g:.2f} over {len(medians)} rows{verdict}")

for peer, target in (("redis", None), ("gnet-1", 1.2), ("gonet", 1.5)):
    compare("RESP", "ours-1", peer, "req/cpu-s", target=target)
    compare("RESP", "ours-1", peer, "p99-ms", higher_better=False, target=1.0)
compare("RESP", "ours-2", "gnet-2", "req/cpu-s", target=1.2)
# PING with one loop against redis-server's one thread: target >= 1.0.
for p in ("1", "16"):
    a = runs.get(f"BenchmarkRESP/test=ping/pipeline={p}/server=ours-1")
    b = runs.get(f"BenchmarkRESP/test=ping/pipeline={p}/server=redis")
    if a and b:
        r = ratios(a, b, "req/cpu-s", True)
        if r:
            print(f"RESP ping -P {p}: ours-1 vs redis [req/cpu-s]: median {statistics.median(r):.2f} (target >= 1.0)")
for peer, target in (("gnet", 1.2), ("nethttp", 1.5)):
    compare("HTTP", "ours", peer, "req/cpu-s", target=target)
    compare("HTTP", "ours", peer, "p99-ms", higher_better=False, target=1.0)
for peer in ("gnet", "gonet"):
    compare("Echo", "ours", peer, "msg/cpu-s")
    compare("Echo", "ours", peer, "MB/s")
    compare("Echo", "ours", peer, "p99-us", higher_better=False, target=1.0)
for peer, target in (("gnet", 1.0), ("gonet", 4.0)):
    compare("Idle", "ours", peer, "rss-KiB/conn", higher_better=False, target=target)
    compare("Idle", "ours", peer, "heap-KiB/conn", higher_better=False)
