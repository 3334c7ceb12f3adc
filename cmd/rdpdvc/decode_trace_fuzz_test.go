package main

import (
	"io"
	"testing"

	"github.com/rdpdvc/rdpdvc/drdynvc"
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
		held := 0
		for _, p := range d.parts {
			if p.total > maxTraceReassembly || len(p.buf) > p.total || p.got > p.total {
				t.Fatalf("reassembly holds %d (%d counted) of %d bytes", len(p.buf), p.got, p.total)
			}
			held += len(p.buf)
		}
		if held != d.held || held > maxTraceHeld {
			t.Fatalf("reassembly holds %d bytes, counted %d, ceiling %d", held, d.held, maxTraceHeld)
		}
	})
}

// A peer that opens channel after channel and starts a large message on
// each (what rdpdvc proxy may be fed) makes the decoder hold no more than
// its ceilings: maxTraceNames names and maxTraceHeld bytes of
// reassembly, and the messages past the ceiling are counted, not kept.
func TestTraceDecoderBounded(t *testing.T) {
	d := newTraceDecoder(io.Discard, "x") // follows every channel, prints none: the printing is not what is tested
	chunk := make([]byte, 1590)
	rec := func(from trace.Side, pdu []byte) {
		d.record(trace.Event{From: from, Kind: trace.Data, Channel: trace.Channel, Data: pdu, Len: len(pdu)})
	}
	for id := uint32(1); id <= maxTraceNames+100; id++ {
		rec(trace.Server, drdynvc.CreateRequest{ChannelID: id, ChannelName: "c"}.Append(nil))
		rec(trace.Server, drdynvc.DataFirst{ChannelID: id, Length: maxTraceReassembly, Data: chunk}.Append(nil))
		for range 4 {
			rec(trace.Server, drdynvc.Data{ChannelID: id, Data: chunk}.Append(nil))
		}
	}
	if len(d.names) > maxTraceNames {
		t.Errorf("%d channel names followed, ceiling %d", len(d.names), maxTraceNames)
	}
	if d.held > maxTraceHeld {
		t.Errorf("reassembly holds %d bytes, ceiling %d", d.held, maxTraceHeld)
	}
	if len(d.parts) > 2*maxTraceNames {
		t.Errorf("%d messages in reassembly, ceiling %d", len(d.parts), 2*maxTraceNames)
	}
	// Closing the channels lets go of what they held.
	for id := uint32(1); id <= maxTraceNames+100; id++ {
		rec(trace.Server, drdynvc.Close{ChannelID: id}.Append(nil))
	}
	if d.held != 0 || len(d.parts) != 0 {
		t.Errorf("after every close: %d bytes in %d messages held", d.held, len(d.parts))
	}
}
