package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/rdpdvc/rdpdvc/hresult"
)

func goldenWire(name string) []byte {
	for _, g := range golden {
		if g.name == name {
			return g.wire
		}
	}
	panic(name)
}

func TestIOHeaders(t *testing.T) {
	// RequestId is the low 24 bits of the first dword, UnusedBits or
	// PacketType its high byte.
	h, err := ParseServerIOHeader(unhex("56 34 12 9a 02 00 00 00"))
	if err != nil || h != (ServerIOHeader{RequestID: 0x123456, UnusedBits: 0x9a, FunctionID: FunctionIOControl}) {
		t.Fatalf("%+v %v", h, err)
	}
	if b := h.Append(nil); !bytes.Equal(b, unhex("56 34 12 9a 02 00 00 00")) {
		t.Fatalf("%x", b)
	}
	c, err := ParseClientIOHeader(unhex("56 34 12 01"))
	if err != nil || c != (ClientIOHeader{RequestID: 0x123456, PacketType: PacketTypeCustomEvent}) {
		t.Fatalf("%+v %v", c, err)
	}
	if b := c.Append(nil); !bytes.Equal(b, unhex("56 34 12 01")) {
		t.Fatalf("%x", b)
	}
	m, err := ParseReadRequest(unhex("56 34 12 00 00 00 00 00 00 10 00 00 00 00 00 00 00 20 00 00"))
	if err != nil || m.RequestID != 0x123456 || m.BytesToRead != 4096 || m.Offset != 8192 {
		t.Fatalf("%+v %v", m, err)
	}
	_, err = ParseServerIOHeader(unhex("00 00 00"))
	wantErr(t, err, ErrTruncated, "RequestId")
	_, err = ParseClientIOHeader(nil)
	wantErr(t, err, ErrTruncated, "RequestId")
}

func TestAppendPanicsOnWideRequestID(t *testing.T) {
	for name, m := range map[string]Message{
		"request":    ReadRequest{RequestID: MaxRequestID + 1},
		"reply":      ReadReply{RequestID: 1 << 30},
		"idToCancel": SpecificIoCancelRequest{IDToCancel: MaxRequestID + 1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			m.Append(nil)
		}()
	}
	ReadRequest{RequestID: MaxRequestID}.Append(nil) // the widest ID is fine
}

func TestWrongFunctionOrPacketType(t *testing.T) {
	_, err := ParseReadRequest(goldenWire("4.4(5) Write Request"))
	wantErr(t, err, ErrInvalid, "FunctionId")
	_, err = ParseReadReply(goldenWire("4.4(10) Client Device Custom Event"))
	wantErr(t, err, ErrInvalid, "PacketType")
	_, err = ParseWriteReply(patched(goldenWire("4.4(6) Write Reply"), 0, 0x02000000))
	wantErr(t, err, ErrUnknownPacket, "PacketType")
	_, err = ParseClientDeviceCustomEvent(goldenWire("4.4(4) Read Reply"))
	wantErr(t, err, ErrInvalid, "PacketType")

	// Dispatchers.
	_, err = ParseRequest(patched(goldenWire("4.4(3) Read Request"), 4, 3))
	wantErr(t, err, ErrUnknownFunction, "FunctionId")
	_, err = ParseRequest(patched(goldenWire("4.4(3) Read Request"), 4, 7))
	wantErr(t, err, ErrUnknownFunction, "FunctionId")
	_, err = ParseReply(goldenWire("4.4(6) Write Reply"), FunctionSpecificIoCancel)
	wantErr(t, err, ErrInvalid, "")
	_, err = ParseReply(goldenWire("4.4(6) Write Reply"), FunctionID(9))
	wantErr(t, err, ErrUnknownFunction, "")
	_, err = ParseReply(goldenWire("4.4(10) Client Device Custom Event"), FunctionRead)
	wantErr(t, err, ErrInvalid, "PacketType")
	_, err = ParseFileRedirector(Direction(9), nil, FunctionRead)
	wantErr(t, err, ErrInvalid, "")
	_, err = ParseFileRedirector(ClientToServer, nil, FunctionRead)
	wantErr(t, err, ErrTruncated, "RequestId")
	// The same bytes are a Read Reply or an IOControl Reply: the caller's
	// FunctionID decides.
	rr, err := ParseFileRedirector(ClientToServer, goldenWire("4.4(4) Read Reply"), FunctionIOControl)
	if _, ok := rr.(IOControlReply); !ok || err != nil {
		t.Fatalf("%#v %v", rr, err)
	}
}

func TestIOCeilings(t *testing.T) {
	read := func(n uint32) error {
		_, err := ParseReadRequest(ReadRequest{BytesToRead: n}.Append(nil))
		return err
	}
	if err := read(MaxReadBytes); err != nil {
		t.Fatal(err)
	}
	wantErr(t, read(MaxReadBytes+1), ErrTooLarge, "cbBytesToRead")

	big := make([]byte, MaxReadBytes+1)
	type dataMsg struct {
		name  string
		max   int
		field string
		off   int // of the length field
		enc   func(d []byte) []byte
		parse func(b []byte) error
	}
	for _, c := range []dataMsg{
		{"ReadReply", MaxReadBytes, "cbBytesRead", 8,
			func(d []byte) []byte { return ReadReply{Data: d}.Append(nil) },
			func(b []byte) error { _, err := ParseReadReply(b); return err }},
		{"WriteRequest", MaxWriteBytes, "cbWrite", 8,
			func(d []byte) []byte { return WriteRequest{Data: d}.Append(nil) },
			func(b []byte) error { _, err := ParseWriteRequest(b); return err }},
		{"IOControlRequest", MaxIOControlBytes, "cbIn", 12,
			func(d []byte) []byte { return IOControlRequest{DataIn: d}.Append(nil) },
			func(b []byte) error { _, err := ParseIOControlRequest(b); return err }},
		{"IOControlReply", MaxIOControlBytes, "cbBytesReadReturned", 8,
			func(d []byte) []byte { return IOControlReply{Data: d}.Append(nil) },
			func(b []byte) error { _, err := ParseIOControlReply(b); return err }},
		{"ClientDeviceCustomEvent", MaxCustomEventBytes, "cbData", 20,
			func(d []byte) []byte { return ClientDeviceCustomEvent{Data: d}.Append(nil) },
			func(b []byte) error { _, err := ParseClientDeviceCustomEvent(b); return err }},
	} {
		if err := c.parse(c.enc(big[:c.max])); err != nil {
			t.Fatalf("%s at the ceiling: %v", c.name, err)
		}
		wantErr(t, c.parse(c.enc(big[:c.max+1])), ErrTooLarge, c.field)
		// A length over the ceiling is refused as such before the data
		// is looked for, and a length under it that the message cannot
		// hold is truncation.
		wantErr(t, c.parse(patched(c.enc(nil), c.off, 0xFFFFFFFF)), ErrTooLarge, c.field)
		if err := c.parse(patched(c.enc(nil), c.off, 2)); !errors.Is(err, ErrTruncated) {
			t.Errorf("%s: %v, want ErrTruncated", c.name, err)
		}
	}
}

func TestIOControlDataOut(t *testing.T) {
	req := goldenWire("4.4(7) IoControl Request") // cbOut = 8, DataOut absent
	m, err := ParseIOControlRequest(req)
	if err != nil || m.DataOut != nil || m.DataOutHRESULT() != hresult.S_OK {
		t.Fatalf("absent DataOut: %+v %v", m, err)
	}
	insufficient := hresult.FromWin32(hresult.ERROR_INSUFFICIENT_BUFFER)
	if insufficient != 0x8007007A {
		t.Fatalf("ERROR_INSUFFICIENT_BUFFER as HRESULT = %v", insufficient)
	}
	for n, want := range map[int]hresult.HRESULT{1: insufficient, 7: insufficient, 8: hresult.S_OK, 9: insufficient} {
		b := append(append([]byte(nil), req[:len(req)-1]...), make([]byte, n)...)
		b = append(b, 0x5A) // UnusedByte
		m, err := ParseIOControlRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(m.DataOut) != n || m.UnusedByte != 0x5A || m.DataOutHRESULT() != want {
			t.Errorf("DataOut of %d bytes: %+v, %v", n, m, m.DataOutHRESULT())
		}
		if !bytes.Equal(m.Append(nil), b) {
			t.Errorf("DataOut of %d bytes does not re-encode", n)
		}
	}
	// cbOut over the ceiling.
	_, err = ParseIOControlRequest(patched(req, 16, MaxIOControlBytes+1))
	wantErr(t, err, ErrTooLarge, "cbOut")
	// No room for the UnusedByte.
	_, err = ParseIOControlRequest(req[:len(req)-1])
	wantErr(t, err, ErrTruncated, "UnusedByte")
}

func TestSpecificIoCancelReadings(t *testing.T) {
	cases := []struct {
		wire      string
		diagram   uint32
		alternate uint32
	}{
		{"2a 00 00 00 06 00 00 00 00 05 00 00", 0x000005, 0x000500},
		{"2a 00 00 00 06 00 00 00 05 00 00 00", 0x000000, 0x000005},
		{"2a 00 00 00 06 00 00 00 11 22 33 44", 0x443322, 0x332211},
		{"2a 00 00 00 06 00 00 00 07 07 07 07", 0x070707, 0x070707},
	}
	for _, c := range cases {
		b := unhex(c.wire)
		m, err := ParseSpecificIoCancelRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		if m.RequestID != 0x2a || m.IDToCancel != c.diagram || m.AltIDToCancel() != c.alternate ||
			m.CandidateIDs() != [2]uint32{c.diagram, c.alternate} {
			t.Errorf("%s: %+v alt %06X", c.wire, m, m.AltIDToCancel())
		}
		if !bytes.Equal(m.Append(nil), b) {
			t.Errorf("%s does not re-encode", c.wire)
		}
	}
	// Sending follows the diagram: idToCancel in bytes 9-11.
	if b := NewSpecificIoCancelRequest(0x2a, 5).Append(nil); !bytes.Equal(b, unhex(cases[0].wire)) {
		t.Errorf("NewSpecificIoCancelRequest(5) = %x", b)
	}
	// A cancel-safe ID reads the same both ways.
	for n := 0; n < 256; n++ {
		id := CancelSafeRequestID(uint8(n))
		if !IsCancelSafeRequestID(id) {
			t.Fatalf("%06X not cancel-safe", id)
		}
		m, err := ParseSpecificIoCancelRequest(NewSpecificIoCancelRequest(MaxRequestID, id).Append(nil))
		if err != nil || m.IDToCancel != id || m.AltIDToCancel() != id {
			t.Fatalf("%06X: %+v %v", id, m, err)
		}
	}
	if IsCancelSafeRequestID(0x000005) || IsCancelSafeRequestID(0x01010101) {
		t.Error("IsCancelSafeRequestID too lenient")
	}
	if m := NewSpecificIoCancelRequest(1, 5); m.BodyUnusedBits != 0 {
		t.Errorf("UnusedBits SHOULD be 0 for an ordinary ID: %+v", m)
	}
}

func TestCheckReply(t *testing.T) {
	read := ReadRequest{RequestID: 7, BytesToRead: 4}
	ioctl := IOControlRequest{RequestID: 8, OutputBufferSize: 2}
	for _, c := range []struct {
		req   Request
		rep   Reply
		field string // "" = no error; "-" = error on no field
	}{
		{read, ReadReply{RequestID: 7, Data: make([]byte, 4)}, ""},
		{read, ReadReply{RequestID: 7, Data: make([]byte, 5)}, "cbBytesRead"},
		{read, ReadReply{RequestID: 6}, "RequestId"},
		{read, WriteReply{RequestID: 7}, "-"},
		{ioctl, IOControlReply{RequestID: 8, Data: make([]byte, 2)}, ""},
		{ioctl, IOControlReply{RequestID: 8, Data: make([]byte, 3)}, "cbBytesReadReturned"},
		{WriteRequest{RequestID: 1, Data: []byte{1}}, WriteReply{RequestID: 1, BytesWritten: 1}, ""},
		{CreateFileRequest{RequestID: 2}, CreateFileReply{RequestID: 2}, ""},
		{ServerCapabilitiesRequest{RequestID: 3}, ClientCapabilitiesReply{RequestID: 3}, ""},
	} {
		err := CheckReply(c.req, c.rep)
		switch c.field {
		case "":
			if err != nil {
				t.Errorf("%T/%T: %v", c.req, c.rep, err)
			}
		case "-":
			wantErr(t, err, ErrInvalid, "")
		default:
			wantErr(t, err, ErrInvalid, c.field)
		}
	}
}

func TestCustomEventsAllowed(t *testing.T) {
	if !CustomEventsAllowed(6, 6) || CustomEventsAllowed(4, 6) || CustomEventsAllowed(6, 4) || !CustomEventsAllowed(7, 6) {
		t.Error("CustomEventsAllowed")
	}
}

func TestGUID(t *testing.T) {
	wire := unhex("46 9c 4a 2b 8d 65 f2 4a a9 1d 1e 69 18 61 70 6c")
	g := guidFromWire(wire)
	if g.String() != "{2B4A9C46-658D-4AF2-A91D-1E691861706C}" {
		t.Fatal(g)
	}
	if !bytes.Equal(g.AppendWire(nil), wire) {
		t.Fatal("AppendWire")
	}
	for _, s := range []string{"{2b4a9c46-658d-4af2-a91d-1e691861706c}", "2B4A9C46-658D-4AF2-A91D-1E691861706C"} {
		if p, err := ParseGUID(s); err != nil || p != g {
			t.Errorf("ParseGUID(%q) = %v, %v", s, p, err)
		}
	}
	for _, s := range []string{"", "{}", "{2B4A9C46-658D-4AF2-A91D-1E691861706}", "{2B4A9C46+658D-4AF2-A91D-1E691861706C}",
		"{2B4A9C46-658D-4AF2-A91D-1E691861706G}", "{2B4A9C46-658D-4AF2-A91D-1E691861706C"} {
		if _, err := ParseGUID(s); err == nil {
			t.Errorf("ParseGUID(%q) accepted", s)
		}
	}
	var back GUID
	if err := back.UnmarshalText([]byte(g.String())); err != nil || back != g {
		t.Fatal("text round trip")
	}
	if err := back.UnmarshalText([]byte("nope")); err == nil {
		t.Fatal("UnmarshalText accepted garbage")
	}
}

func TestBytesText(t *testing.T) {
	var b Bytes
	if err := b.UnmarshalText([]byte("00ff10")); err != nil || !reflect.DeepEqual(b, Bytes{0, 0xff, 0x10}) {
		t.Fatal(b, err)
	}
	if t2, _ := b.MarshalText(); string(t2) != "00ff10" {
		t.Fatal(string(t2))
	}
	if err := b.UnmarshalText([]byte("0g")); err == nil {
		t.Fatal("accepted bad hex")
	}
}

func TestErrorText(t *testing.T) {
	_, err := ParseReadReply(patched(goldenWire("4.4(4) Read Reply"), 8, 10))
	want := "pnp/wire: ReadReply.cbBytesRead: truncated: announces 10 bytes, 9 left"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v\nwant %s", err, want)
	}
	if !errors.Is(err, ErrTruncated) {
		t.Fatal("errors.Is")
	}
}

func TestStringers(t *testing.T) {
	for v, want := range map[interface{ String() string }]string{
		FunctionRead: "READ_REQUEST", FunctionSpecificIoCancel: "SPECIFIC_IOCANCEL_REQUEST", FunctionID(3): "FunctionID(0x00000003)",
		PacketVersion: "IRPDR_ID_VERSION", PacketID(1): "PacketID(0x00000001)",
		PacketTypeCustomEvent: "CUSTOM_EVENT_PACKET", PacketType(9): "PacketType(0x09)",
		ServerToClient: "server-to-client", ClientToServer: "client-to-server", Direction(0): "Direction(0)",
	} {
		if got := v.String(); got != want {
			t.Errorf("%#v: %q, want %q", v, got, want)
		}
	}
	if FunctionID(3).Known() || !FunctionCreateFile.Known() {
		t.Error("Known")
	}
}
