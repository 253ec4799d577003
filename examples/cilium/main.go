// Command cilium loads a real tracing program written in C (execsnoop.bpf.c:
// on the sys_enter raw tracepoint, one record per execve to a BPF ring
// buffer and one to a perf event array) with cilium/ebpf, and
// reads both maps through one EventPipe on a loop. It then runs a few
// commands and reports the execs it saw for them.
//
// It is a module of its own so that eventpipe's users never pull
// cilium/ebpf. Run it as root (or with CAP_BPF and CAP_PERFMON): go run .
package main

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/ringbuf"
)

//go:generate sh -c "clang -O2 -g -target bpf -fdebug-prefix-map=$PWD=. -I/usr/include/$(uname -m)-linux-gnu -c execsnoop.bpf.c -o execsnoop.bpf.o && llvm-strip -g execsnoop.bpf.o"

//go:embed execsnoop.bpf.o
var program []byte

// objects are the program and maps of execsnoop.bpf.o.
type objects struct {
	TraceExecve *ebpf.Program `ebpf:"trace_execve"`
	Events      *ebpf.Map     `ebpf:"events"`
	PerfEvents  *ebpf.Map     `ebpf:"perf_events"`
	Drops       *ebpf.Map     `ebpf:"drops"`
}

func (o *objects) Close() {
	for _, c := range []interface{ Close() error }{o.TraceExecve, o.Events, o.PerfEvents, o.Drops} {
		if c != nil {
			c.Close()
		}
	}
}

// report is what a run saw.
type report struct {
	children         int
	viaRing, viaPerf int // the children's execs seen through each map
	others           int // execs of other processes on the machine meanwhile
	stats            eventpipe.Stats
}

func main() {
	r, err := run(5)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cilium:", err)
		os.Exit(1)
	}
	fmt.Printf("ran %d commands: %d execs seen through the ring buffer, %d through the perf array (%d execs of other processes)\n",
		r.children, r.viaRing, r.viaPerf, r.others)
	fmt.Printf("pipe: %+v\n", r.stats)
}

// run loads the program, runs n commands and waits until the pipe has
// delivered their execs through both maps.
func run(n int) (report, error) {
	var rep report
	if err := rlimit.RemoveMemlock(); err != nil {
		return rep, err
	}
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(program))
	if err != nil {
		return rep, err
	}
	if err := spec.Variables["execve_nr"].Set(uint64(unix.SYS_EXECVE)); err != nil {
		return rep, err
	}
	var objs objects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return rep, err
	}
	defer objs.Close()
	tp, err := link.AttachRawTracepoint(link.RawTracepointOptions{Name: "sys_enter", Program: objs.TraceExecve})
	if err != nil {
		return rep, err
	}
	defer tp.Close()

	l, err := loop.New()
	if err != nil {
		return rep, err
	}
	defer l.Close()
	p, err := eventpipe.New(l, eventpipe.Options{MaxLatency: 20 * time.Millisecond})
	if err != nil {
		return rep, err
	}

	// The children's pids, filled in as they start; the handlers run on
	// the loop, and so does the code that starts the children.
	ours := map[uint32]bool{}
	count := func(n *int) func(ev eventpipe.Event) {
		return func(ev eventpipe.Event) {
			if ours[binary.NativeEndian.Uint32(ev.Payload)] {
				*n++
			} else {
				rep.others++
			}
		}
	}
	// Registered in the order of the C enum category.
	p.Register(count(&rep.viaRing))
	p.Register(count(&rep.viaPerf))
	p.OnError(func(err error) { fmt.Fprintln(os.Stderr, "pipe:", err) })

	// The maps are cilium's: the pipe reads duplicates of them.
	if err := p.AttachRing(objs.Events.FD()); err != nil {
		return rep, err
	}
	if err := p.AttachPerf(objs.PerfEvents.FD(), ringbuf.PerfOptions{}); err != nil {
		return rep, err
	}
	if err := p.CountDrops(objs.Drops.FD()); err != nil {
		return rep, err
	}

	var runErr error
	var cmds []*exec.Cmd
	start := l.AfterFunc(0, func() {
		for range n {
			cmd := exec.Command("/bin/true")
			if runErr = cmd.Start(); runErr != nil {
				break
			}
			ours[uint32(cmd.Process.Pid)] = true
			cmds = append(cmds, cmd)
		}
	})
	defer start.Close(nil)
	deadline := time.Now().Add(10 * time.Second)
	var check func()
	check = func() {
		done := rep.viaRing == len(cmds) && rep.viaPerf == len(cmds) && len(cmds) > 0
		if done || runErr != nil || time.Now().After(deadline) {
			p.Close(nil)
			return
		}
		l.AfterFunc(5*time.Millisecond, check)
	}
	l.AfterFunc(5*time.Millisecond, check)
	if err := l.Run(context.Background()); err != nil {
		return rep, err
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	rep.children, rep.stats = len(cmds), p.Stats()
	if runErr != nil {
		return rep, runErr
	}
	if rep.viaRing != n || rep.viaPerf != n {
		return rep, fmt.Errorf("saw %d and %d of %d execs", rep.viaRing, rep.viaPerf, n)
	}
	return rep, nil
}
