package simple

import (
	"bufio"
	"bytes"
	"errors"
	"testing"
	"time"
)

// A ping with seq 1, sent at 2024-01-01T00:00:00.1234567Z, 8-byte payload.
var goldenPing = []byte{
	0x18, 0x00, 0x00, 0x00, // frameLen = 24 = 16 + payloadLen
	0x01, 0x00, 0x00, 0x00, // sequenceNumber = 1
	0x87, 0x96, 0x9c, 0x76, 0x45, 0x3c, 0xda, 0x01, // utcTicks = 133485408001234567
	0x08, 0x00, 0x00, 0x00, // payloadLen = 8
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, // payload = Pattern(8)
}

// The sample's default ping: seq 7, 5120-byte payload; header only here,
// the payload is Pattern(5120).
var goldenDefaultHeader = []byte{
	0x10, 0x14, 0x00, 0x00, // frameLen = 5136 = 16 + 5120
	0x07, 0x00, 0x00, 0x00, // sequenceNumber = 7
	0x87, 0x96, 0x9c, 0x76, 0x45, 0x3c, 0xda, 0x01, // utcTicks
	0x00, 0x14, 0x00, 0x00, // payloadLen = 5120
}

const goldenTicks = 133485408001234567

func TestGoldenPing(t *testing.T) {
	f, n, err := ParseFrame(goldenPing)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(goldenPing) || f.Seq != 1 || f.UTCTicks != goldenTicks || !bytes.Equal(f.Payload, Pattern(8)) {
		t.Fatalf("ParseFrame = %+v, %d", f, n)
	}
	want := time.Date(2024, 1, 1, 0, 0, 0, 123456700, time.UTC)
	if got := TimeOf(f.UTCTicks); !got.Equal(want) {
		t.Fatalf("TimeOf = %v, want %v", got, want)
	}
	if got := Ticks(want); got != goldenTicks {
		t.Fatalf("Ticks = %d, want %d", got, goldenTicks)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	if b := f.Append(nil); !bytes.Equal(b, goldenPing) {
		t.Fatalf("Append = % x", b)
	}
	if f.Len() != len(goldenPing) {
		t.Fatalf("Len = %d", f.Len())
	}
}

func TestGoldenDefaultPing(t *testing.T) {
	wire := append(append([]byte(nil), goldenDefaultHeader...), Pattern(DefaultPayload)...)
	f, n, err := ParseFrame(wire)
	if err != nil || n != 5140 || f.Seq != 7 || len(f.Payload) != 5120 || CheckPattern(f.Payload) != -1 {
		t.Fatalf("ParseFrame = seq %d len %d, %d, %v", f.Seq, len(f.Payload), n, err)
	}
	if f.Payload[255] != 255 || f.Payload[256] != 0 || f.Payload[5119] != byte(5119%256) {
		t.Fatal("payload does not wrap at 256")
	}
	b := Frame{Seq: 7, UTCTicks: goldenTicks, Payload: Pattern(DefaultPayload)}.Append(nil)
	if !bytes.Equal(b, wire) {
		t.Fatal("re-encoding differs")
	}
}

func TestParseFrameErrors(t *testing.T) {
	cases := []struct {
		name  string
		in    []byte
		field string
		short bool
	}{
		{"empty", nil, "frameLen", true},
		{"3 bytes", []byte{0x18, 0, 0}, "frameLen", true},
		{"frameLen below header", []byte{0x0f, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "frameLen", false},
		{"frameLen absurd", []byte{0xff, 0xff, 0xff, 0xff}, "frameLen", false},
		{"header cut", goldenPing[:10], "header", true},
		{"payloadLen disagrees", func() []byte { b := bytes.Clone(goldenPing); b[16] = 9; return b }(), "payloadLen", false},
		{"payload cut", goldenPing[:len(goldenPing)-1], "payload", true},
	}
	for _, c := range cases {
		_, _, err := ParseFrame(c.in)
		var fe *Error
		if !errors.As(err, &fe) || fe.Field != c.field || errors.Is(err, ErrTruncated) != c.short {
			t.Errorf("%s: err = %v, want field %s short %v", c.name, err, c.field, c.short)
		}
	}
	if _, _, err := ParseFrame([]byte{0xff, 0xff, 0xff, 0xff}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("absurd frameLen: %v does not wrap ErrTooLarge", err)
	}
}

func TestParseFrameLeavesTrailingBytes(t *testing.T) {
	two := append(bytes.Clone(goldenPing), goldenPing...)
	f, n, err := ParseFrame(two)
	if err != nil || n != len(goldenPing) || f.Seq != 1 {
		t.Fatalf("got %+v %d %v", f, n, err)
	}
	if cap(f.Payload) != len(f.Payload) {
		t.Fatal("payload capacity reaches into the next frame")
	}
}

func TestFrameLen(t *testing.T) {
	for i := 0; i < 4; i++ {
		if n, err := FrameLen(goldenPing[:i]); n != 0 || err != nil {
			t.Fatalf("FrameLen(%d bytes) = %d, %v", i, n, err)
		}
	}
	if n, err := FrameLen(goldenPing[:4]); n != 28 || err != nil {
		t.Fatalf("FrameLen = %d, %v", n, err)
	}
	if _, err := FrameLen([]byte{1, 0, 0, 0}); err == nil {
		t.Fatal("frameLen 1 accepted")
	}
	// The ceiling, at its edge.
	max := []byte{0, 0, 0, 0}
	putU32(max, MinFrameLen+MaxPayload)
	if n, err := FrameLen(max); err != nil || n != HeaderSize+MaxPayload {
		t.Fatalf("FrameLen(max) = %d, %v", n, err)
	}
	putU32(max, MinFrameLen+MaxPayload+1)
	if _, err := FrameLen(max); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("FrameLen(max+1) err = %v", err)
	}
	if err := (Frame{Payload: make([]byte, MaxPayload+1)}).Validate(); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Validate over the ceiling: %v", err)
	}
}

func putU32(b []byte, v uint32) {
	b[0], b[1], b[2], b[3] = byte(v), byte(v>>8), byte(v>>16), byte(v>>24)
}

func TestSplitScanner(t *testing.T) {
	var stream []byte
	for seq := uint32(1); seq <= 3; seq++ {
		stream = Frame{Seq: seq, Payload: Pattern(int(seq) * 100)}.Append(stream)
	}
	sc := bufio.NewScanner(&oneByteReader{r: bytes.NewReader(stream)})
	sc.Split(Split)
	var seqs []uint32
	for sc.Scan() {
		f, n, err := ParseFrame(sc.Bytes())
		if err != nil || n != len(sc.Bytes()) {
			t.Fatal(err)
		}
		seqs = append(seqs, f.Seq)
	}
	if sc.Err() != nil || len(seqs) != 3 || seqs[2] != 3 {
		t.Fatalf("seqs %v err %v", seqs, sc.Err())
	}
	sc = bufio.NewScanner(bytes.NewReader(stream[:len(stream)-1]))
	sc.Split(Split)
	for sc.Scan() {
	}
	if !errors.Is(sc.Err(), ErrTruncated) {
		t.Fatalf("truncated stream: err %v", sc.Err())
	}
}

type oneByteReader struct{ r *bytes.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) { return o.r.Read(p[:1]) }

func TestTicks(t *testing.T) {
	cases := []struct {
		t     time.Time
		ticks int64
	}{
		{time.Date(1601, 1, 1, 0, 0, 0, 0, time.UTC), 0},
		{time.Unix(0, 0), 116444736000000000},
		{time.Unix(0, 99), 116444736000000000}, // below 100 ns truncates
		{time.Unix(0, 100), 116444736000000001},
		{time.Unix(-1, 0), 116444735990000000},
	}
	for _, c := range cases {
		if got := Ticks(c.t); got != c.ticks {
			t.Errorf("Ticks(%v) = %d, want %d", c.t, got, c.ticks)
		}
	}
	if got := TimeOf(116444735990000001); !got.Equal(time.Unix(-1, 100)) {
		t.Errorf("TimeOf before 1970 = %v", got)
	}
	if Ticks(time.Date(1500, 1, 1, 0, 0, 0, 0, time.UTC)) != 0 {
		t.Error("time before 1601 not clamped to 0")
	}
	if Ticks(time.Date(40000, 1, 1, 0, 0, 0, 0, time.UTC)) != 1<<63-1 {
		t.Error("time after 30828 not clamped")
	}
	now := time.Now()
	if d := now.Sub(TimeOf(Ticks(now))); d < 0 || d >= 100*time.Nanosecond {
		t.Errorf("round trip of now off by %v", d)
	}
}

func TestPattern(t *testing.T) {
	p := Pattern(600)
	if len(p) != 600 || CheckPattern(p) != -1 || p[256] != 0 || p[599] != byte(599-512) {
		t.Fatal("Pattern wrong")
	}
	p[300] ^= 1
	if CheckPattern(p) != 300 {
		t.Fatal("CheckPattern missed the flipped byte")
	}
}

func FuzzParseFrame(f *testing.F) {
	f.Add(goldenPing)
	f.Add(goldenDefaultHeader)
	f.Add([]byte{0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := ParseFrame(b)
		if err != nil {
			return
		}
		if n > len(b) || n != fr.Len() {
			t.Fatalf("n = %d, len %d, frame len %d", n, len(b), fr.Len())
		}
		if err := fr.Validate(); err != nil {
			t.Fatalf("a parsed frame does not validate: %v", err)
		}
		if out := fr.Append(nil); !bytes.Equal(out, b[:n]) {
			t.Fatalf("round trip: % x != % x", out, b[:n])
		}
		if fl, err := FrameLen(b); err != nil || fl != n {
			t.Fatalf("FrameLen = %d, %v; ParseFrame took %d", fl, err, n)
		}
	})
}
