package stream_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// helperEnv selects what TestHelperProcess does in a re-executed test
// binary.
const helperEnv = "EVENTPIPE_STREAM_HELPER"

// TestHelperProcess is not a test: it is the child process of the tests
// that need one (TestManyConnections, TestEMFILE).
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("runs only as a child process")
	case "clients":
		manyClients(t)
	case "emfile":
		emfileServer(t)
	default:
		t.Fatalf("unknown helper %q", os.Getenv(helperEnv))
	}
}

// helper starts this test binary as a child running TestHelperProcess in
// mode, with extra environment.
func helper(t *testing.T, mode string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v", "-test.timeout=5m")
	cmd.Env = append(append(os.Environ(), helperEnv+"="+mode), env...)
	cmd.Stderr = os.Stderr
	return cmd
}

// raiseNOFILE lifts the soft RLIMIT_NOFILE to at least n (up to the hard
// limit) and restores it when the test ends.
func raiseNOFILE(t *testing.T, n uint64) {
	t.Helper()
	var old unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &old))
	if old.Cur >= n {
		return
	}
	if old.Max < n {
		t.Skipf("RLIMIT_NOFILE hard limit %d < %d", old.Max, n)
	}
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: n, Max: old.Max}))
	t.Cleanup(func() { require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &old)) })
}

const manyConns = 10000

// 10,000 connections on one loop, all open at once: a child process (its
// own descriptor limit, since both ends in one process would need twice
// as many) dials them on a loop of its own and, once every one is
// connected, each sends its number; the server loop echoes each, the
// client checks it and closes. Every connection is accounted for on both
// sides, and the server held all of them open together.
func TestManyConnections(t *testing.T) {
	raiseNOFILE(t, manyConns+500)
	l := newLoop(t)
	var served, open, maxOpen, closedEOF, closedOther int
	heapBefore := heapInUse()
	var perConn float64
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		served++
		open++
		maxOpen = max(maxOpen, open)
		if served == manyConns {
			// Reading, idle until the child writes: what an idle
			// connection costs (Go heap only; kernel socket memory is
			// not counted).
			perConn = float64(heapInUse()-heapBefore) / manyConns
		}
		echo(c)
		c.OnClose(func(_ *stream.Conn, err error) {
			open--
			if err == nil || err.Error() != "EOF" {
				closedOther++
				t.Errorf("server conn closed with %v", err)
				return
			}
			closedEOF++
		})
	}, stream.WithBacklog(manyConns))
	require.NoError(t, err)
	cmd := helper(t, "clients", "STREAM_ADDR="+ln.Addr().String(), "STREAM_CONNS="+strconv.Itoa(manyConns))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	result := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		res := ""
		for sc.Scan() {
			if r, ok := strings.CutPrefix(sc.Text(), "CLIENTS "); ok {
				res = r
			}
		}
		err := cmd.Wait()
		if err != nil {
			res += " (child: " + err.Error() + ")"
		}
		result <- res
		_ = l.Post(func() { ln.Close(nil) })
	}()
	run(t, l)
	res := <-result
	t.Logf("figures: %d connections open at once on one loop, each echoed once; child: %s; listener %+v; Go heap per idle connection %.0f bytes",
		maxOpen, res, ln.Stats(), perConn)
	require.Equal(t, fmt.Sprintf("connected %d echoed %d closed %d", manyConns, manyConns, manyConns), res)
	require.Equal(t, manyConns, served)
	require.Equal(t, manyConns, maxOpen, "all open at once")
	require.Equal(t, manyConns, closedEOF)
	require.Zero(t, open)
	require.EqualValues(t, manyConns, ln.Stats().Accepted)
	// About 360 bytes here (the connection, its loop watcher and the
	// loop's indexes of it, and this test's OnClose closure), 850 before
	// Conn kept its rarely used parts behind pointers: the bound catches
	// a layout that slides back.
	require.Less(t, perConn, 512.0, "Go heap bytes per idle connection")
}

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// manyClients is the child of TestManyConnections.
func manyClients(t *testing.T) {
	addr := os.Getenv("STREAM_ADDR")
	n, err := strconv.Atoi(os.Getenv("STREAM_CONNS"))
	require.NoError(t, err)
	var lim unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &lim))
	lim.Cur = lim.Max
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &lim))
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	var clients []*stream.Conn
	connected, echoed, closed := 0, 0, 0
	for i := range n {
		err := stream.Dial(l, "tcp", addr, func(c *stream.Conn, err error) {
			if err != nil {
				t.Errorf("dial %d: %v", i, err)
				return
			}
			connected++
			c.OnData(func(c *stream.Conn, d []byte) int {
				if len(d) < 8 {
					return 0
				}
				if binary.BigEndian.Uint64(d) != uint64(i) {
					t.Errorf("client %d got %d", i, binary.BigEndian.Uint64(d))
				}
				echoed++
				c.Close(nil)
				return 8
			})
			c.OnClose(func(*stream.Conn, error) { closed++ })
			clients = append(clients, c)
			if len(clients) < n {
				return
			}
			for k, c := range clients { // only once every connection is open
				var msg [8]byte
				binary.BigEndian.PutUint64(msg[:], uint64(k))
				if _, err := c.Write(msg[:]); err != nil {
					t.Errorf("client %d: %v", k, err)
				}
			}
		})
		require.NoError(t, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), guard*4)
	defer cancel()
	require.NoError(t, l.Run(ctx))
	fmt.Printf("CLIENTS connected %d echoed %d closed %d\n", connected, echoed, closed)
}
