package poller_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/poller"
)

// TestErrorText checks every error the package returns: it names the
// package and the operation once, and errors.Is finds the errno or
// os.ErrClosed.
func TestErrorText(t *testing.T) {
	p := newPoller(t)
	a, _ := socketpair(t)
	require.NoError(t, p.Add(a, poller.Readable, 1))
	b, _ := socketpair(t)
	fd := strconv.Itoa
	closed, err := poller.New()
	require.NoError(t, err)
	require.NoError(t, closed.Close())

	for _, c := range []struct {
		name string
		want error
		text string
		err  error
	}{
		{"add duplicate", unix.EEXIST, "poller: add fd " + fd(a) + " (Readable): epoll_ctl: file exists",
			p.Add(a, poller.Readable, 2)},
		{"add out of range", unix.EBADF, "poller: add fd 4294967296: descriptor out of range: bad file descriptor",
			p.Add(1<<32, poller.Readable, 2)},
		{"add negative", unix.EBADF, "poller: add fd -1: descriptor out of range: bad file descriptor",
			p.Add(-1, poller.Readable, 2)},
		{"modify absent", unix.ENOENT, "poller: modify fd " + fd(b) + " (Writable): epoll_ctl: no such file or directory",
			p.Modify(b, poller.Writable, 2)},
		{"modify out of range", unix.EBADF, "poller: modify fd -4294967296: descriptor out of range: bad file descriptor",
			p.Modify(-1<<32, poller.Writable, 2)},
		{"delete absent", unix.ENOENT, "poller: delete fd " + fd(b) + ": epoll_ctl: no such file or directory",
			p.Delete(b)},
		{"delete out of range", unix.EBADF, "poller: delete fd 2147483648: descriptor out of range: bad file descriptor",
			p.Delete(1 << 31)},
		{"wait with no room", unix.EINVAL, "poller: wait: empty events slice: invalid argument",
			func() error { _, err := p.Wait(nil, 0); return err }()},
		{"add after close", os.ErrClosed, "poller: add: file already closed", closed.Add(a, poller.Readable, 1)},
		{"modify after close", os.ErrClosed, "poller: modify: file already closed", closed.Modify(a, poller.Readable, 1)},
		{"delete after close", os.ErrClosed, "poller: delete: file already closed", closed.Delete(a)},
		{"wait after close", os.ErrClosed, "poller: wait: file already closed",
			func() error { _, err := closed.Wait(make([]poller.Event, 1), 0); return err }()},
		{"close twice", os.ErrClosed, "poller: close: file already closed", closed.Close()},
	} {
		t.Run(c.name, func(t *testing.T) {
			require.ErrorIs(t, c.err, c.want)
			require.Equal(t, c.text, c.err.Error())
			require.Equal(t, 1, strings.Count(c.err.Error(), "poller:"), "the package is named once")
		})
	}
}
