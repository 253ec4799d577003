// Package bench holds side-by-side benchmarks of eventpipe against the
// obvious alternative for each job: a buffered channel for posting tasks, a
// channel send and a bare eventfd ping-pong for wakeup latency,
// time.AfterFunc for timers, and cilium/ebpf's readers and libbpf's
// consumers (a C program in libbpf/, built by libbpf/build.sh against the
// system's libbpf) for perf event rings and BPF ring buffers, with a bare
// Go loop over the same rings as the floor Go allows, plus the
// wakeup latency of both ring readers with every P of the runtime busy.
//
// It is a module of its own so that the peers it imports never reach the
// library's go.mod. Each pair runs in one process on the same work, and each
// benchmark checks what it measured (tasks run, records delivered, timers
// fired) and fails on a mismatch, so a fast wrong answer cannot pass.
//
// The network benchmarks (RESP, HTTP, echo, idle connections) are
// separate programs, since their clients are real ones (redis-benchmark,
// wrk) in processes of their own: cmd/netbench drives them against the
// servers in peers/ and examples/resp, and netbench.sh runs it.
//
// Run the drain benchmarks with a count, as measure.sh and pipebench.sh do
// (-benchtime=200000x): each fill of a ring runs the BPF program once per
// record with the timer stopped, and Go scales b.N by the timed drains
// alone, so the default -benchtime=1s asks for hundreds of millions of
// records and a run of many minutes per benchmark.
//
// The figures, and the commands that produced them, are in RESULTS.md.
package bench
