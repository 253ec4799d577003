package ringbuf_test

import (
	"errors"
	"fmt"
	"log"
	"runtime"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpftest"
	"github.com/eventpipe/eventpipe/ringbuf"
)

// A map of the wrong kind, or a descriptor that is not a BPF map at all, is
// refused with an error that says so and wraps the errno.
func ExampleNewRingReader_notAMap() {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		log.Fatal(err)
	}
	defer unix.Close(fd)
	_, err = ringbuf.NewRingReader(fd)
	fmt.Println(errors.Is(err, unix.EINVAL), strings.Contains(err.Error(), "is not a BPF map"))
	_, err = ringbuf.NewRingReader(1<<32 + fd) // the kernel would read it as fd
	fmt.Println(errors.Is(err, unix.EBADF))
	// Output:
	// true true
	// true
}

// examplePerfProgram creates a perf event array and a program that writes
// a category-0 record of 4 bytes of text into it, run by emit on CPU 0.
func examplePerfProgram() (mapFD int, emit func(string), done func()) {
	m, err := bpftest.NewPerfEventArray(0)
	if err != nil {
		log.Fatal(err)
	}
	p, err := bpftest.NewPerfProducer(m, 8)
	if err != nil {
		log.Fatal(err)
	}
	emit = func(s string) {
		onCPU0(func() {
			if err := p.Emit(append(make([]byte, 4), s...)); err != nil {
				log.Fatal(err)
			}
		})
	}
	return m.FD(), emit, func() { p.Close(); m.Close() }
}

// exampleRingProgram creates a ring buffer of size bytes and a program that
// writes an 8-byte record into it per emit.
func exampleRingProgram(size int) (mapFD int, emit func(string), done func()) {
	m, err := bpftest.NewRingBuf(size)
	if err != nil {
		log.Fatal(err)
	}
	p, err := bpftest.NewRingProducer(m, 8)
	if err != nil {
		log.Fatal(err)
	}
	emit = func(s string) {
		if err := p.Emit([]byte(s)); err != nil {
			log.Fatal(err)
		}
	}
	return m.FD(), emit, func() { p.Close(); m.Close() }
}

// onCPU0 runs fn on a thread bound to CPU 0, where the program then runs.
// The thread is left locked, so the runtime discards it afterwards.
func onCPU0(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(0)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			log.Fatal(err)
		}
		fn()
	}()
	<-done
}
