package chanpdu

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// Golden CHANNEL_PDU_HEADER bytes, written out by hand from
// MS-RDPBCGR 2.2.6.1.1 (two little-endian uint32s).
func TestHeaderGolden(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		h    Header
	}{
		{"only+show", []byte{0x0e, 0x08, 0x00, 0x00, 0x13, 0x00, 0x00, 0x00}, Header{Length: 2062, Flags: FlagFirst | FlagLast | FlagShowProtocol}},
		{"first", []byte{0x0e, 0x08, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00}, Header{Length: 2062, Flags: FlagFirst}},
		{"middle", []byte{0x0e, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}, Header{Length: 2062}},
		{"last", []byte{0x0e, 0x08, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00}, Header{Length: 2062, Flags: FlagLast}},
		{"max", []byte{0xff, 0xff, 0xff, 0xff, 0xf3, 0x00, 0xe1, 0x00}, Header{Length: 0xFFFFFFFF, Flags: 0x00E100F3}},
		{"empty", []byte{0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00}, Header{Length: 0, Flags: FlagOnly}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParseHeader(tt.wire)
			if err != nil {
				t.Fatal(err)
			}
			if h != tt.h {
				t.Fatalf("ParseHeader = %+v, want %+v", h, tt.h)
			}
			if got := h.Append(nil); !bytes.Equal(got, tt.wire) {
				t.Fatalf("Append = % x, want % x", got, tt.wire)
			}
			// Trailing bytes are left alone.
			h2, err := ParseHeader(append(append([]byte{}, tt.wire...), 0xAA, 0xBB))
			if err != nil || h2 != tt.h {
				t.Fatalf("with trailing bytes: %+v, %v", h2, err)
			}
		})
	}
}

func TestHeaderAccessors(t *testing.T) {
	h := Header{Flags: FlagFirst | FlagPacketCompressed | 0x00020000}
	if !h.First() || h.Last() {
		t.Fatalf("First/Last wrong for %v", h)
	}
	if got := h.CompressionType(); got != PacketComprTypeRDP6 {
		t.Fatalf("CompressionType = %d, want %d", got, PacketComprTypeRDP6)
	}
	if s := h.String(); !strings.Contains(s, "flags=0x00220001") {
		t.Fatalf("String = %q", s)
	}
}

func TestParseHeaderTruncated(t *testing.T) {
	wire := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	for n := 0; n < HeaderSize; n++ {
		_, err := ParseHeader(wire[:n])
		if !errors.Is(err, ErrTruncated) {
			t.Fatalf("len %d: err = %v, want ErrTruncated", n, err)
		}
		if !strings.Contains(err.Error(), "CHANNEL_PDU_HEADER") {
			t.Fatalf("len %d: error %q does not name the header", n, err)
		}
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

// The example of MS-RDPBCGR 3.1.5.2.2.1: 2062 bytes with a chunk size of
// 1000 go as FIRST/1000, middle/1000, LAST/62, each with length 2062.
func TestChunkerSpecExample(t *testing.T) {
	msg := pattern(2062)
	type chunk struct {
		h Header
		n int
	}
	var got []chunk
	c := Chunker{ChunkSize: 1000, Flags: FlagShowProtocol | FlagFirst} // FIRST in Flags is ignored
	err := c.Chunks(msg, func(h Header, b []byte) error {
		got = append(got, chunk{h, len(b)})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []chunk{
		{Header{2062, FlagFirst | FlagShowProtocol}, 1000},
		{Header{2062, FlagShowProtocol}, 1000},
		{Header{2062, FlagLast | FlagShowProtocol}, 62},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("chunks = %v, want %v", got, want)
	}

	wire := c.AppendChunks([]byte{0xEE}, msg)
	if len(wire) != 1+3*HeaderSize+2062 || wire[0] != 0xEE {
		t.Fatalf("AppendChunks: %d bytes, prefix %x", len(wire), wire[0])
	}
	// The bytes of the second chunk header, literally.
	second := wire[1+HeaderSize+1000 : 1+2*HeaderSize+1000]
	if !bytes.Equal(second, []byte{0x0e, 0x08, 0, 0, 0x10, 0, 0, 0}) {
		t.Fatalf("second header = % x", second)
	}
}

func TestChunkerEdges(t *testing.T) {
	for _, tt := range []struct {
		size, n int
		chunks  []int
	}{
		{0, 0, []int{0}},
		{0, 1, []int{1}},
		{0, 1599, []int{1599}},
		{0, 1600, []int{1600}},
		{0, 1601, []int{1600, 1}},
		{0, 3200, []int{1600, 1600}},
		{-5, 3201, []int{1600, 1600, 1}},
		{1, 3, []int{1, 1, 1}},
	} {
		var sizes []int
		var flags []uint32
		err := Chunker{ChunkSize: tt.size}.Chunks(make([]byte, tt.n), func(h Header, b []byte) error {
			if h.Length != uint32(tt.n) {
				t.Fatalf("n=%d: Length = %d", tt.n, h.Length)
			}
			sizes = append(sizes, len(b))
			flags = append(flags, h.Flags)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(sizes) != fmt.Sprint(tt.chunks) {
			t.Fatalf("size %d n %d: chunks %v, want %v", tt.size, tt.n, sizes, tt.chunks)
		}
		for i, f := range flags {
			want := uint32(0)
			if i == 0 {
				want |= FlagFirst
			}
			if i == len(flags)-1 {
				want |= FlagLast
			}
			if f != want {
				t.Fatalf("n %d chunk %d: flags %x, want %x", tt.n, i, f, want)
			}
		}
	}
}

func TestChunkerStopsOnError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := Chunker{}.Chunks(make([]byte, 5000), func(Header, []byte) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("err %v calls %d", err, calls)
	}
}

func TestEmptyMessageWire(t *testing.T) {
	got := Chunker{}.AppendChunks(nil, nil)
	want := []byte{0, 0, 0, 0, 0x03, 0, 0, 0}
	if !bytes.Equal(got, want) {
		t.Fatalf("empty message = % x, want % x", got, want)
	}
	var r Reassembler
	msg, done, err := r.PushPDU(got)
	if err != nil || !done || msg == nil || len(msg) != 0 {
		t.Fatalf("reassembled empty: %v %v %v", msg, done, err)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, 7, 1600, 4096} {
		for _, n := range []int{0, 1, 1599, 1600, 1601, 10000} {
			msg := pattern(n)
			c := Chunker{ChunkSize: size, Flags: FlagShowProtocol}
			var r Reassembler
			var out [][]byte
			err := c.Chunks(msg, func(h Header, chunk []byte) error {
				m, done, err := r.Push(h, chunk)
				if done {
					out = append(out, m)
				}
				return err
			})
			if err != nil {
				t.Fatalf("size %d n %d: %v", size, n, err)
			}
			if len(out) != 1 || !bytes.Equal(out[0], msg) {
				t.Fatalf("size %d n %d: got %d messages", size, n, len(out))
			}
			if _, _, ok := r.InProgress(); ok {
				t.Fatal("still in progress after a whole message")
			}

			// Same again over the wire form, reading it as a stream
			// carrier would: header, ChunkLen, data.
			wire := c.AppendChunks(nil, msg)
			got := readStream(t, wire, size, 0)
			if len(got) != 1 || !bytes.Equal(got[0], msg) {
				t.Fatalf("stream size %d n %d: got %d messages", size, n, len(got))
			}
		}
	}
}

// readStream parses a chunk stream the way the portable transport does.
func readStream(t testing.TB, wire []byte, chunkSize int, max uint32) [][]byte {
	t.Helper()
	r := Reassembler{MaxLength: max}
	var out [][]byte
	for len(wire) > 0 {
		h, err := ParseHeader(wire)
		if err != nil {
			t.Fatal(err)
		}
		wire = wire[HeaderSize:]
		n, err := r.NextChunkLen(h, chunkSize)
		if err != nil {
			t.Fatal(err)
		}
		if n > len(wire) {
			t.Fatalf("ChunkLen %d, only %d left", n, len(wire))
		}
		m, done, err := r.Push(h, wire[:n])
		if err != nil {
			t.Fatal(err)
		}
		if done {
			out = append(out, m)
		}
		wire = wire[n:]
	}
	return out
}

func TestReassemblerOwnsResult(t *testing.T) {
	var r Reassembler
	chunk := []byte("hello")
	msg, done, err := r.Push(Header{Length: 5, Flags: FlagOnly}, chunk)
	if err != nil || !done {
		t.Fatal(done, err)
	}
	chunk[0] = 'j'
	if string(msg) != "hello" {
		t.Fatalf("result aliases the chunk: %q", msg)
	}
}

func TestReassemblerErrors(t *testing.T) {
	type step struct {
		h     Header
		n     int
		err   error  // nil: no error expected
		field string // substring of the message
	}
	tests := []struct {
		name  string
		max   uint32
		steps []step
	}{
		{"no first", 0, []step{{Header{10, 0}, 5, ErrSequence, "CHANNEL_FLAG_FIRST"}}},
		{"last without first", 0, []step{{Header{10, FlagLast}, 10, ErrSequence, "CHANNEL_FLAG_FIRST"}}},
		{"first twice", 0, []step{
			{Header{10, FlagFirst}, 5, nil, ""},
			{Header{10, FlagFirst}, 5, ErrSequence, "CHANNEL_FLAG_FIRST while"},
		}},
		{"length changes", 0, []step{
			{Header{10, FlagFirst}, 5, nil, ""},
			{Header{11, FlagLast}, 5, ErrSequence, "CHANNEL_PDU_HEADER.length: chunk out of sequence: 11 changed"},
		}},
		{"first beyond length", 0, []step{{Header{4, FlagOnly}, 5, ErrSequence, "beyond CHANNEL_PDU_HEADER.length 4"}}},
		{"middle beyond length", 0, []step{
			{Header{10, FlagFirst}, 5, nil, ""},
			{Header{10, 0}, 6, ErrSequence, "reaches 11 bytes"},
		}},
		{"last short", 0, []step{
			{Header{10, FlagFirst}, 5, nil, ""},
			{Header{10, FlagLast}, 4, ErrSequence, "short of CHANNEL_PDU_HEADER.length 10"},
		}},
		{"single short", 0, []step{{Header{10, FlagOnly}, 9, ErrSequence, "short"}}},
		{"over ceiling", 100, []step{{Header{101, FlagFirst}, 0, ErrTooLarge, "CHANNEL_PDU_HEADER.length: too large: 101 exceeds ceiling 100"}}},
		{"over default ceiling", 0, []step{{Header{0xFFFFFFFF, FlagFirst}, 0, ErrTooLarge, "CHANNEL_PDU_HEADER.length: too large: 4294967295 exceeds ceiling 67108864"}}},
		{"compressed", 0, []step{{Header{10, FlagOnly | FlagPacketCompressed}, 10, ErrUnsupported, "CHANNEL_PACKET_COMPRESSED"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Reassembler{MaxLength: tt.max}
			for i, s := range tt.steps {
				_, done, err := r.Push(s.h, make([]byte, s.n))
				if s.err == nil {
					if err != nil || done {
						t.Fatalf("step %d: done %v err %v", i, done, err)
					}
					continue
				}
				if !errors.Is(err, s.err) {
					t.Fatalf("step %d: err %v, want %v", i, err, s.err)
				}
				var e *Error
				if !errors.As(err, &e) || !strings.HasPrefix(err.Error(), "chanpdu: ") || !strings.Contains(err.Error(), s.field) {
					t.Fatalf("step %d: error %q should be a *Error containing %q", i, err, s.field)
				}
				if _, _, ok := r.InProgress(); ok {
					t.Fatalf("step %d: still in progress after error", i)
				}
				// After the error, a fresh message goes through.
				m, done, err := r.Push(Header{3, FlagOnly}, []byte("abc"))
				if err != nil || !done || string(m) != "abc" {
					t.Fatalf("after error: %q %v %v", m, done, err)
				}
			}
		})
	}
}

// A ceiling error must come before the allocation: a 4 GiB-1 length with
// no ceiling would otherwise allocate 4 GiB.
func TestReassemblerCeilingBeforeAlloc(t *testing.T) {
	r := Reassembler{MaxLength: 1 << 20}
	allocs := testing.AllocsPerRun(100, func() {
		_, _, err := r.Push(Header{Length: 1<<20 + 1, Flags: FlagFirst}, nil)
		if err == nil {
			t.Fatal("no error")
		}
	})
	// The error value itself allocates; a buffer would show as well over
	// a few allocations worth, and the test below checks it cannot be big.
	if allocs > 8 {
		t.Fatalf("%v allocs per rejected chunk", allocs)
	}
	_, _, err := r.Push(Header{Length: 1 << 20, Flags: FlagFirst}, nil)
	if err != nil {
		t.Fatalf("at the ceiling: %v", err)
	}
}

func TestReassemblerExactLengthWithoutLast(t *testing.T) {
	// A middle chunk may fill the buffer; the message completes at LAST
	// (here an empty one), not before.
	var r Reassembler
	if _, done, err := r.Push(Header{4, FlagFirst}, []byte("ab")); done || err != nil {
		t.Fatal(done, err)
	}
	if _, done, err := r.Push(Header{4, 0}, []byte("cd")); done || err != nil {
		t.Fatal(done, err)
	}
	if rec, l, ok := r.InProgress(); rec != 4 || l != 4 || !ok {
		t.Fatalf("InProgress = %d %d %v", rec, l, ok)
	}
	m, done, err := r.Push(Header{4, FlagLast}, nil)
	if err != nil || !done || string(m) != "abcd" {
		t.Fatalf("%q %v %v", m, done, err)
	}
}

func TestReassemblerIgnoresOtherFlags(t *testing.T) {
	var r Reassembler
	f := FlagShowProtocol | FlagSuspend | FlagResume | FlagShadowPersistent
	m, done, err := r.Push(Header{2, FlagOnly | f}, []byte("hi"))
	if err != nil || !done || string(m) != "hi" {
		t.Fatalf("%q %v %v", m, done, err)
	}
}

func TestPushPDU(t *testing.T) {
	var r Reassembler
	// Two file-handle reads: FIRST with 3 bytes, LAST with 2.
	m, done, err := r.PushPDU([]byte{0x05, 0, 0, 0, 0x11, 0, 0, 0, 'h', 'e', 'l'})
	if err != nil || done || m != nil {
		t.Fatal(m, done, err)
	}
	m, done, err = r.PushPDU([]byte{0x05, 0, 0, 0, 0x12, 0, 0, 0, 'l', 'o'})
	if err != nil || !done || string(m) != "hello" {
		t.Fatalf("%q %v %v", m, done, err)
	}
	// A short read resets.
	if _, _, err := r.PushPDU([]byte{0x05, 0, 0, 0, 0x11, 0, 0, 0, 'h'}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.PushPDU([]byte{0x05, 0, 0}); !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v", err)
	}
	if _, _, ok := r.InProgress(); ok {
		t.Fatal("in progress after truncated PDU")
	}
}

func TestChunkLen(t *testing.T) {
	tests := []struct {
		h        Header
		received uint32
		size     int
		want     int
		err      bool
	}{
		{Header{0, FlagOnly}, 0, 0, 0, false},
		{Header{5, FlagOnly}, 0, 0, 5, false},
		{Header{1600, FlagOnly}, 0, 0, 1600, false},
		{Header{1601, FlagOnly}, 0, 0, 0, true}, // last chunk cannot hold it
		{Header{1601, FlagFirst}, 0, 0, 1600, false},
		{Header{1601, FlagLast}, 1600, 0, 1, false},
		{Header{1601, 0}, 1600, 0, 0, true}, // non-last chunk would overrun
		{Header{1601, FlagLast}, 1602, 0, 0, true},
		{Header{10, FlagFirst}, 4, 0, 0, true}, // FIRST mid-message
		{Header{0xFFFFFFFF, FlagFirst}, 0, 1600, 1600, false},
		{Header{2062, FlagFirst}, 0, 1000, 1000, false},
		{Header{2062, 0}, 1000, 1000, 1000, false},
		{Header{2062, FlagLast}, 2000, 1000, 62, false},
		{Header{2000, 0}, 1000, 1000, 1000, false}, // fills it; a LAST of 0 bytes follows
		{Header{2000, FlagLast}, 2000, 1000, 0, false},
	}
	for _, tt := range tests {
		got, err := ChunkLen(tt.h, tt.received, tt.size)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ChunkLen(%v, %d, %d) = %d, %v; want %d, err %v", tt.h, tt.received, tt.size, got, err, tt.want, tt.err)
		}
		if err != nil && !errors.Is(err, ErrSequence) {
			t.Errorf("ChunkLen(%v): error %v is not ErrSequence", tt.h, err)
		}
	}
}

func TestNextChunkLenCeiling(t *testing.T) {
	r := Reassembler{MaxLength: 5000}
	if _, err := r.NextChunkLen(Header{5001, FlagFirst}, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	if n, err := r.NextChunkLen(Header{5000, FlagFirst}, 0); n != 1600 || err != nil {
		t.Fatalf("%d %v", n, err)
	}
}
