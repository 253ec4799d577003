package main

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

func TestMain(m *testing.M) { leakcheck.Main(m) }

func TestParseStatCPU(t *testing.T) {
	// A process name with spaces and a ')' of its own.
	stat := "4242 (my (srv) x) S 1 4242 4242 0 -1 4194560 1500 0 0 0 250 75 0 0 20 0 3 0 12345 0 0"
	cpu, err := parseStatCPU(stat)
	require.NoError(t, err)
	assert.InDelta(t, 3.25, cpu, 1e-9) // (250 + 75) ticks at 100 per second
	_, err = parseStatCPU("4242 (x) S 1")
	assert.Error(t, err)
}

func TestParseVmRSS(t *testing.T) {
	rss, err := parseVmRSS("Name:\tx\nVmPeak:\t  100 kB\nVmRSS:\t    2048 kB\nThreads:\t3\n")
	require.NoError(t, err)
	assert.Equal(t, 2048.0*1024, rss)
	_, err = parseVmRSS("Name:\tx\n")
	assert.Error(t, err)
}

func TestParseHeap(t *testing.T) {
	v, err := parseHeap("heap inuse=729088 alloc=224040 sys=7895304")
	require.NoError(t, err)
	assert.Equal(t, 729088.0, v)
}

func TestParseRedisCSV(t *testing.T) {
	out := `WARNING: something
"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
"PING_INLINE","200000.00","1.0","0.1","0.5","2.0","3.0","4.0"
"PING_MBULK","100000.00","1.0","0.1","0.7","2.0","5.0","6.0"
`
	r, err := parseRedisCSV(out, 1000)
	require.NoError(t, err)
	assert.Equal(t, 2000.0, r.requests)
	assert.InDelta(t, 2000/(1000/200000.0+1000/100000.0), r.rps, 1e-6)
	assert.InDelta(t, 0.6, r.p50, 1e-9)
	assert.Equal(t, 5.0, r.p99)
	_, err = parseRedisCSV("Could not connect to Redis", 1000)
	assert.Error(t, err)
}

func TestParseWrk(t *testing.T) {
	out := `Running 1s test @ http://127.0.0.1:1/
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms  300.00us   9.00ms   90.00%
  Latency Distribution
     50%  526.00us
     75%    1.00ms
     90%    2.00ms
     99%    3.50ms
  22860 requests in 1.00s, 2.81MB read
Requests/sec:  22860.12
Transfer/sec:      2.81MB
`
	r, err := parseWrk(out)
	require.NoError(t, err)
	assert.Equal(t, 22860.0, r.requests)
	assert.InDelta(t, 22860.12, r.rps, 1e-9)
	assert.InDelta(t, 0.526, r.p50, 1e-9)
	assert.InDelta(t, 3.5, r.p99, 1e-9)
	_, err = parseWrk(out + "  Socket errors: connect 0, read 3, write 0, timeout 0\n")
	assert.Error(t, err, "socket errors fail the run")
	_, err = parseWrk(out + "  Non-2xx or 3xx responses: 5\n")
	assert.Error(t, err)
}

func TestRotate(t *testing.T) {
	specs := []serverSpec{{name: "a"}, {name: "b"}, {name: "c"}}
	names := func(s []serverSpec) (n []string) {
		for _, x := range s {
			n = append(n, x.name)
		}
		return n
	}
	assert.Equal(t, []string{"a", "b", "c"}, names(rotate(specs, 0)))
	assert.Equal(t, []string{"c", "a", "b"}, names(rotate(specs, 2)))
	assert.Equal(t, []string{"b", "c", "a"}, names(rotate(specs, 4)))
}
