package com

import (
	"encoding/binary"
	"testing"
)

func TestParseGUID(t *testing.T) {
	g, err := ParseGUID("{a1230201-1439-4e62-a414-190d0ac3d40e}")
	if err != nil || g != IID_IWTSPlugin {
		t.Fatalf("ParseGUID = %v, %v; want IID_IWTSPlugin", g, err)
	}
	if s := g.String(); s != "{A1230201-1439-4E62-A414-190D0AC3D40E}" {
		t.Errorf("String = %s", s)
	}
	// In memory a GUID is Data1..3 little-endian, then Data4's bytes: the
	// layout CoCreateInstance reads.
	want := []byte{0x01, 0x02, 0x23, 0xA1, 0x39, 0x14, 0x62, 0x4E, 0xA4, 0x14, 0x19, 0x0D, 0x0A, 0xC3, 0xD4, 0x0E}
	var got []byte
	got = binary.LittleEndian.AppendUint32(got, g.Data1)
	got = binary.LittleEndian.AppendUint16(got, g.Data2)
	got = binary.LittleEndian.AppendUint16(got, g.Data3)
	got = append(got, g.Data4[:]...)
	if string(got) != string(want) {
		t.Errorf("bytes % x, want % x", got, want)
	}
	for _, bad := range []string{"", "{a1230201-1439-4e62-a414-190d0ac3d40e", "{a1230201-1439-4e62-a414-190d0ac3d40g}", "(a1230201-1439-4e62-a414-190d0ac3d40e)", "{a12302011-439-4e62-a414-190d0ac3d40e}"} {
		if _, err := ParseGUID(bad); err == nil {
			t.Errorf("ParseGUID(%q) accepted", bad)
		}
	}
}

func FuzzParseGUID(f *testing.F) {
	f.Add("{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGUID(s)
		if err != nil {
			return
		}
		g2, err := ParseGUID(g.String())
		if err != nil || g2 != g {
			t.Fatalf("round trip of %q: %v %v", s, g2, err)
		}
	})
}
