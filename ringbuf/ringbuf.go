//go:build linux

package ringbuf

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/eventfd"
	"github.com/eventpipe/eventpipe/internal/bpfsys"
	"github.com/eventpipe/eventpipe/poller"
)

// RingStats counts what a RingReader has drained since it was created.
type RingStats struct {
	Records   uint64 // records delivered
	Discarded uint64 // records the producer discarded, skipped and acknowledged
	Resyncs   uint64 // times the ring was found corrupt and its contents dropped
}

// ringCounters backs RingStats; Consume adds to it once per batch.
type ringCounters struct {
	records, discarded, resyncs atomic.Uint64
}

// RingReader reads a BPF_MAP_TYPE_RINGBUF map, the multi-producer ring BPF
// programs fill with bpf_ringbuf_output or bpf_ringbuf_reserve/submit.
// Consume and Poll must not run concurrently with each other; Fd, Size,
// Available, Stats and Close may be called from any goroutine.
//
// The kernel reports the ring readable while producers have reserved more
// than the reader consumed, committed or not. A record a producer has
// reserved but not yet committed (or discarded) therefore keeps Fd readable
// while Consume can deliver nothing past it: a level-triggered watcher, and
// a caller looping on Poll, spin until the producer commits. libbpf's
// ring_buffer__poll behaves the same. BPF programs hold a reservation for
// the length of one program run, so the spin is short unless a program
// that reserved was stopped mid-run (a sleepable program, say).
type RingReader struct {
	g      guard
	mapFD  int             // our duplicate of the caller's map descriptor
	ep     *poller.Poller  // Fd: the map, readable while it holds data, and wake
	wake   *eventfd.FD     // written by Close to interrupt a Poll
	events [2]poller.Event // for ep.Wait
	ring   *bpfRing
	cons   []byte // consumer page, read-write
	prod   []byte // producer page and the data area mapped twice, read-only
	size   int
	stats  ringCounters
	batch  RingBatch // Begin's, reused
}

// NewRingReader maps the BPF_MAP_TYPE_RINGBUF mapFD: the consumer page
// read-write, the producer page and the data read-only. The kernel maps the
// data area twice in a row, so a record that wraps the end of the ring is
// still contiguous and is delivered without a copy. The reader keeps its own
// duplicate of mapFD and checks the map behind that duplicate. A map of
// another type, or a descriptor that is not a BPF map, is an error wrapping
// unix.EINVAL; a descriptor that is not open, or a number outside
// 0..math.MaxInt32, wraps unix.EBADF; a ring buffer created with
// BPF_F_RB_OVERWRITE, whose producers overwrite unread records and whose
// consumer protocol differs, is an error wrapping unix.EOPNOTSUPP.
func NewRingReader(mapFD int) (*RingReader, error) {
	dup, info, err := openMap(mapFD, unix.BPF_MAP_TYPE_RINGBUF)
	if err != nil {
		return nil, fmt.Errorf("ringbuf: new ring reader: %w", err)
	}
	r := &RingReader{mapFD: dup, size: int(info.MaxEntries)}
	pageSize := os.Getpagesize()
	if err := checkRingFlags(info.MapFlags); err != nil {
		r.release()
		return nil, fmt.Errorf("ringbuf: new ring reader: %w", err)
	}
	if !isPow2(uint64(r.size)) || r.size%pageSize != 0 {
		r.release()
		return nil, fmt.Errorf("ringbuf: new ring reader: ring buffer of %d bytes is not a power-of-two multiple of the page size: %w", r.size, unix.EINVAL)
	}
	if err := r.setup(pageSize, r.size); err != nil {
		r.release()
		return nil, fmt.Errorf("ringbuf: new ring reader: %w", err)
	}
	return r, nil
}

func (r *RingReader) setup(pageSize, size int) error {
	var err error
	if r.cons, err = mmapShared(r.mapFD, 0, pageSize, unix.PROT_READ|unix.PROT_WRITE); err != nil {
		return err
	}
	if r.prod, err = mmapShared(r.mapFD, int64(pageSize), pageSize+2*size, unix.PROT_READ); err != nil {
		return err
	}
	if r.ring, err = newBPFRing(r.cons, r.prod[:pageSize], r.prod[pageSize:]); err != nil {
		return err
	}
	if r.wake, err = eventfd.New(0, eventfd.NonBlocking); err != nil {
		return err
	}
	if r.ep, err = poller.New(); err != nil {
		return err
	}
	if err = r.ep.Add(r.wake.Fd(), poller.Readable, 1); err != nil {
		return err
	}
	return r.ep.Add(r.mapFD, poller.Readable, 0)
}

// Fd returns the descriptor to watch for input (level-triggered): an epoll
// instance over the ring buffer map, readable while the ring holds anything
// the reader has not consumed, including a record reserved but not yet
// committed (see RingReader). Checking its readiness changes nothing. It
// returns -1 after Close.
func (r *RingReader) Fd() int {
	if r.g.closed() {
		return -1
	}
	return r.ep.Fd()
}

// Size returns the size of the ring's data area in bytes.
func (r *RingReader) Size() int { return r.size }

// Available returns the number of bytes the producers have reserved and the
// reader has not consumed yet, headers and padding included (a record of n
// bytes takes n+8 rounded up to a multiple of 8). It returns 0 after Close.
func (r *RingReader) Available() int {
	if err := r.g.enterShared(); err != nil {
		return 0
	}
	n := r.ring.available()
	if r.g.exitShared() {
		// Close ran meanwhile and left the release to us; nobody is
		// waiting for its error.
		_ = r.release()
	}
	return int(n)
}

// Consume delivers, in order, the records committed when it starts, stopping
// at the first record a producer has reserved but not yet committed (the
// ring stays readable, so the next Poll comes back for it; see RingReader).
// Discarded records are skipped and acknowledged. The consumer position is
// stored once for the whole batch. data points into the ring and is valid
// only until fn returns. fn must not modify data: the ring is mapped
// read-only, and a write faults with SIGSEGV, which Go cannot recover from.
// It returns the number of records delivered; a corrupt ring is
// resynchronised and reported with an error wrapping ErrCorrupt. A nil fn
// drops the records (they are still consumed and counted). Consume
// allocates nothing.
//
// A panic in fn ends the call and propagates to the caller: the record fn
// was given counts as consumed, the records after it stay for the next
// Consume, and the reader remains usable.
func (r *RingReader) Consume(fn func(data []byte)) (n int, err error) {
	if err := r.g.enter("consume"); err != nil {
		return 0, err
	}
	// Deferred so that a panicking callback still ends the call: otherwise
	// the reader stays busy for good and Close can never release it.
	defer func() { err = r.leave(err) }()
	return r.ring.consume(fn, &r.stats, &r.g)
}

// Pending reports whether the ring holds a record the reader has not
// consumed (committed, or reserved and not yet committed), from the ring's
// own positions: no system call, no allocation. Call it from the goroutine
// that calls Consume: from any other it is a snapshot that a running Consume
// makes stale. It returns false after Close.
func (r *RingReader) Pending() bool { return r.Available() > 0 }

// Poll drains as Consume does when records are committed; otherwise it
// waits up to timeout (forever if negative, not at all if zero) for the ring
// to hold data and drains then. A wakeup that delivers nothing (the ring
// held only discarded records) does not end the call: Poll waits again for
// the time left. So Poll returns 0 and no error when the timeout has
// passed, and otherwise only, without waiting, while the first record in
// the ring is reserved but not committed (see RingReader). A Close from
// another goroutine wakes a blocked Poll, which then returns an error
// wrapping os.ErrClosed.
func (r *RingReader) Poll(timeout time.Duration, fn func(data []byte)) (n int, err error) {
	if err := r.g.enter("poll"); err != nil {
		return 0, err
	}
	defer func() { err = r.leave(err) }() // see Consume
	t := newPollTimeout(timeout)
	for {
		n, err = r.ring.consume(fn, &r.stats, &r.g)
		if n > 0 || err != nil || r.g.closed() || r.ring.available() > 0 {
			// Records left after a drain that delivered none: the first
			// is reserved, and the ring stays readable until its commit.
			return n, err
		}
		if ok, err := t.wait(r.ep, r.events[:]); !ok || err != nil {
			return 0, err
		}
	}
}

func (r *RingReader) leave(err error) error { return r.g.leave(err, r) }

// Stats returns the reader's counters. It may be called from any goroutine,
// also after Close.
func (r *RingReader) Stats() RingStats {
	return RingStats{
		Records:   r.stats.records.Load(),
		Discarded: r.stats.discarded.Load(),
		Resyncs:   r.stats.resyncs.Load(),
	}
}

// Close unmaps the ring and closes every descriptor the reader opened. If a
// Consume or Poll is running on another goroutine (or Close is called from
// the callback), Close wakes it, and whichever of the two finishes last
// releases everything. A second Close returns an error wrapping
// os.ErrClosed.
func (r *RingReader) Close() error { return r.g.closeReader(r.wake, r) }

func (r *RingReader) release() error {
	errs := []error{munmap(r.prod), munmap(r.cons)}
	r.prod, r.cons = nil, nil
	if r.ep != nil {
		errs = append(errs, r.ep.Close())
	}
	if r.wake != nil {
		errs = append(errs, r.wake.Close())
	}
	errs = append(errs, bpfsys.CloseFD(r.mapFD))
	return errors.Join(errs...)
}

// bpfRing is the consumer's view of a BPF ring buffer: consumer_pos,
// producer_pos and the data area followed by its mirror. The same type reads
// a ring the kernel mapped and a ring a test built in ordinary memory.
type bpfRing struct {
	cons *uint64 // consumer_pos: written by us, read by producers
	prod *uint64 // producer_pos: written by producers
	data []byte  // 2*size bytes; data[size:] mirrors data[:size]
	mask uint64
}

// newBPFRing checks the geometry of a ring and prepares to read it. data is
// the double mapping, twice the ring's size.
func newBPFRing(consPage, prodPage, data []byte) (*bpfRing, error) {
	if len(consPage) < 8 || len(prodPage) < 8 || !aligned8(consPage) || !aligned8(prodPage) {
		return nil, fmt.Errorf("ring buffer position pages: %w", unix.EINVAL)
	}
	size := uint64(len(data) / 2)
	// The kernel's sizes are u32 powers of two, so at most 1<<31: Next
	// relies on a reserved record's BUSY bit making it larger than any
	// ring.
	if !isPow2(size) || size < ringHeaderSize || size > 1<<31 || uint64(len(data)) != 2*size || !aligned8(data) {
		return nil, fmt.Errorf("ring buffer data area of %d bytes: %w", len(data), unix.EINVAL)
	}
	return &bpfRing{
		cons: u64At(consPage, 0),
		prod: u64At(prodPage, 0),
		data: data,
		mask: size - 1,
	}, nil
}

// available is producer_pos - consumer_pos, or 0 when the positions are
// inconsistent (more than the ring holds, or the producer behind).
func (r *bpfRing) available() uint64 {
	cons := atomic.LoadUint64(r.cons)
	prod := loadAcquire(r.prod)
	if d := prod - cons; d <= r.mask+1 {
		return d
	}
	return 0
}

// consume delivers the committed records between consumer_pos and the
// producer_pos read at its start, then stores consumer_pos once: a batch
// with fn called on each record.
func (r *bpfRing) consume(fn func([]byte), c *ringCounters, g *guard) (n int, err error) {
	var b RingBatch
	r.begin(&b, c, g)
	// Deferred so a panicking callback still consumes what it was given:
	// a redelivered batch would hit the same panic again.
	defer func() { n, err = b.finish() }()
	if fn == nil {
		for b.Next() {
		}
		return
	}
	for b.Next() {
		fn(b.Record())
	}
	return
}
