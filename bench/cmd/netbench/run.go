package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type config struct {
	bin                  string // directory holding resp, ours, gnet, gonet, netbench
	serverCPU, clientCPU string
	rounds               int
	suites               map[string]bool
	respN, respNP        int           // redis-benchmark -n at -P 1 and -P 16
	httpDur, echoDur     time.Duration // wrk -d, echo-client -duration
	echoConns            []int
	idleConns            int
	noRedis              bool // redis-server is not installed: its rows are skipped
	out                  io.Writer
}

func runMain(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var c config
	fs.StringVar(&c.bin, "bin", "", "directory with the built servers and netbench itself")
	fs.StringVar(&c.serverCPU, "server-cpu", "1", "CPU list the server is pinned to (taskset -c)")
	fs.StringVar(&c.clientCPU, "client-cpu", "0", "CPU list the client is pinned to")
	fs.IntVar(&c.rounds, "rounds", 5, "rounds; each runs every server once, in an order rotated by round")
	suites := fs.String("suites", "resp,http,echo,idle", "suites to run")
	short := fs.Bool("short", false, "tiny runs, only to prove that everything works")
	out := fs.String("out", "", "raw results file (default: stdout only)")
	loadFile := fs.String("load", "", "file for the load average at the start of each round and at the end")
	fs.Parse(args)
	if c.bin == "" {
		return fmt.Errorf("run: -bin is required")
	}
	c.suites = map[string]bool{}
	for _, s := range strings.Split(*suites, ",") {
		c.suites[s] = true
	}
	c.respN, c.respNP = 100000, 1000000
	c.httpDur, c.echoDur = 5*time.Second, 5*time.Second
	c.echoConns, c.idleConns = []int{1, 100, 10000}, 10000
	if *short {
		c.rounds = 1
		c.respN, c.respNP = 2000, 2000
		c.httpDur, c.echoDur = time.Second, 500*time.Millisecond
		c.echoConns, c.idleConns = []int{1, 100, 500}, 500
	}
	if err := c.checkTools(); err != nil {
		return err
	}
	c.out = os.Stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		c.out = io.MultiWriter(os.Stdout, f)
	}
	load := io.Writer(os.Stderr)
	if *loadFile != "" {
		f, err := os.Create(*loadFile)
		if err != nil {
			return err
		}
		defer f.Close()
		load = io.MultiWriter(os.Stderr, f)
	}
	defer func() { fmt.Fprintf(load, "end: %s", loadavg()) }()
	for round := range c.rounds {
		fmt.Fprintf(load, "round %d: %s", round+1, loadavg())
		for _, s := range []struct {
			name string
			run  func(*config, int) error
		}{{"resp", (*config).respSuite}, {"http", (*config).httpSuite}, {"echo", (*config).echoSuite}, {"idle", (*config).idleSuite}} {
			if c.suites[s.name] {
				if err := s.run(&c, round); err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
			}
		}
	}
	return nil
}

// checkTools drops the suites (or, for redis-server, the row) whose
// programs are not installed, saying so, unless
// EVENTPIPE_REQUIRE_BENCH_PEERS=1 makes that an error (as in CI).
func (c *config) checkTools() error {
	require := os.Getenv("EVENTPIPE_REQUIRE_BENCH_PEERS") == "1"
	missing := func(prog string) bool {
		if _, err := exec.LookPath(prog); err == nil {
			return false
		}
		return true
	}
	if missing("taskset") {
		return fmt.Errorf("run: taskset is not installed (util-linux)")
	}
	for _, t := range []struct{ suite, prog, pkg string }{
		{"resp", "redis-benchmark", "redis-tools"}, {"http", "wrk", "wrk"}, {"resp", "redis-server", "redis-server"},
	} {
		if !c.suites[t.suite] || !missing(t.prog) {
			continue
		}
		if require {
			return fmt.Errorf("run: %s is not installed (Debian package %s) and EVENTPIPE_REQUIRE_BENCH_PEERS=1", t.prog, t.pkg)
		}
		if t.prog == "redis-server" {
			fmt.Fprintf(os.Stderr, "netbench: skipping the redis-server rows: it is not installed (Debian package %s)\n", t.pkg)
			c.noRedis = true
			continue
		}
		fmt.Fprintf(os.Stderr, "netbench: skipping the %s suite: %s is not installed (Debian package %s; install-peers.sh)\n", t.suite, t.prog, t.pkg)
		delete(c.suites, t.suite)
	}
	return nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return string(b)
}

// serverSpec is one server: a name for the results and its command line,
// with ADDR replaced by the address it is to listen on.
type serverSpec struct {
	name string
	argv []string
}

// rotate orders specs for round r, so that no server always runs first.
func rotate(specs []serverSpec, r int) []serverSpec {
	k := r % len(specs)
	return append(append([]serverSpec(nil), specs[k:]...), specs[:k]...)
}

// server is a running server process.
type server struct {
	name  string
	addr  string
	cmd   *exec.Cmd
	heaps chan string // "heap ..." lines it printed
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func (c *config) start(spec serverSpec) (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	argv := []string{"-c", c.serverCPU}
	for _, a := range spec.argv {
		a = strings.ReplaceAll(a, "ADDR", addr)
		argv = append(argv, strings.ReplaceAll(a, "PORT", port))
	}
	cmd := exec.Command("taskset", argv...)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: spec.name, addr: addr, cmd: cmd, heaps: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "heap ") {
				s.heaps <- sc.Text()
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not listen on %s: %w", spec.name, addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the server's utime+stime in seconds (all its threads).
func (s *server) cpu() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(string(b))
}

// clkTck is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every
// Linux architecture Go supports.
const clkTck = 100

func parseStatCPU(stat string) (float64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no ')' in %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the name", len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64) // field 14
	st, err2 := strconv.ParseUint(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("stat: utime %q stime %q", f[11], f[12])
	}
	return float64(ut+st) / clkTck, nil
}

// rss returns the server's resident set in bytes (VmRSS).
func (s *server) rss() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (float64, error) {
	for _, line := range strings.Split(status, "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				kb, err := strconv.ParseFloat(f[1], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("status: no VmRSS")
}

// heap asks a Go server for its heap (SIGUSR1) and returns HeapInuse.
func (s *server) heap() (float64, error) {
	if err := s.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return 0, err
	}
	select {
	case line := <-s.heaps:
		return parseHeap(line)
	case <-time.After(10 * time.Second):
		return 0, fmt.Errorf("%s: no heap report", s.name)
	}
}

func parseHeap(line string) (float64, error) {
	for _, f := range strings.Fields(line) {
		if v, ok := strings.CutPrefix(f, "inuse="); ok {
			return strconv.ParseFloat(v, 64)
		}
	}
	return 0, fmt.Errorf("heap line %q", line)
}

// client runs a client pinned to the client CPU and returns its output.
func (c *config) client(timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "taskset", append([]string{"-c", c.clientCPU, name}, args...)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// measure runs fn and returns the server CPU seconds it took, at least
// one clock tick (the resolution of /proc/<pid>/stat).
func (s *server) measure(fn func() error) (float64, error) {
	before, err := s.cpu()
	if err != nil {
		return 0, err
	}
	if err := fn(); err != nil {
		return 0, err
	}
	after, err := s.cpu()
	if err != nil {
		return 0, err
	}
	return math.Max(after-before, 1.0/clkTck), nil
}

func (c *config) record(name string, vals ...any) {
	line := name + " 1"
	for i := 0; i+1 < len(vals); i += 2 {
		line += fmt.Sprintf(" %.4g %s", vals[i], vals[i+1])
	}
	fmt.Fprintln(c.out, line)
}

func (c *config) path(name string) string { return filepath.Join(c.bin, name) }

// each starts every server of specs in turn (order rotated by round) and
// runs fn against it.
func (c *config) each(specs []serverSpec, round int, fn func(*server) error) error {
	for _, spec := range rotate(specs, round) {
		s, err := c.start(spec)
		if err != nil {
			return err
		}
		err = fn(s)
		s.stop()
		if err != nil {
			return fmt.Errorf("%s: %w", spec.name, err)
		}
	}
	return nil
}

func (c *config) respSuite(round int) error {
	specs := []serverSpec{
		{"ours-1", []string{c.path("resp"), "-addr", "ADDR", "-loops", "1"}},
		{"ours-2", []string{c.path("resp"), "-addr", "ADDR", "-loops", "2"}},
		{"redis", []string{"redis-server", "--port", "PORT", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no", "--loglevel", "warning"}},
		{"gnet-1", []string{c.path("gnet"), "-proto", "resp", "-addr", "ADDR", "-loops", "1"}},
		{"gnet-2", []string{c.path("gnet"), "-proto", "resp", "-addr", "ADDR", "-loops", "2"}},
		{"gonet", []string{c.path("gonet"), "-proto", "resp", "-addr", "ADDR"}},
	}
	if c.noRedis {
		specs = slices.DeleteFunc(specs, func(s serverSpec) bool { return s.name == "redis" })
	}
	return c.each(specs, round, func(s *server) error {
		host, port, _ := net.SplitHostPort(s.addr)
		for _, p := range []int{1, 16} {
			n := c.respN
			if p > 1 {
				n = c.respNP
			}
			for _, test := range []string{"ping", "set", "get"} {
				var out string
				cpu, err := s.measure(func() (err error) {
					out, err = c.client(10*time.Minute, "redis-benchmark", "-h", host, "-p", port, "-t", test,
						"-c", "50", "-n", strconv.Itoa(n), "-P", strconv.Itoa(p), "--csv")
					return err
				})
				if err != nil {
					return err
				}
				r, err := parseRedisCSV(out, n)
				if err != nil {
					return err
				}
				c.record(fmt.Sprintf("BenchmarkRESP/test=%s/pipeline=%d/server=%s", test, p, s.name),
					r.rps, "req/s", r.requests/cpu, "req/cpu-s", r.p50, "p50-ms", r.p99, "p99-ms", cpu, "cpu-s")
			}
		}
		return nil
	})
}

type clientResult struct{ requests, rps, p50, p99 float64 }

// parseRedisCSV reads redis-benchmark --csv: one row per test it ran
// (-t ping runs PING_INLINE and PING_MBULK). Rows are combined: the
// requests add up, the rate is the total over the summed durations, p50
// is the rows' mean and p99 their maximum.
func parseRedisCSV(out string, n int) (clientResult, error) {
	var r clientResult
	var secs float64
	start := strings.Index(out, `"test"`)
	if start < 0 {
		return r, fmt.Errorf("redis-benchmark output has no CSV header: %q", out)
	}
	rows, err := csv.NewReader(strings.NewReader(out[start:])).ReadAll()
	if err != nil || len(rows) < 2 {
		return r, fmt.Errorf("redis-benchmark output: %v: %q", err, out)
	}
	for _, row := range rows[1:] {
		if len(row) < 7 {
			return r, fmt.Errorf("redis-benchmark row %q", row)
		}
		rps, _ := strconv.ParseFloat(row[1], 64)
		p50, _ := strconv.ParseFloat(row[4], 64)
		p99, _ := strconv.ParseFloat(row[6], 64)
		if rps <= 0 {
			return r, fmt.Errorf("redis-benchmark row %q", row)
		}
		r.requests += float64(n)
		secs += float64(n) / rps
		r.p50 += p50 / float64(len(rows)-1)
		r.p99 = math.Max(r.p99, p99)
	}
	r.rps = r.requests / secs
	return r, nil
}

func (c *config) httpSuite(round int) error {
	specs := []serverSpec{
		{"ours", []string{c.path("ours"), "-proto", "http", "-addr", "ADDR", "-loops", "1"}},
		{"gnet", []string{c.path("gnet"), "-proto", "http", "-addr", "ADDR", "-loops", "1"}},
		{"nethttp", []string{c.path("gonet"), "-proto", "http", "-addr", "ADDR"}},
	}
	return c.each(specs, round, func(s *server) error {
		for _, conns := range []int{1, 50, 500} {
			var out string
			cpu, err := s.measure(func() (err error) {
				out, err = c.client(c.httpDur+time.Minute, "wrk", "-t1", "-c", strconv.Itoa(conns),
					"-d", fmt.Sprintf("%ds", int(math.Ceil(c.httpDur.Seconds()))), "--latency", "http://"+s.addr+"/")
				return err
			})
			if err != nil {
				return err
			}
			r, err := parseWrk(out)
			if err != nil {
				return err
			}
			c.record(fmt.Sprintf("BenchmarkHTTP/conns=%d/server=%s", conns, s.name),
				r.rps, "req/s", r.requests/cpu, "req/cpu-s", r.p50, "p50-ms", r.p99, "p99-ms", cpu, "cpu-s")
		}
		return nil
	})
}

var (
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkRate     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	wrkLatency  = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([0-9.]+)(us|ms|s)\s*$`)
	wrkErrors   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)|Socket errors: .*`)
)

// parseWrk reads wrk --latency's report; latencies in milliseconds.
func parseWrk(out string) (clientResult, error) {
	var r clientResult
	m1, m2 := wrkRequests.FindStringSubmatch(out), wrkRate.FindStringSubmatch(out)
	if m1 == nil || m2 == nil {
		return r, fmt.Errorf("wrk output: %q", out)
	}
	if m := wrkErrors.FindString(out); m != "" {
		return r, fmt.Errorf("wrk: %s", m)
	}
	r.requests, _ = strconv.ParseFloat(m1[1], 64)
	r.rps, _ = strconv.ParseFloat(m2[1], 64)
	for _, m := range wrkLatency.FindAllStringSubmatch(out, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		v *= map[string]float64{"us": 1e-3, "ms": 1, "s": 1e3}[m[3]]
		if m[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if r.requests == 0 {
		return r, fmt.Errorf("wrk made no request: %q", out)
	}
	return r, nil
}

func (c *config) goSpecs(proto string) []serverSpec {
	return []serverSpec{
		{"ours", []string{c.path("ours"), "-proto", proto, "-addr", "ADDR", "-loops", "1"}},
		{"gnet", []string{c.path("gnet"), "-proto", proto, "-addr", "ADDR", "-loops", "1"}},
		{"gonet", []string{c.path("gonet"), "-proto", proto, "-addr", "ADDR"}},
	}
}

// interactive starts one of our clients, waits for its "connected", runs
// between (the measured part) and then lets the client go on; it returns
// the client's last output line.
func (c *config) interactive(s *server, between func() error, args ...string) (string, error) {
	cmd := exec.Command("taskset", append([]string{"-c", c.clientCPU, c.path("netbench")}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	defer cmd.Wait()
	defer stdin.Close()
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "connected" {
		cmd.Process.Kill()
		return "", fmt.Errorf("client %v did not connect: %q", args, sc.Text())
	}
	if err := between(); err != nil {
		cmd.Process.Kill()
		return "", err
	}
	io.WriteString(stdin, "go\n")
	last := ""
	for sc.Scan() {
		last = sc.Text()
	}
	return last, nil
}

func (c *config) echoSuite(round int) error {
	return c.each(c.goSpecs("echo"), round, func(s *server) error {
		for _, conns := range c.echoConns {
			for _, size := range []int{64, 16 << 10} {
				var before float64
				out, err := c.interactive(s, func() (err error) {
					before, err = s.cpu()
					return err
				}, "echo-client", "-addr", s.addr, "-conns", strconv.Itoa(conns), "-size", strconv.Itoa(size),
					"-duration", c.echoDur.String())
				if err != nil {
					return err
				}
				after, err := s.cpu()
				if err != nil {
					return err
				}
				cpu := math.Max(after-before, 1.0/clkTck)
				var msgs, bytes, secs, p50, p99 float64
				if _, err := fmt.Sscanf(out, "msgs=%g bytes=%g seconds=%g p50-us=%g p99-us=%g", &msgs, &bytes, &secs, &p50, &p99); err != nil || msgs == 0 {
					return fmt.Errorf("echo-client output %q: %v", out, err)
				}
				c.record(fmt.Sprintf("BenchmarkEcho/conns=%d/size=%d/server=%s", conns, size, s.name),
					msgs/secs, "msg/s", bytes/secs/1e6, "MB/s", msgs/cpu, "msg/cpu-s", p50, "p50-us", p99, "p99-us", cpu, "cpu-s")
			}
		}
		return nil
	})
}

func (c *config) idleSuite(round int) error {
	return c.each(c.goSpecs("echo"), round, func(s *server) error {
		heap0, err := s.heap() // collects first, so rss0 is after a GC as rss1
		if err != nil {
			return err
		}
		rss0, err := s.rss()
		if err != nil {
			return err
		}
		var rss1, heap1 float64
		_, err = c.interactive(s, func() (err error) {
			if heap1, err = s.heap(); err != nil { // after a GC, as heap0
				return err
			}
			rss1, err = s.rss()
			return err
		}, "idle-client", "-addr", s.addr, "-conns", strconv.Itoa(c.idleConns))
		if err != nil {
			return err
		}
		n := float64(c.idleConns)
		c.record(fmt.Sprintf("BenchmarkIdle/conns=%d/server=%s", c.idleConns, s.name),
			(rss1-rss0)/n/1024, "rss-KiB/conn", (heap1-heap0)/n/1024, "heap-KiB/conn")
		return nil
	})
}
