#!/usr/bin/env python3
"""Per-round paired ratios from measure.sh output: pairs the i-th run of one
side with the i-th run of the other (both ran in the same round, minutes
apart at most) and prints the median and range of the ratios. On a shared,
noisy machine this is steadier than the ratio of two medians.

    python3 pairs.py results.txt
"""
import collections, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    if line.startswith("Benchmark"):
        f = line.split()
        runs[f[0]].append({f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)})
def pair(num, den, unit):
    r = [a[unit] / b[unit] for a, b in zip(runs[num], runs[den])]
    if not r:
        return  # not in this file (results-post.txt holds BenchmarkPost only)
    print(f"{num} / {den} [{unit}]: median {statistics.median(r):.2f}, range {min(r):.2f}-{max(r):.2f}")
P, L, T = "BenchmarkPost/impl=", "BenchmarkWakeupLatency/impl=", "BenchmarkTimers/impl="
for p in "14":
    for ours in ("queue", "loop"):
        pair(f"{P}chan/producers={p}-2", f"{P}{ours}/producers={p}-2", "ns/op")
for u in ("p50-ns", "p99-ns"):
    for base in ("floor", "floor+read"):
        pair(f"{L}loop-2", f"{L}{base}-2", u)
pair(f"{T}time.AfterFunc-2", f"{T}loop-2", "ns/op")
pair(f"{T}time.AfterFunc-2", f"{T}loop-2", "B/op")
for k in ("Perf", "Ring"):
    for s in ("64", "256"):
        pair(f"Benchmark{k}Drain/impl=cilium/record={s}-2", f"Benchmark{k}Drain/impl=eventpipe/record={s}-2", "ns/op")
# Since the libbpf peer and the bare-Go floor joined the drains: our time
# against theirs per record (above 1: they are faster), and the cilium ratio
# above, so each row reads "peer / ours" like the rest.
for k in ("Perf", "Ring"):
    for s in ("64", "256"):
        for peer in ("libbpf", "bare"):
            pair(f"Benchmark{k}Drain/impl={peer}/record={s}-2", f"Benchmark{k}Drain/impl=eventpipe/record={s}-2", "ns/record")
# The ring buffer drained through a RingBatch (the handler called from the
# caller's own loop), against the same peers.
for s in ("64", "256"):
    for peer in ("libbpf", "bare", "cilium"):
        pair(f"BenchmarkRingDrain/impl={peer}/record={s}-2", f"BenchmarkRingDrain/impl=eventpipe-batch/record={s}-2", "ns/record")
W = "BenchmarkRingWakeupLatency/reader="
for load in ("idle", "busy"):
    for u in ("p50-ns", "p99-ns"):
        pair(f"{W}perf/load={load}-2", f"{W}ring/load={load}-2", u)
D = "BenchmarkPipeDrain/source="
for ours in ("pipe", "pipe-ordered"):
    pair(f"{D}perf/impl={ours}-2", f"{D}perf/impl=bare-2", "ns/record")
    pair(f"{D}perf/impl=cilium-switch-2", f"{D}perf/impl={ours}-2", "ns/record")
pair(f"{D}ring/impl=pipe-2", f"{D}ring/impl=bare-2", "ns/record")
pair(f"{D}ring/impl=cilium-switch-2", f"{D}ring/impl=pipe-2", "ns/record")
M = "BenchmarkMillionTimers/impl="
for u in ("ns/op", "init-ns/timer"):
    pair(f"{M}time.AfterFunc-2", f"{M}loop-2", u)
for u in ("B/timer", "heap-MB"):
    pair(f"{M}loop-2", f"{M}time.AfterFunc-2", u)
