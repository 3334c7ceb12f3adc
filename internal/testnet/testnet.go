// Package testnet is what tests share for serving TCP on loopback.
package testnet

import (
	"net"
	"sync"
	"testing"
)

// Serve accepts on 127.0.0.1 until the test ends, each connection handled
// by handle on a goroutine of its own; the test's cleanup closes the
// listener and waits for the handlers, so none outlives the test.
func Serve(tb testing.TB, handle func(net.Conn)) net.Listener {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { handle(c) })
		}
	})
	tb.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln
}
