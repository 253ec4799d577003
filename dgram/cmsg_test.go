package dgram_test

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"golang.org/x/sys/unix"

	"github.com/eventpipe/eventpipe/dgram"
)

// cmsg builds one control message as the kernel lays it out.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func TestParseDrops(t *testing.T) {
	ovfl := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(7))
	other := cmsg(unix.IPPROTO_IP, unix.IP_TTL, u32(64))
	cases := []struct {
		name  string
		b     []byte
		drops uint32
		ok    bool
	}{
		{"empty", nil, 0, false},
		{"one", ovfl, 7, true},
		{"after another", append(append([]byte{}, other...), ovfl...), 7, true},
		{"other only", other, 0, false},
		{"short header", ovfl[:unix.SizeofCmsghdr-1], 0, false},
		{"short data", ovfl[:unix.CmsgLen(2)], 0, false},
		{"length past buffer", append(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, make([]byte, 64))[:unix.CmsgLen(0)], u32(1)...), 0, false},
	}
	for _, c := range cases {
		drops, ok := dgram.ParseDrops(c.b)
		assert.Equal(t, c.ok, ok, c.name)
		assert.Equal(t, c.drops, drops, c.name)
	}
	// A header claiming a length below its own size ends the parse.
	bad := append([]byte{}, ovfl...)
	(*unix.Cmsghdr)(unsafe.Pointer(&bad[0])).SetLen(3)
	_, ok := dgram.ParseDrops(bad)
	assert.False(t, ok)
}

// TestDropAccount: the kernel's counter is cumulative and 32 bits wide:
// totals are the sum of its moves, through a wrap.
func TestDropAccount(t *testing.T) {
	assert.Equal(t, uint64(10), dgram.DropTotal(3, 3, 10))
	assert.Equal(t, uint64(1<<32+5), dgram.DropTotal(1<<31, 1<<32-1, 5))
}

// FuzzParseDrops: any bytes the kernel (or a corrupt buffer) could hand
// over parse without a panic or an out-of-bounds read, and an SO_RXQ_OVFL
// message after a well-formed message carrying those bytes is found.
func FuzzParseDrops(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(42)), uint32(1))
	f.Add(append(cmsg(unix.IPPROTO_IP, unix.IP_TTL, u32(1)), cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(3))...), uint32(1<<31))
	f.Add([]byte{}, uint32(0))
	f.Add(make([]byte, unix.SizeofCmsghdr), uint32(7))
	f.Fuzz(func(t *testing.T, b []byte, v uint32) {
		dgram.ParseDrops(b)
		if len(b) > 512 {
			b = b[:512]
		}
		chain := append(cmsg(unix.IPPROTO_IP, unix.IP_TTL, b), cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, u32(v))...)
		drops, ok := dgram.ParseDrops(chain)
		if !ok || drops != v {
			t.Fatalf("after a %d-byte message: got %d, %v; want %d", len(b), drops, ok, v)
		}
		// Cut anywhere inside the second message, it is not found.
		cut := len(chain) - 1 - int(v%uint32(unix.CmsgSpace(4)))
		if _, ok := dgram.ParseDrops(chain[:cut]); ok && cut < len(chain)-unix.CmsgSpace(4)+unix.CmsgLen(4) {
			t.Fatalf("found in a message cut at %d of %d", cut, len(chain))
		}
	})
}
