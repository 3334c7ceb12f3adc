package simple

import "testing"

// go test -run '^$' -bench 'Frame|Reassembler' ./simple
func BenchmarkParseFrame(b *testing.B) {
	wire := Frame{Seq: 7, UTCTicks: goldenTicks, Payload: Pattern(DefaultPayload)}.Append(nil)
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if _, _, err := ParseFrame(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendFrame(b *testing.B) {
	f := Frame{Seq: 7, UTCTicks: goldenTicks, Payload: Pattern(DefaultPayload)}
	buf := make([]byte, 0, f.Len())
	b.ReportAllocs()
	b.SetBytes(int64(f.Len()))
	for b.Loop() {
		buf = f.Append(buf[:0])
	}
}

// BenchmarkReassembler feeds default pings cut into xrdp-like 1600-byte
// chunks and takes the frames out.
func BenchmarkReassembler(b *testing.B) {
	wire := Frame{Seq: 7, UTCTicks: goldenTicks, Payload: Pattern(DefaultPayload)}.Append(nil)
	var r Reassembler
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		for off := 0; off < len(wire); off += 1600 {
			if err := r.Add(wire[off:min(off+1600, len(wire))]); err != nil {
				b.Fatal(err)
			}
		}
		if _, ok, err := r.Next(); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
