//go:build linux

package eventpipe

import (
	"encoding/binary"
	"fmt"

	"github.com/eventpipe/eventpipe/ringbuf"
)

// Sim is a simulated perf source: per-CPU perf rings in ordinary memory,
// written in the kernel's record layout (samples with their padding and,
// on an Ordered pipe, their timestamp; lost records; wraps at the ring's
// end) and read by the same ringbuf code that reads the kernel's rings. It
// needs no BPF, no perf events and no privileges, so a program's handlers
// can be tested in any CI. Its methods are called on the loop goroutine;
// what they write is delivered on a later loop iteration, never inside the
// call.
type Sim struct {
	p   *Pipe
	sim *ringbuf.PerfSim
	err error // why the sim could not be attached
	cat [categorySize]byte
}

// SimPagesPerCPU is the size of each simulated ring, in pages.
const SimPagesPerCPU = ringbuf.DefaultPagesPerCPU

// AttachSim adds a simulated perf source with one ring of SimPagesPerCPU
// pages for each of CPUs 0..cpus-1. If it cannot (cpus <= 0, a closed
// pipe), every method of the returned Sim returns the reason.
func (p *Pipe) AttachSim(cpus int) *Sim {
	s := &Sim{p: p}
	if s.err = p.errIfClosed("attach sim"); s.err != nil {
		return s
	}
	sim, err := ringbuf.NewPerfSim(cpus, SimPagesPerCPU, p.opts.Ordered)
	if err != nil {
		s.err = fmt.Errorf("eventpipe: attach sim: %w", err)
		return s
	}
	s.sim = sim
	src := &perfSource{rings: sim, mapFD: -1}
	if p.opts.Ordered {
		p.addHeads(src)
	}
	p.perf = append(p.perf, src)
	return s
}

// Emit writes a record of category with payload on cpu's ring, stamped (on
// an Ordered pipe) with the current CLOCK_MONOTONIC time, as the kernel
// stamps a perf record. A full ring is an error wrapping unix.EAGAIN and
// writes nothing (call Lose to play the kernel's count of it); a cpu out of
// range wraps unix.EINVAL, a closed pipe os.ErrClosed.
func (s *Sim) Emit(cpu int, category uint32, payload []byte) error {
	return s.EmitAt(cpu, s.p.clock.now(), category, payload)
}

// EmitAt is Emit with the record's time given: nanoseconds of
// CLOCK_MONOTONIC, as Event.Time. On a pipe that is not Ordered the time is
// not part of the record (as for a perf event opened without
// PERF_SAMPLE_TIME) and Event.Time is 0.
func (s *Sim) EmitAt(cpu int, time uint64, category uint32, payload []byte) error {
	if s.err != nil {
		return s.err
	}
	binary.LittleEndian.PutUint32(s.cat[:], category)
	if err := s.sim.Sample(cpu, time, s.cat[:], payload); err != nil {
		return fmt.Errorf("eventpipe: emit: %w", err)
	}
	s.p.wake()
	return nil
}

// Lose writes a PERF_RECORD_LOST reporting n records lost on cpu, as the
// kernel does once a ring that overflowed has room again; the pipe reports
// it to OnLost and Stats.Lost.
func (s *Sim) Lose(cpu int, n uint64) error {
	if s.err != nil {
		return s.err
	}
	if err := s.sim.Lost(cpu, n); err != nil {
		return fmt.Errorf("eventpipe: lose: %w", err)
	}
	s.p.wake()
	return nil
}

// Corrupt writes a record header no kernel writes on cpu's ring, to test a
// program's OnError: the pipe reports an error wrapping ringbuf.ErrCorrupt
// and drops what the ring held.
func (s *Sim) Corrupt(cpu int) error {
	if s.err != nil {
		return s.err
	}
	if err := s.sim.Corrupt(cpu); err != nil {
		return fmt.Errorf("eventpipe: corrupt: %w", err)
	}
	s.p.wake()
	return nil
}

// wake makes the loop drain soon: on its next timer pass, never inside the
// call that wrote.
func (p *Pipe) wake() {
	if p.kick.IsActive() && p.kick.DueIn() == 0 {
		return
	}
	_ = p.kick.Start(0, 0)
}
