package loop

import (
	"context"
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

var (
	// ErrCanceled is what a Work's done callback receives when Cancel,
	// Shutdown or Close removed it from the queue before it started.
	// errors.Is(ErrCanceled, context.Canceled) holds.
	ErrCanceled = opError("loop: work canceled", context.Canceled)
	// ErrBusy is wrapped by the error of (*Work).Cancel once the work has
	// started (the error is ErrBusy itself then), finished or was already
	// canceled; it wraps unix.EBUSY.
	ErrBusy = opError("loop: cancel work: already started", unix.EBUSY)
	// ErrNilCallback is wrapped by every call given a nil callback where one
	// is required.
	ErrNilCallback = errors.New("loop: nil callback")
	// ErrWorkExited is what a Work's done callback receives when the work
	// function ended its goroutine without returning: runtime.Goexit, which
	// is what t.FailNow and t.Fatal do. The worker it ran on is replaced.
	ErrWorkExited = errors.New("loop: work: exited its goroutine (runtime.Goexit) without returning")
)

// Errors of the hot paths are made once, so that a refused call allocates
// nothing either.
var (
	errPostNil           = opError("loop: post: nil callback", ErrNilCallback)
	errPostClosed        = opError("loop: post: closed", os.ErrClosed)
	errPostContextNil    = opError("loop: post context: nil callback", ErrNilCallback)
	errPostContextClosed = opError("loop: post context: closed", os.ErrClosed)
	errSendClosed        = opError("loop: async send: closed", os.ErrClosed)
	errCancelFinished    = opError("loop: cancel work: already finished", ErrBusy)
	errCancelCanceled    = opError("loop: cancel work: already canceled", ErrBusy)
	errCancelAbandoned   = opError("loop: cancel work: abandoned by Shutdown or Close", ErrBusy)
)

// wrapped is an error with a complete text of its own that still matches
// what it wraps: the text names the package and the operation once, and
// errors.Is sees the errno or the sentinel underneath.
type wrapped struct {
	msg string
	err error
}

func opError(msg string, err error) error { return &wrapped{msg: msg, err: err} }

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }

// closedError is the error of operation op on a closed loop or handle.
func closedError(op string) error { return opError("loop: "+op+": closed", os.ErrClosed) }

// nilError is the error of operation op given a nil callback.
func nilError(op string) error { return opError("loop: "+op+": nil callback", ErrNilCallback) }

// busyError is the error of operation op refused while the loop runs.
func busyError(op string) error {
	return opError("loop: "+op+": loop is running", unix.EBUSY)
}

// lowerError rewraps the error of a lower layer (poller, async) for
// operation op: the errno it carries is kept for errors.Is, and the lower
// layer's own prefix, which repeats the descriptor and the operation, is
// replaced by op.
func lowerError(op string, err error) error {
	var se *os.SyscallError
	if errors.As(err, &se) {
		return fmt.Errorf("loop: %s: %w", op, se)
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return fmt.Errorf("loop: %s: %w", op, errno)
	}
	return fmt.Errorf("loop: %s: %w", op, err)
}

// eventMask is every bit Watch and Modify accept.
const eventMask = poller.Readable | poller.Writable | poller.Priority | poller.ReadHangup |
	poller.Error | poller.Hangup | poller.EdgeTriggered | poller.OneShot | poller.Exclusive

// conditionMask is the bits that ask for a condition, as opposed to the
// flags that say how to report it.
const conditionMask = poller.Readable | poller.Writable | poller.Priority | poller.ReadHangup |
	poller.Error | poller.Hangup

// checkEvents refuses an event set with no condition or with bits poller
// does not know.
func checkEvents(op string, fd int, ev poller.Events) error {
	if ev&^eventMask != 0 {
		return opError(fmt.Sprintf("loop: %s fd %d: unknown event bits %#x", op, fd, uint32(ev&^eventMask)), unix.EINVAL)
	}
	if ev&conditionMask == 0 {
		return opError(fmt.Sprintf("loop: %s fd %d: no event asked for (%v)", op, fd, ev), unix.EINVAL)
	}
	return nil
}
