package eventfd_test

import (
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
)

// TestErrorText checks every error the package returns: it names the
// package and the operation once, and errors.Is finds the errno or
// os.ErrClosed.
func TestErrorText(t *testing.T) {
	open := func(t *testing.T, flags eventfd.Flags) *eventfd.FD {
		e, err := eventfd.New(0, flags)
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		return e
	}
	closed := func(t *testing.T) *eventfd.FD {
		e, err := eventfd.New(0, 0)
		require.NoError(t, err)
		require.NoError(t, e.Close())
		return e
	}
	for _, c := range []struct {
		name string
		want error
		text string
		call func(t *testing.T) error
	}{
		{"unknown flags", unix.EINVAL, "eventfd: new: unknown flags 0x4000: invalid argument",
			func(*testing.T) error { _, err := eventfd.New(0, eventfd.Flags(0x4000)); return err }},
		{"initial value too large", unix.EINVAL, "eventfd: new: initial value 4294967296 exceeds 2^32-1: invalid argument",
			func(*testing.T) error { _, err := eventfd.New(1<<32, 0); return err }},
		{"write 2^64-1", unix.EINVAL, "eventfd: write: invalid argument",
			func(t *testing.T) error { return open(t, eventfd.NonBlocking).Write(1<<64 - 1) }},
		{"read empty", unix.EAGAIN, "eventfd: read: resource temporarily unavailable",
			func(t *testing.T) error { _, err := open(t, eventfd.NonBlocking).Read(); return err }},
		{"write overflow", unix.EAGAIN, "eventfd: write: resource temporarily unavailable",
			func(t *testing.T) error {
				e := open(t, eventfd.NonBlocking)
				require.NoError(t, e.Write(1<<64-2))
				return e.Write(1)
			}},
		{"read after close", os.ErrClosed, "eventfd: read: file already closed",
			func(t *testing.T) error { _, err := closed(t).Read(); return err }},
		{"write after close", os.ErrClosed, "eventfd: write: file already closed",
			func(t *testing.T) error { return closed(t).Write(1) }},
		{"close twice", os.ErrClosed, "eventfd: close: file already closed",
			func(t *testing.T) error { return closed(t).Close() }},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call(t)
			require.ErrorIs(t, err, c.want)
			require.Equal(t, c.text, err.Error())
			require.Equal(t, 1, strings.Count(err.Error(), "eventfd:"), "the package is named once")
		})
	}
}
