package session

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/rdpdvc/rdpdvc/drdynvc"
)

// The section 4.3 sequence: DATA_FIRST announcing 3195 bytes with 1596 of
// them, DATA with 1598, DATA with 1: one message, and the reservation
// returned.
func TestReassemblySpecSequence(t *testing.T) {
	b := &budget{limit: 1 << 20}
	r := reassembly{b: b}
	msg := bytes.Repeat([]byte{0x71}, 3195)
	if m, done, err := r.first(drdynvc.DataFirst{ChannelID: 3, Length: 3195, Data: msg[:1596]}); m != nil || done || err != nil {
		t.Fatalf("first: %d bytes, %v", len(m), err)
	}
	if got := b.used.Load(); got != 3195 {
		t.Fatalf("reserved %d, want the announced 3195", got)
	}
	if m, done, err := r.data(3, msg[1596:3194]); m != nil || done || err != nil {
		t.Fatalf("middle: %d bytes, %v", len(m), err)
	}
	m, done, err := r.data(3, msg[3194:])
	if err != nil || !done || !bytes.Equal(m, msg) {
		t.Fatalf("last: %d bytes, %v", len(m), err)
	}
	if got := b.used.Load(); got != 0 {
		t.Fatalf("%d bytes still reserved after the message completed", got)
	}
	// Then a DATA alone is a whole message (3.1.5.2.2), copied.
	in := []byte{1, 2, 3}
	m, done, err = r.data(3, in)
	in[0] = 9
	if err != nil || !done || !bytes.Equal(m, []byte{1, 2, 3}) {
		t.Fatalf("single DATA: % x, %v", m, err)
	}
}

// Out-of-sequence and overrunning data are protocol errors (3.1.5.2.4).
func TestReassemblyErrors(t *testing.T) {
	r := reassembly{}
	if _, _, err := r.first(drdynvc.DataFirst{ChannelID: 1, Length: 10, Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	var pe *ProtocolError
	if _, _, err := r.first(drdynvc.DataFirst{ChannelID: 1, Length: 10, Data: []byte{1}}); !errors.As(err, &pe) || pe.PDU != "DYNVC_DATA_FIRST" {
		t.Fatalf("DATA_FIRST twice: %v", err)
	}
	if _, _, err := r.data(1, make([]byte, 10)); !errors.As(err, &pe) || pe.PDU != "DYNVC_DATA" {
		t.Fatalf("overrun: %v", err)
	}
	r2 := reassembly{}
	if _, _, err := r2.first(drdynvc.DataFirst{ChannelID: 1, Length: 1, Data: []byte{1, 2}}); !errors.As(err, &pe) {
		t.Fatalf("data over Length: %v", err)
	}
}

// Beyond the budget a buffer starts small and grows with the data; a
// release mid-message gives the reservation back.
func TestReassemblyBudgetAndRelease(t *testing.T) {
	b := &budget{limit: 100}
	big := reassembly{b: b}
	if _, _, err := big.first(drdynvc.DataFirst{ChannelID: 1, Length: 60 << 20, Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if c := cap(big.buf); c > firstAlloc || b.used.Load() != 0 {
		t.Fatalf("announcing 60 MiB over the budget allocated %d bytes, reserved %d", c, b.used.Load())
	}
	small := reassembly{b: b}
	if _, _, err := small.first(drdynvc.DataFirst{ChannelID: 2, Length: 90, Data: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	if cap(small.buf) != 90 || b.used.Load() != 90 {
		t.Fatalf("within the budget: cap %d, reserved %d; want 90, 90", cap(small.buf), b.used.Load())
	}
	small.release()
	small.release()
	if b.used.Load() != 0 {
		t.Fatalf("release left %d bytes reserved", b.used.Load())
	}
}

// FuzzReassembly feeds one channel's reassembler a sequence of DATA_FIRST
// and DATA blocks and checks it against a model: every message it returns
// is exactly the bytes given since the DATA_FIRST (or the one DATA), it
// errs exactly when the model says the sequence is out of order or
// overruns, and the budget is whole again after release.
//
// Input: records of a kind byte (even: DATA_FIRST, odd: DATA), for
// DATA_FIRST a 2-byte Length, a 1-byte data length, then the data.
func FuzzReassembly(f *testing.F) {
	f.Add([]byte{0, 0x7b, 0x0c, 4, 1, 2, 3, 4, 1, 3, 5, 6, 7})
	f.Add([]byte{0, 10, 0, 2, 1, 2, 0, 10, 0, 1, 1})
	f.Add([]byte{1, 3, 1, 2, 3, 0, 3, 0, 3, 1, 2, 3})
	f.Add([]byte{0, 4, 0, 1, 1, 1, 5, 1, 2, 3, 4, 5})
	f.Fuzz(func(t *testing.T, in []byte) {
		b := &budget{limit: 300}
		r := reassembly{b: b}
		var model []byte // nil: no message in progress
		var want uint32
		for len(in) > 0 {
			kind := in[0]
			in = in[1:]
			var length uint32
			if kind%2 == 0 {
				if len(in) < 2 {
					break
				}
				length = uint32(binary.LittleEndian.Uint16(in))
				in = in[2:]
			}
			if len(in) < 1 {
				break
			}
			n := min(int(in[0]), len(in)-1)
			d := in[1 : 1+n]
			in = in[1+n:]
			var got []byte
			var done bool
			var err error
			if kind%2 == 0 {
				got, done, err = r.first(drdynvc.DataFirst{ChannelID: 1, Length: length, Data: d})
				switch {
				case model != nil || uint32(len(d)) > length:
					if err == nil {
						t.Fatalf("DATA_FIRST out of sequence or over its Length accepted")
					}
					return
				case uint32(len(d)) == length:
					if err != nil || !done || !bytes.Equal(got, d) {
						t.Fatalf("whole DATA_FIRST: % x, %v", got, err)
					}
				default:
					if err != nil || done || got != nil {
						t.Fatalf("partial DATA_FIRST returned % x, %v", got, err)
					}
					model, want = append([]byte{}, d...), length
				}
				continue
			}
			got, done, err = r.data(1, d)
			switch {
			case model == nil:
				if err != nil || !done || !bytes.Equal(got, d) {
					t.Fatalf("single DATA: % x, %v", got, err)
				}
			case uint32(len(model)+len(d)) > want:
				if err == nil {
					t.Fatal("overrun accepted")
				}
				return
			default:
				model = append(model, d...)
				if uint32(len(model)) == want {
					if err != nil || !done || !bytes.Equal(got, model) {
						t.Fatalf("completed message % x, %v; want % x", got, err, model)
					}
					model = nil
				} else if err != nil || done || got != nil {
					t.Fatalf("incomplete message returned % x, %v", got, err)
				}
			}
		}
		r.release()
		if u := b.used.Load(); u != 0 {
			t.Fatalf("%d bytes of budget left reserved", u)
		}
	})
}
