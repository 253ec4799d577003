package ringbuf

import (
	"testing"
	"time"
)

// TestPollTimeout: zero never waits, negative waits without limit, and a
// positive timeout waits for what is left of it until its deadline passes.
func TestPollTimeout(t *testing.T) {
	if d, ok := newPollTimeout(0).left(); ok || d != 0 {
		t.Errorf("zero timeout: wait %v, %v; want none", d, ok)
	}
	if d, ok := newPollTimeout(-1).left(); !ok || d >= 0 {
		t.Errorf("negative timeout: wait %v, %v; want unlimited", d, ok)
	}
	if d, ok := newPollTimeout(time.Hour).left(); !ok || d <= 0 || d > time.Hour {
		t.Errorf("an hour: wait %v, %v; want up to an hour", d, ok)
	}
	passed := pollTimeout{timeout: time.Second, deadline: time.Now().Add(-time.Millisecond)}
	if d, ok := passed.left(); ok {
		t.Errorf("deadline passed: wait %v, %v; want none", d, ok)
	}
	if a := testing.AllocsPerRun(100, func() { newPollTimeout(time.Second).left() }); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
