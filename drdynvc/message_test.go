package drdynvc

import (
	"bytes"
	"errors"
	"testing"
)

// The section 4.3 sequence: 3195 bytes on channel 3 are DATA_FIRST with
// 1596 bytes, DATA with 1598, DATA with 1.
func TestAppendMessageSpecExample(t *testing.T) {
	msg := q(3195)
	var pdus [][]byte
	_, err := AppendMessage(nil, 3, msg, func(b []byte) error {
		pdus = append(pdus, append([]byte{}, b...))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Our DATA has Sp 0 where the example has 1 (Sp is unused).
	want := [][]byte{
		cat([]byte{0x24, 0x03, 0x7b, 0x0c}, q(1596)),
		cat([]byte{0x30, 0x03}, q(1598)),
		{0x30, 0x03, 0x71},
	}
	if len(pdus) != len(want) {
		t.Fatalf("%d PDUs", len(pdus))
	}
	for i := range want {
		if !bytes.Equal(pdus[i], want[i]) {
			t.Fatalf("PDU %d: % x... (%d bytes), want % x... (%d bytes)", i, pdus[i][:4], len(pdus[i]), want[i][:4], len(want[i]))
		}
	}
}

func TestAppendMessageThresholds(t *testing.T) {
	for _, id := range []uint32{0, 3, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff} {
		h := DataHeaderLen(id)
		for _, n := range []int{0, 1, 1590, MaxPDU - h - 1, MaxPDU - h, MaxPDU - h + 1, 1600, 3195, 3200, 65535, 65536, 1 << 20} {
			checkMessage(t, id, bytes.Repeat([]byte{0x5a}, n), nil)
			checkMessage(t, id, bytes.Repeat([]byte{0x5a}, n), []byte{1, 2, 3, 4, 5, 6, 7, 8})
		}
	}
}

func TestSizeHelpers(t *testing.T) {
	for _, tt := range []struct {
		id, length uint32
		data, df   int
	}{
		{3, 3195, 2, 4},
		{0x100, 0xff, 3, 4},
		{0x10000, 0x10000, 5, 9},
	} {
		if got := DataHeaderLen(tt.id); got != tt.data {
			t.Errorf("DataHeaderLen(%#x) = %d, want %d", tt.id, got, tt.data)
		}
		if got := DataFirstHeaderLen(tt.id, tt.length); got != tt.df {
			t.Errorf("DataFirstHeaderLen(%#x, %#x) = %d, want %d", tt.id, tt.length, got, tt.df)
		}
	}
	if !FitsInData(3, 1598) || FitsInData(3, 1599) || !FitsInData(0x10000, 1595) || FitsInData(0x10000, 1596) {
		t.Fatal("FitsInData thresholds wrong")
	}
}

func TestAppendMessageEmitError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	_, err := AppendMessage(nil, 3, q(5000), func([]byte) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	_, err = AppendMessage(nil, 3, nil, func([]byte) error { return stop })
	if err != stop {
		t.Fatalf("single PDU: err %v", err)
	}
}

func TestAppendMessageReusesBuffer(t *testing.T) {
	buf := make([]byte, 8, 8+MaxPDU)
	msg := q(10000)
	allocs := testing.AllocsPerRun(20, func() {
		var err error
		buf, err = AppendMessage(buf[:8], 3, msg, func([]byte) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per message", allocs)
	}
}

func TestParseDataNoAllocs(t *testing.T) {
	data := cat([]byte{0x34, 0x03}, q(1598))
	first := cat([]byte{0x24, 0x03, 0x7b, 0x0c}, q(1596))
	allocs := testing.AllocsPerRun(100, func() {
		d, err := ParseData(data)
		if err != nil || len(d.Data) != 1598 {
			t.Fatal(err)
		}
		df, err := ParseDataFirst(first)
		if err != nil || len(df.Data) != 1596 {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per ParseData+ParseDataFirst", allocs)
	}
}

// SplitMessage follows the sender's rule of MS-RDPEDYC 2.2.3: up to 1,590
// bytes in one DYNVC_DATA, more as DYNVC_DATA_FIRST filled to 1,600 bytes
// and DYNVC_DATA, whatever the ChannelId width.
func TestSplitMessageThresholds(t *testing.T) {
	if MaxSingleData != 1590 || !SendsInOneData(1590) || SendsInOneData(1591) {
		t.Fatal("MaxSingleData is not the 1,590 bytes of 2.2.3.2")
	}
	for _, id := range []uint32{0, 3, 0xff, 0x100, 0xffff, 0x10000, 0xffffffff} {
		for _, n := range []int{0, 1, 1589, 1590, 1591, 1595, 1598, 1599, 1600, 3195, 3200, 65536, 1 << 20} {
			msg := make([]byte, n)
			for i := range msg {
				msg[i] = byte(i * 7)
			}
			var r reassembler
			var got [][]byte
			var sizes []int
			hdr := make([]byte, 0, 9)
			err := SplitMessage(hdr, id, msg, func(head, body []byte) error {
				pdu := append(append([]byte(nil), head...), body...)
				sizes = append(sizes, len(pdu))
				if len(pdu) > MaxPDU {
					t.Fatalf("id %#x, %d bytes: a PDU of %d bytes", id, n, len(pdu))
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
				t.Fatalf("id %#x, %d bytes: %d messages back", id, n, len(got))
			}
			if single := len(sizes) == 1 && sizes[0] == DataHeaderLen(id)+n; single != (n <= 1590) {
				t.Fatalf("id %#x, %d bytes: PDUs %v, want one DYNVC_DATA exactly when n <= 1590", id, n, sizes)
			}
			for i, s := range sizes[:len(sizes)-1] {
				if s != MaxPDU {
					t.Fatalf("id %#x, %d bytes: PDU %d is %d bytes, want %d", id, n, i, s, MaxPDU)
				}
			}
		}
	}
}

// The spec's 4.3 sequence comes out of SplitMessage too (with Sp 0).
func TestSplitMessageSpecExample(t *testing.T) {
	var pdus [][]byte
	err := SplitMessage(nil, 3, q(3195), func(head, body []byte) error {
		pdus = append(pdus, cat(head, body))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := [][]byte{cat([]byte{0x24, 0x03, 0x7b, 0x0c}, q(1596)), cat([]byte{0x30, 0x03}, q(1598)), {0x30, 0x03, 0x71}}
	if len(pdus) != len(want) {
		t.Fatalf("%d PDUs", len(pdus))
	}
	for i := range want {
		if !bytes.Equal(pdus[i], want[i]) {
			t.Fatalf("PDU %d differs", i)
		}
	}
}

func TestSplitMessageEmitError(t *testing.T) {
	stop := errors.New("stop")
	calls := 0
	err := SplitMessage(nil, 3, q(5000), func(_, _ []byte) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if err != stop || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
}
