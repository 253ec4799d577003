package bpftest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrUnavailable is wrapped by Available's error when this process lacks
// the privileges (CAP_BPF, CAP_PERFMON) or the kernel the features that the
// producers and perf readers need. Any other error is a real failure.
var ErrUnavailable = errors.New("BPF or perf events unavailable")

// RequireEnv is the environment variable that, set to 1, turns Require's
// skip into a failure, so that a CI job meant to exercise the kernel paths
// cannot pass by skipping them.
const RequireEnv = "EVENTPIPE_REQUIRE_BPF"

// Require skips the test when BPF programs, BPF maps or perf events are
// unavailable here, saying why; with EVENTPIPE_REQUIRE_BPF=1 it fails the
// test instead. An unexpected error (one that is not about privileges or
// kernel support) always fails the test.
func Require(t testing.TB) {
	t.Helper()
	require_(t, Available())
}

// require_ is Require with Available's answer passed in, so tests can check
// each verdict.
func require_(t testing.TB, err error) {
	t.Helper()
	switch {
	case err == nil:
	case !errors.Is(err, ErrUnavailable):
		t.Fatalf("bpftest: probing for BPF support failed unexpectedly: %v", err)
	case os.Getenv(RequireEnv) == "1":
		t.Fatalf("bpftest: %v (and %s=1 forbids skipping)", err, RequireEnv)
	default:
		t.Skipf("bpftest: skipping, needs BPF and perf events (root, or CAP_BPF+CAP_PERFMON): %v", err)
	}
}

// Available reports whether BPF programs and maps (array, perf event array,
// ringbuf) can be created and perf events opened here, and if not, why. The
// answer is worked out once per process.
func Available() error { return availableOnce() }

var availableOnce = sync.OnceValue(probe)

// errnoENOTSUPP is the kernel-internal ENOTSUPP (524), which some bpf(2)
// paths hand to user space for "not supported by this kernel or map".
const errnoENOTSUPP = unix.Errno(524)

// probe creates and frees one of each kernel object the package relies on.
func probe() error {
	unavailable := func(what string, err error) error {
		var errno unix.Errno
		if errors.As(err, &errno) {
			switch errno {
			case unix.EPERM, unix.EACCES, unix.ENOSYS, unix.EOPNOTSUPP, errnoENOTSUPP:
				return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
			}
		}
		return fmt.Errorf("%s: %w", what, err)
	}

	arr, err := NewArray(1, 4)
	if err != nil {
		return unavailable("array map", err)
	}
	defer arr.Close()

	ring, err := NewRingBuf(os.Getpagesize())
	if errors.Is(err, unix.EINVAL) {
		// Kernels before 5.8 do not know the map type.
		return fmt.Errorf("ringbuf map: %w: %w", ErrUnavailable, err)
	}
	if err != nil {
		return unavailable("ringbuf map", err)
	}
	defer ring.Close()

	perf, err := NewPerfEventArray(0)
	if err != nil {
		return unavailable("perf event array", err)
	}
	defer perf.Close()

	// A probe producer exercises program loading, the helpers and
	// SO_ATTACH_BPF in one go.
	p, err := NewRingProducer(ring, 8)
	if err != nil {
		return unavailable("socket filter program", err)
	}
	defer p.Close()

	var cpus unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cpus); err != nil {
		return fmt.Errorf("sched_getaffinity: %w", err)
	}
	cpu := 0
	for cpu < 1024 && !cpus.IsSet(cpu) {
		cpu++
	}
	fd, err := OpenPerfEvent(cpu)
	if err != nil {
		return unavailable("perf_event_open", err)
	}
	defer unix.Close(fd)

	// LookupU32 on a perf event array runs a tracing program.
	if _, err := perf.LookupU32(0); err != nil && !errors.Is(err, unix.ENOENT) {
		return unavailable("tracing program", err)
	}
	return nil
}

// OpenPerfEvent opens a PERF_COUNT_SW_BPF_OUTPUT software event on cpu for
// all processes, with PERF_SAMPLE_RAW samples and a wakeup per sample: the
// kind of event a perf event array slot must hold for bpf_perf_event_output.
// The fd is close-on-exec; the caller closes it.
func OpenPerfEvent(cpu int) (int, error) {
	attr := unix.PerfEventAttr{
		Type:        unix.PERF_TYPE_SOFTWARE,
		Config:      unix.PERF_COUNT_SW_BPF_OUTPUT,
		Sample_type: unix.PERF_SAMPLE_RAW,
		Wakeup:      1, // wakeup_events: PerfBitWatermark is clear
	}
	attr.Size = uint32(unsafe.Sizeof(attr))
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("bpftest: perf_event_open on CPU %d: %w", cpu, err)
	}
	return fd, nil
}

// SkipExamplesWithout is for a TestMain, before m.Run: examples cannot call
// t.Skip, so when BPF is unavailable here it adds the named examples (or
// tests) to -test.skip and says so on stderr. With EVENTPIPE_REQUIRE_BPF=1,
// or when the probe failed for an unexpected reason, it skips nothing and
// the examples fail, as Require would make a test fail.
func SkipExamplesWithout(names ...string) {
	err := Available()
	if err == nil || !errors.Is(err, ErrUnavailable) || os.Getenv(RequireEnv) == "1" || len(names) == 0 {
		return
	}
	if !flag.Parsed() {
		flag.Parse()
	}
	pattern := "^(" + strings.Join(names, "|") + ")$"
	if f := flag.Lookup("test.skip"); f != nil {
		if old := f.Value.String(); old != "" {
			pattern = old + "|" + pattern
		}
		if f.Value.Set(pattern) == nil {
			fmt.Fprintf(os.Stderr, "bpftest: skipping %s, which need BPF and perf events (root, or CAP_BPF+CAP_PERFMON): %v\n",
				strings.Join(names, ", "), err)
		}
	}
}
