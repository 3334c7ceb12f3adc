package tunnel

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// heldMemoryForTest is the memory a stream holds for what it received:
// the capacity of every buffer in its queue and the queue's own entries.
func (s *Stream) heldMemoryForTest() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := cap(s.rq) * int(unsafe.Sizeof(chunk{}))
	for _, c := range s.rq {
		if c.buf != nil {
			n += cap(*c.buf)
		} else {
			n += cap(c.b)
		}
	}
	return n
}

// TestHeldMemory: a peer that fills the window with DATA of any size
// makes a stream hold at most about twice the window in memory, not a
// buffer or an allocation per message.
func TestHeldMemory(t *testing.T) {
	const window = DefaultWindow
	const bound = 2*window + 64<<10
	for _, size := range []int{1, 100, 4095, 4096, 4097, DefaultMaxData, wire.MaxData} {
		st := newStream(&nullChannel{}, nil, nil, window, 1000, DefaultMaxData, DefaultWriteTimeout, nil)
		payload := make([]byte, size)
		for held := 0; held+size <= window; held += size {
			if err := st.deliver(wire.Data{Payload: payload}); err != nil {
				t.Fatal(err)
			}
		}
		got := st.heldMemoryForTest()
		t.Logf("DATA of %d bytes: %d bytes held in %d bytes of memory", size, st.bufferedForTest(), got)
		if got > bound {
			t.Errorf("DATA of %d bytes up to the window of %d: the stream holds %d bytes of memory, want at most %d", size, window, got, bound)
		}
		st.Close()
	}
}

// TestHeldBytesInOrder: payloads of every size, read back in reads of
// every size, come out as they went in.
func TestHeldBytesInOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	const window = 1 << 20
	st := newStream(&nullChannel{}, nil, nil, window, 1000, DefaultMaxData, DefaultWriteTimeout, nil)
	var sent, got bytes.Buffer
	buf := make([]byte, 70000)
	for range 2000 {
		p := make([]byte, []int{1, 7, 4096, 5000, 20000, wire.MaxData}[r.IntN(6)])
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		st.mu.Lock()
		held := st.held
		st.mu.Unlock()
		if held+len(p) > window {
			n, err := st.Read(buf[:1+r.IntN(len(buf)-1)])
			if err != nil {
				t.Fatal(err)
			}
			got.Write(buf[:n])
			continue
		}
		if err := st.deliver(wire.Data{Payload: p}); err != nil {
			t.Fatal(err)
		}
		sent.Write(p)
	}
	for st.bufferedForTest() > 0 {
		n, err := st.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		got.Write(buf[:n])
	}
	if !bytes.Equal(sent.Bytes(), got.Bytes()) {
		t.Fatalf("read %d bytes back, not the %d sent", got.Len(), sent.Len())
	}
}
