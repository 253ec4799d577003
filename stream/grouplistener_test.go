package stream_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/group"
	"github.com/eventpipe/eventpipe/internal/leakcheck"
	"github.com/eventpipe/eventpipe/loop"
	"github.com/eventpipe/eventpipe/stream"
)

// groupServer is a group listener whose connections read a 4-byte client
// id, answer with the index of the loop serving them, and close when the
// client does. It records which loop served which id.
type groupServer struct {
	t     *testing.T
	g     *group.Group
	gl    *stream.GroupListener
	index map[*loop.Loop]int
	done  chan error // the group's Run result

	mu     sync.Mutex
	served map[uint32]int // id -> times served
	open   []atomic.Int64 // per loop: connections open
	total  []atomic.Int64 // per loop: connections ever served
	tids   []atomic.Int64 // per loop: the OS thread it runs on (group locks each loop to one)
	wrong  atomic.Int64   // callbacks run on a thread other than their connection's loop's
}

func newGroupServer(t *testing.T, n int, network, address string, opts ...stream.Option) *groupServer {
	t.Helper()
	before := leakcheck.Take()
	g, err := group.New(n)
	require.NoError(t, err)
	s := &groupServer{
		t: t, g: g, index: map[*loop.Loop]int{}, done: make(chan error, 1),
		served: map[uint32]int{}, open: make([]atomic.Int64, n), total: make([]atomic.Int64, n),
		tids: make([]atomic.Int64, n),
	}
	for i := range n {
		s.index[g.Loop(i)] = i
	}
	gl, err := stream.ListenGroup(g, network, address, s.onConn, opts...)
	require.NoError(t, err)
	s.gl = gl
	go func() { s.done <- g.Run(context.Background()) }()
	for i := range n {
		require.NoError(t, g.Post(i, func() { s.tids[i].Store(int64(unix.Gettid())) }))
	}
	deadline := time.Now().Add(guard)
	for i := range n {
		for s.tids[i].Load() == 0 {
			require.True(t, time.Now().Before(deadline), "loop %d did not run its task", i)
			time.Sleep(time.Millisecond)
		}
	}
	t.Cleanup(func() {
		assert.Zero(t, s.wrong.Load(), "callbacks off their connection's loop")
		s.gl.Close(nil)
		select {
		case err := <-s.done:
			assert.NoError(t, err)
		case <-time.After(guard):
			g.Stop()
			<-s.done
			t.Errorf("group still running at cleanup")
		}
		assert.NoError(t, g.Close())
		before.Check(t)
	})
	return s
}

// onLoop counts a callback for a connection of loop i that runs on
// another loop's thread.
func (s *groupServer) onLoop(i int) {
	if int64(unix.Gettid()) != s.tids[i].Load() {
		s.wrong.Add(1)
	}
}

func (s *groupServer) onConn(c *stream.Conn) {
	i := s.index[c.Loop()]
	s.onLoop(i)
	s.open[i].Add(1)
	s.total[i].Add(1)
	c.OnData(func(c *stream.Conn, data []byte) int {
		s.onLoop(i)
		if len(data) < 4 {
			return 0
		}
		id := binary.LittleEndian.Uint32(data)
		s.mu.Lock()
		s.served[id]++
		s.mu.Unlock()
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			s.t.Errorf("write: %v", err)
		}
		return len(data)
	})
	c.OnClose(func(*stream.Conn, error) { s.open[i].Add(-1) })
}

// dial opens n client connections with ids from first, each answered, and
// returns them with the loop index each got.
func (s *groupServer) dial(network string, first, n int) ([]net.Conn, []int) {
	s.t.Helper()
	conns := make([]net.Conn, 0, n)
	loops := make([]int, 0, n)
	var b [4]byte
	for id := first; id < first+n; id++ {
		c, err := net.DialTimeout(network, s.gl.Addr().String(), guard)
		require.NoError(s.t, err)
		conns = append(conns, c)
		require.NoError(s.t, c.SetDeadline(time.Now().Add(guard)))
		binary.LittleEndian.PutUint32(b[:], uint32(id))
		_, err = c.Write(b[:])
		require.NoError(s.t, err)
		_, err = io.ReadFull(c, b[:1])
		require.NoError(s.t, err, "connection %d", id)
		loops = append(loops, int(b[0]))
	}
	return conns, loops
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// waitOpen waits until the server's open connections total want.
func (s *groupServer) waitOpen(want int64) {
	s.t.Helper()
	deadline := time.Now().Add(guard)
	for {
		var sum int64
		for i := range s.open {
			sum += s.open[i].Load()
		}
		if sum == want {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("server has %d connections open, want %d", sum, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkServedOnce asserts that ids [0, n) were each served exactly once.
func (s *groupServer) checkServedOnce(n int) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Len(s.t, s.served, n)
	for id := range n {
		require.Equal(s.t, 1, s.served[uint32(id)], "id %d", id)
	}
}

func perLoop(loops []int, n int) []int {
	counts := make([]int, n)
	for _, i := range loops {
		counts[i]++
	}
	return counts
}

const (
	groupLoops = 4
	groupConns = 1000
)

func TestListenGroupRoundRobinIsExactlyEven(t *testing.T) {
	s := newGroupServer(t, groupLoops, "tcp", "127.0.0.1:0", stream.WithBalance(stream.RoundRobin))
	assert.Equal(t, stream.RoundRobin, s.gl.Balance())
	conns, loops := s.dial("tcp", 0, groupConns)
	defer closeAll(conns)
	counts := perLoop(loops, groupLoops)
	for i, n := range counts {
		assert.Equal(t, groupConns/groupLoops, n, "loop %d of %v", i, counts)
		assert.EqualValues(t, n, s.total[i].Load(), "loop %d served", i)
	}
	// In turn: connection k went to loop k mod 4.
	for k, i := range loops {
		require.Equal(t, k%groupLoops, i, "connection %d", k)
	}
	s.checkServedOnce(groupConns)
	assert.Equal(t, stream.ListenerStats{Accepted: groupConns}, s.gl.Stats())
}

func TestListenGroupLeastConnections(t *testing.T) {
	s := newGroupServer(t, groupLoops, "tcp", "127.0.0.1:0", stream.WithBalance(stream.LeastConnections))
	conns, loops := s.dial("tcp", 0, groupConns)
	counts := perLoop(loops, groupLoops)
	lo, hi := counts[0], counts[0]
	for _, n := range counts {
		lo, hi = min(lo, n), max(hi, n)
	}
	assert.LessOrEqual(t, hi-lo, 1, "per loop %v with every connection held", counts)

	// Free loop 2's connections: the next ones all go there until it has
	// caught up with the others.
	var keep, freed []net.Conn
	for k, c := range conns {
		if loops[k] == 2 {
			freed = append(freed, c)
		} else {
			keep = append(keep, c)
		}
	}
	defer closeAll(keep)
	closeAll(freed)
	s.waitOpen(int64(len(keep)))
	more, moreLoops := s.dial("tcp", groupConns, len(freed)/2)
	defer closeAll(more)
	for k, i := range moreLoops {
		require.Equal(t, 2, i, "connection %d after loop 2's were freed", k)
	}
	s.checkServedOnce(groupConns + len(freed)/2)
	assert.EqualValues(t, groupConns+len(freed)/2, s.gl.Stats().Accepted)
}

func TestListenGroupReusePortGivesEveryLoopSome(t *testing.T) {
	s := newGroupServer(t, groupLoops, "tcp", "127.0.0.1:0") // ReusePort is the default
	assert.Equal(t, stream.ReusePort, s.gl.Balance())
	conns, loops := s.dial("tcp", 0, groupConns)
	defer closeAll(conns)
	counts := perLoop(loops, groupLoops)
	for i, n := range counts {
		assert.Positive(t, n, "loop %d of %v", i, counts)
	}
	s.checkServedOnce(groupConns)
	assert.EqualValues(t, groupConns, s.gl.Stats().Accepted)
}

func TestListenGroupUnixRoundRobin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.sock")
	s := newGroupServer(t, 3, "unix", path, stream.WithBalance(stream.RoundRobin))
	conns, loops := s.dial("unix", 0, 9)
	defer closeAll(conns)
	assert.Equal(t, []int{3, 3, 3}, perLoop(loops, 3))
	s.checkServedOnce(9)
}

// Close runs its callback once every loop's part is closed; the address
// then refuses connections, connections already accepted stay served, and
// the group's Run ends once they end (nothing else keeps it alive).
func TestListenGroupClose(t *testing.T) {
	for _, b := range []stream.Balance{stream.ReusePort, stream.RoundRobin, stream.LeastConnections} {
		t.Run(b.String(), func(t *testing.T) {
			s := newGroupServer(t, groupLoops, "tcp", "127.0.0.1:0", stream.WithBalance(b))
			conns, _ := s.dial("tcp", 0, 8)
			var calls atomic.Int32
			closed := make(chan struct{})
			s.gl.Close(func() {
				if calls.Add(1) == 1 {
					close(closed)
				}
			})
			s.gl.Close(func() { t.Error("second Close's callback ran") })
			select {
			case <-closed:
			case <-time.After(guard):
				t.Fatal("Close's callback did not run")
			}
			_, err := net.DialTimeout("tcp", s.gl.Addr().String(), guard)
			require.Error(t, err)
			assert.True(t, errors.Is(err, unix.ECONNREFUSED), "dial after Close: %v", err)

			// Accepted connections still answer (write to the first).
			var b [4]byte
			require.NoError(t, conns[0].SetDeadline(time.Now().Add(guard)))
			_, err = conns[0].Write([]byte{9, 9, 9, 9})
			require.NoError(t, err)
			_, err = io.ReadFull(conns[0], b[:1])
			require.NoError(t, err)

			closeAll(conns)
			select {
			case err := <-s.done:
				s.done <- err // for the cleanup
			case <-time.After(guard):
				t.Fatal("group Run did not end after its connections and listener did")
			}
			assert.EqualValues(t, 1, calls.Load())
		})
	}
}

func TestListenGroupBadInput(t *testing.T) {
	before := leakcheck.Take()
	defer before.Check(t)
	onConn := func(*stream.Conn) {}
	_, err := stream.ListenGroup(nil, "tcp", "127.0.0.1:0", onConn)
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.ErrorContains(t, err, "nil group")

	g, err := group.New(2)
	require.NoError(t, err)
	defer g.Close()
	_, err = stream.ListenGroup(g, "tcp", "127.0.0.1:0", nil)
	assert.ErrorIs(t, err, unix.EINVAL)
	_, err = stream.ListenGroup(g, "tcp", "127.0.0.1:0", onConn, stream.WithBalance(stream.Balance(7)))
	assert.ErrorIs(t, err, unix.EINVAL)
	assert.ErrorContains(t, err, "Balance(7)")
	_, err = stream.ListenGroup(g, "udp", "127.0.0.1:0", onConn)
	assert.Error(t, err)
	_, err = stream.ListenGroup(g, "unix", filepath.Join(t.TempDir(), "x.sock"), onConn)
	assert.ErrorIs(t, err, unix.EINVAL, "ReusePort on a Unix path")
	_, err = stream.ListenGroup(g, "tcp", "127.0.0.1:0", onConn, stream.WithBacklog(-1))
	assert.ErrorIs(t, err, unix.EINVAL)

	// An address in use: the loops' parts made so far are closed again.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer busy.Close()
	_, err = stream.ListenGroup(g, "tcp", busy.Addr().String(), onConn, stream.WithBalance(stream.RoundRobin))
	assert.ErrorIs(t, err, unix.EADDRINUSE)
	assert.Equal(t, 1, countPrefix(err.Error(), "stream:"), "%v", err)
	_, err = stream.ListenGroup(g, "tcp", busy.Addr().String(), onConn)
	assert.ErrorIs(t, err, unix.EADDRINUSE)
	for i := range g.Len() {
		alive, err := g.Loop(i).RunNoWait()
		require.NoError(t, err)
		assert.False(t, alive, "loop %d kept alive by a failed ListenGroup", i)
	}
	require.NoError(t, g.Close())
	_, err = stream.ListenGroup(g, "tcp", "127.0.0.1:0", onConn, stream.WithBalance(stream.RoundRobin))
	assert.ErrorIs(t, err, os.ErrClosed)
}

func countPrefix(s, sub string) int {
	n := 0
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			n++
		}
	}
	return n
}

// Close from another goroutine while the group is not running: each loop
// closes its part when it is closed, and the callback runs once.
func TestListenGroupCloseNotRunning(t *testing.T) {
	for _, b := range []stream.Balance{stream.ReusePort, stream.LeastConnections} {
		t.Run(b.String(), func(t *testing.T) {
			before := leakcheck.Take()
			g, err := group.New(3)
			require.NoError(t, err)
			gl, err := stream.ListenGroup(g, "tcp", "127.0.0.1:0", func(*stream.Conn) {}, stream.WithBalance(b))
			require.NoError(t, err)
			var calls atomic.Int32
			done := make(chan struct{})
			go func() {
				gl.Close(func() { calls.Add(1) })
				close(done)
			}()
			<-done
			assert.Zero(t, calls.Load(), "callback ran before the loops closed their parts")
			require.NoError(t, g.Close())
			assert.EqualValues(t, 1, calls.Load())
			before.Check(t)
		})
	}
}

// Stats may be read from any goroutine while the loops accept.
func TestListenGroupStatsWhileRunning(t *testing.T) {
	s := newGroupServer(t, 2, "tcp", "127.0.0.1:0", stream.WithBalance(stream.LeastConnections))
	stop := make(chan struct{})
	reads := make(chan uint64)
	go func() {
		var last uint64
		for {
			select {
			case <-stop:
				reads <- last
				return
			default:
				st := s.gl.Stats()
				if st.Accepted < last {
					t.Errorf("Accepted went back from %d to %d", last, st.Accepted)
				}
				last = st.Accepted
				time.Sleep(100 * time.Microsecond) // the machine is shared
			}
		}
	}()
	conns, _ := s.dial("tcp", 0, 50)
	defer closeAll(conns)
	close(stop)
	assert.LessOrEqual(t, <-reads, uint64(50))
	assert.Equal(t, stream.ListenerStats{Accepted: 50}, s.gl.Stats())
}

// A socket handed to a loop that has closed is closed and counted as an
// error; the other loops go on serving.
func TestListenGroupHandoffToClosedLoop(t *testing.T) {
	before := leakcheck.Take()
	g, err := group.New(2)
	require.NoError(t, err)
	served := make(chan int, 4)
	gl, err := stream.ListenGroup(g, "tcp", "127.0.0.1:0", func(c *stream.Conn) {
		if c.Loop() == g.Loop(0) {
			served <- 0
		} else {
			served <- 1
		}
		c.Close(nil)
	}, stream.WithBalance(stream.RoundRobin))
	require.NoError(t, err)
	require.NoError(t, g.Loop(1).Close())
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Loop(0).Run(ctx) }()

	for range 2 { // the first goes to loop 0, the second to loop 1
		c, err := net.Dial("tcp", gl.Addr().String())
		require.NoError(t, err)
		require.NoError(t, c.SetDeadline(time.Now().Add(guard)))
		_, err = c.Read(make([]byte, 1))
		assert.Error(t, err, "the server closes both")
		c.Close()
	}
	assert.Equal(t, 0, <-served)
	closed := make(chan struct{})
	gl.Close(func() { close(closed) })
	require.NoError(t, <-done) // loop 0 ran out of work
	<-closed
	assert.Empty(t, served)
	assert.Equal(t, stream.ListenerStats{Accepted: 1, Errors: 1}, gl.Stats())
	assert.ErrorIs(t, g.Close(), os.ErrClosed) // loop 1's second Close
	before.Check(t)
}

// While open, the group listener keeps every loop alive, connections or
// not; once closed, it keeps none.
func TestListenGroupKeepsEveryLoopAlive(t *testing.T) {
	for _, b := range []stream.Balance{stream.ReusePort, stream.RoundRobin, stream.LeastConnections} {
		t.Run(b.String(), func(t *testing.T) {
			s := newGroupServer(t, groupLoops, "tcp", "127.0.0.1:0", stream.WithBalance(b))
			alive := make(chan bool, groupLoops)
			for i := range groupLoops {
				// A posted task is off the queue while it runs: Alive then
				// counts only what else keeps the loop going.
				require.NoError(t, s.g.Post(i, func() { alive <- s.g.Loop(i).Alive() }))
			}
			for i := range groupLoops {
				select {
				case a := <-alive:
					assert.True(t, a, "a loop would end with the listener open")
				case <-time.After(guard): // a loop that ended runs no task
					t.Fatalf("%d of %d loops ran their task: the others ended with the listener open", i, groupLoops)
				}
			}
			s.gl.Close(nil)
			select {
			case err := <-s.done:
				require.NoError(t, err)
				s.done <- err
			case <-time.After(guard):
				t.Fatal("the group's Run went on after Close with nothing open")
			}
		})
	}
}
