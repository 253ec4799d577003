// Package peer is what every server of the network benchmarks shares: its
// flags, the line that tells the driver where it listens, and the signals
// the driver sends it (SIGUSR1: report the Go heap; SIGTERM, SIGINT: end).
package peer

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// Flags are the command line every benchmark server takes.
type Flags struct {
	Addr  string // address to listen on
	Loops int    // event loops (or gnet's event loops); 0 means 1
	Proto string // resp, http or echo
}

// Parse reads the flags.
func Parse() Flags {
	var f Flags
	flag.StringVar(&f.Addr, "addr", "127.0.0.1:0", "address to listen on")
	flag.IntVar(&f.Loops, "loops", 1, "event loops")
	flag.StringVar(&f.Proto, "proto", "echo", "protocol: resp, http or echo")
	flag.Parse()
	if f.Loops <= 0 {
		f.Loops = 1
	}
	return f
}

// Ready prints the line the driver waits for: "listening on <addr>".
func Ready(a net.Addr) { fmt.Printf("listening on %s\n", a) }

// Context ends on SIGTERM or SIGINT. Until then, each SIGUSR1 prints the
// Go heap after a collection: "heap inuse=<bytes> alloc=<bytes> sys=<bytes>".
func Context() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	usr := make(chan os.Signal, 1)
	signal.Notify(usr, syscall.SIGUSR1)
	go func() {
		for {
			select {
			case <-ctx.Done():
				signal.Stop(usr)
				return
			case <-usr:
				ReportHeap()
			}
		}
	}()
	return ctx, cancel
}

// ReportHeap prints the heap line.
func ReportHeap() {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	fmt.Printf("heap inuse=%d alloc=%d sys=%d\n", m.HeapInuse, m.HeapAlloc, m.Sys)
}

// Fail prints err and exits.
func Fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
