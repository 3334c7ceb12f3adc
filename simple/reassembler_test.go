package simple

import (
	"bytes"
	"errors"
	"testing"
)

func stream(t testing.TB, seqs ...uint32) []byte {
	var b []byte
	for _, s := range seqs {
		b = Frame{Seq: s, UTCTicks: int64(s) * 1000, Payload: Pattern(int(s) * 37)}.Append(b)
	}
	return b
}

// drain feeds chunks of stream cut at the given sizes and returns the
// frames' sequence numbers.
func drain(t *testing.T, r *Reassembler, s []byte, cut func(i int) int) []uint32 {
	var seqs []uint32
	for i := 0; len(s) > 0; i++ {
		n := min(cut(i), len(s))
		if err := r.Add(s[:n]); err != nil {
			t.Fatal(err)
		}
		s = s[n:]
		for {
			fr, ok, err := r.Next()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			f, n, err := ParseFrame(fr)
			if err != nil || n != len(fr) {
				t.Fatalf("frame %d: %v", len(seqs), err)
			}
			seqs = append(seqs, f.Seq)
		}
	}
	return seqs
}

func TestReassemblerSplitAndMerged(t *testing.T) {
	s := stream(t, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	for _, c := range []struct {
		name string
		cut  func(int) int
	}{
		{"1 byte", func(int) int { return 1 }},
		{"7 bytes", func(int) int { return 7 }},
		{"all merged", func(int) int { return len(s) }},
		{"chansrv-like 1600", func(int) int { return 1600 }},
		{"uneven", func(i int) int { return 1 + (i*131)%400 }},
	} {
		var r Reassembler
		seqs := drain(t, &r, s, c.cut)
		if len(seqs) != 10 || seqs[0] != 1 || seqs[9] != 10 || r.Buffered() != 0 {
			t.Errorf("%s: seqs %v, %d buffered", c.name, seqs, r.Buffered())
		}
	}
}

func TestReassemblerBadLengthIsSticky(t *testing.T) {
	var r Reassembler
	s := append(stream(t, 1), 0x02, 0, 0, 0, 0xAA)
	if err := r.Add(s); err != nil {
		t.Fatalf("Add refused a stream whose first frame is good: %v", err)
	}
	if fr, ok, err := r.Next(); !ok || err != nil || len(fr) != len(s)-5 {
		t.Fatalf("first frame: %d bytes, %v, %v", len(fr), ok, err)
	}
	var fe *Error
	if _, _, err := r.Next(); !errors.As(err, &fe) || fe.Field != "frameLen" {
		t.Fatalf("Next err = %v", err)
	}
	if err := r.Add(stream(t, 2)); err == nil {
		t.Fatal("error not sticky")
	}
}

func TestReassemblerRefusesHugeLengthBeforePayload(t *testing.T) {
	var r Reassembler
	if err := r.Add([]byte{0xff, 0xff, 0xff, 0x7f}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
}

func TestReassemblerDoesNotGrowWithStream(t *testing.T) {
	var r Reassembler
	one := stream(t, 3)
	for i := 0; i < 1000; i++ {
		// Half frames keep a tail pending across every Add.
		_ = r.Add(one[:len(one)/2])
		_ = r.Add(one[len(one)/2:])
		if _, ok, err := r.Next(); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if cap(r.buf) > 4*len(one) {
		t.Fatalf("buffer grew to %d", cap(r.buf))
	}
}

func FuzzReassembler(f *testing.F) {
	f.Add(stream(f, 1, 2, 3), uint8(5))
	f.Add([]byte{0x10, 0, 0, 0}, uint8(1))
	f.Add(append(stream(f, 1), 0xff, 0xff, 0xff, 0xff), uint8(3))
	f.Fuzz(func(t *testing.T, s []byte, step uint8) {
		if step == 0 {
			step = 1
		}
		// Whatever the chunking, the frames out are the frames Split finds
		// in the whole stream, in order, and each parses.
		var want [][]byte
		for rest := s; ; {
			n, err := FrameLen(rest)
			if err != nil || n == 0 || n > len(rest) {
				break
			}
			want = append(want, rest[:n])
			rest = rest[n:]
		}
		var r Reassembler
		var got [][]byte
	feed:
		for rest := s; len(rest) > 0; {
			n := min(int(step), len(rest))
			if r.Add(rest[:n]) != nil {
				break
			}
			rest = rest[n:]
			for {
				fr, ok, err := r.Next()
				if err != nil {
					break feed
				}
				if !ok {
					break
				}
				got = append(got, bytes.Clone(fr))
			}
		}
		if len(got) > len(want) {
			t.Fatalf("%d frames out, %d in the stream", len(got), len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
		if len(got) < len(want) {
			t.Fatalf("lost frames: %d of %d", len(got), len(want))
		}
	})
}
