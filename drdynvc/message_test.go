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
