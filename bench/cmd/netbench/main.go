// Command netbench runs the network benchmarks: real clients (redis-benchmark,
// wrk, and its own echo and idle-connection clients) against our servers
// and the peers (redis-server, gnet v2, Go's net and net/http), the server
// pinned to one CPU and the client to another, rounds alternated, and the
// server's CPU time (utime+stime from /proc/<pid>/stat) over each run
// recorded beside the client's figures. Output lines have the shape of Go
// benchmark lines, for netpairs.py (and benchstat):
//
//	BenchmarkRESP/test=get/pipeline=16/server=ours-1 1 312000 req/s 401000 req/cpu-s 1.2 p50-ms 2.9 p99-ms 2.49 cpu-s
//
// Usage (bench/netbench.sh builds the binaries and calls it):
//
//	netbench run -bin DIR [-short] [-rounds 5] [-suites resp,http,echo,idle]
//	netbench echo-client -addr A -conns N -size S -duration D
//	netbench idle-client -addr A -conns N
//
// The clients print "connected" once every connection is up and wait for
// a line on stdin before they start (echo) or end (idle), so that the
// server's CPU time and memory are read around the measured part only.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runMain(os.Args[2:])
	case "echo-client":
		err = echoClientMain(os.Args[2:])
	case "idle-client":
		err = idleClientMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: netbench run|echo-client|idle-client [flags]")
	os.Exit(2)
}
