package com

import "fmt"

// GUID is a COM GUID in memory layout (same as windows.GUID), so that the
// interface IDs below compile on every OS and are tested there.
type GUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

// Interface IDs (tsvirtualchannels.h; MIDL_INTERFACE strings in the
// comments).
var (
	IID_IUnknown                   = GUID{0x00000000, 0x0000, 0x0000, [8]byte{0xC0, 0, 0, 0, 0, 0, 0, 0x46}}                   // 00000000-0000-0000-C000-000000000046
	IID_IClassFactory              = GUID{0x00000001, 0x0000, 0x0000, [8]byte{0xC0, 0, 0, 0, 0, 0, 0, 0x46}}                   // 00000001-0000-0000-C000-000000000046
	IID_IWTSPlugin                 = GUID{0xA1230201, 0x1439, 0x4E62, [8]byte{0xA4, 0x14, 0x19, 0x0D, 0x0A, 0xC3, 0xD4, 0x0E}} // a1230201-1439-4e62-a414-190d0ac3d40e
	IID_IWTSListener               = GUID{0xA1230206, 0x9A39, 0x4D58, [8]byte{0x86, 0x74, 0xCD, 0xB4, 0xDF, 0xF4, 0xE7, 0x3B}} // a1230206-9a39-4d58-8674-cdb4dff4e73b
	IID_IWTSListenerCallback       = GUID{0xA1230203, 0xD6A7, 0x11D8, [8]byte{0xB9, 0xFD, 0x00, 0x0B, 0xDB, 0xD1, 0xF1, 0x98}} // a1230203-d6a7-11d8-b9fd-000bdbd1f198
	IID_IWTSVirtualChannelCallback = GUID{0xA1230204, 0xD6A7, 0x11D8, [8]byte{0xB9, 0xFD, 0x00, 0x0B, 0xDB, 0xD1, 0xF1, 0x98}} // a1230204-d6a7-11d8-b9fd-000bdbd1f198
	IID_IWTSVirtualChannelManager  = GUID{0xA1230205, 0xD6A7, 0x11D8, [8]byte{0xB9, 0xFD, 0x00, 0x0B, 0xDB, 0xD1, 0xF1, 0x98}} // a1230205-d6a7-11d8-b9fd-000bdbd1f198
	IID_IWTSVirtualChannel         = GUID{0xA1230207, 0xD6A7, 0x11D8, [8]byte{0xB9, 0xFD, 0x00, 0x0B, 0xDB, 0xD1, 0xF1, 0x98}} // a1230207-d6a7-11d8-b9fd-000bdbd1f198
)

// ParseGUID reads a GUID in registry form, braces included
// ("{D9B80669-C06A-4BD1-9CB1-3B7168C9E3A3}").
func ParseGUID(s string) (GUID, error) {
	var g GUID
	if len(s) != 38 || s[0] != '{' || s[37] != '}' || s[9] != '-' || s[14] != '-' || s[19] != '-' || s[24] != '-' {
		return g, fmt.Errorf("com: %q is not a GUID of the form {XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}", s)
	}
	hex := s[1:9] + s[10:14] + s[15:19] + s[20:24] + s[25:37]
	var b [16]byte
	for i := range b {
		hi, ok1 := unhex(hex[2*i])
		lo, ok2 := unhex(hex[2*i+1])
		if !ok1 || !ok2 {
			return g, fmt.Errorf("com: %q is not a GUID: bad hex digit", s)
		}
		b[i] = hi<<4 | lo
	}
	g.Data1 = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	g.Data2 = uint16(b[4])<<8 | uint16(b[5])
	g.Data3 = uint16(b[6])<<8 | uint16(b[7])
	copy(g.Data4[:], b[8:])
	return g, nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// String gives the registry form, upper case, braces included.
func (g GUID) String() string {
	return fmt.Sprintf("{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}", g.Data1, g.Data2, g.Data3,
		g.Data4[0], g.Data4[1], g.Data4[2], g.Data4[3], g.Data4[4], g.Data4[5], g.Data4[6], g.Data4[7])
}
