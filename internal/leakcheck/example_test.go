package leakcheck_test

import (
	"fmt"
	"os"

	"github.com/eventpipe/eventpipe/internal/leakcheck"
)

// A test that opens a descriptor and forgets it is caught by a snapshot
// taken before.
func Example() {
	before := leakcheck.Take()
	f, _ := os.Open("/dev/null")
	fmt.Println("leaked:", before.Diff(0) != "")
	f.Close()
	fmt.Println("after close:", before.Diff(0) != "")
	// Output:
	// leaked: true
	// after close: false
}
