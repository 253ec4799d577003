package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// TestEcho runs the server briefly: a client's bytes come back, an idle
// client is closed by the timeout, and a client that sends 8 MiB before
// reading makes the server pause reading (backpressure) and still gets
// every byte back in order.
func TestEcho(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	addrc := make(chan net.Addr, 1)
	res := make(chan served, 1)
	go func() {
		st, err := serve(ctx, "127.0.0.1:0", time.Second, func(a net.Addr) { addrc <- a })
		if err != nil {
			t.Error(err)
		}
		res <- st
	}()
	addr := (<-addrc).String()

	idle, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer idle.Close()

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = c.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
	c.Close()

	big, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer big.Close()
	payload := bytes.Repeat([]byte("0123456789abcdef"), (8<<20)/16)
	go func() {
		_, _ = big.Write(payload)
	}()
	time.Sleep(50 * time.Millisecond) // let the queue pass the high-water mark
	got := make([]byte, len(payload))
	_, err = io.ReadFull(big, got)
	require.NoError(t, err)
	require.True(t, bytes.Equal(payload, got), "echoed whole and in order")

	_ = idle.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = idle.Read(make([]byte, 1))
	require.ErrorIs(t, err, io.EOF, "the idle connection was closed by the server")
	big.Close()
	cancel()
	st := <-res
	t.Logf("served:\n%s", st)
	require.EqualValues(t, 3, st.Accepted)
	require.Equal(t, 3, st.Closed)
	require.GreaterOrEqual(t, st.Idle, 1)
	require.EqualValues(t, 5+len(payload), st.Bytes)
	require.Positive(t, st.Pauses, "backpressure paused reading")
}
