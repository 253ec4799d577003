// Package httpwire frames HTTP/1.1 requests and writes the plaintext
// response of the TechEmpower benchmark (a 13-byte body, keep-alive), for
// the servers that speak HTTP on a raw byte stream (ours and gnet's), so
// both run the same parsing and differ only in their network layer.
package httpwire

import (
	"bytes"
	"sync/atomic"
	"time"
)

// Body is the response body.
const Body = "Hello, World!"

const maxHeader = 8 << 10

var date atomic.Pointer[[]byte]

func init() {
	setDate()
	go func() {
		for range time.Tick(time.Second) {
			setDate()
		}
	}()
}

func setDate() {
	b := []byte(time.Now().UTC().Format("Mon, 02 Jan 2006 15:04:05 GMT"))
	date.Store(&b)
}

// AppendResponses appends one response to out for every whole request at
// the start of data (a request ends with its blank line; bodies are not
// supported, as GET has none) and returns the bytes used. bad reports a
// header past 8 KiB with no end: the caller closes the connection.
func AppendResponses(out, data []byte) (res []byte, consumed int, bad bool) {
	for {
		i := bytes.Index(data[consumed:], []byte("\r\n\r\n"))
		if i < 0 {
			return out, consumed, len(data)-consumed > maxHeader
		}
		consumed += i + 4
		out = append(out, "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/plain\r\nDate: "...)
		out = append(out, *date.Load()...)
		out = append(out, "\r\nContent-Length: 13\r\n\r\n"+Body...)
	}
}
