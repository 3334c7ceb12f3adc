package chanpdu

import "testing"

const benchMsgLen = 1 << 20

// BenchmarkBaselineCopy copies 1 MiB into a reused buffer: the floor the
// chunker and the reassembler are compared with.
func BenchmarkBaselineCopy(b *testing.B) {
	msg := pattern(benchMsgLen)
	dst := make([]byte, 0, benchMsgLen)
	b.SetBytes(benchMsgLen)
	b.ReportAllocs()
	for b.Loop() {
		dst = append(dst[:0], msg...)
	}
}

// BenchmarkBaselineCopyAlloc copies 1 MiB into a new buffer, which is what
// the reassembler must do (the caller owns each message).
func BenchmarkBaselineCopyAlloc(b *testing.B) {
	msg := pattern(benchMsgLen)
	b.SetBytes(benchMsgLen)
	b.ReportAllocs()
	var sink []byte
	for b.Loop() {
		sink = append([]byte(nil), msg...)
	}
	_ = sink
}

func BenchmarkChunkerAppendChunks(b *testing.B) {
	msg := pattern(benchMsgLen)
	c := Chunker{Flags: FlagShowProtocol}
	dst := c.AppendChunks(nil, msg)
	b.SetBytes(benchMsgLen)
	b.ReportAllocs()
	for b.Loop() {
		dst = c.AppendChunks(dst[:0], msg)
	}
}

func BenchmarkChunkerChunks(b *testing.B) {
	msg := pattern(benchMsgLen)
	c := Chunker{Flags: FlagShowProtocol}
	b.SetBytes(benchMsgLen)
	b.ReportAllocs()
	n := 0
	fn := func(h Header, chunk []byte) error { n += len(chunk); return nil }
	for b.Loop() {
		_ = c.Chunks(msg, fn)
	}
}

func BenchmarkReassembler(b *testing.B) {
	msg := pattern(benchMsgLen)
	type rec struct {
		h Header
		c []byte
	}
	var recs []rec
	_ = Chunker{}.Chunks(msg, func(h Header, c []byte) error {
		recs = append(recs, rec{h, c})
		return nil
	})
	var r Reassembler
	b.SetBytes(benchMsgLen)
	b.ReportAllocs()
	for b.Loop() {
		for _, x := range recs {
			if _, _, err := r.Push(x.h, x.c); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkParseHeader(b *testing.B) {
	wire := []byte{0x0e, 0x08, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseHeader(wire); err != nil {
			b.Fatal(err)
		}
	}
}
