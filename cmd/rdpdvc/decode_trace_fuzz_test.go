package main

import (
	"io"
	"testing"

	"github.com/rdpdvc/rdpdvc/trace"
)

// FuzzTraceDecoder feeds arbitrary DRDYNVC PDUs, each way, through the
// decoder the proxy runs on what a peer sends: it must never panic, and
// its reassembly never hold more than its ceiling per message.
func FuzzTraceDecoder(f *testing.F) {
	f.Add([]byte{0x10, 0x03, 'E', 'C', 'H', 'O', 0}, []byte{0x30, 0x03, 'h', 'i'}, false)
	f.Add([]byte{0x10, 0x01, 'F', 'i', 'l', 'e', 'R', 'e', 'd', 'i', 'r', 'e', 'c', 't', 'o', 'r', 'C', 'h', 'a', 'n', 'n', 'e', 'l', 0}, []byte{0x22, 0x01, 0x00, 0x10, 1, 2, 3}, true)
	f.Fuzz(func(t *testing.T, a, b []byte, swap bool) {
		d := newTraceDecoder(io.Discard, "")
		from := []trace.Side{trace.Server, trace.Client}
		if swap {
			from[0], from[1] = from[1], from[0]
		}
		for i, pdu := range [][]byte{a, b, a, b} {
			d.record(trace.Event{From: from[i%2], Kind: trace.Data, Channel: trace.Channel, Data: pdu, Len: len(pdu)})
		}
		for _, p := range d.parts {
			if p.total > maxTraceReassembly || len(p.buf) > p.total {
				t.Fatalf("reassembly holds %d of %d bytes", len(p.buf), p.total)
			}
		}
	})
}
