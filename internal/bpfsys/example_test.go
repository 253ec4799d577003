package bpfsys_test

import (
	"fmt"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// The kernel lists CPUs as ranges; a perf event array needs a slot up to
// the highest.
func ExampleParseCPUList() {
	cpus, err := bpfsys.ParseCPUList("0-3,6")
	fmt.Println(cpus, err)
	// Output: [0 1 2 3 6] <nil>
}
