package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"
)

var additionCapture = golden[3].wire // 4.2(1)

func ptr[T any](v T) *T { return &v }

// wantErr checks that err wraps kind and names field.
func wantErr(t *testing.T, err error, kind error, field string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a *Error wrapping %v on %s", err, kind, field)
	}
	if !errors.Is(err, kind) || e.Field != field {
		t.Fatalf("got %v (field %q), want %v on %q", err, e.Field, kind, field)
	}
}

// patched returns a copy of b with the little-endian dword at off set to v.
func patched(b []byte, off int, v uint32) []byte {
	c := append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(c[off:], v)
	return c
}

const dataSizeOff = 16 // in the 4.2 capture: header 8, DeviceCount 4, ClientDeviceID 4

func TestDataSizeWholeStructureReading(t *testing.T) {
	// 0x5E = 94, the structure's full size, as the prose of 2.2.1.3.1.1
	// reads: accepted, same value.
	got, err := ParseClientDeviceAddition(patched(additionCapture, dataSizeOff, 94))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, golden[3].want) {
		t.Fatalf("got %#v", got)
	}
}

func TestDataSizeDisagrees(t *testing.T) {
	for _, ds := range []uint32{0, 8, 23, 24, 85, 87, 93, 95, 0xFFFFFFFF} {
		_, err := ParseClientDeviceAddition(patched(additionCapture, dataSizeOff, ds))
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("DataSize %d: got %v, want ErrInvalid", ds, err)
		}
	}
	// Too short for the mandatory fields, or past the message: named
	// DataSize. Cutting into the fields: the field that runs past it.
	_, err := ParseClientDeviceAddition(patched(additionCapture, dataSizeOff, 0))
	wantErr(t, err, ErrInvalid, "DataSize")
	_, err = ParseClientDeviceAddition(patched(additionCapture, dataSizeOff, 95))
	wantErr(t, err, ErrInvalid, "DataSize")
	_, err = ParseClientDeviceAddition(patched(additionCapture, dataSizeOff, 85))
	wantErr(t, err, ErrInvalid, "CustomFlag")
}

// Every shape of the optional tail, under both readings of DataSize.
func TestOptionalTail(t *testing.T) {
	base := golden[3].want.(ClientDeviceAddition).Devices[0]
	container := MustParseGUID("{01234567-89AB-CDEF-0123-456789ABCDEF}")
	shapes := map[string]PNPDeviceDescription{}
	shapes["none"] = base
	d := base
	d.ContainerID = &container
	shapes["ContainerId"] = d
	d = base
	d.DeviceCaps = ptr(DevCapsRemovable | DevCapsSurpriseRemovalOK)
	shapes["DeviceCaps"] = d
	d = base
	d.ContainerID = &container
	d.DeviceCaps = ptr(DevCapsEjectSupported)
	shapes["both"] = d

	for name, desc := range shapes {
		// A second device with ClientDeviceID 4 right behind: under the
		// wrong reading its first dword looks like cbDeviceCaps.
		next := PNPDeviceDescription{ClientDeviceID: 4, CustomFlag: CustomFlagOptional}
		m := ClientDeviceAddition{Devices: []PNPDeviceDescription{desc, next}}
		enc := m.Append(nil)
		if len(enc) != m.Len() {
			t.Fatalf("%s: Len %d, Append %d", name, m.Len(), len(enc))
		}
		if ds := binary.LittleEndian.Uint32(enc[dataSizeOff:]); int(ds) != desc.Len()-8 {
			t.Fatalf("%s: DataSize %d, want %d", name, ds, desc.Len()-8)
		}
		got, err := ParseClientDeviceAddition(enc)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%s: got %#v, %v", name, got, err)
		}
		// The same message with DataSize counting the whole structure.
		whole := patched(enc, dataSizeOff, uint32(desc.Len()))
		whole = patched(whole, 12+desc.Len()+4, uint32(next.Len()))
		got, err = ParseClientDeviceAddition(whole)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("%s, whole-structure DataSize: got %#v, %v", name, got, err)
		}
	}
}

func TestOptionalTailBadTags(t *testing.T) {
	d := PNPDeviceDescription{ClientDeviceID: 1, ContainerID: ptr(GUID{Data1: 1}), DeviceCaps: ptr(uint32(1))}
	enc := ClientDeviceAddition{Devices: []PNPDeviceDescription{d}}.Append(nil)
	tail := 12 + descriptionMinLen // offset of cbContainerId
	_, err := ParseClientDeviceAddition(patched(enc, tail, 15))
	wantErr(t, err, ErrInvalid, "cbContainerId")
	_, err = ParseClientDeviceAddition(patched(enc, tail+20, 5))
	wantErr(t, err, ErrInvalid, "cbDeviceCaps")
	// DataSize leaving three stray bytes after CustomFlag.
	d = PNPDeviceDescription{ClientDeviceID: 1}
	enc = ClientDeviceAddition{Devices: []PNPDeviceDescription{d}}.Append(nil)
	enc = append(enc, 1, 2, 3)
	enc = patched(enc, 0, uint32(len(enc)))
	enc = patched(enc, 16, 24+3)
	_, err = ParseClientDeviceAddition(enc)
	wantErr(t, err, ErrInvalid, "cbContainerId")
}

func TestDescriptionFieldRules(t *testing.T) {
	// CustomFlagLength MUST be 4: in the capture it sits at 0x62.
	_, err := ParseClientDeviceAddition(patched(additionCapture, 0x62, 8))
	wantErr(t, err, ErrInvalid, "CustomFlagLength")
	// cbInterfaceLength not a multiple of 16.
	d := PNPDeviceDescription{ClientDeviceID: 1}
	enc := ClientDeviceAddition{Devices: []PNPDeviceDescription{d}}.Append(nil)
	enc = append(enc[:20], append([]byte{8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, enc[24:]...)...)
	enc = patched(enc, 0, uint32(len(enc)))
	enc = patched(enc, 16, 24+8)
	_, err = ParseClientDeviceAddition(enc)
	wantErr(t, err, ErrInvalid, "cbInterfaceLength")
}

// withField builds a one-device message whose field at position pos
// (0 = cbInterfaceLength .. 3 = cbDeviceDescriptionLength) holds raw.
func withField(pos int, raw []byte) []byte {
	var body []byte
	for i := 0; i < 4; i++ {
		if i == pos {
			body = appendU32(body, uint32(len(raw)))
			body = append(body, raw...)
		} else {
			body = appendU32(body, 0)
		}
	}
	body = appendU32(body, 4)
	body = appendU32(body, 0)
	msg := PNPInfoHeader{PacketID: PacketRedirectDevices}.Append(nil)
	msg = appendU32(msg, 1)
	msg = appendU32(msg, 7)
	msg = appendU32(msg, uint32(len(body)))
	msg = append(msg, body...)
	return patched(msg, 0, uint32(len(msg)))
}

func utf16le(s string) []byte { return appendUTF16(nil, s) }

func TestStrings(t *testing.T) {
	hw := func(raw []byte) ([]string, error) {
		m, err := ParseClientDeviceAddition(withField(1, raw))
		if err != nil {
			return nil, err
		}
		return m.Devices[0].HardwareIDs, nil
	}
	cases := []struct {
		name string
		raw  []byte
		want []string
		err  error
	}{
		{"two", utf16le("USB\\VID_1\x00USB\\Class_08\x00\x00"), []string{`USB\VID_1`, `USB\Class_08`}, nil},
		{"empty list", utf16le("\x00"), nil, nil},
		{"empty list, padded", utf16le("\x00\x00"), nil, nil},
		{"padded after terminator", utf16le("a\x00\x00\x00"), []string{"a"}, nil},
		{"non-BMP", utf16le("dev\U0001F600\x00\x00"), []string{"dev\U0001F600"}, nil},
		{"no double terminator", utf16le("WUDF\\LB\x00"), nil, ErrInvalid},
		{"no terminator at all", utf16le("WUDF"), nil, ErrInvalid},
		{"data after terminator", utf16le("a\x00\x00b\x00\x00"), nil, ErrInvalid},
		{"odd length", append(utf16le("a\x00\x00"), 0), nil, ErrInvalid},
		{"unpaired surrogate", []byte{0x00, 0xD8, 'x', 0, 0, 0, 0, 0}, []string{"\uFFFDx"}, nil},
	}
	for _, c := range cases {
		got, err := hw(c.raw)
		if c.err != nil {
			wantErr(t, err, c.err, "HardwareId")
			continue
		}
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: got %q, %v; want %q", c.name, got, err, c.want)
		}
	}
	// The same rules for CompatibilityID.
	_, err := ParseClientDeviceAddition(withField(2, utf16le("x\x00")))
	wantErr(t, err, ErrInvalid, "CompatibilityID")
	// DeviceDescription: no terminator, even length.
	m, err := ParseClientDeviceAddition(withField(3, utf16le("Caméra \U0001F4F7")))
	if err != nil || m.Devices[0].DeviceDescription != "Caméra \U0001F4F7" {
		t.Fatalf("got %#v, %v", m, err)
	}
	_, err = ParseClientDeviceAddition(withField(3, []byte{'a', 0, 'b'}))
	wantErr(t, err, ErrInvalid, "cbDeviceDescriptionLength")
}

func TestDeviceCount(t *testing.T) {
	two := ClientDeviceAddition{Devices: []PNPDeviceDescription{{ClientDeviceID: 1}, {ClientDeviceID: 2}}}.Append(nil)
	_, err := ParseClientDeviceAddition(patched(two, 8, 1))
	wantErr(t, err, ErrTrailingData, "")
	_, err = ParseClientDeviceAddition(patched(two, 8, 3))
	wantErr(t, err, ErrInvalid, "DeviceCount")
	m, err := ParseClientDeviceAddition(patched(patched(two[:12], 0, 12), 8, 0))
	if err != nil || m.Devices != nil {
		t.Fatalf("no devices: %#v, %v", m, err)
	}
}

func TestCeilingsDescription(t *testing.T) {
	// DeviceCount at and over MaxDevicesPerAddition.
	devs := make([]PNPDeviceDescription, MaxDevicesPerAddition)
	for i := range devs {
		devs[i].ClientDeviceID = uint32(i)
	}
	enc := ClientDeviceAddition{Devices: devs}.Append(nil)
	if m, err := ParseClientDeviceAddition(enc); err != nil || len(m.Devices) != MaxDevicesPerAddition {
		t.Fatalf("at the ceiling: %v", err)
	}
	_, err := ParseClientDeviceAddition(patched(patched(enc[:12], 0, 12), 8, MaxDevicesPerAddition+1))
	wantErr(t, err, ErrTooLarge, "DeviceCount")

	// Interface GUIDs.
	d := PNPDeviceDescription{InterfaceGUIDs: make([]GUID, MaxInterfaceGUIDs)}
	if _, err := ParseClientDeviceAddition(ClientDeviceAddition{Devices: []PNPDeviceDescription{d}}.Append(nil)); err != nil {
		t.Fatalf("MaxInterfaceGUIDs: %v", err)
	}
	d.InterfaceGUIDs = append(d.InterfaceGUIDs, GUID{})
	_, err = ParseClientDeviceAddition(ClientDeviceAddition{Devices: []PNPDeviceDescription{d}}.Append(nil))
	wantErr(t, err, ErrTooLarge, "cbInterfaceLength")

	// Strings: the byte ceilings, exactly and one UTF-16 unit over.
	for _, c := range []struct {
		pos   int
		max   int
		field string
	}{
		{1, MaxMultiszBytes, "cbHardwareIdLength"},
		{2, MaxMultiszBytes, "cbCompatIdLength"},
		{3, MaxDeviceDescriptionBytes, "cbDeviceDescriptionLength"},
	} {
		s := strings.Repeat("x", c.max/2-2) + "\x00\x00"
		if _, err := ParseClientDeviceAddition(withField(c.pos, utf16le(s))); err != nil {
			t.Fatalf("%s at the ceiling: %v", c.field, err)
		}
		_, err := ParseClientDeviceAddition(withField(c.pos, utf16le("x"+s)))
		wantErr(t, err, ErrTooLarge, c.field)
	}
}

func TestValidate(t *testing.T) {
	good := PNPDeviceDescription{ClientDeviceID: 1, HardwareIDs: []string{"a", "b"}, CompatibilityIDs: []string{"c"}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		d     PNPDeviceDescription
		kind  error
		field string
	}{
		"empty element": {PNPDeviceDescription{HardwareIDs: []string{"a", ""}}, ErrInvalid, "HardwareId"},
		"NUL":           {PNPDeviceDescription{CompatibilityIDs: []string{"a\x00b"}}, ErrInvalid, "CompatibilityID"},
		"GUIDs":         {PNPDeviceDescription{InterfaceGUIDs: make([]GUID, MaxInterfaceGUIDs+1)}, ErrTooLarge, "InterfaceGUIDArray"},
		"multisz size":  {PNPDeviceDescription{HardwareIDs: []string{strings.Repeat("x", MaxMultiszBytes/2)}}, ErrTooLarge, "HardwareId"},
		"description":   {PNPDeviceDescription{DeviceDescription: strings.Repeat("x", MaxDeviceDescriptionBytes/2+1)}, ErrTooLarge, "DeviceDescription"},
	} {
		t.Run(name, func(t *testing.T) { wantErr(t, c.d.Validate(), c.kind, c.field) })
	}
	dup := ClientDeviceAddition{Devices: []PNPDeviceDescription{{ClientDeviceID: 3}, {ClientDeviceID: 3}}}
	wantErr(t, dup.Validate(), ErrInvalid, "ClientDeviceID")
	wantErr(t, ClientDeviceAddition{Devices: make([]PNPDeviceDescription, MaxDevicesPerAddition+1)}.Validate(), ErrTooLarge, "DeviceCount")
	if !(PNPDeviceDescription{CustomFlag: CustomFlagOptional}).Optional() || (PNPDeviceDescription{CustomFlag: CustomFlagRedirectableAlt}).Optional() {
		t.Error("Optional")
	}
}

func TestPNPHeaderRules(t *testing.T) {
	sv := golden[0].wire
	_, err := ParseServerVersion(patched(sv, 4, uint32(PacketServerLogon)))
	wantErr(t, err, ErrInvalid, "PacketId")
	_, err = ParseServerVersion(patched(sv, 0, 19))
	wantErr(t, err, ErrTrailingData, "Size")
	_, err = ParseServerVersion(patched(sv, 0, 21))
	wantErr(t, err, ErrTruncated, "Size")
	// Authenticated Client MUST NOT carry a payload.
	_, err = ParseAuthenticatedClient(unhex("0c 00 00 00 67 00 00 00 00 00 00 00"))
	wantErr(t, err, ErrTrailingData, "")
	// Direction matters: a server does not send device messages, a
	// client does not send Authenticated Client.
	_, err = ParsePNPDR(ServerToClient, golden[4].wire)
	wantErr(t, err, ErrUnknownPacket, "PacketId")
	_, err = ParsePNPDR(ClientToServer, golden[2].wire)
	wantErr(t, err, ErrUnknownPacket, "PacketId")
	_, err = ParsePNPDR(ClientToServer, patched(golden[4].wire, 4, 0x69))
	wantErr(t, err, ErrUnknownPacket, "PacketId")
	_, err = ParsePNPDR(Direction(0), golden[0].wire)
	wantErr(t, err, ErrInvalid, "")
	if h, err := ParsePNPInfoHeader(sv); err != nil || h != (PNPInfoHeader{Size: 20, PacketID: PacketVersion}) {
		t.Fatalf("%v %v", h, err)
	}
	if b := (PNPInfoHeader{Size: 20, PacketID: PacketVersion}).Append(nil); !bytes.Equal(b, sv[:8]) {
		t.Fatalf("%x", b)
	}
}
