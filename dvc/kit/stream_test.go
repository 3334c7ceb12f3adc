package kit

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// lenFramer: u32 length of what follows, then that many bytes; 0xFFFFFFFF
// is a framing error.
func lenFramer(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, nil
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0xFFFFFFFF {
		return 0, errors.New("bad length")
	}
	return 4 + int(n), nil
}

func frame(s string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// FuzzStream cuts a stream of length-prefixed messages at arbitrary
// points and checks that Stream returns exactly the messages, whatever
// the cuts, against splitting the whole stream in one go; arbitrary
// bytes must give an error or messages, never a panic.
func FuzzStream(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0}, []byte{1, 5})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0x7F}, []byte{2})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		const max = 1 << 16
		s := Stream{Framer: lenFramer, Max: max}
		var got [][]byte
		var serr error
		p := stream
		for i := 0; len(p) > 0 && serr == nil; i++ {
			n := len(p)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)]))
			}
			copy(s.Space(n), p[:n])
			s.Added(n)
			p = p[n:]
			for {
				m, err := s.Next()
				if err != nil {
					serr = err
					break
				}
				if m == nil {
					break
				}
				got = append(got, append([]byte(nil), m...))
			}
		}
		var want [][]byte
		for q := stream; len(q) >= 4; {
			n := 4 + int(binary.LittleEndian.Uint32(q))
			if n > max || n < 4 || len(q) < n {
				break
			}
			want = append(want, q[:n])
			q = q[n:]
		}
		if len(got) != len(want) {
			t.Fatalf("got %d messages, want %d (err %v)", len(got), len(want), serr)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}

func TestStreamWithoutFramer(t *testing.T) {
	var s Stream
	s.Write([]byte("ab"))
	s.Write([]byte("c"))
	if m, err := s.Next(); string(m) != "abc" || err != nil {
		t.Fatalf("Next = %q, %v", m, err)
	}
	if m, _ := s.Next(); m != nil || s.Buffered() != 0 {
		t.Fatalf("Next after all = %q", m)
	}
}

func TestStreamLimits(t *testing.T) {
	s := Stream{Framer: lenFramer, Max: 8}
	s.Write(frame("0123456789"))
	if _, err := s.Next(); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("a 14-byte message under Max 8: %v", err)
	}
	s = Stream{Framer: func([]byte) (int, error) { return 0, nil }, Max: 8}
	s.Write(make([]byte, 9))
	if _, err := s.Next(); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("9 bytes with no length known under Max 8: %v", err)
	}
	s = Stream{Framer: func([]byte) (int, error) { return -1, nil }, Max: 8}
	s.Write([]byte{1})
	if _, err := s.Next(); err == nil {
		t.Fatal("a negative length was accepted")
	}
}

func reframed(t *testing.T, maxMsg int) (dvc.Handler, *rec, *stubChan) {
	var r *rec
	l := Reframe(dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		r = newRec(t)
		return r, nil
	}), lenFramer, maxMsg)
	ch := &stubChan{name: "x"}
	h, err := l.Accept(ch)
	if err != nil {
		t.Fatal(err)
	}
	return h, r, ch
}

func TestReframeMergedAndSplit(t *testing.T) {
	h, r, _ := reframed(t, 1<<10)
	stream := bytes.Join([][]byte{frame("a"), frame(""), frame("hello"), frame(strings.Repeat("z", 600)), frame("end")}, nil)
	// Pieces that cut frames anywhere, including one that holds two whole
	// frames and the start of a third, and one that is exactly a frame.
	for _, cut := range []int{3, 10, 1, 200, 400, len(stream)} {
		cut = min(cut, len(stream))
		piece := append([]byte(nil), stream[:cut]...)
		h.Received(piece)
		for i := range piece {
			piece[i] = 0xEE // the carrier's buffer is reused
		}
		stream = stream[cut:]
		if len(stream) == 0 {
			break
		}
	}
	h.Received(frame("x"))
	r.mu.Lock()
	got := fmt.Sprintf("%q", r.got)
	r.mu.Unlock()
	want := fmt.Sprintf("%q", []string{string(frame("a")), string(frame("")), string(frame("hello")), string(frame(strings.Repeat("z", 600))), string(frame("end")), string(frame("x"))})
	if got != want {
		t.Fatalf("got %s", got)
	}
}

func TestReframeErrors(t *testing.T) {
	h, r, ch := reframed(t, 1<<10)
	h.Received(frame("ok"))
	h.Received([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	h.Received(frame("after"))
	h.Closed(nil)
	got, closes, err := r.state()
	if got != "[\x02\x00\x00\x00ok]" || closes != 1 || err == nil || !strings.Contains(err.Error(), "bad length") {
		t.Fatalf("got %q, %d closes, %v", got, closes, err)
	}
	if ch.closes.Load() != 1 {
		t.Fatal("a framing error did not close the channel")
	}

	h, r, _ = reframed(t, 16)
	h.Received(frame(strings.Repeat("x", 20)))
	h.Closed(nil)
	if _, closes, err := r.state(); closes != 1 || !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("%d closes, %v", closes, err)
	}

	h, r, _ = reframed(t, 1<<10)
	h.Received(frame("partial")[:5])
	h.Closed(nil)
	if _, closes, err := r.state(); closes != 1 || err == nil {
		t.Fatalf("close inside a message: %d closes, %v", closes, err)
	}
}
