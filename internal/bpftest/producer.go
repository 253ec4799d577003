package bpftest

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/internal/bpfsys"
)

// MaxRecordSize is the largest recordSize a Producer takes: the whole BPF
// stack, which the perf and ringbuf-output programs copy the record through.
const MaxRecordSize = 512

// Stats counts what the kernel did with a Producer's emits.
type Stats struct {
	// Written counts records the kernel put into the ring, including the
	// DISCARD records of NewRingDiscardProducer.
	Written uint64
	// Discarded counts, of Written, the records bpf_ringbuf_discard marked
	// with the DISCARD bit.
	Discarded uint64
	// Dropped counts emits the kernel refused because the ring was full. For
	// a perf event array the kernel also counted them as lost and reports
	// them in a PERF_RECORD_LOST once the ring has room again.
	Dropped uint64
}

// Program stages, as the program reports them in its result slot.
const (
	stageLoad      = 1 // bpf_skb_load_bytes failed
	stageOutput    = 2 // the output or reserve helper returned ret
	stageSubmitted = 3
	stageDiscarded = 4
)

// result is the program's report on its latest run, read back after each
// emit. runs proves that exactly one run happened per datagram.
type result struct {
	runs  uint64
	stage uint64
	ret   int64
}

// Producer is a socket-filter program attached with SO_ATTACH_BPF to the
// receiving end of an AF_UNIX SOCK_DGRAM socketpair. Each Emit sends one
// datagram; the filter runs synchronously inside that send, on the sending
// thread's CPU, and writes exactly one record of recordSize bytes — the
// datagram's first recordSize bytes — into the map. The filter then accepts
// the datagram and Emit drains it, so the socket never fills.
//
// A Producer is safe for concurrent use; emits are serialised.
type Producer struct {
	mu         sync.Mutex
	kind       string // helper named in errors
	dropErrno  unix.Errno
	recordSize int
	progFD     int
	resultFD   int // array map with one result, written by the program
	sendFD     int
	recvFD     int
	closed     bool
	runs       uint64
	stats      Stats
	// Kept in the struct so that the map lookup in Emit does not allocate.
	key     uint32
	res     result
	scratch [1]byte
}

// NewPerfProducer returns a Producer whose program calls
// bpf_perf_event_output(ctx, m, BPF_F_CURRENT_CPU, buf, recordSize). The
// record lands in the perf event stored at the key of the CPU the emitting
// thread runs on, as a PERF_RECORD_SAMPLE whose raw part is recordSize bytes
// followed by kernel padding. A full ring counts as Dropped, and so does an
// event whose ring is not mapped (the kernel answers ENOSPC to both); an
// empty slot makes Emit fail with ENOENT, an event opened for another CPU
// with EOPNOTSUPP.
func NewPerfProducer(m *Map, recordSize int) (*Producer, error) {
	return newProducer(m, unix.BPF_MAP_TYPE_PERF_EVENT_ARRAY, recordSize, "bpf_perf_event_output", unix.ENOSPC,
		func(a *asm, mapFD int) {
			loadRecord(a, recordSize)
			a.movReg(r1, r6)
			a.loadMapFD(r2, mapFD)
			a.mov32(r3, unix.BPF_F_CURRENT_CPU)
			a.movReg(r4, r10)
			a.add(r4, -stackBuf(recordSize))
			a.mov64(r5, int32(recordSize))
			a.call(fnPerfEventOutput)
			a.movReg(r7, r0)
			a.mov64(r8, stageOutput)
		})
}

// NewRingProducer returns a Producer whose program calls
// bpf_ringbuf_output(m, buf, recordSize, 0). A full ring counts as Dropped.
func NewRingProducer(m *Map, recordSize int) (*Producer, error) {
	return newProducer(m, unix.BPF_MAP_TYPE_RINGBUF, recordSize, "bpf_ringbuf_output", unix.EAGAIN,
		func(a *asm, mapFD int) {
			loadRecord(a, recordSize)
			a.loadMapFD(r1, mapFD)
			a.movReg(r2, r10)
			a.add(r2, -stackBuf(recordSize))
			a.mov64(r3, int32(recordSize))
			a.mov64(r4, 0)
			a.call(fnRingbufOutput)
			a.movReg(r7, r0)
			a.mov64(r8, stageOutput)
		})
}

// NewRingDiscardProducer returns a Producer whose program
// bpf_ringbuf_reserve()s recordSize bytes, fills them from the datagram, and
// bpf_ringbuf_discard()s the record when the datagram's first byte is odd,
// bpf_ringbuf_submit()s it otherwise: the kernel writes real DISCARD records
// that a reader must skip. A failed reservation (full ring) counts as
// Dropped.
func NewRingDiscardProducer(m *Map, recordSize int) (*Producer, error) {
	return newProducer(m, unix.BPF_MAP_TYPE_RINGBUF, recordSize, "bpf_ringbuf_reserve", unix.EAGAIN,
		func(a *asm, mapFD int) {
			a.loadMapFD(r1, mapFD)
			a.mov64(r2, int32(recordSize))
			a.mov64(r3, 0)
			a.call(fnRingbufReserve)
			a.jmpImm(unix.BPF_JNE, r0, 0, "reserved")
			// bpf_ringbuf_output reports a failed reservation as EAGAIN;
			// say the same here.
			a.mov64(r7, -int32(unix.EAGAIN))
			a.mov64(r8, stageOutput)
			a.ja("record")

			a.label("reserved")
			a.movReg(r9, r0)
			a.movReg(r1, r6)
			a.mov64(r2, 0)
			a.movReg(r3, r9)
			a.mov64(r4, int32(recordSize))
			a.call(fnSkbLoadBytes)
			a.movReg(r7, r0)
			a.mov64(r8, stageLoad)
			// A reservation must be released on every path, also when
			// the copy failed.
			a.jmpImm(unix.BPF_JNE, r7, 0, "discard")
			a.load(unix.BPF_B, r1, r9, 0)
			a.and(r1, 1)
			a.jmpImm(unix.BPF_JNE, r1, 0, "odd")
			a.movReg(r1, r9)
			a.mov64(r2, 0)
			a.call(fnRingbufSubmit)
			a.mov64(r8, stageSubmitted)
			a.ja("record")

			a.label("odd")
			a.mov64(r8, stageDiscarded)
			a.label("discard")
			a.movReg(r1, r9)
			a.mov64(r2, 0)
			a.call(fnRingbufDiscard)
		})
}

// stackBuf is how far below the frame pointer the record buffer starts:
// recordSize rounded up to 8 so that the buffer is 8-byte aligned.
func stackBuf(recordSize int) int32 { return int32((recordSize + 7) &^ 7) }

// loadRecord copies the datagram's first recordSize bytes onto the stack and
// skips to the result epilogue when that fails.
func loadRecord(a *asm, recordSize int) {
	a.movReg(r1, r6)
	a.mov64(r2, 0)
	a.movReg(r3, r10)
	a.add(r3, -stackBuf(recordSize))
	a.mov64(r4, int32(recordSize))
	a.call(fnSkbLoadBytes)
	a.movReg(r7, r0)
	a.mov64(r8, stageLoad)
	a.jmpImm(unix.BPF_JNE, r7, 0, "record")
}

// newProducer assembles prologue + body + epilogue. body runs with r6 = ctx
// and must leave the helper's return value in r7 and the stage in r8 before
// falling through (or jumping) to "record".
func newProducer(m *Map, mapType uint32, recordSize int, kind string, dropErrno unix.Errno, body func(a *asm, mapFD int)) (*Producer, error) {
	if m == nil {
		return nil, fmt.Errorf("bpftest: %s producer: nil map: %w", kind, unix.EINVAL)
	}
	if recordSize < 1 || recordSize > MaxRecordSize {
		return nil, fmt.Errorf("bpftest: %s producer: record size %d not in 1..%d: %w", kind, recordSize, MaxRecordSize, unix.EINVAL)
	}
	m.mu.Lock()
	mapFD, typ := m.fd, m.typ
	m.mu.Unlock()
	if mapFD < 0 {
		return nil, fmt.Errorf("bpftest: %s producer: map: %w", kind, os.ErrClosed)
	}
	if typ != mapType {
		return nil, fmt.Errorf("bpftest: %s producer: map type %d, want %d: %w", kind, typ, mapType, unix.EINVAL)
	}

	p := &Producer{kind: kind, dropErrno: dropErrno, recordSize: recordSize, progFD: -1, resultFD: -1, sendFD: -1, recvFD: -1}
	ok := false
	defer func() {
		if !ok {
			p.closeFDs()
		}
	}()

	var err error
	p.resultFD, err = mapCreate(unix.BPF_MAP_TYPE_ARRAY, 4, uint32(unsafe.Sizeof(result{})), 1, "bpftest_result")
	if err != nil {
		return nil, err
	}

	a := newAsm()
	a.movReg(r6, r1)
	body(a, mapFD)
	a.label("record")
	a.storeImm(unix.BPF_W, r10, -4, 0)
	a.loadMapFD(r1, p.resultFD)
	a.movReg(r2, r10)
	a.add(r2, -4)
	a.call(fnMapLookupElem)
	a.jmpImm(unix.BPF_JEQ, r0, 0, "accept")
	a.load(unix.BPF_DW, r1, r0, int16(unsafe.Offsetof(result{}.runs)))
	a.add(r1, 1)
	a.store(unix.BPF_DW, r0, int16(unsafe.Offsetof(result{}.runs)), r1)
	a.store(unix.BPF_DW, r0, int16(unsafe.Offsetof(result{}.stage)), r8)
	a.store(unix.BPF_DW, r0, int16(unsafe.Offsetof(result{}.ret)), r7)
	a.label("accept")
	// Accept the whole datagram: a socket filter returns how many bytes to
	// keep, and __sk_buff.len is the first field of the context.
	a.load(unix.BPF_W, r0, r6, 0)
	a.exit()
	insns, err := a.program()
	if err != nil {
		return nil, err
	}
	p.progFD, err = progLoad(unix.BPF_PROG_TYPE_SOCKET_FILTER, insns, license, "bpftest_emit")
	if err != nil {
		return nil, err
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bpftest: socketpair: %w", err)
	}
	p.sendFD, p.recvFD = fds[0], fds[1]
	// An AF_UNIX datagram is filtered by the receiving socket, inside the
	// sender's sendmsg.
	if err := unix.SetsockoptInt(p.recvFD, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, p.progFD); err != nil {
		return nil, fmt.Errorf("bpftest: SO_ATTACH_BPF: %w", err)
	}
	ok = true
	return p, nil
}

// RecordSize returns the size of each record the producer writes.
func (p *Producer) RecordSize() int { return p.recordSize }

// Emit writes payload as one datagram, so the kernel writes one record of
// the payload's first RecordSize() bytes. It returns nil also when the ring
// was full and the record was dropped (see Stats and TryEmit). An error
// means the payload is shorter than RecordSize(), the producer is closed, or
// the helper failed for another reason than a full ring (its errno is
// wrapped).
func (p *Producer) Emit(payload []byte) error {
	_, err := p.TryEmit(payload)
	return err
}

// TryEmit is Emit that also reports whether the kernel wrote the record:
// false with a nil error means the ring was full.
func (p *Producer) TryEmit(payload []byte) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false, fmt.Errorf("bpftest: emit: %w", os.ErrClosed)
	}
	if len(payload) < p.recordSize {
		return false, fmt.Errorf("bpftest: emit: payload of %d bytes is shorter than the record size %d: %w",
			len(payload), p.recordSize, unix.EINVAL)
	}
	if err := send(p.sendFD, payload); err != nil {
		return false, fmt.Errorf("bpftest: emit: send: %w", err)
	}
	// The filter ran and the datagram was queued before send returned, so
	// it is there to drain now; EAGAIN would mean the filter dropped it.
	n, err := recvTrunc(p.recvFD, p.scratch[:])
	if err != nil {
		return false, fmt.Errorf("bpftest: emit: drain: %w", err)
	}
	if n != len(payload) {
		return false, fmt.Errorf("bpftest: emit: filter kept %d of %d bytes", n, len(payload))
	}
	if err := errno(bpfsys.Lookup(p.resultFD, p.key, unsafe.Pointer(&p.res))); err != nil {
		return false, fmt.Errorf("bpftest: emit: read result: %w", err)
	}
	if p.res.runs != p.runs+1 {
		return false, fmt.Errorf("bpftest: emit: program ran %d times for one datagram", p.res.runs-p.runs)
	}
	p.runs = p.res.runs
	if p.res.ret == 0 {
		p.stats.Written++
		if p.res.stage == stageDiscarded {
			p.stats.Discarded++
		}
		return true, nil
	}
	errno := unix.Errno(-p.res.ret)
	if p.res.stage == stageOutput && errno == p.dropErrno {
		p.stats.Dropped++
		return false, nil
	}
	helper := p.kind
	if p.res.stage == stageLoad {
		helper = "bpf_skb_load_bytes"
	}
	return false, fmt.Errorf("bpftest: emit: %s: %w", helper, errno)
}

// Stats returns the producer's counts so far.
func (p *Producer) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// Close detaches and unloads the program and closes the sockets. A second
// Close returns an error wrapping os.ErrClosed.
func (p *Producer) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("bpftest: producer: %w", os.ErrClosed)
	}
	p.closed = true
	return p.closeFDs()
}

func (p *Producer) closeFDs() error {
	var errs []error
	for _, fd := range []*int{&p.sendFD, &p.recvFD, &p.progFD, &p.resultFD} {
		if *fd >= 0 {
			if err := unix.Close(*fd); err != nil {
				errs = append(errs, fmt.Errorf("bpftest: close: %w", err))
			}
			*fd = -1
		}
	}
	return errors.Join(errs...)
}
