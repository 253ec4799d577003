package reliability

import (
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// The stream part of the soak: soakStreamSlots clients on the soak's loop
// each run cycles of dial, send a random number of random-sized messages,
// check the echo of every byte, and end the connection in one of three
// ways chosen at random: Close, Shutdown (the server, with no OnEnd,
// flushes and closes, then the client sees the end), or CloseReset (the
// server sees ECONNRESET). Then the slot dials again.
//
// Descriptors must be flat across the soak's quarters, and connections
// come and go: so the sampler pauses the streams around each sample (no
// new cycle starts; the sample waits until every connection is closed on
// both sides), which leaves the listener's two descriptors.
const (
	soakStreamSlots = 16
	soakStreamMsgs  = 8    // at most, per cycle
	soakStreamMsg   = 4096 // bytes, at most, per message
)

// End modes of a cycle.
const (
	endClose = iota
	endShutdown
	endReset
	endModes
)

type soakStreams struct {
	t    *testing.T
	l    *loop.Loop
	ln   *stream.Listener
	rng  *rand.Rand
	addr string

	active, open     int // client cycles running; connections (both sides) not yet closed
	paused, stopping bool
	parked           chan struct{}

	cycles, bytes           uint64
	ends                    [endModes]uint64
	serverEOF, serverReset  uint64
	serverClosed, serverAcc uint64
	errs                    int
}

// startSoakStreams listens on l and starts the client slots.
func startSoakStreams(t *testing.T, l *loop.Loop) *soakStreams {
	s := &soakStreams{t: t, l: l, rng: rand.New(rand.NewPCG(1, 2))}
	ln, err := stream.Listen(l, "tcp", "127.0.0.1:0", s.serve)
	require.NoError(t, err)
	s.ln, s.addr = ln, ln.Addr().String()
	for range soakStreamSlots {
		s.cycle()
	}
	return s
}

func (s *soakStreams) fail(format string, args ...any) {
	s.errs++
	s.t.Errorf("streams: "+format, args...)
}

// serve echoes, and classifies how the server side ended.
func (s *soakStreams) serve(c *stream.Conn) {
	s.open++
	s.serverAcc++
	c.OnData(func(c *stream.Conn, d []byte) int {
		if _, err := c.Write(d); err != nil {
			s.fail("echo: %v", err)
		}
		return len(d)
	})
	c.OnClose(func(_ *stream.Conn, err error) {
		s.open--
		s.serverClosed++
		switch {
		case err == io.EOF:
			s.serverEOF++
		case errors.Is(err, unix.ECONNRESET):
			s.serverReset++
		default:
			s.fail("server side closed with %v", err)
		}
		s.settled()
	})
}

// cycle starts one client cycle unless paused or stopping.
func (s *soakStreams) cycle() {
	if s.paused || s.stopping {
		s.settled()
		return
	}
	s.active++
	err := stream.Dial(s.l, "tcp", s.addr, func(c *stream.Conn, err error) {
		if err != nil {
			s.fail("dial: %v", err)
			s.active--
			s.settled()
			return
		}
		s.open++
		s.client(c)
	})
	if err != nil {
		s.fail("Dial: %v", err)
		s.active--
	}
}

func (s *soakStreams) client(c *stream.Conn) {
	seed := s.rng.Uint64()
	total := 0
	for range 1 + s.rng.IntN(soakStreamMsgs) {
		msg := make([]byte, 1+s.rng.IntN(soakStreamMsg))
		for k := range msg {
			msg[k] = byte(seed + uint64(total+k))
		}
		total += len(msg)
		if _, err := c.Write(msg); err != nil {
			s.fail("write: %v", err)
		}
	}
	mode := s.rng.IntN(endModes)
	got := 0
	c.OnData(func(c *stream.Conn, d []byte) int {
		for k, b := range d {
			if b != byte(seed+uint64(got+k)) {
				s.fail("echo corrupt at %d", got+k)
				c.Close(nil)
				return len(d)
			}
		}
		got += len(d)
		if got > total {
			s.fail("echo longer than sent: %d > %d", got, total)
		}
		if got == total {
			switch mode {
			case endClose:
				c.Close(nil)
			case endShutdown:
				c.Shutdown(func(err error) {
					if err != nil {
						s.fail("shutdown: %v", err)
					}
				})
			case endReset:
				c.CloseReset(nil)
			}
		}
		return len(d)
	})
	c.OnClose(func(_ *stream.Conn, err error) {
		s.open--
		s.active--
		want := error(nil)
		if mode == endShutdown {
			want = io.EOF
		}
		if err != want || got != total {
			s.fail("client (end mode %d) closed with %v after %d of %d bytes", mode, err, got, total)
		}
		s.cycles++
		s.bytes += uint64(total)
		s.ends[mode]++
		s.cycle()
	})
}

// settled signals a pause or ends the listener once every connection is
// closed on both sides.
func (s *soakStreams) settled() {
	if s.active > 0 || s.open > 0 {
		return
	}
	if s.paused && s.parked != nil {
		close(s.parked)
		s.parked = nil
	}
	if s.stopping && !s.ln.IsClosing() {
		s.ln.Close(nil)
	}
}

// pause, from the sampler's goroutine, returns once no stream connection
// is open.
func (s *soakStreams) pause() {
	ch := make(chan struct{})
	if err := s.l.Post(func() {
		s.paused = true
		s.parked = ch
		s.settled()
	}); err != nil {
		s.t.Errorf("streams: pause: %v", err)
		return
	}
	select {
	case <-ch:
	case <-time.After(guard):
		s.t.Errorf("streams: connections still open after %v", guard)
	}
}

// resume, from any goroutine, starts the slots again.
func (s *soakStreams) resume() {
	if err := s.l.Post(func() {
		s.paused = false
		for s.active < soakStreamSlots && !s.stopping {
			s.cycle()
		}
	}); err != nil {
		s.t.Errorf("streams: resume: %v", err)
	}
}

// finish, on the loop, lets the running cycles end and then closes the
// listener.
func (s *soakStreams) finish() {
	s.stopping = true
	s.settled()
}

// check, after the run, accounts for every cycle.
func (s *soakStreams) check(t *testing.T) {
	t.Logf("figures: streams: %d cycles (%d closed, %d shut down, %d reset), %d bytes echoed; server: %d accepted, %d ended by EOF, %d by reset; listener %+v",
		s.cycles, s.ends[endClose], s.ends[endShutdown], s.ends[endReset], s.bytes, s.serverAcc, s.serverEOF, s.serverReset, s.ln.Stats())
	require.Zero(t, s.errs, "stream errors")
	require.True(t, s.ln.IsClosing())
	require.Zero(t, s.active)
	require.Zero(t, s.open)
	require.Positive(t, s.cycles)
	require.Equal(t, s.cycles, s.serverAcc, "every cycle accepted once")
	require.Equal(t, s.cycles, s.serverClosed, "every server side closed once")
	require.Equal(t, s.ends[endClose]+s.ends[endShutdown], s.serverEOF, "a FIN reached the server for every close and shutdown")
	require.Equal(t, s.ends[endReset], s.serverReset, "an RST reached the server for every reset")
	require.EqualValues(t, s.cycles, s.ln.Stats().Accepted)
}
