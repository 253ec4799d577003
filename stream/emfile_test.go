package stream_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// emfileFree is how many descriptors the child leaves itself for
// connections.
const emfileFree = 8

// Out of descriptors, a listener neither spins nor stalls. A child process
// serves an echo listener with RLIMIT_NOFILE lowered to leave it 8 free
// descriptors; 64 connections flood it. Each either gets its echo (held
// open by the child) or is accepted and closed at once (shed): none waits
// unanswered. The child's loop ran a bounded number of iterations (a
// level-triggered listener spinning on EMFILE runs millions). Once the
// served connections close, a new connection is served again.
func TestEMFILE(t *testing.T) {
	cmd := helper(t, "emfile")
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	lines := bufio.NewScanner(stdout)
	next := func(prefix string) string {
		for lines.Scan() {
			if r, ok := strings.CutPrefix(lines.Text(), prefix); ok {
				return r
			}
		}
		t.Fatalf("child ended before %q", prefix)
		return ""
	}
	addr := next("ADDR ")

	// ping reports whether c echoes; false when the child closed it.
	ping := func(c net.Conn) (bool, error) {
		_ = c.SetDeadline(time.Now().Add(guard))
		if _, err := c.Write([]byte("ping")); err != nil {
			return false, nil
		}
		buf := make([]byte, 4)
		_, err := io.ReadFull(c, buf)
		switch {
		case err == nil && string(buf) == "ping":
			return true, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return false, fmt.Errorf("stalled: no echo and no close within %v", guard)
		}
		return false, nil
	}
	const flood = 64
	conns := make([]net.Conn, flood)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, guard)
		require.NoError(t, err)
		conns[i] = c
	}
	var served []net.Conn
	shed := 0
	for _, c := range conns {
		ok, err := ping(c)
		require.NoError(t, err)
		if ok {
			served = append(served, c)
		} else {
			shed++
			c.Close()
		}
	}
	fmt.Fprintln(stdin, "stats")
	var accepted, shedStat, errs, iterations uint64
	_, err = fmt.Sscanf(next("STATS "), "%d %d %d %d", &accepted, &shedStat, &errs, &iterations)
	require.NoError(t, err)
	t.Logf("figures: %d free descriptors, %d connections: %d served, %d shed; listener accepted %d, shed %d, errors %d; %d loop iterations",
		emfileFree, flood, len(served), shed, accepted, shedStat, errs, iterations)
	require.NotEmpty(t, served, "some connections are served")
	require.Positive(t, shed, "the excess is shed")
	require.LessOrEqual(t, len(served), emfileFree)
	require.EqualValues(t, shed, shedStat, "every shed connection counted")
	require.Less(t, iterations, uint64(20*flood), "the loop did not spin")

	for _, c := range served {
		c.Close()
	}
	resumed := false
	for try := 0; try < 200 && !resumed; try++ {
		c, err := net.DialTimeout("tcp", addr, guard)
		require.NoError(t, err)
		ok, err := ping(c)
		require.NoError(t, err)
		c.Close()
		if !ok {
			time.Sleep(10 * time.Millisecond) // the child has not seen the closes yet
		}
		resumed = ok
	}
	require.True(t, resumed, "service resumed once descriptors were free")
}

// emfileServer is the child of TestEMFILE: an echo server on a loop with
// emfileFree descriptors to spare. A line "stats" on stdin prints the
// listener's stats; the end of stdin ends it.
func emfileServer(t *testing.T) {
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	conns := map[*stream.Conn]bool{}
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		conns[c] = true
		echo(c)
		c.OnClose(func(c *stream.Conn, _ error) { delete(conns, c) })
	})
	require.NoError(t, err)
	// The limit goes just past the emfileFree-th free descriptor number
	// (descriptors open above it stay usable).
	limit, free := 0, 0
	for ; free < emfileFree; limit++ {
		if _, err := unix.FcntlInt(uintptr(limit), unix.F_GETFD, 0); err != nil {
			free++
		}
	}
	var old unix.Rlimit
	require.NoError(t, unix.Getrlimit(unix.RLIMIT_NOFILE, &old))
	require.NoError(t, unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: uint64(limit), Max: old.Max}))
	iterations0 := l.Stats().Iterations
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			_ = l.Post(func() {
				s := ln.Stats()
				fmt.Printf("STATS %d %d %d %d\n", s.Accepted, s.Shed, s.Errors, l.Stats().Iterations-iterations0)
			})
		}
		_ = l.Post(func() {
			ln.Close(nil)
			for c := range conns {
				c.Close(nil)
			}
		})
	}()
	fmt.Printf("ADDR %s\n", ln.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 4*guard)
	defer cancel()
	require.NoError(t, l.Run(ctx))
}
