#!/usr/bin/env python3
"""Summarises pipebench.sh's output: BenchmarkPipeOverhead's in-process
paired ratios (median and range over the rounds), BenchmarkPerfLoopWake's
phases, and the per-round
paired ratios of BenchmarkPipeDrain's and BenchmarkPipeDrainAcrossCPUs'
sides (each round's two runs of the same process, a few seconds apart).

    python3 pipepairs.py results-pipe.txt
"""
import re
import statistics
import sys
from collections import defaultdict


def metrics(line):
    f = line.split()
    return f[0], {f[i + 1]: float(f[i]) for i in range(2, len(f) - 1) if re.match(r"^[0-9.]+$", f[i])}


def main(path):
    overhead = defaultdict(lambda: defaultdict(list))
    sim = defaultdict(list)
    wake = defaultdict(list)
    rounds = []  # per round: name -> ns/record
    for line in open(path):
        if not line.startswith("Benchmark"):
            continue
        name, m = metrics(line)
        name = re.sub(r"-\d+$", "", name)
        if name.startswith("BenchmarkPipeOverhead/"):
            for k, v in m.items():
                overhead[name.split("/", 1)[1]][k].append(v)
            if name.endswith("/perf/pipe-vs-bare"):
                rounds.append({})
        elif name == "BenchmarkPerfLoopWake":
            for k, v in m.items():
                if k.endswith("-µs"):
                    wake[k].append(v)
        elif name.startswith("BenchmarkSimOverhead/"):
            sim[name.split("/", 1)[1]].append(m["ratio"])
        elif "ns/record" in m and rounds:
            rounds[-1][name] = m["ns/record"]
    print("BenchmarkPipeOverhead (impl / base, median of each run's paired fills;")
    print("  span: the records' own span; fixed: microseconds per drain outside it, base / impl):")
    for k, m in overhead.items():
        v = m["ratio"]
        line = f"  {k:34s} median {statistics.median(v):.3f}  range {min(v):.2f}-{max(v):.2f}  n={len(v)}"
        if m.get("span-ratio"):
            line += f"  span {statistics.median(m['span-ratio']):.3f}"
        if m.get("base-fixed-µs"):
            line += f"  fixed {statistics.median(m['base-fixed-µs']):.1f} / {statistics.median(m['impl-fixed-µs']):.1f}"
        print(line)
    if sim:
        print("BenchmarkSimOverhead (in memory, impl / base, median of each run's paired drains):")
        for k, v in sim.items():
            print(f"  {k:34s} median {statistics.median(v):.3f}  range {min(v):.2f}-{max(v):.2f}  n={len(v)}")
    if wake:
        print("BenchmarkPerfLoopWake (µs per fill, median over the runs):")
        for k, v in sorted(wake.items()):
            print(f"  {k:34s} median {statistics.median(v):.2f}  range {min(v):.2f}-{max(v):.2f}  n={len(v)}")
    pairs = [
        ("PipeDrain/source=perf/impl=pipe", "PipeDrain/source=perf/impl=bare"),
        ("PipeDrain/source=perf/impl=pipe-ordered", "PipeDrain/source=perf/impl=bare"),
        ("PipeDrain/source=perf/impl=pipe-ordered", "PipeDrain/source=perf/impl=bare-timed"),
        ("PipeDrain/source=perf/impl=bare-timed", "PipeDrain/source=perf/impl=bare"),
        ("PipeDrain/source=perf/impl=cilium-switch", "PipeDrain/source=perf/impl=pipe"),
        ("PipeDrain/source=perf/impl=cilium-switch", "PipeDrain/source=perf/impl=pipe-ordered"),
        ("PipeDrain/source=ring/impl=pipe", "PipeDrain/source=ring/impl=bare"),
        ("PipeDrain/source=ring/impl=cilium-switch", "PipeDrain/source=ring/impl=pipe"),
        ("PipeDrainAcrossCPUs/source=perf/impl=pipe-ordered", "PipeDrainAcrossCPUs/source=perf/impl=bare-timed"),
    ]
    print("per-round paired ratios (ns/record):")
    for a, b in pairs:
        rs = [r["Benchmark" + a] / r["Benchmark" + b] for r in rounds if "Benchmark" + a in r and "Benchmark" + b in r]
        if rs:
            print(f"  {a:50s} / {b.split('/',1)[1]:30s} median {statistics.median(rs):.2f}  range {min(rs):.2f}-{max(rs):.2f}  n={len(rs)}")
    med = defaultdict(list)
    for r in rounds:
        for k, v in r.items():
            med[k].append(v)
    print("medians, ns/record:")
    for k, v in med.items():
        print(f"  {k:70s} {statistics.median(v):8.2f}")


main(sys.argv[1] if len(sys.argv) > 1 else "results-pipe.txt")
