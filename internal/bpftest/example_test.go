package bpftest_test

import (
	"fmt"

	"github.com/eventpipe/eventpipe/internal/bpftest"
)

// A ring buffer that the kernel fills with one submitted and one discarded
// record. In a test, call bpftest.Require(t) instead of checking Available,
// then hand m.FD() to the reader under test.
func Example() {
	if err := bpftest.Available(); err != nil {
		fmt.Println("no BPF here:", err)
		return
	}
	m, err := bpftest.NewRingBuf(1 << 14)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	p, err := bpftest.NewRingDiscardProducer(m, 8)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()

	// An even first byte is submitted, an odd one discarded.
	for _, first := range []byte{2, 3} {
		if err := p.Emit([]byte{first, 0, 0, 0, 0, 0, 0, 0}); err != nil {
			fmt.Println(err)
			return
		}
	}
	fmt.Printf("%+v\n", p.Stats())
}

// How much room records take in each kind of ring, to size a test's ring or
// work out how many emits fill it.
func ExampleRingRecordLen() {
	for _, n := range []int{1, 8, 100} {
		fmt.Printf("%3d-byte record: ringbuf %3d bytes; perf sample %3d bytes, raw size field %3d\n",
			n, bpftest.RingRecordLen(n), bpftest.PerfRecordLen(n), bpftest.PerfRawSize(n))
	}
	// Output:
	//   1-byte record: ringbuf  16 bytes; perf sample  16 bytes, raw size field   4
	//   8-byte record: ringbuf  16 bytes; perf sample  24 bytes, raw size field  12
	// 100-byte record: ringbuf 112 bytes; perf sample 112 bytes, raw size field 100
}
