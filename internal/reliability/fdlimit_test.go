package reliability

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/async"
	"github.com/eventpipe/eventpipe/eventfd"
	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/poller"
	"github.com/eventpipe/eventpipe/ringbuf"
	"github.com/eventpipe/eventpipe/stream"
)

// helperEnv selects what TestHelperProcess does in a re-executed test
// binary; unset, it does nothing.
const helperEnv = "EVENTPIPE_RELIABILITY_HELPER"

// fdAttempt is the child's report on one constructor call made with free
// descriptor slots left below RLIMIT_NOFILE.
type fdAttempt struct {
	Ctor   string `json:"ctor"`
	Free   int    `json:"free"`
	Err    string `json:"err,omitempty"`
	EMFILE bool   `json:"emfile"`
	Panic  string `json:"panic,omitempty"`
	Leaked []int  `json:"leaked,omitempty"` // open after the call (and Close, on success) that were not before
}

// fdConstructor opens one object and returns its Close.
type fdConstructor struct {
	name string
	open func() (closer func() error, err error)
}

// TestHelperProcess is not a test: it is the child of TestFDExhaustion,
// which runs this binary again with helperEnv set.
func TestHelperProcess(t *testing.T) {
	switch mode := os.Getenv(helperEnv); mode {
	case "":
		t.Skip("runs only in the child process of TestFDExhaustion")
	case "fdlimit":
		fdLimitChild(t)
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

// At RLIMIT_NOFILE every constructor that opens descriptors fails with an
// error wrapping EMFILE, never panics, and closes whatever it had opened
// before it failed. The child lowers its limit, fills every free slot, then
// frees k = 0, 1, 2, ... slots for each constructor until it succeeds, so
// the constructor fails once at each of its descriptor-opening steps;
// whatever it has open after a failure (or after Close, once it succeeds) is
// compared with what was open before. At the limit, a loop made earlier
// keeps working: Watch (epoll_ctl needs no new descriptor), Post, timers
// and QueueWork.
func TestFDExhaustion(t *testing.T) {
	bpftest.Require(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), helperEnv+"=fdlimit")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child failed: %v\n%s", err, out)
	}

	var attempts []fdAttempt
	atLimit := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "FDLIMIT "); ok {
			var a fdAttempt
			require.NoError(t, json.Unmarshal([]byte(rest), &a), rest)
			attempts = append(attempts, a)
		}
		if rest, ok := strings.CutPrefix(line, "ATLIMIT "); ok {
			atLimit = rest
		}
	}
	require.NotEmpty(t, attempts, "child reported nothing:\n%s", out)
	require.Equal(t, "loop ran a post, a timer, a watcher and a work item", atLimit, "child output:\n%s", out)

	needed := map[string]int{}
	failures := map[string]int{}
	for _, a := range attempts {
		require.Empty(t, a.Panic, "%s with %d free slots panicked", a.Ctor, a.Free)
		require.Empty(t, a.Leaked, "%s with %d free slots left descriptors open", a.Ctor, a.Free)
		if a.Err == "" {
			needed[a.Ctor] = a.Free
			continue
		}
		failures[a.Ctor]++
		require.True(t, a.EMFILE, "%s with %d free slots: error does not wrap EMFILE: %s", a.Ctor, a.Free, a.Err)
		require.Contains(t, a.Err, "too many open files", "%s: the message says what ran out", a.Ctor)
	}
	for _, c := range fdConstructors(nil, nil) {
		n, ok := needed[c.name]
		require.True(t, ok, "%s never succeeded", c.name)
		require.Equal(t, n, failures[c.name], "%s: one failure per descriptor it needs", c.name)
		t.Logf("figures: %s needs %d descriptors; failed cleanly (EMFILE, nothing left open) with each of 0..%d free", c.name, n, n-1)
	}
	for _, a := range attempts {
		if a.Err != "" {
			t.Logf("figures: %s with %d free: %s", a.Ctor, a.Free, a.Err)
		}
	}
}

// fdConstructors lists the constructors that open descriptors. The BPF maps
// are made before the limit is lowered; nil maps only name the entries.
func fdConstructors(perfMap, ringMap *bpftest.Map) []fdConstructor {
	return []fdConstructor{
		{"eventfd.New", func() (func() error, error) {
			e, err := eventfd.New(0, eventfd.NonBlocking)
			if err != nil {
				return nil, err
			}
			return e.Close, nil
		}},
		{"poller.New", func() (func() error, error) {
			p, err := poller.New()
			if err != nil {
				return nil, err
			}
			return p.Close, nil
		}},
		{"async.NewQueue", func() (func() error, error) {
			q, err := async.NewQueue()
			if err != nil {
				return nil, err
			}
			return q.Close, nil
		}},
		{"loop.New", func() (func() error, error) {
			l, err := loop.New()
			if err != nil {
				return nil, err
			}
			return l.Close, nil
		}},
		{"ringbuf.NewPerfReader", func() (func() error, error) {
			r, err := ringbuf.NewPerfReader(perfMap.FD(), ringbuf.PerfOptions{PagesPerCPU: 1})
			if err != nil {
				return nil, err
			}
			return r.Close, nil
		}},
		{"ringbuf.NewRingReader", func() (func() error, error) {
			r, err := ringbuf.NewRingReader(ringMap.FD())
			if err != nil {
				return nil, err
			}
			return r.Close, nil
		}},
		{"stream.Listen (with its loop)", func() (func() error, error) {
			l, err := loop.New()
			if err != nil {
				return nil, err
			}
			ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(*stream.Conn) {})
			if err != nil {
				l.Close()
				return nil, err
			}
			return func() error { ln.Close(nil); return l.Close() }, nil
		}},
	}
}

func fdLimitChild(t *testing.T) {
	bpftest.Require(t)
	perfMap, err := bpftest.NewPerfEventArray(0)
	require.NoError(t, err)
	defer perfMap.Close()
	ringMap, err := bpftest.NewRingBuf(os.Getpagesize())
	require.NoError(t, err)
	defer ringMap.Close()
	// Made before the limit: a loop and a socket for it to watch.
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(sp[0])
	defer unix.Close(sp[1])
	devnull, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(devnull)

	var old unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &old))
	open := openFDsBelow(int(old.Cur))
	limit := open[len(open)-1] + 64
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(limit), Max: old.Max}))
	defer func() { require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &old)) }()

	var fillers []int
	fill := func() {
		for {
			fd, err := unix.FcntlInt(uintptr(devnull), unix.F_DUPFD_CLOEXEC, 0)
			if errors.Is(err, unix.EMFILE) {
				return
			}
			require.NoError(t, err)
			fillers = append(fillers, fd)
		}
	}
	free := func(k int) {
		for range k {
			require.NoError(t, unix.Close(fillers[len(fillers)-1]))
			fillers = fillers[:len(fillers)-1]
		}
	}
	defer func() { free(len(fillers)) }()
	fill()

	for _, c := range fdConstructors(perfMap, ringMap) {
		for k := 0; k <= 16; k++ {
			free(k)
			before := openFDsBelow(limit)
			var closer func() error
			var err error
			a := fdAttempt{Ctor: c.name, Free: k}
			if v := catch(func() { closer, err = c.open() }); v != nil {
				a.Panic = fmt.Sprint(v)
			}
			if err != nil {
				a.Err = err.Error()
				a.EMFILE = errors.Is(err, unix.EMFILE)
			} else if closer != nil {
				if err := closer(); err != nil {
					a.Err = "Close: " + err.Error()
				}
			}
			a.Leaked = setMinus(openFDsBelow(limit), before)
			line, _ := json.Marshal(a)
			fmt.Printf("FDLIMIT %s\n", line)
			fill()
			if err == nil || a.Panic != "" {
				break
			}
		}
	}

	// A loop made before the limit keeps working at it.
	_, err = unix.FcntlInt(uintptr(devnull), unix.F_DUPFD_CLOEXEC, 0)
	require.ErrorIs(t, err, unix.EMFILE, "a descriptor slot is still free")
	ran := 0
	require.NoError(t, l.Post(func() { ran++ }))
	l.AfterFunc(time.Millisecond, func() { ran++ })
	_, err = unix.Write(sp[1], []byte{1})
	require.NoError(t, err)
	var w *loop.Watcher
	w, err = l.Watch(sp[0], poller.Readable, func(poller.Events) { ran++; w.Close(nil) })
	require.NoError(t, err)
	_, err = l.QueueWork(func() {}, func(err error) {
		if err == nil {
			ran++
		}
	})
	require.NoError(t, err)
	require.NoError(t, run(t, l))
	require.Equal(t, 4, ran)
	fmt.Println("ATLIMIT loop ran a post, a timer, a watcher and a work item")
}

// openFDsBelow lists the open descriptors below limit. It asks fcntl about
// each number rather than reading /proc/self/fd, which would need a
// descriptor of its own.
func openFDsBelow(limit int) []int {
	var open []int
	for fd := range limit {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil {
			open = append(open, fd)
		}
	}
	return open
}

func setMinus(a, b []int) []int {
	var out []int
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
