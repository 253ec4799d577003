package ringbuf

import (
	"time"

	"github.com/eventpipe/eventpipe/poller"
)

// pollTimeout is the time a Poll may spend waiting: forever if negative,
// not at all if zero. Both readers' Poll loops wait again after a wakeup
// that delivered nothing, for the time left, and return (0, nil) only once
// none is left.
type pollTimeout struct {
	timeout  time.Duration
	deadline time.Time // set for a positive timeout
}

func newPollTimeout(timeout time.Duration) pollTimeout {
	t := pollTimeout{timeout: timeout}
	if timeout > 0 {
		t.deadline = time.Now().Add(timeout)
	}
	return t
}

// left is how long the next wait may block (negative: without limit); ok
// is false when the timeout has passed or was zero, and Poll returns.
func (t pollTimeout) left() (wait time.Duration, ok bool) {
	switch {
	case t.timeout < 0:
		return t.timeout, true
	case t.timeout == 0:
		return 0, false
	}
	wait = time.Until(t.deadline)
	return wait, wait > 0
}

// wait blocks on ep for the time left. It reports false with no error when
// none is left, and the Poll then returns (0, nil).
func (t pollTimeout) wait(ep *poller.Poller, events []poller.Event) (bool, error) {
	d, ok := t.left()
	if !ok {
		return false, nil
	}
	if _, err := ep.Wait(events, d); err != nil {
		return false, err
	}
	return true, nil
}
