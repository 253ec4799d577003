package poller_test

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

func Example() {
	p, err := poller.New()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	fds, _ := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])

	// The token is the caller's own name for the registration.
	_ = p.Add(fds[0], poller.Readable, 42)
	unix.Write(fds[1], []byte("ping"))

	events := make([]poller.Event, 8)
	n, _ := p.Wait(events, -1)
	for _, ev := range events[:n] {
		fmt.Println(ev.Token, ev.Events)
	}
	// Output:
	// 42 Readable
}
