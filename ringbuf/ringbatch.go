//go:build linux

package ringbuf

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// RingBatch is one drain of a RingReader taken record by record in the
// caller's own loop, rather than through a callback:
//
//	b, err := r.Begin()
//	if err != nil {
//		return err
//	}
//	defer func() { _, err = b.End() }()
//	for b.Next() {
//		handle(b.Record()) // a direct call, which the compiler may inline
//	}
//
// It exists for speed. Consume calls its callback through a func value for
// every record, which the compiler can neither inline nor call directly,
// and a caller that routes records further (by a category, say) pays a
// second indirect call on top. Next and Record are small enough for the
// compiler to inline, so a loop over them costs about what a hand-written
// drain of the ring costs, with every check Consume makes.
//
// A batch delivers exactly what Consume would: the records committed when
// Begin ran, in order, up to the first record a producer has reserved but
// not yet committed; discarded records are skipped and counted; a corrupt
// ring ends the batch, is resynchronised, and is reported by End. The
// record Record returns points into the ring, is read-only (see Consume),
// and is valid until the next call of Next or End. It counts as consumed
// once Next has moved to it, so a handler that panics does not see it
// again; the consumer position is stored once, by End.
//
// Concurrency: a batch belongs to the goroutine that called Begin. From
// Begin to End the reader is claimed as during a Consume: Consume, Poll or
// a second Begin meanwhile (from a handler, or another goroutine) is an
// error wrapping unix.EBUSY. Close may be called at any time, from any
// goroutine or from inside the loop: Next then reports no more records
// (the record it moved to last stays valid until End), and End releases
// the reader and returns an error wrapping os.ErrClosed. End must be
// called once for every successful Begin, deferred if the loop can panic:
// until it is, the reader stays claimed, the ring's space is not handed
// back to the producers and Close cannot release the mappings. The batch
// is the reader's, reused by its next Begin: do not keep it past End.
// Begin, Next, Record and End allocate nothing.
type RingBatch struct {
	// Next's state, first, for its loads.
	state     *atomic.Uint32 // the reader's guard word, for its closed bit
	data      []byte
	mask      uint64
	end       uint64 // producer_pos when the batch began
	left      uint64 // bytes from the next record to end
	hdr       uint32 // header Next read last: the record's, when it reported true
	records   uint64
	discarded uint64

	ring   *bpfRing
	c      *ringCounters
	g      *guard
	start  uint64 // consumer_pos when the batch began
	resync error  // positions found corrupt by begin
	reader *RingReader
	open   bool
}

// Begin claims the reader and starts a batch of the records committed now.
// It fails only as Consume does before reading (the reader is closed, or a
// Consume, Poll or batch of it is running: os.ErrClosed, unix.EBUSY); what
// goes wrong with the ring itself is End's to report. See RingBatch.
func (r *RingReader) Begin() (*RingBatch, error) {
	if err := r.g.enter("begin"); err != nil {
		return nil, err
	}
	b := &r.batch
	r.ring.begin(b, &r.stats, &r.g)
	b.reader = r
	return b, nil
}

var errNoBatch = fmt.Errorf("ringbuf: end: no batch begun: %w", unix.EINVAL)

// End ends the batch: it stores the consumer position past every record
// Next returned or skipped, adds them to Stats and releases the reader (or,
// if Close was called meanwhile, releases its mappings and descriptors).
// Records after the last one Next returned, when the loop stopped early,
// stay for the next batch. End returns the number of records Next
// returned, and an error wrapping ErrCorrupt when the ring was found
// corrupt (and resynchronised), one wrapping os.ErrClosed when the reader
// was closed during the batch. A second End, or an End without a Begin, is
// an error wrapping unix.EINVAL.
func (b *RingBatch) End() (int, error) {
	if !b.open {
		return 0, errNoBatch
	}
	r := b.reader
	b.reader = nil
	n, err := b.finish()
	if r != nil {
		err = r.leave(err)
	}
	return n, err
}

// Next moves to the batch's next record, skipping discarded ones, and
// reports whether there is one; Record returns it. It reports false once
// the batch is over: every record committed at Begin has been returned,
// the next is reserved but not committed yet, the ring was found corrupt
// (End says so), or the reader was closed.
//
// Next and Record have no call in them, so the compiler inlines them into
// the caller's loop (TestRingBatchInlined checks that it still does).
func (b *RingBatch) Next() bool {
	for b.left != 0 && b.state.Load()&guardClosed == 0 {
		// The position is a multiple of 8 (begin checked), so the header
		// word is in the first half of the mapping and 4-byte aligned.
		b.hdr = atomic.LoadUint32((*uint32)(unsafe.Pointer(&b.data[(b.end-b.left)&b.mask])))
		// The BUSY bit stays in the size: a reserved record then takes
		// more than any ring holds (newBPFRing caps the size at 1<<31),
		// so one comparison stops at an uncommitted record and at a
		// corrupt one alike; finish tells them apart.
		total := (uint64(b.hdr&^ringDiscardBit) + ringHeaderSize + 7) &^ 7
		if total > b.left {
			break
		}
		b.left -= total
		if b.hdr&ringDiscardBit != 0 {
			b.discarded++
			continue
		}
		b.records++
		return true
	}
	return false
}

// Record returns the record Next moved to. It points into the ring and is
// valid until the next call of Next or End; do not modify it. It is
// meaningful only after a Next that reported true; otherwise (before the
// first Next, after one that reported false, after End) it returns some
// bytes of the ring or none, and never panics.
func (b *RingBatch) Record() []byte {
	// Next left b.left just past the record, which took n+8 bytes padded
	// to 8. Its n+8 <= size (it fitted in what was reserved) and its
	// offset < size, so it ends within the double mapping; the min only
	// matters after a Next that reported false, whose header need not
	// fit.
	n := min(uint64(b.hdr&^ringDiscardBit), b.mask+1-ringHeaderSize)
	off := (b.end - b.left - (n+ringHeaderSize+7)&^7) & b.mask
	recEnd := off + ringHeaderSize + n
	return b.data[off+ringHeaderSize : recEnd : recEnd]
}

// begin starts b on the committed records between consumer_pos and the
// producer_pos read now. Positions that cannot be trusted leave the batch
// empty and resynchronised, for finish to report.
func (r *bpfRing) begin(b *RingBatch, c *ringCounters, g *guard) {
	cons := atomic.LoadUint64(r.cons)
	prod := loadAcquire(r.prod)
	*b = RingBatch{state: &g.state, data: r.data, mask: r.mask, end: prod, left: prod - cons, ring: r, c: c, g: g, start: cons, open: true}
	// As for perf rings, prod-cons modulo 2^64 is what was reserved; a
	// producer behind the consumer shows up as more than the ring holds.
	if size := r.mask + 1; prod-cons > size || cons%8 != 0 {
		b.left = 0
		b.resync = corruptf("ring buffer consumer %d, producer %d, size %d", cons, prod, size)
	}
}

// finish stores the consumer position once for the whole batch and counts
// what it delivered and skipped. It must run even when a handler panics,
// so that the records handed out are not delivered again.
func (b *RingBatch) finish() (int, error) {
	b.open = false
	err := b.resync
	if b.left != 0 && !b.g.closed() {
		// Next stopped before the end (or its caller did): at a record
		// reserved but not committed, which stays for the next batch, or
		// at one larger than what was reserved from it on, which means
		// the ring cannot be trusted past it. Read afresh, so that a
		// record committed since does not count as corrupt.
		off := (b.end - b.left) & b.mask
		hdr := atomic.LoadUint32(u32At(b.data, off))
		if n, total := ringRecordSize(hdr); hdr&ringBusyBit == 0 && total > b.left {
			err = corruptf("ring buffer record of %d bytes exceeds the %d bytes reserved", n, b.left)
			b.left = 0
		}
	}
	if pos := b.end - b.left; pos != b.start {
		storeRelease(b.ring.cons, pos)
	}
	b.left, b.hdr = 0, 0 // Next and Record after End find nothing
	if err != nil {
		b.c.resyncs.Add(1)
	}
	b.c.records.Add(b.records)
	b.c.discarded.Add(b.discarded)
	return int(b.records), err
}
