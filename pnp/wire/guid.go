package wire

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is the MS-DTYP 2.3.4 GUID. On the wire (MS-DTYP 2.3.4.2) Data1,
// Data2 and Data3 are little-endian and Data4 is eight bytes in order, so
// the bytes 46 9c 4a 2b 8d 65 f2 4a a9 1d 1e 69 18 61 70 6c are the GUID
// {2B4A9C46-658D-4AF2-A91D-1E691861706C}.
//
// GUID marshals to JSON (and any encoding.TextMarshaler user) as that
// braced string.
type GUID struct {
	Data1 uint32
	Data2 uint16
	Data3 uint16
	Data4 [8]byte
}

func guidFromWire(b []byte) GUID {
	var g GUID
	g.Data1 = binary.LittleEndian.Uint32(b[0:])
	g.Data2 = binary.LittleEndian.Uint16(b[4:])
	g.Data3 = binary.LittleEndian.Uint16(b[6:])
	copy(g.Data4[:], b[8:16])
	return g
}

// AppendWire appends g in the MS-DTYP 2.3.4.2 wire layout (16 bytes).
func (g GUID) AppendWire(b []byte) []byte {
	b = appendU32(b, g.Data1)
	b = appendU16(b, g.Data2)
	b = appendU16(b, g.Data3)
	return append(b, g.Data4[:]...)
}

// String formats g as Windows does (StringFromGUID2):
// "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}", upper case.
func (g GUID) String() string {
	return fmt.Sprintf("{%08X-%04X-%04X-%02X%02X-%02X%02X%02X%02X%02X%02X}",
		g.Data1, g.Data2, g.Data3, g.Data4[0], g.Data4[1],
		g.Data4[2], g.Data4[3], g.Data4[4], g.Data4[5], g.Data4[6], g.Data4[7])
}

// ParseGUID parses "{xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}", with or
// without the braces, in either case.
func ParseGUID(s string) (GUID, error) {
	t := s
	if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
		t = t[1 : len(t)-1]
	}
	if len(t) != 36 || t[8] != '-' || t[13] != '-' || t[18] != '-' || t[23] != '-' {
		return GUID{}, fmt.Errorf("pnp/wire: malformed GUID %q", s)
	}
	var raw [16]byte
	hexdigits := t[0:8] + t[9:13] + t[14:18] + t[19:23] + t[24:36]
	if _, err := hex.Decode(raw[:], []byte(hexdigits)); err != nil {
		return GUID{}, fmt.Errorf("pnp/wire: malformed GUID %q", s)
	}
	// raw is the text order, which is big-endian for Data1..Data3.
	var g GUID
	g.Data1 = binary.BigEndian.Uint32(raw[0:])
	g.Data2 = binary.BigEndian.Uint16(raw[4:])
	g.Data3 = binary.BigEndian.Uint16(raw[6:])
	copy(g.Data4[:], raw[8:])
	return g, nil
}

// MustParseGUID is ParseGUID for constants in programs and tests; it
// panics on a malformed string.
func MustParseGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// MarshalText implements encoding.TextMarshaler.
func (g GUID) MarshalText() ([]byte, error) { return []byte(g.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (g *GUID) UnmarshalText(b []byte) error {
	v, err := ParseGUID(string(b))
	if err != nil {
		return err
	}
	*g = v
	return nil
}
