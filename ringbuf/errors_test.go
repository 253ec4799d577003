package ringbuf

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// TestErrorText checks the text of every error the package returns: the
// package and the operation are named once ("ringbuf: consume: ...", never
// "ringbuf: ... ringbuf: ..."), map types by name, closed-object errors say
// which call met the closed reader, and errors.Is still finds the errno or
// sentinel underneath.
func TestErrorText(t *testing.T) {
	ring := newRingMap(t, 1<<14)
	perf := newPerfArray(t)
	small, err := bpftest.NewPerfEventArray(1)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Close()
	arr, err := bpftest.NewArray(4, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer arr.Close()
	efd := nonMapFD(t)
	sock, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sock)
	gone := closedFD(t)
	n := strconv.Itoa

	newRing := func(fd int) func() error {
		return func() error {
			r, err := NewRingReader(fd)
			if r != nil {
				r.Close()
			}
			return err
		}
	}
	newPerf := func(fd int, opts PerfOptions) func() error {
		return func() error {
			r, err := NewPerfReader(fd, opts)
			if r != nil {
				r.Close()
			}
			return err
		}
	}
	closedRing := func(call func(r *RingReader) error) func() error {
		return func() error {
			r, err := NewRingReader(ring.FD())
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			return call(r)
		}
	}
	closedPerf := func(call func(r *PerfReader) error) func() error {
		return func() error {
			r, err := NewPerfReader(perf.FD(), PerfOptions{CPUs: testCPUs(t)[:1]})
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			return call(r)
		}
	}
	// inCallback runs call on r from inside Consume's callback, with one
	// record in the ring, and returns call's error or Consume's.
	inCallback := func(call func(r *RingReader) error, consumeErr bool) func() error {
		return func() error {
			r, err := NewRingReader(ring.FD())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			p, err := bpftest.NewRingProducer(ring, 8)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Emit(make([]byte, 8)); err != nil {
				t.Fatal(err)
			}
			var inner error
			_, outer := r.Consume(func([]byte) { inner = call(r) })
			if consumeErr {
				return outer
			}
			return inner
		}
	}
	const einval = ": invalid argument"
	cases := []errorCase{
		// Descriptors: the kernel would read 1<<32+fd as fd.
		{"ring: fd past 32 bits", unix.EBADF, "ringbuf: new ring reader: map descriptor " + n(1<<32+ring.FD()) + " out of range: bad file descriptor", newRing(1<<32 + ring.FD())},
		{"ring: fd below -2^32", unix.EBADF, "ringbuf: new ring reader: map descriptor " + n(-(1<<32)+ring.FD()) + " out of range: bad file descriptor", newRing(-(1 << 32) + ring.FD())},
		{"ring: fd -1", unix.EBADF, "ringbuf: new ring reader: map descriptor -1 out of range: bad file descriptor", newRing(-1)},
		{"ring: closed fd", unix.EBADF, "ringbuf: new ring reader: map descriptor " + n(gone) + ": fcntl(F_DUPFD_CLOEXEC): bad file descriptor", newRing(gone)},
		{"ring: eventfd", unix.EINVAL, "ringbuf: new ring reader: descriptor " + n(efd) + " is not a BPF map: bpf(BPF_OBJ_GET_INFO_BY_FD)" + einval, newRing(efd)},
		{"ring: socket", unix.EINVAL, "ringbuf: new ring reader: descriptor " + n(sock) + " is not a BPF map: bpf(BPF_OBJ_GET_INFO_BY_FD)" + einval, newRing(sock)},
		{"ring: array map", unix.EINVAL, "ringbuf: new ring reader: map is BPF_MAP_TYPE_ARRAY, not BPF_MAP_TYPE_RINGBUF" + einval, newRing(arr.FD())},
		{"ring: perf array", unix.EINVAL, "ringbuf: new ring reader: map is BPF_MAP_TYPE_PERF_EVENT_ARRAY, not BPF_MAP_TYPE_RINGBUF" + einval, newRing(perf.FD())},
		{"perf: fd past 32 bits", unix.EBADF, "ringbuf: new perf reader: map descriptor " + n(1<<32+perf.FD()) + " out of range: bad file descriptor", newPerf(1<<32+perf.FD(), PerfOptions{})},
		{"perf: fd below -2^32", unix.EBADF, "ringbuf: new perf reader: map descriptor " + n(-(1<<32)+perf.FD()) + " out of range: bad file descriptor", newPerf(-(1<<32)+perf.FD(), PerfOptions{})},
		{"perf: fd 2^31", unix.EBADF, "ringbuf: new perf reader: map descriptor 2147483648 out of range: bad file descriptor", newPerf(1<<31, PerfOptions{})},
		{"perf: eventfd", unix.EINVAL, "ringbuf: new perf reader: descriptor " + n(efd) + " is not a BPF map: bpf(BPF_OBJ_GET_INFO_BY_FD)" + einval, newPerf(efd, PerfOptions{})},
		{"perf: socket", unix.EINVAL, "ringbuf: new perf reader: descriptor " + n(sock) + " is not a BPF map: bpf(BPF_OBJ_GET_INFO_BY_FD)" + einval, newPerf(sock, PerfOptions{})},
		{"perf: ring map", unix.EINVAL, "ringbuf: new perf reader: map is BPF_MAP_TYPE_RINGBUF, not BPF_MAP_TYPE_PERF_EVENT_ARRAY" + einval, newPerf(ring.FD(), PerfOptions{})},
		// Options.
		{"perf: pages not a power of two", unix.EINVAL, "ringbuf: new perf reader: PagesPerCPU 3 is not a power of two" + einval, newPerf(perf.FD(), PerfOptions{PagesPerCPU: 3})},
		{"perf: negative pages", unix.EINVAL, "ringbuf: new perf reader: PagesPerCPU -1 is not a power of two" + einval, newPerf(perf.FD(), PerfOptions{PagesPerCPU: -1})},
		{"perf: 2^51 pages", unix.EINVAL, "ringbuf: new perf reader: PagesPerCPU 2251799813685248 is too large: a ring holds at most 1073741824 bytes" + einval, newPerf(perf.FD(), PerfOptions{PagesPerCPU: 1 << 51})},
		{"perf: 2^62 pages", unix.EINVAL, "ringbuf: new perf reader: PagesPerCPU 4611686018427387904 is too large: a ring holds at most 1073741824 bytes" + einval, newPerf(perf.FD(), PerfOptions{PagesPerCPU: 1 << 62})},
		{"perf: negative wakeup", unix.EINVAL, "ringbuf: new perf reader: negative WakeupEvents or Watermark" + einval, newPerf(perf.FD(), PerfOptions{WakeupEvents: -1})},
		{"perf: wakeup and watermark", unix.EINVAL, "ringbuf: new perf reader: WakeupEvents and Watermark are mutually exclusive" + einval, newPerf(perf.FD(), PerfOptions{WakeupEvents: 2, Watermark: 8})},
		{"perf: watermark past ring", unix.EINVAL, "ringbuf: new perf reader: Watermark " + n(os.Getpagesize()) + " is not smaller than the " + n(os.Getpagesize()) + "-byte ring" + einval, newPerf(perf.FD(), PerfOptions{PagesPerCPU: 1, Watermark: os.Getpagesize()})},
		{"perf: wakeup too large", unix.EINVAL, "ringbuf: new perf reader: WakeupEvents 2147483648 too large" + einval, newPerf(perf.FD(), PerfOptions{WakeupEvents: 1 << 31})},
		{"perf: no CPUs", unix.EINVAL, "ringbuf: new perf reader: no CPUs to read" + einval, newPerf(perf.FD(), PerfOptions{CPUs: []int{}})},
		{"perf: CPU twice", unix.EINVAL, "ringbuf: new perf reader: CPU 0 negative or listed twice" + einval, newPerf(perf.FD(), PerfOptions{CPUs: []int{0, 0}})},
		{"perf: CPU without a slot", unix.E2BIG, "ringbuf: new perf reader: CPU 1 has no slot in a perf event array of 1 entries (keys 0 to 0): argument list too long", newPerf(small.FD(), PerfOptions{CPUs: []int{1}})},
		// Closed readers name the call.
		{"ring: consume after close", os.ErrClosed, "ringbuf: consume: file already closed", closedRing(func(r *RingReader) error { _, err := r.Consume(nil); return err })},
		{"ring: poll after close", os.ErrClosed, "ringbuf: poll: file already closed", closedRing(func(r *RingReader) error { _, err := r.Poll(0, nil); return err })},
		{"ring: close twice", os.ErrClosed, "ringbuf: close: file already closed", closedRing(func(r *RingReader) error { return r.Close() })},
		{"perf: consume after close", os.ErrClosed, "ringbuf: consume: file already closed", closedPerf(func(r *PerfReader) error { _, err := r.Consume(Handler{}); return err })},
		{"perf: poll after close", os.ErrClosed, "ringbuf: poll: file already closed", closedPerf(func(r *PerfReader) error { _, err := r.Poll(0, Handler{}); return err })},
		{"perf: close twice", os.ErrClosed, "ringbuf: close: file already closed", closedPerf(func(r *PerfReader) error { return r.Close() })},
		{"ring: poll inside consume", unix.EBUSY, "ringbuf: poll: another call is reading this reader: device or resource busy",
			inCallback(func(r *RingReader) error { _, err := r.Poll(0, nil); return err }, false)},
		{"ring: consume inside consume", unix.EBUSY, "ringbuf: consume: another call is reading this reader: device or resource busy",
			inCallback(func(r *RingReader) error { _, err := r.Consume(nil); return err }, false)},
		{"ring: begin inside consume", unix.EBUSY, "ringbuf: begin: another call is reading this reader: device or resource busy",
			inCallback(func(r *RingReader) error { _, err := r.Begin(); return err }, false)},
		{"ring: closed during consume", os.ErrClosed, "ringbuf: consume: reader closed during the call: file already closed",
			inCallback(func(r *RingReader) error { return r.Close() }, true)},
	}
	checkErrorTexts(t, cases)
}

// errorCase is one row of an error text table: call must fail with an
// error matching want whose text is text.
type errorCase struct {
	name string
	want error
	text string
	call func() error
}

func checkErrorTexts(t *testing.T, cases []errorCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, c.want) {
				t.Errorf("errors.Is(%v, %v) is false", err, c.want)
			}
			if got := err.Error(); got != c.text {
				t.Errorf("text\n got: %s\nwant: %s", got, c.text)
			}
			if k := strings.Count(err.Error(), "ringbuf:"); k != 1 {
				t.Errorf("%q names the package %d times", err, k)
			}
		})
	}
}

// TestErrorTextWithoutKernel is TestErrorText for the errors that need no
// BPF: corrupt rings read in memory, and the dispatcher.
func TestErrorTextWithoutKernel(t *testing.T) {
	checkErrorTexts(t, []errorCase{
		// Corrupt rings, read in memory.
		{"ring: corrupt", ErrCorrupt, "ringbuf: consume: corrupt ring: ring buffer consumer 0, producer 264, size 256", func() error {
			s := newSimRing(t, 256, 0)
			atomic.StoreUint64(s.ring.prod, 264)
			_, err := s.consume(nil)
			return err
		}},
		{"perf: corrupt", ErrCorrupt, "ringbuf: consume: CPU 2: corrupt ring: perf ring head 264, tail 0, size 256", func() error {
			s := newSimPerf(t, 256, 0)
			s.head = 264
			s.publish()
			_, err := s.consume(Handler{})
			return onCPU(err, 2)
		}},
		// The same corrupt record met by every call that reads a perf
		// ring: the CPU named once, as Consume names it.
		{"perf: peek: corrupt", ErrCorrupt, corruptOnCPU1, func() error {
			_, _, err := corruptSim(t).Peek(1, nil)
			return err
		}},
		{"perf: next in a session: corrupt", ErrCorrupt, corruptOnCPU1, func() error {
			sim := corruptSim(t)
			require.NoError(t, sim.Begin())
			defer func() { require.NoError(t, sim.End()) }()
			var s PerfSample
			_, err := sim.Next(1, nil, &s)
			return err
		}},
		{"perf: consume until: corrupt", ErrCorrupt, corruptOnCPU1, func() error {
			_, _, err := corruptSim(t).ConsumeUntil(1, math.MaxUint64, Handler{}, nil)
			return err
		}},
		{"perf: peek run: corrupt", ErrCorrupt, corruptOnCPU1, func() error {
			_, err := corruptSim(t).PeekRun(1, nil, make([]PerfSample, 4))
			return err
		}},
		// Dispatch.
		{"dispatch: short", ErrShortRecord, "ringbuf: dispatch: record of 3 bytes is shorter than its category", func() error {
			return NewDispatcher().Dispatch(0, []byte{1, 2, 3})
		}},
		{"dispatch: unknown", ErrUnknownCategory, "ringbuf: dispatch: unknown record category 1 (0 registered)", func() error {
			return NewDispatcher().Dispatch(0, []byte{1, 0, 0, 0})
		}},
	})
}

// Every call that claims a reader has busy and closed-meanwhile errors of
// its own, naming it: the names given to enter in the package's sources
// are each found in errorsOf.
func TestErrorsOfEveryCall(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	calls := map[string]bool{}
	enter := regexp.MustCompile(`\.enter\("([^"]+)"\)`)
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range enter.FindAllSubmatch(src, -1) {
			calls[string(m[1])] = true
		}
	}
	require.Greater(t, len(calls), 5, "the sources' enter calls were not found")
	for call := range calls {
		e := errorsOf(call)
		require.True(t, strings.HasPrefix(e.busy.Error(), "ringbuf: "+call+": "), "%q: %v", call, e.busy)
		require.True(t, strings.HasPrefix(e.closed.Error(), "ringbuf: "+call+": "), "%q: %v", call, e.closed)
		require.ErrorIs(t, e.busy, unix.EBUSY)
		require.ErrorIs(t, e.closed, os.ErrClosed)
	}
}

const corruptOnCPU1 = "ringbuf: consume: CPU 1: corrupt ring: perf record size 13 not a multiple of 8"

// corruptSim returns simulated rings for CPUs 0 and 1 whose ring 1 holds
// a record of a size no kernel writes.
func corruptSim(t *testing.T) *PerfSim {
	sim, err := NewPerfSim(2, 1, true)
	require.NoError(t, err)
	t.Cleanup(func() { sim.Close() })
	require.NoError(t, sim.Corrupt(1))
	return sim
}
