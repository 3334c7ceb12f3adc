package chanpdu

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{0x0e, 0x08, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHeader(b)
		if len(b) < HeaderSize {
			if err == nil {
				t.Fatal("short input accepted")
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := h.Append(nil); !bytes.Equal(got, b[:HeaderSize]) {
			t.Fatalf("round trip % x != % x", got, b[:HeaderSize])
		}
	})
}

// FuzzReassembler feeds a sequence of (header, chunk) pairs taken from the
// fuzz input: each record is flags (1 byte, spread over the interesting
// bits), length (2 bytes, little-endian), chunk length (1 byte), chunk.
// The reassembler must never panic, and every message it completes must be
// exactly the length its first header announced.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0x03, 5, 0, 5, 'h', 'e', 'l', 'l', 'o'}, uint16(0))
	f.Add([]byte{0x01, 5, 0, 3, 'h', 'e', 'l', 0x02, 5, 0, 2, 'l', 'o'}, uint16(4))
	f.Add([]byte{0x00, 5, 0, 3, 'h', 'e', 'l', 0x01, 5, 0, 6, 1, 2, 3, 4, 5, 6}, uint16(0))
	f.Fuzz(func(t *testing.T, in []byte, max uint16) {
		r := Reassembler{MaxLength: uint32(max)}
		var first Header
		for len(in) >= 4 {
			fl := uint32(in[0] & 0x03)
			if in[0]&0x04 != 0 {
				fl |= FlagShowProtocol
			}
			if in[0]&0x08 != 0 {
				fl |= FlagPacketCompressed
			}
			h := Header{Length: uint32(binary.LittleEndian.Uint16(in[1:])), Flags: fl}
			n := min(int(in[3]), len(in)-4)
			chunk := in[4 : 4+n]
			in = in[4+n:]
			if h.First() {
				first = h
			}
			msg, done, err := r.Push(h, chunk)
			if err != nil {
				if done || msg != nil {
					t.Fatal("error with a message")
				}
				if _, _, ok := r.InProgress(); ok {
					t.Fatal("in progress after error")
				}
				continue
			}
			if done {
				if uint32(len(msg)) != first.Length {
					t.Fatalf("message of %d bytes, first header said %d", len(msg), first.Length)
				}
				if max != 0 && len(msg) > int(max) {
					t.Fatalf("message of %d bytes over ceiling %d", len(msg), max)
				}
			}
		}
	})
}

// FuzzChunkRoundTrip: any message through any chunk size comes back whole,
// both through Push and through a stream read with NextChunkLen.
func FuzzChunkRoundTrip(f *testing.F) {
	f.Add([]byte("hello"), uint16(2), uint32(0))
	f.Add(make([]byte, 3300), uint16(0), uint32(FlagShowProtocol))
	f.Fuzz(func(t *testing.T, msg []byte, size uint16, flags uint32) {
		c := Chunker{ChunkSize: int(size), Flags: flags &^ FlagPacketCompressed}
		wire := c.AppendChunks(nil, msg)
		got := readStream(t, wire, int(size), 0)
		if len(got) != 1 || !bytes.Equal(got[0], msg) {
			t.Fatalf("got %d messages back", len(got))
		}
	})
}
