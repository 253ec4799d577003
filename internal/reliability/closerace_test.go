package reliability

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/eventpipe/eventpipe/loop"
)

// Close racing with Post and Async.Send from many goroutines, round after
// round: every Post that returned nil ran exactly once and in its poster's
// order (whether the running loop or Close ran it); every Post that failed
// failed with os.ErrClosed and never ran; once Close has returned, every
// Post and Send fails; Send never returns anything but nil or os.ErrClosed
// and the Async callback never runs more often than Sends succeeded. In half
// the rounds the loop is running when the race starts (it is stopped, then
// closed, while the posters go on); in the other half only Close drains.
func TestCloseRacingWithPostAndSend(t *testing.T) {
	const (
		rounds  = 40
		posters = 8
		senders = 4
	)
	checkLeaks(t)
	var totalAccepted, totalRefused, totalSends, totalSendRefused uint64
	for round := range rounds {
		running := round%2 == 0
		l, err := loop.New()
		require.NoError(t, err)

		var asyncRuns atomic.Uint64
		a, err := l.NewAsync(func() { asyncRuns.Add(1) })
		require.NoError(t, err)

		// ran[p] is appended to only by whoever runs tasks: the loop
		// goroutine (this one, in Run) and then Close (this one too).
		ran := make([][]int, posters)
		accepted := make([]int, posters)
		var closeReturned atomic.Bool
		var lateSuccess atomic.Int64 // Post or Send accepted after Close returned
		var wrongErr atomic.Pointer[error]
		var acceptedSoFar atomic.Int64
		var sendOK, sendRefused atomic.Uint64

		var wg sync.WaitGroup
		startLine := make(chan struct{})
		for p := range posters {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startLine
				for seq := 0; ; seq++ {
					after := closeReturned.Load()
					err := l.Post(func() { ran[p] = append(ran[p], seq) })
					if err == nil {
						if after {
							lateSuccess.Add(1)
						}
						accepted[p]++
						acceptedSoFar.Add(1)
						continue
					}
					if !errors.Is(err, os.ErrClosed) {
						wrongErr.CompareAndSwap(nil, &err)
					}
					// Refusal is final.
					if err := l.Post(func() {}); !errors.Is(err, os.ErrClosed) {
						e := fmt.Errorf("post after a refused post: %v", err)
						wrongErr.CompareAndSwap(nil, &e)
					}
					return
				}
			}()
		}
		for range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-startLine
				for {
					after := closeReturned.Load()
					err := a.Send()
					if err == nil {
						if after {
							lateSuccess.Add(1)
						}
						sendOK.Add(1)
						continue
					}
					if !errors.Is(err, os.ErrClosed) {
						wrongErr.CompareAndSwap(nil, &err)
					}
					sendRefused.Add(1)
					return
				}
			}()
		}
		if running {
			// Stop once the loop has run a share of the posts.
			chk := l.NewCheck(func() {
				if acceptedSoFar.Load() > 2000 {
					l.Stop()
				}
			})
			require.NoError(t, chk.Start())
			close(startLine)
			require.NoError(t, run(t, l))
		} else {
			close(startLine)
			for acceptedSoFar.Load() < 2000 {
				// Let the posters queue some work before Close.
				runtime.Gosched()
			}
		}
		require.NoError(t, closeLoop(t, l))
		closeReturned.Store(true)
		wg.Wait()

		if e := wrongErr.Load(); e != nil {
			t.Fatalf("round %d: %v", round, *e)
		}
		require.Zero(t, lateSuccess.Load(), "round %d: accepted after Close returned", round)
		for p := range posters {
			require.Len(t, ran[p], accepted[p], "round %d poster %d: accepted posts that ran", round, p)
			for i, seq := range ran[p] {
				if seq != i {
					t.Fatalf("round %d poster %d: task %d ran as number %d (lost, repeated or out of order)", round, p, seq, i)
				}
			}
			totalAccepted += uint64(accepted[p])
		}
		totalRefused += posters // each poster stops at its first refusal
		require.LessOrEqual(t, asyncRuns.Load(), sendOK.Load(), "round %d: more Async callbacks than accepted Sends", round)
		totalSends += sendOK.Load()
		totalSendRefused += sendRefused.Load()
	}
	t.Logf("figures: %d rounds, %d posters + %d senders racing Close: %d posts accepted (each ran exactly once, in order), %d refused with os.ErrClosed; %d sends accepted, %d refused",
		rounds, posters, senders, totalAccepted, totalRefused, totalSends, totalSendRefused)
}
