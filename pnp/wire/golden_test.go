package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// unhex turns a hex dump as section 4 prints it ("14 00 00 00 ...") into
// bytes.
func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// golden holds every capture of MS-RDPEPNP section 4, written out as the
// specification prints it, with the value it must decode to.
var golden = []struct {
	name string
	ch   string // ChannelPNPDR or ChannelFileRedirector
	dir  Direction
	fn   FunctionID // for client replies: the request's FunctionId
	wire []byte
	want Message
}{
	{
		name: "4.1(1) Server Version", ch: ChannelPNPDR, dir: ServerToClient,
		wire: unhex(`14 00 00 00 65 00 00 00 01 00 00 00 06 00 00 00
		             01 00 00 00`),
		want: ServerVersion{MajorVersion: 1, MinorVersion: 6, Capabilities: CapDynamicDeviceAddition},
	},
	{
		name: "4.1(2) Client Version", ch: ChannelPNPDR, dir: ClientToServer,
		wire: unhex(`14 00 00 00 65 00 00 00 01 00 00 00 06 00 00 00
		             01 00 00 00`),
		want: ClientVersion{MajorVersion: 1, MinorVersion: 6, Capabilities: CapDynamicDeviceAddition},
	},
	{
		name: "4.1(3) Authenticated Client", ch: ChannelPNPDR, dir: ServerToClient,
		wire: unhex(`08 00 00 00 67 00 00 00`),
		want: AuthenticatedClient{},
	},
	{
		name: "4.2(1) Client Device Addition", ch: ChannelPNPDR, dir: ClientToServer,
		wire: unhex(`6a 00 00 00 66 00 00 00 01 00 00 00 04 00 00 00
		             56 00 00 00 10 00 00 00 46 9c 4a 2b 8d 65 f2 4a
		             a9 1d 1e 69 18 61 70 6c 12 00 00 00 57 00 55 00
		             44 00 46 00 5c 00 4c 00 42 00 00 00 00 00 00 00
		             00 00 1c 00 00 00 54 00 73 00 20 00 46 00 61 00
		             6b 00 65 00 20 00 44 00 65 00 76 00 69 00 63 00
		             65 00 04 00 00 00 02 00 00 00`),
		want: ClientDeviceAddition{Devices: []PNPDeviceDescription{{
			ClientDeviceID:    4,
			InterfaceGUIDs:    []GUID{MustParseGUID("{2B4A9C46-658D-4AF2-A91D-1E691861706C}")},
			HardwareIDs:       []string{`WUDF\LB`},
			DeviceDescription: "Ts Fake Device",
			CustomFlag:        CustomFlagRedirectableAlt,
		}}},
	},
	{
		name: "4.2(2) Client Device Removal", ch: ChannelPNPDR, dir: ClientToServer,
		wire: unhex(`0c 00 00 00 68 00 00 00 04 00 00 00`),
		want: ClientDeviceRemoval{ClientDeviceID: 4},
	},
	{
		name: "4.3(1) Server Capabilities Request", ch: ChannelFileRedirector, dir: ServerToClient,
		wire: unhex(`00 00 00 00 05 00 00 00 06 00`),
		want: ServerCapabilitiesRequest{Version: IOVersionCustomEvents},
	},
	{
		name: "4.3(2) Client Capabilities Reply", ch: ChannelFileRedirector, dir: ClientToServer, fn: FunctionCapabilities,
		wire: unhex(`00 00 00 00 06 00`),
		want: ClientCapabilitiesReply{Version: IOVersionCustomEvents},
	},
	{
		name: "4.4(1) CreateFile Request", ch: ChannelFileRedirector, dir: ServerToClient,
		wire: unhex(`00 00 00 00 04 00 00 00 04 00 00 00 00 00 00 c0
		             03 00 00 00 03 00 00 00 80 00 00 40`),
		want: CreateFileRequest{
			DeviceID:            4,
			DesiredAccess:       GenericRead | GenericWrite,
			ShareMode:           FileShareRead | FileShareWrite,
			CreationDisposition: OpenExisting,
			FlagsAndAttributes:  FileFlagOverlapped | FileAttributeNormal,
		},
	},
	{
		name: "4.4(2) CreateFile Reply", ch: ChannelFileRedirector, dir: ClientToServer, fn: FunctionCreateFile,
		wire: unhex(`00 00 00 00 00 00 00 00`),
		want: CreateFileReply{Result: hresult.S_OK},
	},
	{
		name: "4.4(3) Read Request", ch: ChannelFileRedirector, dir: ServerToClient,
		wire: unhex(`00 00 00 00 00 00 00 00 08 00 00 00 01 00 00 70
		             ff ff ff ff`),
		want: ReadRequest{BytesToRead: 8, Offset: 0x70000001_FFFFFFFF},
	},
	{
		name: "4.4(4) Read Reply", ch: ChannelFileRedirector, dir: ClientToServer, fn: FunctionRead,
		wire: unhex(`00 00 00 00 00 00 00 00 08 00 00 00 2d 00 00 00
		             20 72 00 00 00`),
		want: ReadReply{Data: unhex(`2d 00 00 00 20 72 00 00`)},
	},
	{
		name: "4.4(5) Write Request", ch: ChannelFileRedirector, dir: ServerToClient,
		wire: unhex(`00 00 00 00 01 00 00 00 08 00 00 00 00 00 00 00
		             01 00 00 00 01 00 00 00 2d 00 00 00 20`),
		want: WriteRequest{Offset: 1, Data: unhex(`01 00 00 00 2d 00 00 00`), UnusedByte: 0x20},
	},
	{
		name: "4.4(6) Write Reply", ch: ChannelFileRedirector, dir: ClientToServer, fn: FunctionWrite,
		wire: unhex(`00 00 00 00 00 00 00 00 08 00 00 00`),
		want: WriteReply{BytesWritten: 8},
	},
	{
		name: "4.4(7) IoControl Request", ch: ChannelFileRedirector, dir: ServerToClient,
		wire: unhex(`00 00 00 00 02 00 00 00 40 24 22 00 10 00 00 00
		             08 00 00 00 02 00 00 00 2d 00 00 00 20 72 00 00
		             6c 59 00 00 00`),
		want: IOControlRequest{
			IoCode:           0x00222440,
			OutputBufferSize: 8,
			DataIn:           unhex(`02 00 00 00 2d 00 00 00 20 72 00 00 6c 59 00 00`),
		},
	},
	{
		name: "4.4(8) IoControl Reply", ch: ChannelFileRedirector, dir: ClientToServer, fn: FunctionIOControl,
		wire: unhex(`00 00 00 00 00 00 00 00 08 00 00 00 2d 00 00 00
		             20 72 00 00 00`),
		want: IOControlReply{Data: unhex(`2d 00 00 00 20 72 00 00`)},
	},
	{
		name: "4.4(9) Server IoCancel Request", ch: ChannelFileRedirector, dir: ServerToClient,
		wire: unhex(`ff ff ff ff 06 00 00 00 00 00 00 00`),
		want: SpecificIoCancelRequest{RequestID: 0xFFFFFF, UnusedBits: 0xFF},
	},
	{
		name: "4.4(10) Client Device Custom Event", ch: ChannelFileRedirector, dir: ClientToServer,
		wire: unhex(`00 00 00 01 11 11 11 11 80 80 5f 42 92 2a da bf
		             3d e3 f6 9a 08 00 00 00 20 4c 0f 00 c4 00 0f 00
		             00`),
		want: ClientDeviceCustomEvent{
			CustomEventGUID: MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}"),
			Data:            unhex(`20 4c 0f 00 c4 00 0f 00`),
		},
	},
}

// decodeGolden decodes through the generic dispatchers, as the roles and
// `rdpdvc decode` do.
func decodeGolden(ch string, dir Direction, fn FunctionID, b []byte) (Message, error) {
	if ch == ChannelPNPDR {
		return ParsePNPDR(dir, b)
	}
	return ParseFileRedirector(dir, b, fn)
}

// parseConcrete decodes with the type's own ParseT.
func parseConcrete(want Message, b []byte) (Message, error) {
	switch want.(type) {
	case ServerVersion:
		return asMessage(ParseServerVersion(b))
	case ClientVersion:
		return asMessage(ParseClientVersion(b))
	case AuthenticatedClient:
		return asMessage(ParseAuthenticatedClient(b))
	case ClientDeviceAddition:
		return asMessage(ParseClientDeviceAddition(b))
	case ClientDeviceRemoval:
		return asMessage(ParseClientDeviceRemoval(b))
	case ServerCapabilitiesRequest:
		return asMessage(ParseServerCapabilitiesRequest(b))
	case ClientCapabilitiesReply:
		return asMessage(ParseClientCapabilitiesReply(b))
	case CreateFileRequest:
		return asMessage(ParseCreateFileRequest(b))
	case CreateFileReply:
		return asMessage(ParseCreateFileReply(b))
	case ReadRequest:
		return asMessage(ParseReadRequest(b))
	case ReadReply:
		return asMessage(ParseReadReply(b))
	case WriteRequest:
		return asMessage(ParseWriteRequest(b))
	case WriteReply:
		return asMessage(ParseWriteReply(b))
	case IOControlRequest:
		return asMessage(ParseIOControlRequest(b))
	case IOControlReply:
		return asMessage(ParseIOControlReply(b))
	case SpecificIoCancelRequest:
		return asMessage(ParseSpecificIoCancelRequest(b))
	case ClientDeviceCustomEvent:
		return asMessage(ParseClientDeviceCustomEvent(b))
	}
	panic("no parser for " + reflect.TypeOf(want).String())
}

func TestGoldenDecodeEncode(t *testing.T) {
	for _, g := range golden {
		t.Run(g.name, func(t *testing.T) {
			got, err := decodeGolden(g.ch, g.dir, g.fn, g.wire)
			if err != nil {
				t.Fatalf("dispatcher: %v", err)
			}
			if !reflect.DeepEqual(got, g.want) {
				t.Fatalf("dispatcher decoded\n %#v\nwant\n %#v", got, g.want)
			}
			got, err = parseConcrete(g.want, g.wire)
			if err != nil {
				t.Fatalf("ParseT: %v", err)
			}
			if !reflect.DeepEqual(got, g.want) {
				t.Fatalf("ParseT decoded\n %#v\nwant\n %#v", got, g.want)
			}
			if SpecName(got) == "" {
				t.Errorf("SpecName(%T) is empty", got)
			}
			if n := g.want.Len(); n != len(g.wire) {
				t.Errorf("Len() = %d, want %d", n, len(g.wire))
			}
			enc := g.want.Append(nil)
			if !bytes.Equal(enc, g.wire) {
				t.Fatalf("Append:\n got %x\nwant %x", enc, g.wire)
			}
			// Append must append, not overwrite.
			prefix := []byte{0xAA, 0xBB}
			if enc := g.want.Append(prefix); !bytes.Equal(enc[:2], prefix) || !bytes.Equal(enc[2:], g.wire) {
				t.Fatalf("Append after a prefix: %x", enc)
			}
		})
	}
}

// Every proper prefix of every capture is a truncated message.
func TestGoldenTruncatedAtEveryLength(t *testing.T) {
	for _, g := range golden {
		for i := 0; i < len(g.wire); i++ {
			b := g.wire[:i:i]
			for _, parse := range []func() (Message, error){
				func() (Message, error) { return decodeGolden(g.ch, g.dir, g.fn, b) },
				func() (Message, error) { return parseConcrete(g.want, b) },
			} {
				m, err := parse()
				if !errors.Is(err, ErrTruncated) {
					t.Fatalf("%s cut to %d bytes: got %v, %v; want ErrTruncated", g.name, i, m, err)
				}
				var e *Error
				if !errors.As(err, &e) || e.Message == "" {
					t.Fatalf("%s cut to %d bytes: error %v is not a *Error naming the message", g.name, i, err)
				}
				if m != nil {
					t.Fatalf("%s cut to %d bytes: non-nil message %#v with error", g.name, i, m)
				}
			}
		}
	}
}

// A byte more is trailing data for every message but the IOControl
// Request, where it is DataOut.
func TestGoldenTrailingByte(t *testing.T) {
	for _, g := range golden {
		b := append(append([]byte(nil), g.wire...), 0)
		_, err := parseConcrete(g.want, b)
		if _, ok := g.want.(IOControlRequest); ok {
			if err != nil {
				t.Errorf("%s: %v", g.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrTrailingData) {
			t.Errorf("%s + 1 byte: got %v, want ErrTrailingData", g.name, err)
		}
	}
}

func TestGoldenJSON(t *testing.T) {
	// The shapes `rdpdvc decode` prints: GUIDs as strings, data as hex,
	// multisz as arrays, spec field names.
	cases := map[string]string{
		"4.2(1) Client Device Addition":      `{"DeviceDescriptions":[{"ClientDeviceID":4,"InterfaceGUIDArray":["{2B4A9C46-658D-4AF2-A91D-1E691861706C}"],"HardwareId":["WUDF\\LB"],"CompatibilityID":null,"DeviceDescription":"Ts Fake Device","CustomFlag":2}]}`,
		"4.4(4) Read Reply":                  `{"RequestId":0,"Result":0,"Data":"2d00000020720000","UnusedByte":0}`,
		"4.4(9) Server IoCancel Request":     `{"RequestId":16777215,"UnusedBits":255,"BodyUnusedBits":0,"idToCancel":0,"AltIdToCancel":0}`,
		"4.4(10) Client Device Custom Event": `{"RequestId":0,"CustomEventGUID":"{11111111-8080-425F-922A-DABF3DE3F69A}","Data":"204c0f00c4000f00","UnusedByte":0}`,
		"4.4(3) Read Request":                `{"RequestId":0,"UnusedBits":0,"cbBytesToRead":8,"Offset":8070450540837863423}`,
	}
	for _, g := range golden {
		want, ok := cases[g.name]
		if !ok {
			continue
		}
		got, err := jsonMarshal(g.want)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s JSON:\n got %s\nwant %s", g.name, got, want)
		}
	}
}
