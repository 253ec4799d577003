package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/stream"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

// guard bounds every wait; not a timing assertion.
const guard = 60 * time.Second

// start runs the server on loops loops until the test ends, and returns
// its address.
func start(t *testing.T, loops int, b stream.Balance) string {
	t.Helper()
	before := leakcheck.Take()
	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, "127.0.0.1:0", loops, b, func(a net.Addr) { addrc <- a }) }()
	var addr string
	select {
	case a := <-addrc:
		addr = a.String()
	case err := <-done:
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		assert.NoError(t, <-done)
		before.Check(t)
	})
	return addr
}

func dial(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(guard)))
	return c, bufio.NewReader(c)
}

// cmd encodes a request as a RESP array of bulk strings.
func cmd(args ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	return b.String()
}

// reply reads one RESP2 reply and renders it as text: "+OK", "-ERR ...",
// ":1", "$v" (a bulk), "$nil", "*2[a b]".
func reply(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(line, "\r\n"), "%q", line)
	line = line[:len(line)-2]
	switch line[0] {
	case '+', '-', ':':
		return line
	case '$':
		var n int
		_, err := fmt.Sscanf(line, "$%d", &n)
		require.NoError(t, err)
		if n < 0 {
			return "$nil"
		}
		buf := make([]byte, n+2)
		_, err = io.ReadFull(r, buf)
		require.NoError(t, err)
		return "$" + string(buf[:n])
	case '*':
		var n int
		_, err := fmt.Sscanf(line, "*%d", &n)
		require.NoError(t, err)
		parts := make([]string, n)
		for i := range parts {
			parts[i] = reply(t, r)
		}
		return fmt.Sprintf("*%d%v", n, parts)
	}
	t.Fatalf("not a reply: %q", line)
	return ""
}

// Many requests in one write come back as many replies, in order.
func TestPipelined(t *testing.T) {
	addr := start(t, 2, stream.ReusePort)
	c, r := dial(t, addr)
	var req strings.Builder
	var want []string
	for i := range 200 {
		k := fmt.Sprintf("k%d", i/5)
		switch i % 5 {
		case 0:
			req.WriteString(cmd("SET", k, fmt.Sprint(i)))
			want = append(want, "+OK")
		case 1:
			req.WriteString(cmd("GET", k))
			want = append(want, "$"+fmt.Sprint(i-1))
		case 2:
			req.WriteString(cmd("INCR", k))
			want = append(want, ":"+fmt.Sprint(i-1))
		case 3:
			req.WriteString("PING\r\n")
			want = append(want, "+PONG")
		case 4:
			req.WriteString(cmd("ECHO", strings.Repeat("e", i)))
			want = append(want, "$"+strings.Repeat("e", i))
		}
	}
	req.WriteString(cmd("DEL", "k0", "k1", "nope"))
	want = append(want, ":2")
	_, err := io.WriteString(c, req.String())
	require.NoError(t, err)
	for i, w := range want {
		require.Equal(t, w, reply(t, r), "reply %d", i)
	}
}

// A request cut at any byte, its parts sent apart, is answered once whole.
func TestSplitRequests(t *testing.T) {
	addr := start(t, 1, stream.ReusePort)
	c, r := dial(t, addr)
	val := strings.Repeat("v", 300)
	req := cmd("SET", "split", val) + cmd("GET", "split")
	for cut := 1; cut < len(req); cut += 7 {
		_, err := io.WriteString(c, req[:cut])
		require.NoError(t, err)
		time.Sleep(time.Millisecond) // let the first part arrive alone (correct either way)
		_, err = io.WriteString(c, req[cut:])
		require.NoError(t, err)
		require.Equal(t, "+OK", reply(t, r), "cut %d", cut)
		require.Equal(t, "$"+val, reply(t, r), "cut %d", cut)
	}
	// And byte by byte.
	for i := range len(req) {
		_, err := io.WriteString(c, req[i:i+1])
		require.NoError(t, err)
	}
	require.Equal(t, "+OK", reply(t, r))
	require.Equal(t, "$"+val, reply(t, r))
}

// Keys are shared by the loops: what one connection sets, a connection on
// another loop gets.
func TestKeysSharedAcrossLoops(t *testing.T) {
	addr := start(t, 2, stream.RoundRobin)
	a, ra := dial(t, addr)
	b, rb := dial(t, addr) // the next loop in turn
	_, err := io.WriteString(a, cmd("SET", "shared", "yes"))
	require.NoError(t, err)
	require.Equal(t, "+OK", reply(t, ra))
	_, err = io.WriteString(b, cmd("GET", "shared"))
	require.NoError(t, err)
	require.Equal(t, "$yes", reply(t, rb))
}

// Garbage gets a RESP error and a closed connection; the server goes on
// serving others. QUIT closes after its reply.
func TestGarbage(t *testing.T) {
	addr := start(t, 2, stream.LeastConnections)
	for _, junk := range []string{"*x\r\n", "*1\r\n$99999999\r\n", "*1\r\n+PING\r\n", "*1\r\n$4\r\nPINGxx\r\n",
		strings.Repeat("\x00\xff", 40<<10)} {
		c, r := dial(t, addr)
		_, _ = io.WriteString(c, "PING\r\n"+junk)
		require.Equal(t, "+PONG", reply(t, r))
		got := reply(t, r)
		assert.True(t, strings.HasPrefix(got, "-ERR Protocol error: "), "%.20q: %q", junk, got)
		_, err := r.ReadByte()
		assert.ErrorIs(t, err, io.EOF, "%.20q: connection left open", junk)
	}
	c, r := dial(t, addr)
	_, err := io.WriteString(c, "FLUSHALL\r\n"+cmd("GET")+"QUIT\r\nPING\r\n")
	require.NoError(t, err)
	assert.Equal(t, "-ERR unknown command 'FLUSHALL'", reply(t, r))
	assert.Equal(t, "-ERR wrong number of arguments for 'get' command", reply(t, r))
	assert.Equal(t, "+OK", reply(t, r))
	_, err = r.ReadByte()
	assert.ErrorIs(t, err, io.EOF)
}

// peer returns the path of a benchmark client, skipping the test when it
// is not installed (failing instead with EVENTPIPE_REQUIRE_BENCH_PEERS=1).
func peer(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("EVENTPIPE_REQUIRE_BENCH_PEERS") == "1" {
			t.Fatalf("%s is not installed and EVENTPIPE_REQUIRE_BENCH_PEERS=1", name)
		}
		t.Skipf("%s is not installed (Debian package redis-tools; bench/netbench.sh installs it)", name)
	}
	return path
}

func runPeer(t *testing.T, path string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, args...).CombinedOutput()
	require.NoError(t, err, "%s %v: %s", path, args, out)
	return string(out)
}

func TestRedisCLI(t *testing.T) {
	cli := peer(t, "redis-cli")
	host, port, err := net.SplitHostPort(start(t, 2, stream.ReusePort))
	require.NoError(t, err)
	do := func(args ...string) string {
		return strings.TrimSpace(runPeer(t, cli, append([]string{"-h", host, "-p", port}, args...)...))
	}
	assert.Equal(t, "PONG", do("PING"))
	assert.Equal(t, "OK", do("SET", "k", "hello world"))
	assert.Equal(t, "hello world", do("GET", "k"))
	assert.Equal(t, "1", do("INCR", "n"))
	assert.Equal(t, "2", do("DEL", "k", "n"))
	assert.Equal(t, "", do("GET", "k"))
	assert.Equal(t, "hi", do("ECHO", "hi"))
}

func TestRedisBenchmark(t *testing.T) {
	bench := peer(t, "redis-benchmark")
	host, port, err := net.SplitHostPort(start(t, 2, stream.ReusePort))
	require.NoError(t, err)
	out := runPeer(t, bench, "-h", host, "-p", port, "-t", "ping,set,get", "-n", "2000", "-P", "16", "-q")
	for _, test := range []string{"PING_INLINE", "PING_MBULK", "SET", "GET"} {
		assert.Regexp(t, test+`: [0-9.]+ requests per second`, out)
	}
	assert.NotContains(t, out, "ERR", "%s", out)
}
