package bench

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// The libbpf peer: the C program in libbpf/ (built by libbpf/build.sh)
// drains the same kernel-filled rings with perf_buffer__consume and
// ring_buffer__consume. It inherits the map as descriptor 3 and is driven
// over a pipe, one fill at a time; it times only its drain, and that time
// is what ns/record reports (ns/op also holds the pipe round trips).

// libbpfDrainPath is where the peer is looked for.
func libbpfDrainPath() string {
	if p := os.Getenv("EVENTPIPE_LIBBPF_DRAIN"); p != "" {
		return p
	}
	return "libbpf/drain"
}

// cDrainer is a running libbpf peer.
type cDrainer struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

// startLibbpf starts the peer on mapFD in mode perf or ring. Without the
// program the benchmark is skipped, or fails where BPF is required (CI
// builds it first).
func startLibbpf(b *testing.B, mode string, mapFD, recordBytes int) *cDrainer {
	b.Helper()
	path := libbpfDrainPath()
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("libbpf peer not built (run libbpf/build.sh): %v", err)
		if os.Getenv("EVENTPIPE_REQUIRE_BPF") == "1" {
			b.Fatal(msg)
		}
		b.Skip(msg)
	}
	dup, err := unix.FcntlInt(uintptr(mapFD), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	mapFile := os.NewFile(uintptr(dup), "map")
	defer mapFile.Close() // the child has its own copy once started
	cmd := exec.Command(path, mode, "3", strconv.Itoa(recordBytes), strconv.Itoa(emitCPU), strconv.Itoa(ringPages))
	cmd.ExtraFiles = []*os.File{mapFile}
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	d := &cDrainer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() { d.stop() })
	if line := d.line(b); line != "ready" {
		b.Fatalf("libbpf peer: %q instead of ready", line)
	}
	return d
}

func (d *cDrainer) line(b *testing.B) string {
	b.Helper()
	if !d.out.Scan() {
		b.Fatalf("libbpf peer ended: %v", errors.Join(d.out.Err(), d.cmd.Wait()))
	}
	return d.out.Text()
}

// drain has the peer drain k records and returns the time it took.
func (d *cDrainer) drain(b *testing.B, k int) time.Duration {
	b.Helper()
	if _, err := fmt.Fprintf(d.in, "d %d\n", k); err != nil {
		b.Fatal(err)
	}
	var ns, n int64
	if _, err := fmt.Sscanf(d.line(b), "%d %d", &ns, &n); err != nil {
		b.Fatal(err)
	}
	if n != int64(k) {
		b.Fatalf("libbpf peer drained %d of %d records", n, k)
	}
	return time.Duration(ns)
}

// finish ends the peer and checks what it saw: want records in sequence,
// none lost.
func (d *cDrainer) finish(b *testing.B, want int) {
	b.Helper()
	if _, err := fmt.Fprintln(d.in, "q"); err != nil {
		b.Fatal(err)
	}
	var next, bad, lost int64
	if _, err := fmt.Sscanf(d.line(b), "%d %d %d", &next, &bad, &lost); err != nil {
		b.Fatal(err)
	}
	if next != int64(want) || bad != 0 || lost != 0 {
		b.Fatalf("libbpf peer saw %d records (want %d), %d bad, %d lost", next, want, bad, lost)
	}
	if err := d.stop(); err != nil {
		b.Fatal(err)
	}
}

// stop closes the peer's input and waits for it; a second call is a no-op.
func (d *cDrainer) stop() error {
	if d.cmd == nil {
		return nil
	}
	d.in.Close()
	err := d.cmd.Wait()
	d.cmd = nil
	return err
}

// runPeer is ringBench.run for a drain timed by the peer itself.
func (rb *ringBench) runPeer(d *cDrainer) {
	b := rb.b
	b.StopTimer()
	b.ResetTimer()
	var drained time.Duration
	for done := 0; done < b.N; {
		k := min(rb.capacity, b.N-done)
		rb.fill(k)
		b.StartTimer()
		drained += d.drain(b, k)
		b.StopTimer()
		done += k
	}
	b.ReportMetric(float64(drained.Nanoseconds())/float64(b.N), "ns/record")
}

func benchLibbpfPerf(b *testing.B, size int) {
	m, rb := perfSetup(b, size)
	d := startLibbpf(b, "perf", m.FD(), bpftest.PerfRawSize(size))
	rb.runPeer(d)
	d.finish(b, b.N)
}

func benchLibbpfRing(b *testing.B, size int) {
	m, rb := ringSetup(b, size)
	d := startLibbpf(b, "ring", m.FD(), size)
	rb.runPeer(d)
	d.finish(b, b.N)
}
