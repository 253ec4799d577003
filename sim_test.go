package eventpipe

import (
	"encoding/binary"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// The simulated source needs no privileges: records are delivered on a
// later loop iteration (never inside Emit), a full ring refuses with EAGAIN
// and later accepts again (the ring wraps), Lose reaches OnLost, Corrupt
// reaches OnError with ErrCorrupt, bad categories with their sentinels.
func TestSimSource(t *testing.T) {
	l := newLoop(t)
	p := newPipe(t, l, Options{})
	var errs []error
	p.OnError(func(err error) { errs = append(errs, err) })
	var lost uint64
	p.OnLost(func(cpu int, n uint64) { require.Equal(t, 1, cpu); lost += n })
	var got []uint32
	cat := p.Register(func(ev Event) {
		require.Equal(t, 1, ev.CPU)
		require.Zero(t, ev.Time)
		got = append(got, binary.LittleEndian.Uint32(ev.Payload))
	})
	sim := p.AttachSim(2)

	payload := make([]byte, 100)
	sent := uint32(0)
	for round := 0; round < 5; round++ {
		for {
			binary.LittleEndian.PutUint32(payload, sent)
			err := sim.Emit(1, cat, payload)
			if err != nil {
				require.ErrorIs(t, err, unix.EAGAIN)
				break
			}
			sent++
		}
		before := len(got)
		require.Less(t, before, int(sent), "nothing is delivered inside Emit")
		runUntil(t, l, 5*time.Second, func() bool { return len(got) == int(sent) })
	}
	for i, v := range got {
		require.Equal(t, uint32(i), v)
	}
	require.Greater(t, sent, uint32(5*ringbuf.DefaultPagesPerCPU*4096/120-10))

	require.NoError(t, sim.Lose(1, 42))
	require.NoError(t, sim.Emit(1, 9, nil)) // unknown category
	require.NoError(t, sim.Corrupt(1))      // the ring is dropped
	runUntil(t, l, 5*time.Second, func() bool { return len(errs) == 2 })
	require.Equal(t, uint64(42), lost)
	require.ErrorIs(t, errs[0], ringbuf.ErrUnknownCategory)
	require.ErrorIs(t, errs[1], ringbuf.ErrCorrupt)
	require.Equal(t, Stats{Delivered: uint64(sent), Lost: 42, Errors: 2}, p.Stats())

	require.ErrorIs(t, sim.Emit(2, 0, nil), unix.EINVAL)
	require.ErrorIs(t, sim.Emit(-1, 0, nil), unix.EINVAL)
	closePipe(t, l, p)
	require.ErrorIs(t, sim.Emit(0, 0, nil), os.ErrClosed)
	require.ErrorIs(t, sim.Lose(0, 1), os.ErrClosed)
}
