// drain: libbpf as a peer in the ring drain benchmarks (bench/rings_test.go).
//
// It reads, with libbpf's own consumers, the rings of a map it inherits
// from the Go benchmark: a BPF_MAP_TYPE_PERF_EVENT_ARRAY through
// perf_buffer__new/perf_buffer__consume, or a BPF_MAP_TYPE_RINGBUF through
// ring_buffer__new/ring_buffer__consume. The kernel fills the rings (the Go
// side emits); this program only drains, and times only the drain.
//
//   drain perf|ring MAP_FD RECORD_BYTES CPU PAGES
//
// RECORD_BYTES is the length each record's data must have, CPU the CPU
// every record must come from (perf) and to pin this process to, PAGES the
// data pages of each perf ring. Protocol on stdin/stdout, one line each:
//
//   "ready"            written once the reader is set up
//   "d K"  -> "NS N"   drain until K records arrived; NS is the drain's
//                      CLOCK_MONOTONIC time in ns, N the records drained
//   "q"    -> "NEXT BAD LOST"  records seen, records that were out of
//                      sequence, of the wrong size or from the wrong CPU,
//                      and records the kernel reported lost; then exit
//
// Each callback does the Go checker's work: length, CPU, and the sequence
// number in the first 8 bytes.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/libbpf.h>

struct checker {
	size_t size;
	int cpu;
	uint64_t next, bad, lost;
};

static void check(struct checker *c, int cpu, const void *data, size_t size)
{
	uint64_t seq;

	if (size < sizeof(seq)) {
		c->bad++;
	} else {
		memcpy(&seq, data, sizeof(seq));
		if (cpu != c->cpu || size != c->size || seq != c->next)
			c->bad++;
	}
	c->next++;
}

static void perf_sample(void *ctx, int cpu, void *data, __u32 size)
{
	check(ctx, cpu, data, size);
}

static void perf_lost(void *ctx, int cpu, __u64 n)
{
	struct checker *c = ctx;

	(void)cpu;
	c->lost += n;
}

static int ring_sample(void *ctx, void *data, size_t size)
{
	struct checker *c = ctx;

	check(c, c->cpu, data, size);
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int die(const char *what, int err)
{
	fprintf(stderr, "drain: %s: %s\n", what, strerror(err < 0 ? -err : err));
	return 1;
}

int main(int argc, char **argv)
{
	struct checker c = {0};
	struct perf_buffer *pb = NULL;
	struct ring_buffer *rb = NULL;
	cpu_set_t set;
	char line[64];
	int perf, fd, pages, err;

	if (argc != 6) {
		fprintf(stderr, "usage: drain perf|ring MAP_FD RECORD_BYTES CPU PAGES\n");
		return 2;
	}
	perf = strcmp(argv[1], "perf") == 0;
	fd = atoi(argv[2]);
	c.size = (size_t)atoi(argv[3]);
	c.cpu = atoi(argv[4]);
	pages = atoi(argv[5]);

	CPU_ZERO(&set);
	CPU_SET(c.cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return die("sched_setaffinity", errno);
	libbpf_set_strict_mode(LIBBPF_STRICT_ALL);
	if (perf) {
		pb = perf_buffer__new(fd, pages, perf_sample, perf_lost, &c, NULL);
		if (!pb)
			return die("perf_buffer__new", errno);
	} else {
		rb = ring_buffer__new(fd, ring_sample, &c, NULL);
		if (!rb)
			return die("ring_buffer__new", errno);
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");

	while (fgets(line, sizeof(line), stdin)) {
		unsigned long long want, start, first;
		uint64_t t0, t1;

		if (line[0] == 'q')
			break;
		if (sscanf(line, "d %llu", &want) != 1)
			return die("bad command", EINVAL);
		first = c.next;
		t0 = now_ns();
		while (c.next - first < want) {
			start = c.next;
			err = perf ? perf_buffer__consume(pb) : ring_buffer__consume(rb);
			if (err < 0)
				return die("consume", err);
			if (c.next == start)
				break; /* ran dry: the Go side reports the shortfall */
		}
		t1 = now_ns();
		printf("%llu %llu\n", (unsigned long long)(t1 - t0), (unsigned long long)(c.next - first));
	}
	printf("%llu %llu %llu\n", (unsigned long long)c.next, (unsigned long long)c.bad, (unsigned long long)c.lost);
	perf_buffer__free(pb);
	ring_buffer__free(rb);
	return 0;
}
