package httpwire_test

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/bench/internal/httpwire"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// Two pipelined requests and a third cut short: two responses that
// net/http reads as valid, and the third request left unconsumed.
func TestAppendResponses(t *testing.T) {
	req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
	in := req + req + req[:10]
	out, n, bad := httpwire.AppendResponses(nil, []byte(in))
	require.False(t, bad)
	require.Equal(t, 2*len(req), n)
	r := bufio.NewReader(bytes.NewReader(out))
	for range 2 {
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, httpwire.Body, string(body))
		require.Equal(t, 200, resp.StatusCode)
		require.NotEmpty(t, resp.Header.Get("Date"))
	}
	_, _, bad = httpwire.AppendResponses(nil, []byte(strings.Repeat("x", 9<<10)))
	require.True(t, bad)
}

func TestMain(m *testing.M) { leakcheck.Main(m) }
