// Package leakcheck lets a package's TestMain fail the suite when tests leave
// descriptors, memory mappings or goroutines behind.
//
// It takes a snapshot before the tests run and compares after they finish.
// Goroutines and descriptors that other code releases asynchronously get a
// short grace period; nothing is timed beyond that.
package leakcheck
