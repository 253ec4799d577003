module github.com/eventpipe/eventpipe/examples/cilium

go 1.26.0

require (
	github.com/cilium/ebpf v0.22.0
	github.com/eventpipe/eventpipe v0.0.0
)

require golang.org/x/sys v0.49.0

replace github.com/eventpipe/eventpipe => ../..
