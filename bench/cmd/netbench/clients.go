package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// dialAll opens n connections to addr, at most 64 dials at a time.
func dialAll(addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, n)
	errs := make(chan error, 1)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := net.DialTimeout("tcp", addr, 30*time.Second)
			if err != nil {
				select {
				case errs <- err:
				default:
				}
				return
			}
			conns[i] = c
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		closeAll(conns)
		return nil, err
	default:
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		if c != nil {
			c.Close()
		}
	}
}

// waitGo prints "connected" and waits for a line on stdin.
func waitGo() error {
	fmt.Println("connected")
	_, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// maxSamples bounds the round-trip times each connection keeps.
const maxSamples = 4096

// echoClientMain: each connection sends a message of -size bytes, reads
// the echo back whole (and checks it), and again, for -duration. It prints
// "msgs=<n> bytes=<n> seconds=<s> p50-us=<t> p99-us=<t>".
func echoClientMain(args []string) error {
	fs := flag.NewFlagSet("echo-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	conns := fs.Int("conns", 1, "connections")
	size := fs.Int("size", 64, "message bytes")
	dur := fs.Duration("duration", 5*time.Second, "how long to run")
	fs.Parse(args)
	cs, err := dialAll(*addr, *conns)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	if err := waitGo(); err != nil {
		return err
	}
	var (
		stop    atomic.Bool
		msgs    atomic.Int64
		wg      sync.WaitGroup
		mu      sync.Mutex
		samples []time.Duration
		first   error
	)
	start := time.Now()
	for i, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := bytes.Repeat([]byte{byte('a' + i%26)}, *size)
			in := make([]byte, *size)
			var mine []time.Duration
			n := 0
			for !stop.Load() {
				t0 := time.Now()
				if _, err := c.Write(out); err != nil {
					setErr(&mu, &first, err)
					return
				}
				if _, err := io.ReadFull(c, in); err != nil {
					setErr(&mu, &first, err)
					return
				}
				rtt := time.Since(t0)
				if in[0] != out[0] || in[len(in)-1] != out[len(out)-1] {
					setErr(&mu, &first, fmt.Errorf("connection %d: echo differs", i))
					return
				}
				n++
				if len(mine) < maxSamples {
					mine = append(mine, rtt)
				} else {
					mine[n%maxSamples] = rtt
				}
			}
			msgs.Add(int64(n))
			mu.Lock()
			samples = append(samples, mine...)
			mu.Unlock()
		}()
	}
	time.Sleep(*dur)
	stop.Store(true)
	wg.Wait()
	secs := time.Since(start).Seconds()
	if first != nil {
		return first
	}
	slices.Sort(samples)
	fmt.Printf("msgs=%d bytes=%d seconds=%.3f p50-us=%.1f p99-us=%.1f\n", msgs.Load(), msgs.Load()*int64(*size), secs,
		quantile(samples, 0.50), quantile(samples, 0.99))
	return nil
}

func setErr(mu *sync.Mutex, first *error, err error) {
	mu.Lock()
	defer mu.Unlock()
	if *first == nil {
		*first = err
	}
}

// quantile of sorted durations, in microseconds.
func quantile(sorted []time.Duration, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q * float64(len(sorted)-1))
	return float64(sorted[i]) / 1e3
}

// idleClientMain opens -conns connections, has each echo one byte (so the
// server has accepted and served it), prints "connected", and holds them
// until a line (or EOF) on stdin.
func idleClientMain(args []string) error {
	fs := flag.NewFlagSet("idle-client", flag.ExitOnError)
	addr := fs.String("addr", "", "server address")
	conns := fs.Int("conns", 10000, "connections")
	fs.Parse(args)
	cs, err := dialAll(*addr, *conns)
	if err != nil {
		return err
	}
	defer closeAll(cs)
	var b [1]byte
	for i, c := range cs {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write([]byte{'x'}); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
	}
	for i, c := range cs {
		if _, err := io.ReadFull(c, b[:]); err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		c.SetDeadline(time.Time{})
	}
	return waitGo()
}
