//go:build ignore

// SPDX-License-Identifier: GPL-2.0
//
// execsnoop: one record per execve, written both to a BPF ring buffer and to
// a perf event array, each record led by the category the Go side
// registered (EventPipe.Register numbers them 0, 1, ... in order).
//
// It runs on the raw tracepoint sys_enter, which every system call passes
// and which, unlike a tracefs tracepoint, attaches by name without tracefs
// mounted; it keeps only execve, whose number the loader sets in execve_nr
// (system call numbers differ between architectures).
//
// Build (the compiled object is committed, so running the example needs no
// compiler):
//
//   go generate    (in this directory), which runs
//   clang -O2 -g -target bpf -fdebug-prefix-map=$PWD=. -I/usr/include/$(uname -m)-linux-gnu \
//       -c execsnoop.bpf.c -o execsnoop.bpf.o && llvm-strip -g execsnoop.bpf.o
//
// (-g makes the BTF that describes the maps; the prefix map and llvm-strip
// keep the build machine's paths out of the object.)
//
// Needs clang and libbpf's headers (Debian: apt-get install clang libbpf-dev).

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

// Categories, in the order main.go registers its handlers.
enum category {
	CAT_EXEC_RING = 0,
	CAT_EXEC_PERF = 1,
};

struct exec_event {
	__u32 category;
	__u32 pid;  // the process calling execve (its tgid)
	__u32 len;  // bytes of comm used: a perf payload is padded past it
	__u32 _pad;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

// A full ring buffer makes bpf_ringbuf_output fail and user space never
// hears of the record: count the failures, per CPU, where it can read them.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

// Set by the loader before the program is loaded.
volatile const __u64 execve_nr = 0;

// sys_enter's arguments: the registers, then the system call number.
SEC("raw_tracepoint/sys_enter")
int trace_execve(struct bpf_raw_tracepoint_args *ctx)
{
	struct exec_event ev = {};
	__u32 zero = 0;
	__u64 *dropped;
	int i;

	if (ctx->args[1] != execve_nr)
		return 0;
	ev.pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(ev.comm, sizeof(ev.comm));
	for (i = 0; i < (int)sizeof(ev.comm) && ev.comm[i]; i++)
		;
	ev.len = i;

	ev.category = CAT_EXEC_RING;
	if (bpf_ringbuf_output(&events, &ev, sizeof(ev), 0) < 0) {
		dropped = bpf_map_lookup_elem(&drops, &zero);
		if (dropped)
			(*dropped)++;
	}

	ev.category = CAT_EXEC_PERF;
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &ev, sizeof(ev));
	return 0;
}
