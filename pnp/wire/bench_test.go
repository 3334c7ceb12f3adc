package wire

import "testing"

const benchSize = 4 << 10

func BenchmarkParseReadRequest(b *testing.B) {
	msg := ReadRequest{RequestID: 0x010101, BytesToRead: benchSize, Offset: 1 << 33}.Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseReadRequest(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendReadRequest(b *testing.B) {
	m := ReadRequest{RequestID: 0x010101, BytesToRead: benchSize, Offset: 1 << 33}
	buf := make([]byte, 0, m.Len())
	b.ReportAllocs()
	for b.Loop() {
		buf = m.Append(buf[:0])
	}
}

func BenchmarkParseReadReply4K(b *testing.B) {
	msg := ReadReply{RequestID: 0x010101, Data: make([]byte, benchSize)}.Append(nil)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseReadReply(msg); err != nil {
			b.Fatal(err)
		}
	}
}

// Appending into a reused buffer, as a role that keeps one per channel.
func BenchmarkAppendReadReply4K(b *testing.B) {
	m := ReadReply{RequestID: 0x010101, Data: make([]byte, benchSize)}
	buf := make([]byte, 0, m.Len())
	b.SetBytes(int64(m.Len()))
	b.ReportAllocs()
	for b.Loop() {
		buf = m.Append(buf[:0])
	}
}

// Appending into a fresh buffer: the one allocation Append makes.
func BenchmarkAppendReadReply4KFresh(b *testing.B) {
	m := ReadReply{RequestID: 0x010101, Data: make([]byte, benchSize)}
	b.SetBytes(int64(m.Len()))
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Append(nil)
	}
}

// The dispatch path of a server role: header, lookup, ParseReply.
func BenchmarkParseReplyDispatch4K(b *testing.B) {
	msg := ReadReply{RequestID: 0x010101, Data: make([]byte, benchSize)}.Append(nil)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		h, err := ParseClientIOHeader(msg)
		if err != nil || h.PacketType != PacketTypeResponse {
			b.Fatal(err)
		}
		if _, err := ParseReply(msg, FunctionRead); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseWriteRequest4K(b *testing.B) {
	msg := WriteRequest{RequestID: 0x010101, Data: make([]byte, benchSize)}.Append(nil)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseWriteRequest(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseClientDeviceAddition(b *testing.B) {
	msg := golden[3].wire
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseClientDeviceAddition(msg); err != nil {
			b.Fatal(err)
		}
	}
}
