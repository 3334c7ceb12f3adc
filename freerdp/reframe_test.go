package freerdp

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

func reframed(t *testing.T, maxMsg int) (*Instance, *recorder, *fakeNative) {
	h := NewHost()
	var rec *recorder
	l := Reframe(dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		rec = &recorder{t: t, ch: ch}
		return rec, nil
	}), lenFramer, maxMsg)
	h.Listen("x", l)
	n := &fakeNative{}
	in, err := h.NewChannel("x", 1, n)
	if err != nil {
		t.Fatal(err)
	}
	n.in = in
	t.Cleanup(h.wg.Wait)
	return in, rec, n
}

func TestReframeMergedAndSplit(t *testing.T) {
	in, rec, _ := reframed(t, 1<<10)
	stream := bytes.Join([][]byte{frame("a"), frame(""), frame("hello"), frame(strings.Repeat("z", 600))}, nil)
	// Deliver in pieces that cut frames anywhere, including a piece that
	// holds two whole frames and the start of a third.
	for _, cut := range []int{3, 10, 1, 200, 300, len(stream)} {
		cut = min(cut, len(stream))
		piece := append([]byte(nil), stream[:cut]...)
		in.Data(piece)
		for i := range piece {
			piece[i] = 0xEE // the glue's buffer is reused
		}
		stream = stream[cut:]
		if len(stream) == 0 {
			break
		}
	}
	got, _, _ := rec.state()
	want := []string{"\x01\x00\x00\x00a", "\x00\x00\x00\x00", "\x05\x00\x00\x00hello", string(frame(strings.Repeat("z", 600)))}
	if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", want) {
		t.Fatalf("got %q", got)
	}
}

func TestReframeErrors(t *testing.T) {
	in, rec, n := reframed(t, 1<<10)
	in.Data(frame("ok"))
	in.Data([]byte{0xFF, 0xFF, 0xFF, 0xFF})
	in.Data(frame("after"))
	in.host.wg.Wait()
	got, closes, err := rec.state()
	if len(got) != 1 || closes != 1 || err == nil || !strings.Contains(err.Error(), "bad length") {
		t.Fatalf("got %q, %d closes, %v", got, closes, err)
	}
	if !n.closed {
		t.Fatal("a framing error did not close the channel")
	}

	in, rec, _ = reframed(t, 16)
	in.Data(frame(strings.Repeat("x", 20)))
	in.host.wg.Wait()
	if _, closes, err := rec.state(); closes != 1 || !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("%d closes, %v", closes, err)
	}

	in, rec, _ = reframed(t, 1<<10)
	in.Data(frame("partial")[:5])
	in.Gone(nil)
	if _, closes, err := rec.state(); closes != 1 || err == nil {
		t.Fatalf("close inside a message: %d closes, %v", closes, err)
	}
}
