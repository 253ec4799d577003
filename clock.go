//go:build linux

package eventpipe

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// monoClock reads CLOCK_MONOTONIC without a system call. Go's monotonic
// clock readings (time.Now, time.Since) come from the same clock, through
// the vDSO, so one offset taken at start converts them for good.
type monoClock struct {
	base time.Time
	mono uint64 // CLOCK_MONOTONIC at base, in nanoseconds
}

func newMonoClock() (monoClock, error) {
	var before, after unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &before); err != nil {
		return monoClock{}, fmt.Errorf("eventpipe: clock_gettime: %w", err)
	}
	base := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &after); err != nil {
		return monoClock{}, fmt.Errorf("eventpipe: clock_gettime: %w", err)
	}
	mid := uint64(before.Nano()) + uint64(after.Nano()-before.Nano())/2
	return monoClock{base: base, mono: mid}, nil
}

// now returns CLOCK_MONOTONIC in nanoseconds.
func (c *monoClock) now() uint64 { return c.mono + uint64(time.Since(c.base)) }
