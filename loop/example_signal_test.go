package loop_test

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/eventpipe/eventpipe/loop"
)

// A Signal handle runs its callback on the loop when the process gets the
// signal; closing it ends the relay, and Run returns.
func ExampleLoop_NewSignal() {
	l, err := loop.New()
	if err != nil {
		panic(err)
	}
	defer l.Close()
	var s *loop.Signal
	s = l.NewSignal(func(sig os.Signal) {
		fmt.Println("got", sig)
		s.Close(nil)
	})
	if err := s.Start(syscall.SIGUSR1); err != nil {
		panic(err)
	}
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGUSR1); err != nil {
		panic(err)
	}
	if err := l.Run(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("closed:", s.IsClosing())
	// Output:
	// got user defined signal 1
	// closed: true
}
