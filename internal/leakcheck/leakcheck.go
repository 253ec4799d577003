package leakcheck

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"
)

// MapsCount returns the number of kernel-object mappings (perf events, BPF
// maps, memfds) the process has now.
func MapsCount() int { return mapsCount() }

// FDCount returns the number of open descriptors.
func FDCount() int { return len(fds()) }

// Snapshot is the process state that tests must leave as they found it.
type Snapshot struct {
	FDs        map[string]string // fd number -> link target
	Maps       int               // kernel-object mappings in /proc/self/maps
	Goroutines int
}

// Take records the current state.
func Take() Snapshot {
	primeRuntime()
	return Snapshot{FDs: fds(), Maps: mapsCount(), Goroutines: goroutines()}
}

// Diff waits up to the grace period for the state to return to s and
// describes what is still left over; it returns "" when nothing leaked.
func (s Snapshot) Diff(grace time.Duration) string {
	deadline := time.Now().Add(grace)
	for {
		report := s.diffNow()
		if report == "" || time.Now().After(deadline) {
			return report
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func (s Snapshot) diffNow() string {
	var b strings.Builder
	now := fds()
	var extra []string
	for fd, target := range now {
		if _, ok := s.FDs[fd]; !ok {
			extra = append(extra, fd+" -> "+target)
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		fmt.Fprintf(&b, "%d descriptors leaked: %s\n", len(extra), strings.Join(extra, ", "))
	}
	if m := mapsCount(); m > s.Maps {
		fmt.Fprintf(&b, "memory mappings grew from %d to %d\n", s.Maps, m)
	}
	if g := goroutines(); g > s.Goroutines {
		fmt.Fprintf(&b, "goroutines grew from %d to %d:\n%s\n", s.Goroutines, g, stacks())
	}
	return b.String()
}

// Check fails t when the state has not returned to s within a second.
func (s Snapshot) Check(t testing.TB) {
	t.Helper()
	if report := s.Diff(time.Second); report != "" {
		t.Errorf("leak: %s", report)
	}
}

// Main runs the tests and then fails the binary if they leaked. Use it as
//
//	func TestMain(m *testing.M) { leakcheck.Main(m) }
func Main(m *testing.M) {
	before := Take()
	code := m.Run()
	if code == 0 {
		if report := before.Diff(2 * time.Second); report != "" {
			fmt.Fprintf(os.Stderr, "leakcheck: tests left resources behind:\n%s", report)
			code = 1
		}
	}
	os.Exit(code)
}

func fds() map[string]string {
	out := map[string]string{}
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return out
	}
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the descriptor ReadDir itself used, now closed
		}
		out[e.Name()] = target
	}
	return out
}

// mapsCount counts the mappings of kernel objects (perf events, BPF maps,
// memfds): the ones this project creates. Anonymous memory is left out
// because the Go heap grows and shrinks on its own.
func mapsCount() int {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "anon_inode:") || strings.Contains(line, "/memfd:") {
			n++
		}
	}
	return n
}

// primeRuntime makes the Go runtime open the descriptors it keeps for the
// life of the process (its own epoll instance and wakeup eventfd), so that
// they count as baseline rather than as a leak of the first test that uses a
// pollable file.
func primeRuntime() {
	r, w, err := os.Pipe()
	if err != nil {
		return
	}
	_ = r.SetReadDeadline(time.Now())
	r.Close()
	w.Close()
}

// lifelong lists goroutines the standard library starts once and keeps for
// the life of the process; they are not a test's leak.
var lifelong = []string{"os/signal.loop", "os/signal.signal_recv"}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

// goroutines counts the running goroutines other than the lifelong ones.
func goroutines() int {
	n := 0
	for _, g := range strings.Split(stacks(), "\n\n") {
		if !strings.HasPrefix(g, "goroutine ") {
			continue
		}
		keep := true
		for _, l := range lifelong {
			if strings.Contains(g, l) {
				keep = false
				break
			}
		}
		if keep {
			n++
		}
	}
	return n
}
