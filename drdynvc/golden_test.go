package drdynvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/hresult"
)

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func q(n int) []byte { return bytes.Repeat([]byte{0x71}, n) }

type golden struct {
	name string
	from Sender
	wire []byte
	want PDU
	// minLen is the shortest prefix of wire that still decodes (data
	// PDUs end where their input ends); 0 means len(wire).
	minLen int
}

// goldens are wire bytes written out by hand: first every example of
// MS-RDPEDYC section 4 (the 0x71 runs of 4.3.1 and 4.3.2 are written with
// q(n), as the spec itself abbreviates them), then one vector per PDU and
// ChannelId/Length width the examples do not cover.
var goldens = []golden{
	// 4.1.1 DVC Capabilities Request (Version2) PDU; note Sp = 2.
	{"4.1.1 caps v2", FromServer,
		[]byte{0x58, 0x00, 0x02, 0x00, 0x33, 0x33, 0x11, 0x11, 0x3d, 0x0a, 0xa7, 0x04},
		CapsRequest{Sp: 2, Version: 2, PriorityCharges: [4]uint16{0x3333, 0x1111, 0x0a3d, 0x04a7}}, 0},
	// 4.1.2 DVC Capabilities Response PDU.
	{"4.1.2 caps rsp", FromClient, []byte{0x50, 0x00, 0x02, 0x00}, CapsResponse{Version: 2}, 0},
	// 4.2.1 DVC Create Request PDU.
	{"4.2.1 create req", FromServer,
		[]byte{0x10, 0x03, 0x74, 0x65, 0x73, 0x74, 0x64, 0x76, 0x63, 0x00},
		CreateRequest{ChannelID: 3, ChannelName: "testdvc"}, 0},
	// 4.2.2 DVC Create Response PDU.
	{"4.2.2 create rsp", FromClient, []byte{0x10, 0x03, 0x00, 0x00, 0x00, 0x00},
		CreateResponse{ChannelID: 3, CreationStatus: hresult.S_OK}, 0},
	// 4.3.1 DVC Data First PDU: Len = 1, Length 3195, 1596 bytes of 'q'.
	{"4.3.1 data first", FromServer, cat([]byte{0x24, 0x03, 0x7b, 0x0c}, q(1596)),
		DataFirst{ChannelID: 3, Length: 3195, Data: q(1596)}, 4},
	// 4.3.2 DVC Data PDU: Sp = 1, 1598 bytes, then the last, 1 byte.
	{"4.3.2 data", FromServer, cat([]byte{0x34, 0x03}, q(1598)),
		Data{Sp: 1, ChannelID: 3, Data: q(1598)}, 2},
	{"4.3.2 data last", FromServer, []byte{0x34, 0x03, 0x71},
		Data{Sp: 1, ChannelID: 3, Data: []byte{0x71}}, 2},
	// 4.3.3 DVC Data First Compressed PDU (data kept compressed).
	{"4.3.3 data first compressed", FromServer,
		[]byte{0x64, 0x03, 0x7b, 0x0c, 0xe0, 0x26, 0x38, 0xc4, 0x3f, 0xf4, 0x74, 0x01},
		DataFirstCompressed{ChannelID: 3, Length: 3195, Data: []byte{0xe0, 0x26, 0x38, 0xc4, 0x3f, 0xf4, 0x74, 0x01}}, 4},
	// 4.3.4 DVC Data Compressed PDU, and the last one of that sequence.
	{"4.3.4 data compressed", FromServer,
		[]byte{0x70, 0x03, 0xe0, 0x26, 0x88, 0x7f, 0xe8, 0xf4, 0x02},
		DataCompressed{ChannelID: 3, Data: []byte{0xe0, 0x26, 0x88, 0x7f, 0xe8, 0xf4, 0x02}}, 2},
	{"4.3.4 data compressed last", FromServer, []byte{0x70, 0x03, 0x06, 0x71, 0x71, 0x71},
		DataCompressed{ChannelID: 3, Data: []byte{0x06, 0x71, 0x71, 0x71}}, 2},
	// 4.4.1 DVC Close PDU.
	{"4.4.1 close", FromServer, []byte{0x40, 0x03}, Close{ChannelID: 3}, 0},

	// Capabilities of the other versions, and a response with Sp = 3.
	{"caps v1", FromServer, []byte{0x50, 0x00, 0x01, 0x00}, CapsRequest{Version: 1}, 0},
	{"caps v3", FromServer,
		[]byte{0x50, 0x00, 0x03, 0x00, 0xa8, 0x03, 0xcc, 0x0c, 0x92, 0x24, 0x55, 0x55},
		CapsRequest{Version: 3, PriorityCharges: [4]uint16{936, 3276, 9362, 21845}}, 0},
	{"caps rsp sp3 v3", FromClient, []byte{0x5c, 0x00, 0x03, 0x00}, CapsResponse{Sp: 3, Version: 3}, 0},
	// ChannelId in 2 and 4 bytes, Pri 2.
	{"create req id16 pri2", FromServer,
		[]byte{0x19, 0x34, 0x12, 0x45, 0x43, 0x48, 0x4f, 0x00},
		CreateRequest{ChannelID: 0x1234, Priority: 2, ChannelName: "ECHO"}, 0},
	{"create req id32", FromServer,
		[]byte{0x12, 0x78, 0x56, 0x34, 0x12, 0x41, 0x00},
		CreateRequest{ChannelID: 0x12345678, ChannelName: "A"}, 0},
	// A refusal with STATUS_UNSUCCESSFUL, ChannelId 0x100 in 2 bytes.
	{"create rsp refused id16", FromClient,
		[]byte{0x11, 0x00, 0x01, 0x01, 0x00, 0x00, 0xc0},
		CreateResponse{ChannelID: 0x100, CreationStatus: hresult.StatusUnsuccessful}, 0},
	{"create rsp id32", FromClient,
		[]byte{0x12, 0x00, 0x00, 0x01, 0x00, 0x05, 0x40, 0x00, 0x80},
		CreateResponse{ChannelID: 0x10000, CreationStatus: hresult.E_FAIL}, 0},
	// DATA_FIRST with Length in 4 bytes, and with ChannelId in 4 bytes.
	{"data first len32", FromClient,
		[]byte{0x28, 0x05, 0x00, 0x00, 0x01, 0x00, 0x61, 0x62, 0x63},
		DataFirst{ChannelID: 5, Length: 0x10000, Data: []byte("abc")}, 6},
	{"data first id32 len16", FromClient,
		[]byte{0x26, 0xef, 0xbe, 0xad, 0xde, 0x7b, 0x0c, 0x78},
		DataFirst{ChannelID: 0xdeadbeef, Length: 3195, Data: []byte("x")}, 7},
	{"data first id16 len8", FromClient,
		[]byte{0x21, 0x00, 0x01, 0x02, 0x78, 0x79},
		DataFirst{ChannelID: 0x100, Length: 2, Data: []byte("xy")}, 4},
	{"data id16", FromClient, []byte{0x31, 0x00, 0x01, 0x68, 0x69},
		Data{ChannelID: 0x100, Data: []byte("hi")}, 3},
	{"data id32 empty", FromClient, []byte{0x32, 0x04, 0x03, 0x02, 0x01},
		Data{ChannelID: 0x01020304, Data: []byte{}}, 5},
	{"close id16 sp1", FromClient, []byte{0x45, 0xff, 0xff}, Close{Sp: 1, ChannelID: 0xffff}, 0},
	{"close id32", FromClient, []byte{0x42, 0xff, 0xff, 0xff, 0xff}, Close{ChannelID: 0xffffffff}, 0},
	{"data first compressed id16 len32", FromServer,
		[]byte{0x69, 0x34, 0x12, 0x00, 0x00, 0x00, 0x01, 0xe0},
		DataFirstCompressed{ChannelID: 0x1234, Length: 0x01000000, Data: []byte{0xe0}}, 7},
	{"data compressed id32", FromServer, []byte{0x72, 0x00, 0x00, 0x00, 0x80, 0xe0, 0x04},
		DataCompressed{ChannelID: 0x80000000, Data: []byte{0xe0, 0x04}}, 5},
	// Soft-Sync: two lists (UDPFECR: channels 3, 4; UDPFECL: channel 5).
	{"soft sync request", FromServer,
		[]byte{0x80, 0x00, 0x20, 0x00, 0x00, 0x00, 0x03, 0x00, 0x02, 0x00,
			0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
			0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x05, 0x00, 0x00, 0x00},
		SoftSyncRequest{Flags: SoftSyncTCPFlushed | SoftSyncChannelListPresent, NumberOfTunnels: 2,
			ChannelLists: []SoftSyncChannelList{
				{TunnelType: TunnelTypeUDPFECR, DVCIDs: []uint32{3, 4}},
				{TunnelType: TunnelTypeUDPFECL, DVCIDs: []uint32{5}},
			}}, 0},
	{"soft sync request no lists", FromServer,
		[]byte{0x80, 0x00, 0x08, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00},
		SoftSyncRequest{Flags: SoftSyncTCPFlushed, NumberOfTunnels: 1}, 0},
	{"soft sync response", FromClient,
		[]byte{0x90, 0x00, 0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00},
		SoftSyncResponse{TunnelsToSwitch: []uint32{TunnelTypeUDPFECR, TunnelTypeUDPFECL}}, 0},
	{"soft sync response empty", FromClient,
		[]byte{0x90, 0x00, 0x00, 0x00, 0x00, 0x00},
		SoftSyncResponse{TunnelsToSwitch: []uint32{}}, 0},
}

// parseTyped calls the ParseXxx function for want's type.
func parseTyped(want PDU, b []byte) (PDU, error) {
	switch want.(type) {
	case CapsRequest:
		return wrap(ParseCapsRequest(b))
	case CapsResponse:
		return wrap(ParseCapsResponse(b))
	case CreateRequest:
		return wrap(ParseCreateRequest(b))
	case CreateResponse:
		return wrap(ParseCreateResponse(b))
	case DataFirst:
		return wrap(ParseDataFirst(b))
	case Data:
		return wrap(ParseData(b))
	case Close:
		return wrap(ParseClose(b))
	case DataFirstCompressed:
		return wrap(ParseDataFirstCompressed(b))
	case DataCompressed:
		return wrap(ParseDataCompressed(b))
	case SoftSyncRequest:
		return wrap(ParseSoftSyncRequest(b))
	case SoftSyncResponse:
		return wrap(ParseSoftSyncResponse(b))
	}
	panic("unknown type")
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := Parse(g.wire, g.from)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, g.want) {
				t.Fatalf("Parse =\n %#v\nwant\n %#v", got, g.want)
			}
			typed, err := parseTyped(g.want, g.wire)
			if err != nil || !reflect.DeepEqual(typed, g.want) {
				t.Fatalf("typed parse = %#v, %v", typed, err)
			}
			if got.Cmd() != Header(g.wire[0]).Cmd() {
				t.Fatalf("Cmd() = %v, header says %v", got.Cmd(), Header(g.wire[0]).Cmd())
			}
			enc := g.want.Append([]byte{0xAA})
			if enc[0] != 0xAA || !bytes.Equal(enc[1:], g.wire) {
				t.Fatalf("Append =\n % x\nwant\n % x", enc[1:], g.wire)
			}
			if g.want.Len() != len(g.wire) {
				t.Fatalf("Len() = %d, wire is %d", g.want.Len(), len(g.wire))
			}
			if !strings.HasPrefix(g.want.Name(), "DYNVC_") {
				t.Fatalf("Name() = %q", g.want.Name())
			}
		})
	}
}

// Every prefix shorter than the PDU's fixed part fails with a *Error
// that names the PDU; longer prefixes of data PDUs decode with less data.
func TestTruncated(t *testing.T) {
	for _, g := range goldens {
		minLen := g.minLen
		if minLen == 0 {
			minLen = len(g.wire)
		}
		for n := range len(g.wire) {
			p, err := Parse(g.wire[:n:n], g.from)
			if n < minLen {
				var pe *Error
				if !errors.As(err, &pe) {
					t.Fatalf("%s: %d bytes: err = %v, want *Error", g.name, n, err)
				}
				if n > 0 && pe.Message != g.want.Name() && !strings.HasPrefix(pe.Message, "DYNVC_") {
					t.Fatalf("%s: %d bytes: error names %q", g.name, n, pe.Message)
				}
				if p != nil {
					t.Fatalf("%s: %d bytes: PDU %v with error", g.name, n, p)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %d bytes: %v", g.name, n, err)
			}
		}
	}
}

func TestInvalidWidth(t *testing.T) {
	for _, g := range goldens {
		switch g.want.(type) {
		case CapsRequest, CapsResponse, SoftSyncRequest, SoftSyncResponse:
			// cbId is unused there and ignored.
			b := append([]byte{}, g.wire...)
			b[0] |= 3
			if _, err := Parse(b, g.from); err != nil {
				t.Fatalf("%s: cbId 3 in a PDU without ChannelId: %v", g.name, err)
			}
			continue
		}
		b := append([]byte{}, g.wire...)
		b[0] |= 3
		_, err := Parse(b, g.from)
		var pe *Error
		if !errors.As(err, &pe) || pe.Field != "cbId" || pe.Message != g.want.Name() {
			t.Fatalf("%s: cbId 3: err = %v", g.name, err)
		}
		switch g.want.(type) {
		case DataFirst, DataFirstCompressed:
			b := append([]byte{}, g.wire...)
			b[0] |= 3 << 2
			_, err := Parse(b, g.from)
			if !errors.As(err, &pe) || pe.Field != "Len" {
				t.Fatalf("%s: Len 3: err = %v", g.name, err)
			}
		}
	}
}

// Decoders accept every width, even where a smaller one would do, and
// encoders then use the smallest.
func TestWiderThanNeeded(t *testing.T) {
	for _, tt := range []struct {
		wire, reenc []byte
		want        PDU
	}{
		{[]byte{0x32, 0x03, 0x00, 0x00, 0x00, 0x78}, []byte{0x30, 0x03, 0x78}, Data{ChannelID: 3, Data: []byte("x")}},
		{[]byte{0x31, 0x03, 0x00, 0x78}, []byte{0x30, 0x03, 0x78}, Data{ChannelID: 3, Data: []byte("x")}},
		{[]byte{0x29, 0x03, 0x00, 0x02, 0x00, 0x00, 0x00, 0x78}, []byte{0x20, 0x03, 0x02, 0x78}, DataFirst{ChannelID: 3, Length: 2, Data: []byte("x")}},
		{[]byte{0x41, 0x07, 0x00}, []byte{0x40, 0x07}, Close{ChannelID: 7}},
	} {
		got, err := Parse(tt.wire, FromClient)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Fatalf("% x: %#v, %v", tt.wire, got, err)
		}
		if enc := got.Append(nil); !bytes.Equal(enc, tt.reenc) {
			t.Fatalf("% x re-encodes as % x, want % x", tt.wire, enc, tt.reenc)
		}
	}
}

func TestWidths(t *testing.T) {
	for _, tt := range []struct {
		v    uint32
		code uint8
		wire []byte
	}{
		{0, 0, []byte{0}},
		{0xff, 0, []byte{0xff}},
		{0x100, 1, []byte{0x00, 0x01}},
		{0xffff, 1, []byte{0xff, 0xff}},
		{0x10000, 2, []byte{0x00, 0x00, 0x01, 0x00}},
		{0xffffffff, 2, []byte{0xff, 0xff, 0xff, 0xff}},
	} {
		if c := WidthCode(tt.v); c != tt.code {
			t.Errorf("WidthCode(%#x) = %d, want %d", tt.v, c, tt.code)
		}
		if n := UintLen(tt.v); n != len(tt.wire) {
			t.Errorf("UintLen(%#x) = %d", tt.v, n)
		}
		if b := AppendUint(nil, tt.code, tt.v); !bytes.Equal(b, tt.wire) {
			t.Errorf("AppendUint(%#x) = % x", tt.v, b)
		}
		v, off, err := readUint(append([]byte{9}, tt.wire...), 1, tt.code, "T", "F")
		if err != nil || v != tt.v || off != 1+len(tt.wire) {
			t.Errorf("readUint(% x) = %#x, %d, %v", tt.wire, v, off, err)
		}
	}
	if Width(3) != 0 {
		t.Error("Width(3) != 0")
	}
}

func TestHeader(t *testing.T) {
	h := MakeHeader(CmdDataFirst, 1, 0)
	if h != 0x24 || h.Cmd() != CmdDataFirst || h.Sp() != 1 || h.CbID() != 0 {
		t.Fatalf("MakeHeader = %#x", byte(h))
	}
	h = MakeHeader(CmdSoftSyncResponse, 7, 6) // masked to 3, 2
	if h != 0x9e {
		t.Fatalf("MakeHeader masks: %#x", byte(h))
	}
	if _, err := ParseHeader(nil); err == nil {
		t.Fatal("empty header accepted")
	}
	if s := CmdData.String(); s != "Data (0x3)" {
		t.Fatalf("String = %q", s)
	}
}

func TestUnknownCmd(t *testing.T) {
	for _, b := range []byte{0x00, 0x03, 0xa0, 0xb0, 0xc1, 0xd0, 0xe0, 0xff} {
		for _, from := range []Sender{FromServer, FromClient} {
			_, err := Parse([]byte{b, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, from)
			var pe *Error
			if !errors.As(err, &pe) || pe.Field != "Cmd" {
				t.Fatalf("header %#x: err = %v", b, err)
			}
		}
	}
}

func TestParseDirection(t *testing.T) {
	wire := []byte{0x10, 0x03, 0x00, 0x00, 0x00, 0x00}
	p, err := Parse(wire, FromServer)
	if err != nil || !reflect.DeepEqual(p, CreateRequest{ChannelID: 3}) {
		t.Fatalf("from server: %#v %v", p, err)
	}
	p, err = Parse(wire, FromClient)
	if err != nil || !reflect.DeepEqual(p, CreateResponse{ChannelID: 3}) {
		t.Fatalf("from client: %#v %v", p, err)
	}
	if _, err := Parse(wire, 0); !errors.Is(err, ErrSender) {
		t.Fatalf("zero Sender: %v", err)
	}
	// The same bytes as a caps v2 request and a caps response.
	caps := []byte{0x50, 0x00, 0x02, 0x00, 1, 0, 2, 0, 3, 0, 4, 0}
	if p, _ := Parse(caps, FromServer); p.Name() != "DYNVC_CAPS_VERSION2" {
		t.Fatalf("from server: %v", p)
	}
	if p, _ := Parse(caps, FromClient); p.Name() != "DYNVC_CAPS_RSP" {
		t.Fatalf("from client: %v", p)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		name   string
		from   Sender
		wire   []byte
		pdu    string
		field  string
		reason string
	}{
		{"caps version 0", FromServer, []byte{0x50, 0, 0, 0}, "DYNVC_CAPS", "Version", "0 is not"},
		{"caps rsp version 0", FromClient, []byte{0x50, 0, 0, 0}, "DYNVC_CAPS_RSP", "Version", "0 is not"},
		{"caps v2 without charges", FromServer, []byte{0x50, 0, 2, 0, 1, 0}, "DYNVC_CAPS_VERSION2", "PriorityCharge", "truncated"},
		{"name without NUL", FromServer, []byte{0x10, 0x03, 'a', 'b'}, "DYNVC_CREATE_REQ", "ChannelName", "missing NUL"},
		{"name too long", FromServer, cat([]byte{0x10, 0x03}, bytes.Repeat([]byte("n"), 257), []byte{0}), "DYNVC_CREATE_REQ", "ChannelName", "no NUL within 257"},
		{"data first over length", FromServer, []byte{0x20, 0x03, 0x02, 'a', 'b', 'c'}, "DYNVC_DATA_FIRST", "Data", "3 bytes, more than Length 2"},
		{"soft sync length short", FromServer, []byte{0x80, 0, 7, 0, 0, 0, 1, 0, 0, 0}, "DYNVC_SOFT_SYNC_REQUEST", "Length", "7, want 8..8"},
		{"soft sync length long", FromServer, []byte{0x80, 0, 9, 0, 0, 0, 1, 0, 0, 0}, "DYNVC_SOFT_SYNC_REQUEST", "Length", "9, want 8..8"},
		{"soft sync tunnels over ceiling", FromServer, []byte{0x80, 0, 8, 0, 0, 0, 3, 0, 17, 0}, "DYNVC_SOFT_SYNC_REQUEST", "NumberOfTunnels", "17 exceeds ceiling 16"},
		{"soft sync lists missing", FromServer, []byte{0x80, 0, 8, 0, 0, 0, 3, 0, 1, 0}, "DYNVC_SOFT_SYNC_REQUEST", "SoftSyncChannelLists", "truncated"},
		{"soft sync dvc ids missing", FromServer, []byte{0x80, 0, 0x0e, 0, 0, 0, 3, 0, 1, 0, 1, 0, 0, 0, 0xff, 0xff}, "DYNVC_SOFT_SYNC_CHANNEL_LIST", "ListOfDVCIds", "truncated"},
		{"soft sync rsp over ceiling", FromClient, []byte{0x90, 0, 0xff, 0xff, 0xff, 0xff}, "DYNVC_SOFT_SYNC_RESPONSE", "NumberOfTunnels", "4294967295 exceeds ceiling"},
		{"soft sync rsp short", FromClient, []byte{0x90, 0, 2, 0, 0, 0, 1, 0, 0, 0}, "DYNVC_SOFT_SYNC_RESPONSE", "TunnelsToSwitch", "truncated"},
	} {
		_, err := Parse(tt.wire, tt.from)
		var pe *Error
		if !errors.As(err, &pe) || pe.Message != tt.pdu || pe.Field != tt.field || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%s: err = %v; want %s.%s: %s", tt.name, err, tt.pdu, tt.field, tt.reason)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "drdynvc: "+tt.pdu+"."+tt.field+": ") {
			t.Errorf("%s: message %q", tt.name, err)
		}
	}
}

// A name of exactly MaxChannelNameLen bytes is fine; trailing bytes after
// the NUL are ignored.
func TestChannelNameLimit(t *testing.T) {
	name := strings.Repeat("n", MaxChannelNameLen)
	r := CreateRequest{ChannelID: 1, ChannelName: name}
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	got, err := ParseCreateRequest(append(r.Append(nil), 0xAA, 0xBB))
	if err != nil || got != r {
		t.Fatalf("%v %v", got, err)
	}
	for _, bad := range []string{"", name + "n", "a\x00b"} {
		if err := (CreateRequest{ChannelName: bad}).Validate(); err == nil {
			t.Errorf("Validate(%q) accepted", bad)
		}
	}
}

func TestTypedParseRejectsOtherCmd(t *testing.T) {
	_, err := ParseData([]byte{0x20, 0x03, 0x00})
	var pe *Error
	if !errors.As(err, &pe) || pe.Field != "Cmd" || pe.Message != "DYNVC_DATA" {
		t.Fatalf("err = %v", err)
	}
}

func TestDataAliasesInput(t *testing.T) {
	wire := []byte{0x30, 0x03, 'a', 'b'}
	d, err := ParseData(wire)
	if err != nil {
		t.Fatal(err)
	}
	wire[2] = 'z'
	if string(d.Data) != "zb" {
		t.Fatalf("Data = %q: not aliasing the input as documented", d.Data)
	}
}

func TestJSON(t *testing.T) {
	p, err := Parse([]byte{0x34, 0x03, 0x71, 0xff}, FromServer)
	if err != nil {
		t.Fatal(err)
	}
	j, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"Sp":1,"ChannelId":3,"Data":"71ff"}`; string(j) != want {
		t.Fatalf("JSON = %s, want %s", j, want)
	}
	var back Data
	if err := json.Unmarshal(j, &back); err != nil || !reflect.DeepEqual(back, p) {
		t.Fatalf("unmarshal: %#v %v", back, err)
	}
	for _, g := range goldens {
		if _, err := json.Marshal(g.want); err != nil {
			t.Fatalf("%s: %v", g.name, err)
		}
	}
	j, _ = json.Marshal(goldens[2].want)
	if want := `{"ChannelId":3,"Pri":0,"ChannelName":"testdvc"}`; string(j) != want {
		t.Fatalf("JSON = %s, want %s", j, want)
	}
}

func TestString(t *testing.T) {
	for _, g := range goldens {
		s := g.want.(interface{ String() string }).String()
		if !strings.HasPrefix(s, g.want.Name()) {
			t.Errorf("%s: String = %q", g.name, s)
		}
		if len(s) > 200 {
			t.Errorf("%s: String is %d bytes; data must not be dumped", g.name, len(s))
		}
	}
}
