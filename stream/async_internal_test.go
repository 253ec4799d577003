package stream

import (
	"context"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
)

// When the loop refuses AsyncWrite's Post for a reason other than being
// closed (a queue limit), the write goes by the loop's shared wakeup and is
// delivered all the same.
func TestAsyncWriteRefusedPost(t *testing.T) {
	refused := 0
	postFlush = func(*loop.Loop, func()) error {
		refused++
		return fmt.Errorf("loop: post: queue full: %w", unix.EAGAIN)
	}
	defer func() { postFlush = (*loop.Loop).Post }()
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	peer := os.NewFile(uintptr(fds[1]), "peer")
	defer peer.Close()
	c, err := Open(l, fds[0])
	require.NoError(t, err)
	c.OnData(func(_ *Conn, d []byte) int { return len(d) })
	var doneErr error
	dones := 0
	go func() {
		if err := c.AsyncWrite([]byte("through the wakeup"), func(err error) {
			dones++
			doneErr = err
			c.Close(nil)
		}); err != nil {
			t.Error(err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, l.Run(ctx))
	got, err := io.ReadAll(peer)
	require.NoError(t, err)
	require.Equal(t, "through the wakeup", string(got))
	require.Equal(t, 1, refused)
	require.Equal(t, 1, dones)
	require.NoError(t, doneErr)
}

// A write queue that never empties does not grow behind its head.
func TestQueueCompacts(t *testing.T) {
	l, err := loop.New()
	require.NoError(t, err)
	defer l.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	defer unix.Close(fds[1])
	c, err := Open(l, fds[0])
	require.NoError(t, err)
	defer c.Close(nil)
	bufs := [][]byte{make([]byte, 10)}
	for range 10000 {
		// Queue a request, then let the "kernel" take one: the queue
		// stays non-empty throughout.
		c.q = append(c.q, wreq{bufs: bufs, size: 10})
		c.addQueued(10)
		if c.queuedLen() > 1 {
			c.advance(10)
		}
	}
	require.Equal(t, 1, c.queuedLen())
	require.Less(t, cap(c.q), 1024, "compacted")
	c.advance(10)
	require.Zero(t, c.Buffered())
}
