package drdynvc

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func addGoldenSeeds(f *testing.F, from Sender) {
	for _, g := range goldens {
		if g.from == from {
			f.Add(g.wire)
		}
	}
	f.Add([]byte{})
	f.Add([]byte{0x13})
	f.Add([]byte{0x2f, 0xff})
}

// checkParse is the property both directions share: no panic; errors are
// *Error; a decoded PDU re-encodes to Len() bytes that decode to the
// same value and re-encode to the same bytes.
func checkParse(t *testing.T, b []byte, from Sender) {
	p, err := Parse(b, from)
	if err != nil {
		var pe *Error
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is not a *Error", err)
		}
		if p != nil {
			t.Fatalf("PDU %v with error", p)
		}
		return
	}
	enc := p.Append(nil)
	if len(enc) != p.Len() {
		t.Fatalf("%v: Append wrote %d bytes, Len says %d", p, len(enc), p.Len())
	}
	if len(enc) > len(b) {
		t.Fatalf("%v: re-encoding (%d bytes) longer than the input (%d)", p, len(enc), len(b))
	}
	p2, err := Parse(enc, from)
	if err != nil {
		t.Fatalf("%v: re-encoded % x does not parse: %v", p, enc, err)
	}
	if !reflect.DeepEqual(p, p2) {
		t.Fatalf("round trip changed the value:\n %#v\n %#v", p, p2)
	}
	if enc2 := p2.Append(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding not stable: % x vs % x", enc, enc2)
	}
}

func FuzzParseFromServer(f *testing.F) {
	addGoldenSeeds(f, FromServer)
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, b, FromServer) })
}

func FuzzParseFromClient(f *testing.F) {
	addGoldenSeeds(f, FromClient)
	f.Fuzz(func(t *testing.T, b []byte) { checkParse(t, b, FromClient) })
}

// reassemble is the tiny receiver the round-trip tests use: DATA alone is
// a message, DATA_FIRST starts one, DATA continues it until Length.
type reassembler struct {
	buf    []byte
	length uint32
	active bool
}

func (r *reassembler) push(pdu []byte) (msg []byte, done bool, err error) {
	p, err := Parse(pdu, FromServer)
	if err != nil {
		return nil, false, err
	}
	switch p := p.(type) {
	case DataFirst:
		if r.active {
			return nil, false, errors.New("DATA_FIRST mid-message")
		}
		r.buf = append(make([]byte, 0, p.Length), p.Data...)
		r.length, r.active = p.Length, true
	case Data:
		if !r.active {
			return append([]byte{}, p.Data...), true, nil
		}
		if len(r.buf)+len(p.Data) > int(r.length) {
			return nil, false, errors.New("DATA past Length")
		}
		r.buf = append(r.buf, p.Data...)
	default:
		return nil, false, errors.New("not a data PDU")
	}
	if uint32(len(r.buf)) == r.length {
		r.active = false
		return r.buf, true, nil
	}
	return nil, false, nil
}

// checkMessage sends msg through AppendMessage and reassembles it,
// checking the shape of the PDU sequence on the way.
func checkMessage(t testing.TB, channelID uint32, msg []byte, prefix []byte) {
	t.Helper()
	var r reassembler
	var got [][]byte
	var sizes []int
	buf, err := AppendMessage(append([]byte{}, prefix...), channelID, msg, func(buf []byte) error {
		if !bytes.Equal(buf[:len(prefix)], prefix) {
			t.Fatalf("prefix not kept: % x", buf[:len(prefix)])
		}
		pdu := buf[len(prefix):]
		sizes = append(sizes, len(pdu))
		if len(pdu) > MaxPDU {
			t.Fatalf("PDU of %d bytes", len(pdu))
		}
		m, done, err := r.push(pdu)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			got = append(got, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Fatalf("id %d, %d bytes: %d messages back", channelID, len(msg), len(got))
	}
	if len(sizes) != MessagePDUs(channelID, len(msg)) {
		t.Fatalf("id %d, %d bytes: %d PDUs, MessagePDUs says %d", channelID, len(msg), len(sizes), MessagePDUs(channelID, len(msg)))
	}
	single := DataHeaderLen(channelID)+len(msg) <= MaxPDU
	if single != (len(sizes) == 1 && sizes[0] == DataHeaderLen(channelID)+len(msg)) {
		t.Fatalf("id %d, %d bytes: single-PDU rule broken: %v", channelID, len(msg), sizes)
	}
	for i, n := range sizes[:len(sizes)-1] {
		if n != MaxPDU {
			t.Fatalf("id %d, %d bytes: PDU %d of %d is %d bytes, want %d", channelID, len(msg), i, len(sizes), n, MaxPDU)
		}
	}
	if cap(buf) < len(prefix)+MaxPDU {
		t.Fatalf("returned buffer cap %d", cap(buf))
	}
}

func FuzzMessageRoundTrip(f *testing.F) {
	f.Add(uint32(3), 3195, byte(0), uint8(0))
	f.Add(uint32(0x1234), 1597, byte(1), uint8(8))
	f.Add(uint32(0x12345678), 70000, byte(2), uint8(1))
	f.Fuzz(func(t *testing.T, id uint32, n int, fill byte, prefix uint8) {
		if n < 0 || n > 1<<20 {
			return
		}
		msg := bytes.Repeat([]byte{fill, fill + 1, fill + 2}, n/3+1)[:n]
		checkMessage(t, id, msg, bytes.Repeat([]byte{0xEE}, int(prefix%16)))
	})
}
