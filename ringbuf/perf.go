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

// DefaultPagesPerCPU is the size, in data pages, of each per-CPU perf ring
// when PerfOptions.PagesPerCPU is 0: 32 KiB with 4 KiB pages.
const DefaultPagesPerCPU = 8

// maxPerfRing bounds a perf ring's data area, so that its size fits an int
// on every platform; the kernel's own limit (set by its page allocator and
// the locked-memory limit) is usually lower.
const maxPerfRing = 1 << 30

// Handler receives what a PerfReader drains. Either field may be nil, in
// which case those records are dropped (they are still counted in Stats).
type Handler struct {
	// Sample receives the raw data of one record a BPF program wrote with
	// bpf_perf_event_output on cpu: exactly the length the kernel put in the
	// record's size field, which includes the padding the kernel adds to
	// keep records 8-byte aligned. The kernel skips the padding without
	// writing it: once the ring has wrapped, the bytes past the program's
	// own length are whatever the ring held there before, parts of older
	// records. A program whose consumer needs the exact length must carry
	// it in the record. data points into the ring (or into the reader's
	// scratch buffer for a record that wraps the ring's end) and is valid
	// only until Sample returns; copy what must outlive the call. Sample
	// must not modify data: a write lands in the ring the kernel shares
	// with the reader.
	Sample func(cpu int, data []byte)
	// SampleAt, when set, is called instead of Sample with the time the
	// kernel stamped the record with: nanoseconds of CLOCK_MONOTONIC for a
	// reader opened with PerfOptions.Timestamps, 0 otherwise. data is as for
	// Sample.
	SampleAt func(cpu int, time uint64, data []byte)
	// Lost receives the number of records the kernel dropped on cpu because
	// the ring was full, as it reported in a PERF_RECORD_LOST record.
	Lost func(cpu int, count uint64)
}

// PerfOptions configures NewPerfReader. The zero value is usable.
type PerfOptions struct {
	// PagesPerCPU is the number of data pages in each per-CPU ring, a power
	// of two; 0 means DefaultPagesPerCPU. One metadata page is mapped in
	// front of them. A ring holds at most 1 GiB of data.
	PagesPerCPU int
	// WakeupEvents makes the kernel wake the reader once every WakeupEvents
	// records instead of after each one (the default, 1). Mutually exclusive
	// with Watermark.
	WakeupEvents int
	// Watermark, when non-zero, makes the kernel wake the reader by bytes
	// instead of records: when a record takes the bytes written to a ring
	// since its last wakeup point past Watermark (record headers included),
	// the kernel wakes the reader and moves the wakeup point on by
	// Watermark bytes. The count is of bytes written, not of bytes pending:
	// Consume does not reset it. It must be smaller than the ring
	// (PagesPerCPU pages). Mutually exclusive with WakeupEvents.
	Watermark int
	// CPUs lists the CPUs to open rings on; nil means every online CPU.
	// Online CPUs that answer ENODEV are skipped; an explicit CPU that fails
	// is an error.
	CPUs []int
	// Timestamps opens the events with PERF_SAMPLE_TIME on CLOCK_MONOTONIC,
	// so that every sample carries the time the kernel wrote it, delivered
	// to Handler.SampleAt and by Peek (see timestamp.go).
	Timestamps bool
}

// PerfStats counts what a PerfReader has drained since it was created.
type PerfStats struct {
	Samples uint64 // PERF_RECORD_SAMPLE records delivered to Handler.Sample (or dropped for a nil Sample)
	Lost    uint64 // records the kernel reported lost, summed over PERF_RECORD_LOST counts
	Skipped uint64 // records of other types, skipped by their header size
	Resyncs uint64 // times a ring was found corrupt and its contents dropped
}

// perfCounters backs PerfStats; Consume adds to it once per batch.
type perfCounters struct {
	samples, lost, skipped, resyncs atomic.Uint64
}

func (c *perfCounters) load() PerfStats {
	return PerfStats{
		Samples: c.samples.Load(),
		Lost:    c.lost.Load(),
		Skipped: c.skipped.Load(),
		Resyncs: c.resyncs.Load(),
	}
}

// PerfReader reads the per-CPU perf event rings behind a
// BPF_MAP_TYPE_PERF_EVENT_ARRAY. Consume, Poll and Pending must not run
// concurrently with each other (call them from one goroutine, normally the
// loop's); Fd, CPUs, Stats and Close may be called from any goroutine. A
// reader runs no goroutine of its own: the kernel's wakeup reaches whoever
// waits on Fd directly.
type PerfReader struct {
	// owned: mapFD is not a duplicate but a map file of the reader's own,
	// and the kernel removes the entries inserted through it when it is
	// closed (see useOwnMapFile).
	owned  bool
	g      guard
	mapFD  int            // our duplicate of the caller's map descriptor
	ep     *poller.Poller // Fd: the perf events (edge-triggered) and wake
	wake   *eventfd.FD    // written by Close, and after a handler panic (kicked)
	kicked bool           // wake was written to bring a loop back; Consume resets it
	ps     peekSession    // Begin/End (peek.go)
	events [8]poller.Event
	rings  []*perfRing
	fds    []int    // perf event descriptors, parallel to rings
	mmaps  [][]byte // whole mappings, parallel to rings
	keys   []uint32 // map keys we stored a descriptor at
	cpus   []int    // CPU of each ring; never changes after NewPerfReader
	stats  perfCounters
	timed  bool // events opened with PERF_SAMPLE_TIME
}

// NewPerfReader opens a PERF_COUNT_SW_BPF_OUTPUT event on each selected CPU,
// maps a ring of 1+PagesPerCPU pages for it and stores its descriptor in the
// BPF_MAP_TYPE_PERF_EVENT_ARRAY mapFD at key = CPU, which is where
// bpf_perf_event_output(ctx, &map, BPF_F_CURRENT_CPU, ...) looks for it.
// The reader keeps its own duplicate of mapFD and checks the map behind that
// duplicate. A map of another type, or a descriptor that is not a BPF map,
// is an error wrapping unix.EINVAL, as are invalid options; a descriptor
// that is not open, or a number outside 0..math.MaxInt32 (which the kernel
// would read as another descriptor's), wraps unix.EBADF; a CPU the array has
// no slot for wraps unix.E2BIG and names the CPU and the array's size.
//
// The descriptors are stored through a map file of the reader's own, opened
// by the map's id, so the kernel removes exactly the reader's entries when
// Close releases that file: a reader created later on the same array (a
// reload, a restart hand-over) that has taken the same keys keeps them when
// the older reader is closed. Opening a map by id needs CAP_SYS_ADMIN.
// Without it, and for a map created with BPF_F_PRESERVE_ELEMS (whose entries
// outlive the file that stored them), the reader stores through its
// duplicate and Close deletes the keys it stored at, whoever holds them by
// then: close the old reader before creating its replacement.
func NewPerfReader(mapFD int, opts PerfOptions) (*PerfReader, error) {
	pages := opts.PagesPerCPU
	if pages == 0 {
		pages = DefaultPagesPerCPU
	}
	if pages < 0 || !isPow2(uint64(pages)) {
		return nil, fmt.Errorf("ringbuf: new perf reader: PagesPerCPU %d is not a power of two: %w", opts.PagesPerCPU, unix.EINVAL)
	}
	// Bounded before multiplying: 2^51 pages of 4 KiB would overflow int.
	if pages > maxPerfRing/os.Getpagesize() {
		return nil, fmt.Errorf("ringbuf: new perf reader: PagesPerCPU %d is too large: a ring holds at most %d bytes: %w", opts.PagesPerCPU, maxPerfRing, unix.EINVAL)
	}
	ringSize := pages * os.Getpagesize()
	if opts.WakeupEvents < 0 || opts.Watermark < 0 {
		return nil, fmt.Errorf("ringbuf: new perf reader: negative WakeupEvents or Watermark: %w", unix.EINVAL)
	}
	if opts.WakeupEvents != 0 && opts.Watermark != 0 {
		return nil, fmt.Errorf("ringbuf: new perf reader: WakeupEvents and Watermark are mutually exclusive: %w", unix.EINVAL)
	}
	if opts.Watermark >= ringSize {
		return nil, fmt.Errorf("ringbuf: new perf reader: Watermark %d is not smaller than the %d-byte ring: %w", opts.Watermark, ringSize, unix.EINVAL)
	}
	wakeup, watermark := uint32(1), false
	switch {
	case opts.Watermark > 0:
		wakeup, watermark = uint32(opts.Watermark), true
	case opts.WakeupEvents > 0:
		if opts.WakeupEvents > 1<<31-1 {
			return nil, fmt.Errorf("ringbuf: new perf reader: WakeupEvents %d too large: %w", opts.WakeupEvents, unix.EINVAL)
		}
		wakeup = uint32(opts.WakeupEvents)
	}

	cpus, explicit := opts.CPUs, opts.CPUs != nil
	if !explicit {
		var err error
		if cpus, err = onlineCPUs(); err != nil {
			return nil, fmt.Errorf("ringbuf: new perf reader: %w", err)
		}
	}
	if len(cpus) == 0 {
		return nil, fmt.Errorf("ringbuf: new perf reader: no CPUs to read: %w", unix.EINVAL)
	}

	r := &PerfReader{timed: opts.Timestamps}
	var info bpfsys.MapInfo
	var err error
	if r.mapFD, info, err = openMap(mapFD, unix.BPF_MAP_TYPE_PERF_EVENT_ARRAY); err != nil {
		return nil, fmt.Errorf("ringbuf: new perf reader: %w", err)
	}
	r.useOwnMapFile(info)
	seen := make(map[int]bool, len(cpus))
	for _, cpu := range cpus {
		if cpu < 0 || seen[cpu] {
			r.release()
			return nil, fmt.Errorf("ringbuf: new perf reader: CPU %d negative or listed twice: %w", cpu, unix.EINVAL)
		}
		if uint64(cpu) >= uint64(info.MaxEntries) {
			r.release()
			return nil, fmt.Errorf("ringbuf: new perf reader: CPU %d has no slot in a perf event array of %d entries (keys 0 to %d): %w", cpu, info.MaxEntries, int64(info.MaxEntries)-1, unix.E2BIG)
		}
		seen[cpu] = true
	}
	if err := r.setupWakeup(); err != nil {
		r.release()
		return nil, fmt.Errorf("ringbuf: new perf reader: %w", err)
	}
	for _, cpu := range cpus {
		err := r.openCPU(cpu, pages, wakeup, watermark)
		if errors.Is(err, unix.ENODEV) && !explicit {
			continue // offline since we read the list, or never able to count
		}
		if err != nil {
			r.release()
			return nil, fmt.Errorf("ringbuf: new perf reader: CPU %d: %w", cpu, err)
		}
	}
	if len(r.rings) == 0 {
		r.release()
		return nil, fmt.Errorf("ringbuf: new perf reader: no CPU accepted a perf event: %w", unix.ENODEV)
	}
	return r, nil
}

// setupWakeup creates Fd's epoll instance and the eventfd inside it that
// Close (and a panicking handler) write to. The perf events join it as
// they are opened.
func (r *PerfReader) setupWakeup() error {
	var err error
	if r.wake, err = eventfd.New(0, eventfd.NonBlocking); err != nil {
		return err
	}
	if r.ep, err = poller.New(); err != nil {
		return err
	}
	return r.ep.Add(r.wake.Fd(), poller.Readable, 0)
}

// openEvent opens a CPU's perf event; tests replace it to make a CPU answer
// ENODEV, as one going offline does.
var openEvent = openBPFOutput

// openCPU sets up one CPU's event, ring, Fd registration and map slot.
// Whatever it acquired is recorded in r before the next step, so release
// undoes a partial setup.
func (r *PerfReader) openCPU(cpu, pages int, wakeup uint32, watermark bool) error {
	open := openEvent
	if r.timed {
		open = openTimedEvent
	}
	fd, err := open(cpu, wakeup, watermark)
	if err != nil {
		return err
	}
	pageSize := os.Getpagesize()
	mem, err := mmapShared(fd, 0, (1+pages)*pageSize, unix.PROT_READ|unix.PROT_WRITE)
	if err != nil {
		bpfsys.CloseFD(fd)
		return err
	}
	r.fds = append(r.fds, fd)
	r.mmaps = append(r.mmaps, mem)
	ring, err := newPerfRing(cpu, mem[:pageSize], mem[pageSize:])
	if err != nil {
		return err
	}
	ring.timed = r.timed
	r.rings = append(r.rings, ring)
	r.cpus = append(r.cpus, cpu)
	// Edge-triggered: a readiness check of a perf event consumes its
	// wakeup anyway (see Fd), and an edge-triggered item is not polled
	// again by every later epoll_wait of Poll.
	if err := r.ep.Add(fd, poller.Readable|poller.EdgeTriggered, uint64(len(r.rings))); err != nil {
		return err
	}
	if err := perfEnable(fd); err != nil {
		return err
	}
	if err := bpfsys.UpdateU32(r.mapFD, uint32(cpu), uint32(fd)); err != nil {
		return err
	}
	r.keys = append(r.keys, uint32(cpu))
	return nil
}

// Fd returns the descriptor to watch for input: an epoll instance over the
// reader's perf events. The kernel's wakeup of a perf event (after every
// record by default, or as PerfOptions.WakeupEvents or Watermark say, so
// records can sit in a ring while Fd is not readable) makes Fd readable and
// wakes whoever waits on it, or on an epoll instance that contains it, at
// any depth of nesting, directly: no goroutine or thread stands in between.
//
// A wakeup is a token, not a level: a perf event reports itself readable
// once per wakeup (perf_poll clears the flag it reports), and checking Fd's
// readiness checks the perf events inside it. So any readiness check of Fd,
// or of an epoll instance that contains it, consumes the wakeups it sees,
// whoever makes it. A loop.Loop watching Fd and run by Run is the only one
// to check, and its watcher sees every wakeup. A loop embedded in another
// poller (the host polls l.Fd() before each RunNoWait) has its wakeups
// seen first by the host's check: its watcher then may not fire, but the
// host does run the loop once per wakeup, so the loop must check for
// records on every iteration (a check hook that calls Consume when Pending
// reports records; both cost no system call when every ring is empty). The
// same holds after Fd is (re)added to an epoll instance, which checks it at
// once. Fd may also be readable with nothing left to drain, when a wakeup
// arrives for records a Consume already took. It becomes readable, and
// stays so, when Close interrupts a running call, and after a handler panic
// left records behind (until the next Consume). It returns -1 after Close.
func (r *PerfReader) Fd() int {
	if r.g.closed() {
		return -1
	}
	return r.ep.Fd()
}

// CPUs returns the CPUs the reader has a ring on, in ring order.
func (r *PerfReader) CPUs() []int {
	return append([]int(nil), r.cpus...)
}

// Pending reports whether any ring holds a record the reader has not
// consumed, from the rings' own positions: no system call, no allocation,
// and whether or not a wakeup was reported on Fd. Call it from the
// goroutine that calls Consume (a loop's check hook, say): from any other it
// is a snapshot that a running Consume makes stale. It returns false after
// Close.
func (r *PerfReader) Pending() bool {
	if r.g.enterShared() != nil {
		return false
	}
	pending := false
	for _, ring := range r.rings {
		if ring.pending() {
			pending = true
			break
		}
	}
	if r.g.exitShared() {
		// Close ran meanwhile and left the release to us; nobody is
		// waiting for its error.
		_ = r.release()
	}
	return pending
}

// Consume drains every ring without blocking: each ring's records published
// when Consume reaches it are delivered in order, and the ring's tail is
// advanced once for the whole batch. What to drain is read from the rings'
// positions, not from Fd, so Consume finds records whose wakeup someone else
// consumed, and a Consume that finds every ring empty makes no system call.
// It returns the number of samples delivered. A corrupt ring is
// resynchronised (its pending records dropped) and reported as an error
// wrapping ErrCorrupt after the other rings have been drained. Consume
// allocates nothing. Handlers must not modify the data they are given (see
// Handler).
//
// A panic in a handler ends the call and propagates to the caller: the
// record the handler was given counts as consumed, the records after it
// (on that ring and on the rings not reached yet) stay for the next Consume,
// Fd is left readable so that a loop comes back for them, and the reader
// remains usable.
func (r *PerfReader) Consume(h Handler) (n int, err error) {
	if err := r.g.enter("consume"); err != nil {
		return 0, err
	}
	// Deferred so that a panicking handler still ends the call: otherwise
	// the reader stays busy for good and Close can never release it.
	defer func() { err = r.leave(err) }()
	return r.consumeAll(&h)
}

// Poll drains as Consume does when records are pending; otherwise it waits
// up to timeout (forever if negative, not at all if zero) for the kernel to
// wake the reader and drains then. A wakeup that finds nothing to deliver
// (its records were consumed already, or it brought only lost-record
// reports) does not end the call: Poll waits again for the time left. So
// Poll returns 0 and no error only when the timeout has passed. A Close
// from another goroutine wakes a blocked Poll, which then returns an error
// wrapping os.ErrClosed.
func (r *PerfReader) Poll(timeout time.Duration, h Handler) (n int, err error) {
	if err := r.g.enter("poll"); err != nil {
		return 0, err
	}
	defer func() { err = r.leave(err) }() // see Consume
	t := newPollTimeout(timeout)
	for {
		if n, err = r.consumeAll(&h); n > 0 || err != nil || r.g.closed() {
			return n, err
		}
		if ok, err := t.wait(r.ep, r.events[:]); !ok || err != nil {
			return 0, err
		}
	}
}

func (r *PerfReader) consumeAll(h *Handler) (total int, first error) {
	if r.kicked {
		// A panic wrote wake to keep Fd readable; this call is the one
		// that was to come.
		r.kicked = false
		if _, err := r.wake.Read(); err != nil && !errors.Is(err, unix.EAGAIN) {
			return 0, fmt.Errorf("ringbuf: consume: %w", err)
		}
	}
	drained := false
	defer func() {
		if !drained {
			// A handler panicked and may have left records behind:
			// make Fd readable, so that a loop comes back for them.
			r.kicked = r.wake.Write(1) == nil
		}
	}()
	for _, ring := range r.rings {
		n, err := ring.consume(h, &r.stats, &r.g)
		total += n
		if err != nil && first == nil {
			first = onCPU(err, ring.cpu)
		}
	}
	drained = true
	return total, first
}

// leave ends a Consume or Poll, releasing the reader if Close came in
// meanwhile.
func (r *PerfReader) leave(err error) error { return r.g.leave(err, r) }

// Stats returns the reader's counters. It may be called from any goroutine,
// also after Close.
func (r *PerfReader) Stats() PerfStats {
	return r.stats.load()
}

// Close removes the descriptors the reader stored in the map, unmaps its
// rings and closes every descriptor it opened. If a Consume or Poll is running on another goroutine (or Close is
// called from a handler), Close wakes it, and whichever of the two finishes
// last releases everything. A second Close returns an error wrapping
// os.ErrClosed.
func (r *PerfReader) Close() error { return r.g.closeReader(r.wake, r) }

// release undoes NewPerfReader: map slots first, so the BPF program stops
// writing into rings that are about to go away.
func (r *PerfReader) release() error {
	errs := r.removeEntries()
	r.keys = nil
	for _, mem := range r.mmaps {
		errs = append(errs, munmap(mem))
	}
	r.mmaps, r.rings = nil, nil
	for _, fd := range r.fds {
		errs = append(errs, bpfsys.CloseFD(fd))
	}
	r.fds = nil
	if r.ep != nil {
		errs = append(errs, r.ep.Close())
	}
	if r.wake != nil {
		errs = append(errs, r.wake.Close())
	}
	errs = append(errs, bpfsys.CloseFD(r.mapFD))
	return errors.Join(errs...)
}

// perfRing is one per-CPU perf ring: the positions in its metadata page and
// its data area. The same type reads a ring the kernel mapped and a ring a
// test built in ordinary memory.
type perfRing struct {
	cpu     int
	head    *uint64 // data_head: written by the kernel
	tail    *uint64 // data_tail: written by us, read by the kernel
	data    []byte
	mask    uint64
	scratch []byte // reassembles a record that wraps the end of data
	timed   bool   // samples carry a PERF_SAMPLE_TIME word before the raw data

	// Peek's record, for Advance, and the cursor (peek.go). held is the
	// peeked sample itself, so that ConsumeUntil delivers it without
	// reading it again.
	peeked             bool
	peekTail, peekNext uint64
	cur, seen, pub     uint64
	held               PerfSample

	// PeekRun's window (peekrun.go): the position after each of its
	// samples, how many of them AdvanceRun consumed, and the cursor that
	// leaves; a cursor anywhere else means another call read the ring.
	runEnds []uint64
	runDone int
	runAt   uint64
}

// newPerfRing checks the geometry of a ring whose metadata page is meta and
// whose data area is data, and prepares to read it.
func newPerfRing(cpu int, meta, data []byte) (*perfRing, error) {
	if len(meta) < perfMetaMin || !aligned8(meta) {
		return nil, fmt.Errorf("perf metadata page of %d bytes: %w", len(meta), unix.EINVAL)
	}
	size := uint64(len(data))
	if !isPow2(size) || size < perfHeaderSize || !aligned8(data) {
		return nil, fmt.Errorf("perf data area of %d bytes: %w", size, unix.EINVAL)
	}
	// Kernels since 4.1 describe the data area; one that disagrees with the
	// mapping we made would have us read the wrong memory.
	if off, sz := *u64At(meta, perfOffDataOffset), *u64At(meta, perfOffDataSize); sz != 0 && (off != uint64(len(meta)) || sz != size) {
		return nil, fmt.Errorf("kernel reports perf data at %d+%d, mapped at %d+%d: %w", off, sz, len(meta), size, unix.EINVAL)
	}
	return &perfRing{
		cpu:     cpu,
		head:    u64At(meta, perfOffDataHead),
		tail:    u64At(meta, perfOffDataTail),
		data:    data,
		mask:    size - 1,
		scratch: make([]byte, min(size, perfMaxRecord+1)),
	}, nil
}

// pending reports whether records were published past the tail.
func (r *perfRing) pending() bool {
	return loadAcquire(r.head) != atomic.LoadUint64(r.tail)
}

// consume delivers the records published between tail and head and then
// stores the new tail once. It returns the number of samples delivered.
func (r *perfRing) consume(h *Handler, c *perfCounters, g *guard) (int, error) {
	head := loadAcquire(r.head)
	tail := atomic.LoadUint64(r.tail)
	if head == tail {
		return 0, nil
	}
	// Positions only grow, so head-tail (modulo 2^64, like the kernel's
	// own arithmetic) is what was published; a head behind the tail shows
	// up as more than the ring holds.
	size := uint64(len(r.data))
	if avail := head - tail; avail > size || avail%8 != 0 || tail%8 != 0 {
		err := corruptf("perf ring head %d, tail %d, size %d", head, tail, size)
		return 0, r.resync(head, c, err)
	}

	var samples, lost, skipped uint64
	defer func() {
		// Deferred so a panicking handler still consumes what it was given:
		// a redelivered batch would hit the same panic again.
		storeRelease(r.tail, tail)
		c.samples.Add(samples)
		c.lost.Add(lost)
		c.skipped.Add(skipped)
	}()
	for tail != head && !g.closed() {
		// tail and size are multiples of 8, so a header never wraps.
		off := tail & r.mask
		// The checks on the way to a sample are inlined; what an error
		// says is worked out off this path.
		hdr := readPerfHeader(r.data[off : off+perfHeaderSize])
		if avail := head - tail; !perfRecordOK(hdr, avail) {
			tail = head
			return int(samples), r.countResync(c, checkPerfRecord(hdr, avail))
		}
		rec := r.record(off, hdr.size)
		tail += hdr.size

		switch hdr.typ {
		case perfRecordSample:
			at, raw, ok := r.sample(rec)
			if !ok {
				tail = head
				return int(samples), r.countResync(c, r.sampleError(rec))
			}
			samples++
			if h.SampleAt != nil {
				h.SampleAt(r.cpu, at, raw)
			} else if h.Sample != nil {
				h.Sample(r.cpu, raw)
			}
		case perfRecordLost:
			n, err := lostCount(rec)
			if err != nil {
				tail = head
				return int(samples), r.countResync(c, err)
			}
			lost += n
			if h.Lost != nil {
				h.Lost(r.cpu, n)
			}
		default:
			skipped++
		}
	}
	return int(samples), nil
}

// record returns the size bytes of the record at off, in place when they are
// contiguous, else reassembled in the scratch buffer (the perf data area is
// mapped once, so a record can straddle its end). size is at most the
// ring's size and perfMaxRecord.
func (r *perfRing) record(off, size uint64) []byte {
	if end := off + size; end <= uint64(len(r.data)) {
		return r.data[off:end:end]
	}
	n := copy(r.scratch, r.data[off:])
	copy(r.scratch[n:size], r.data)
	return r.scratch[:size:size]
}

// resync drops everything published by moving the tail to head.
func (r *perfRing) resync(head uint64, c *perfCounters, err error) error {
	storeRelease(r.tail, head)
	return r.countResync(c, err)
}

func (r *perfRing) countResync(c *perfCounters, err error) error {
	c.resyncs.Add(1)
	return err
}
