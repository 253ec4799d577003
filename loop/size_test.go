package loop

import (
	"testing"
	"unsafe"
)

// TestTimerSize keeps a Timer in the 48-byte size class: a program may hold
// a million of them, and the timer benchmark's memory figure is this size.
func TestTimerSize(t *testing.T) {
	if got := unsafe.Sizeof(Timer{}); got > 48 {
		t.Fatalf("Timer is %d bytes, over the 48-byte size class", got)
	}
}
