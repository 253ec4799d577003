package group_test

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/eventpipe/eventpipe/group"
)

// Four loops, one task posted to each; Run returns once every loop has
// run out of work.
func Example() {
	g, err := group.New(4)
	if err != nil {
		panic(err)
	}
	defer g.Close()
	var ran atomic.Int32
	for i := range g.Len() {
		if err := g.Post(i, func() { ran.Add(1) }); err != nil {
			panic(err)
		}
	}
	if err := g.Run(context.Background()); err != nil {
		panic(err)
	}
	fmt.Println("loops:", g.Len(), "tasks run:", ran.Load())
	// Output:
	// loops: 4 tasks run: 4
}
