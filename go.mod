module github.com/eventpipe/eventpipe

go 1.26

require (
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
