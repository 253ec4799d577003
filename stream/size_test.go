package stream

import (
	"testing"
	"unsafe"
)

// TestConnSize keeps a Conn in the 112-byte size class: a server holds
// mostly idle connections, and Conn is most of what one costs on the Go
// heap (TestManyConnections logs the whole figure). What an idle
// connection does not use lives behind Conn.x, Conn.idle and Conn.async.
func TestConnSize(t *testing.T) {
	if got := unsafe.Sizeof(Conn{}); got > 112 {
		t.Fatalf("Conn is %d bytes, over the 112-byte size class", got)
	}
}
