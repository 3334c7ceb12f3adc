// Package overlapped drives one Windows handle opened with
// FILE_FLAG_OVERLAPPED through an I/O completion port of its own: Read and
// Write issue overlapped ReadFile/WriteFile and wait for their completion
// packets, which one goroutine per File collects from the port. Close
// cancels what is pending (CancelIoEx), waits for it, and stops that
// goroutine, so nothing outlives the File (go-winio, which does the same
// with one port per process, keeps a goroutine for the life of the
// process, which goleak-checked tests of every package using it would
// have to ignore).
package overlapped
