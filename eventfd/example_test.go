package eventfd_test

import (
	"fmt"

	"github.com/eventpipe/eventpipe/eventfd"
)

func Example() {
	e, err := eventfd.New(0, eventfd.NonBlocking)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()

	_ = e.Write(2)
	_ = e.Write(3)
	v, _ := e.Read()
	fmt.Println("counter:", v)
	_, err = e.Read()
	fmt.Println("then:", err)
	// Output:
	// counter: 5
	// then: eventfd: read: resource temporarily unavailable
}
