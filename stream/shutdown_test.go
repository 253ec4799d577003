package stream_test

import (
	"context"
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// The loop's Shutdown, and a Walk that closes every handle, end the
// connections and listeners they reach as their own Close would: each
// connection's OnClose runs once with os.ErrClosed (also one waiting on an
// idle timer), its descriptor is closed (the peer reads EOF) and the listener
// is closing.
func TestLoopShutdownAndWalkEndConnections(t *testing.T) {
	for _, how := range []string{"shutdown", "walk"} {
		t.Run(how, func(t *testing.T) {
			l := newLoop(t)
			var cc, idle closes
			n := 0
			ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
				c.OnData(func(_ *stream.Conn, d []byte) int { return len(d) })
				if n++; n == 1 {
					cc.watch(c)
					return
				}
				idle.watch(c)
				c.SetIdleTimeout(3600e9)
				l.Stop()
			})
			require.NoError(t, err)
			a := goDial(t, ln)
			defer a.Close()
			b := goDial(t, ln)
			defer b.Close()
			run(t, l)
			if how == "shutdown" {
				require.NoError(t, l.Shutdown(context.Background()))
			} else {
				walked := 0
				l.Walk(func(h loop.Handle) { walked++; h.Close(nil) })
				require.GreaterOrEqual(t, walked, 3, "the listener's and both connections' handles")
				run(t, l)
			}
			require.Equal(t, 1, cc.n)
			require.ErrorIs(t, cc.err, os.ErrClosed)
			require.Equal(t, 1, idle.n)
			require.ErrorIs(t, idle.err, os.ErrClosed)
			require.True(t, ln.IsClosing())
			_, err = a.Read(make([]byte, 1))
			require.ErrorIs(t, err, io.EOF)
		})
	}
}
