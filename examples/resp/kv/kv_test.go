package kv_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/examples/resp/kv"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func strs(args [][]byte) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = string(a)
	}
	return out
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		args []string
		n    int
	}{
		{"*1\r\n$4\r\nPING\r\n", []string{"PING"}, 14},
		{"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1", []string{"GET", "k"}, 20},
		{"*3\r\n$3\r\nSET\r\n$0\r\n\r\n$3\r\na\nb\r\n", []string{"SET", "", "a\nb"}, 28},
		{"PING\r\n", []string{"PING"}, 6},
		{"  set  k\tv \n", []string{"set", "k", "v"}, 12},
		{"\r\n", []string{}, 2},
		{"*0\r\n", []string{}, 4},
		{"*-1\r\n", []string{}, 5},
		// Incomplete: nothing used, no error.
		{"*1\r\n$4\r\nPIN", nil, 0},
		{"*1\r\n$4\r\nPING\r", nil, 0},
		{"*1\r", nil, 0},
		{"*", nil, 0},
		{"*2\r\n$3\r\nGET\r\n", nil, 0},
		{"PING", nil, 0},
	} {
		args, n, err := kv.Parse([]byte(tc.in), nil)
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.n, n, "%q", tc.in)
		if tc.args != nil {
			assert.Equal(t, tc.args, strs(args), "%q", tc.in)
		}
	}
}

func TestParseGarbage(t *testing.T) {
	for _, in := range []string{
		"*x\r\n", "*1\r\n+PING\r\n", "*1\r\n$x\r\n", "*1\r\n$-1\r\n", "*1\r\n$4\r\nPINGxx",
		"*1\n", "*99999999999999999999999\r\n", "*2000\r\n", fmt.Sprintf("*1\r\n$%d\r\n", kv.MaxBulk+1),
		"*" + strings.Repeat("1", 40), "*1\r\n$" + strings.Repeat("9", 40),
		strings.Repeat("x", kv.MaxInline),
	} {
		_, n, err := kv.Parse([]byte(in), nil)
		assert.True(t, kv.IsProtocolError(err), "%.40q: %v", in, err)
		assert.Zero(t, n)
	}
}

// A stream of requests cut at any byte parses to the same requests: the
// part before the cut is not used until the rest arrives.
func TestParseCutAnywhere(t *testing.T) {
	stream := "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n"
	want := [][]string{{"SET", "key", "va\r\nl"}, {"PING"}, {"ECHO", ""}}
	for cut := 0; cut <= len(stream); cut++ {
		var got [][]string
		buf := []byte(stream[:cut])
		feed := func() {
			for {
				args, n, err := kv.Parse(buf, nil)
				require.NoError(t, err)
				if n == 0 {
					return
				}
				got = append(got, strs(args))
				buf = buf[n:]
			}
		}
		feed()
		buf = append(buf, stream[cut:]...)
		feed()
		assert.Empty(t, buf, "cut %d", cut)
		assert.Equal(t, want, got, "cut %d", cut)
	}
}

func run(s *kv.Session, in string) (string, bool) {
	s.Out = s.Out[:0]
	n, closeConn := s.Feed([]byte(in))
	if !closeConn && n != len(in) {
		return fmt.Sprintf("consumed %d of %d", n, len(in)), false
	}
	return string(s.Out), closeConn
}

func TestHandle(t *testing.T) {
	s := kv.NewSession(kv.NewStore())
	for _, tc := range []struct{ in, out string }{
		{"PING\r\n", "+PONG\r\n"},
		{"*2\r\n$4\r\nping\r\n$2\r\nhi\r\n", "$2\r\nhi\r\n"},
		{"ECHO hello\r\n", "$5\r\nhello\r\n"},
		{"GET k\r\n", "$-1\r\n"},
		{"SET k v1\r\nGET k\r\n", "+OK\r\n$2\r\nv1\r\n"},
		{"SET k 41\r\nINCR k\r\nINCR n\r\nGET k\r\n", "+OK\r\n:42\r\n:1\r\n$2\r\n42\r\n"},
		{"SET k x\r\nINCR k\r\n", "+OK\r\n-ERR value is not an integer or out of range\r\n"},
		{"SET k 9223372036854775807\r\nINCR k\r\n", "+OK\r\n-ERR increment or decrement would overflow\r\n"},
		{"DEL k n missing\r\nGET k\r\n", ":2\r\n$-1\r\n"},
		{"GET\r\nSET a\r\nDEL\r\nECHO\r\nINCR a b\r\nPING a b\r\n",
			"-ERR wrong number of arguments for 'get' command\r\n-ERR wrong number of arguments for 'set' command\r\n" +
				"-ERR wrong number of arguments for 'del' command\r\n-ERR wrong number of arguments for 'echo' command\r\n" +
				"-ERR wrong number of arguments for 'incr' command\r\n-ERR wrong number of arguments for 'ping' command\r\n"},
		{"*1\r\n$8\r\nFOO\r\nBAR\r\n", "-ERR unknown command 'FOO  BAR'\r\n"},
		{"CONFIG GET save\r\n", "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"},
		{"CONFIG SET save x\r\n", "-ERR only CONFIG GET <parameter> is supported\r\n"},
		{"\r\n*0\r\n", ""},
	} {
		out, closeConn := run(s, tc.in)
		assert.False(t, closeConn, "%q", tc.in)
		assert.Equal(t, tc.out, out, "%q", tc.in)
	}
	out, closeConn := run(s, "PING\r\nQUIT\r\nPING\r\n")
	assert.True(t, closeConn)
	assert.Equal(t, "+PONG\r\n+OK\r\n", out)
	out, closeConn = run(s, "PING\r\n*1\r\n$x\r\nPING\r\n")
	assert.True(t, closeConn)
	assert.Equal(t, "+PONG\r\n-ERR Protocol error: invalid bulk length\r\n", out)
}

// Feed stops at FlushAt, and goes on from where it stopped.
func TestFeedBoundsOutput(t *testing.T) {
	s := kv.NewSession(kv.NewStore())
	big := strings.Repeat("v", 40<<10)
	_, _ = run(s, "SET big "+big+"\r\n")
	in := []byte(strings.Repeat("GET big\r\n", 10))
	gets := 0
	for len(in) > 0 {
		s.Out = s.Out[:0]
		n, closeConn := s.Feed(in)
		require.False(t, closeConn)
		require.Positive(t, n)
		assert.LessOrEqual(t, len(s.Out), kv.FlushAt+len(big)+16)
		gets += bytes.Count(s.Out, []byte("$40960\r\n"))
		in = in[n:]
	}
	assert.Equal(t, 10, gets)
}

// PING, GET and SET allocate nothing on the parse and handle path.
func TestNoAllocs(t *testing.T) {
	s := kv.NewSession(kv.NewStore())
	_, _ = run(s, "SET key:__rand_int__ xxx\r\n")
	for name, in := range map[string]string{
		"ping-inline": "PING\r\n",
		"ping":        "*1\r\n$4\r\nPING\r\n",
		"set":         "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n",
		"get":         "*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n",
		"pipelined":   strings.Repeat("*2\r\n$3\r\nGET\r\n$16\r\nkey:__rand_int__\r\n", 16),
	} {
		data := []byte(in)
		allocs := testing.AllocsPerRun(1000, func() {
			s.Out = s.Out[:0]
			if n, _ := s.Feed(data); n != len(data) {
				t.Fatalf("%s: consumed %d of %d", name, n, len(data))
			}
		})
		assert.Zero(t, allocs, name)
	}
}

// FuzzParse feeds garbage to the parser and the handler: no panic, every
// length in bounds, the same requests whether the input comes whole or cut
// in two, and a reply for each request.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"*1\r\n$4\r\nPING\r\n", "PING\r\n", "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n",
		"*2\r\n$4\r\nINCR\r\n$1\r\nk\r\n", "*-1\r\n", "*1\r\n$-5\r\n", "$3\r\nabc\r\n",
	} {
		f.Add([]byte(seed), uint16(3))
	}
	f.Fuzz(func(t *testing.T, data []byte, cut uint16) {
		whole := parseAll(t, data)
		k := int(cut) % (len(data) + 1)
		buf := append([]byte(nil), data[:k]...)
		var split []string
		rest := parseInto(t, buf, &split, false)
		buf = append(rest, data[k:]...)
		parseInto(t, buf, &split, true)
		if whole != nil && split != nil {
			assert.Equal(t, whole, split)
		}
		s := kv.NewSession(kv.NewStore())
		n, closeConn := s.Feed(data)
		if n < 0 || n > len(data) {
			t.Fatalf("Feed consumed %d of %d", n, len(data))
		}
		if n > 0 && len(s.Out) == 0 && !closeConn {
			// Only empty requests have empty replies.
			for _, r := range whole {
				if r != "" {
					t.Fatalf("no reply to %q", data[:n])
				}
			}
		}
	})
}

// parseAll returns the requests in data, joined, or nil on a protocol
// error.
func parseAll(t *testing.T, data []byte) []string {
	var out []string
	if parseInto(t, data, &out, true) == nil && out == nil {
		return nil
	}
	return out
}

// parseInto appends the whole requests of data to out and returns what is
// left; after a protocol error it sets out to nil (when final) and returns
// nil.
func parseInto(t *testing.T, data []byte, out *[]string, final bool) []byte {
	for {
		args, n, err := kv.Parse(data, nil)
		if err != nil {
			*out = nil
			return nil
		}
		if n < 0 || n > len(data) {
			t.Fatalf("Parse used %d of %d bytes", n, len(data))
		}
		if n == 0 {
			return data
		}
		for _, a := range args {
			if len(a) > kv.MaxBulk {
				t.Fatalf("argument of %d bytes", len(a))
			}
		}
		*out = append(*out, strings.Join(strs(args), "\x00"))
		data = data[n:]
	}
}
