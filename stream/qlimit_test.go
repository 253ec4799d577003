package stream_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// AsyncWrite from 8 goroutines on a loop whose posted-task queue holds one
// task: a refused Post never strands a buffer (the loop's Async takes over),
// so every buffer is delivered and every done runs once, without error.
func TestAsyncWriteUnderLoopQueueLimit(t *testing.T) {
	l, err := loop.New(loop.WithQueueLimit(1))
	require.NoError(t, err)
	defer l.Close()
	const writers, each = 8, 2000
	var mu sync.Mutex
	dones := 0
	var wg sync.WaitGroup
	var ln *stream.Listener
	ln, err = stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		ln.Close(nil)
		c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range each {
					if err := c.AsyncWrite(make([]byte, 100), func(err error) {
						require.NoError(t, err)
						mu.Lock()
						dones++
						mu.Unlock()
					}); err != nil {
						t.Error(err)
					}
				}
			}()
		}
		go func() {
			wg.Wait()
			if err := l.PostContext(context.Background(), func() { c.Shutdown(func(error) { c.Close(nil) }) }); err != nil {
				t.Error(err)
			}
		}()
	})
	require.NoError(t, err)
	conn, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer conn.Close()
	got := make(chan int, 1)
	go func() { b, _ := io.ReadAll(conn); got <- len(b) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, l.Run(ctx))
	require.Equal(t, writers*each*100, <-got)
	require.Equal(t, writers*each, dones)
}
