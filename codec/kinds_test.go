package codec_test

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/codec"
	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/echo"
	wire "github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/simple"
)

func patchU32(b []byte, off int, v uint32) []byte {
	b = append([]byte(nil), b...)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

// Every codec returns the one shape: an *codec.Error that names the
// codec, message and field, and matches its kind (and only it) under
// errors.Is, through the codec's own re-exported names too.
func TestEveryCodecSameShape(t *testing.T) {
	kinds := []error{codec.ErrTruncated, codec.ErrTooLarge, codec.ErrInvalid, codec.ErrUnsupported}
	one := chanpdu.Header{Length: 10, Flags: chanpdu.FlagFirst | chanpdu.FlagLast}
	for _, tc := range []struct {
		name          string
		err           error
		kind, narrow  error // narrow: the codec's own kind, if any
		prefix, field string
	}{
		{"drdynvc truncated", func() error { _, err := drdynvc.ParseCreateResponse([]byte{0x10, 0x01}); return err }(), drdynvc.ErrTruncated, nil, "drdynvc: DYNVC_CREATE_RSP", "CreationStatus"},
		{"drdynvc too large", drdynvc.CreateRequest{ChannelID: 1, ChannelName: strings.Repeat("n", 257)}.Validate(), drdynvc.ErrTooLarge, nil, "drdynvc: DYNVC_CREATE_REQ", "ChannelName"},
		{"drdynvc invalid", func() error { _, err := drdynvc.ParseCapsResponse([]byte{0x50, 0, 0, 0}); return err }(), drdynvc.ErrInvalid, nil, "drdynvc: DYNVC_CAPS_RSP", "Version"},
		{"chanpdu truncated", func() error { _, err := chanpdu.ParseHeader([]byte{1, 2}); return err }(), chanpdu.ErrTruncated, nil, "chanpdu: CHANNEL_PDU_HEADER", ""},
		{"chanpdu too large", func() error {
			_, _, err := (&chanpdu.Reassembler{MaxLength: 5}).Push(one, make([]byte, 10))
			return err
		}(), chanpdu.ErrTooLarge, nil, "chanpdu: CHANNEL_PDU_HEADER", "length"},
		{"chanpdu sequence", func() error {
			_, _, err := (&chanpdu.Reassembler{}).Push(chanpdu.Header{Length: 10, Flags: chanpdu.FlagLast}, make([]byte, 10))
			return err
		}(), chanpdu.ErrInvalid, chanpdu.ErrSequence, "chanpdu: CHANNEL_PDU_HEADER", "flags"},
		{"chanpdu unsupported", func() error {
			_, _, err := (&chanpdu.Reassembler{}).Push(chanpdu.Header{Length: 10, Flags: one.Flags | chanpdu.FlagPacketCompressed}, make([]byte, 10))
			return err
		}(), chanpdu.ErrUnsupported, nil, "chanpdu: CHANNEL_PDU_HEADER", "flags"},
		{"pnp/wire truncated", func() error { _, err := wire.ParsePNPInfoHeader([]byte{1}); return err }(), wire.ErrTruncated, nil, "pnp/wire: PNPInfoHeader", "Size"},
		{"pnp/wire too large", func() error {
			_, err := wire.ParseClientDeviceAddition(patchU32(wire.ClientDeviceAddition{}.Append(nil), 8, 0xFFFFFFFF))
			return err
		}(), wire.ErrTooLarge, nil, "pnp/wire: ClientDeviceAddition", "DeviceCount"},
		{"pnp/wire invalid", func() error {
			_, err := wire.ParseServerVersion(patchU32(wire.ServerVersion{}.Append(nil), 4, 0x77))
			return err
		}(), wire.ErrInvalid, nil, "pnp/wire: ServerVersion", "PacketId"},
		{"pnp/wire unknown function", func() error {
			_, err := wire.ParseRequest(wire.ServerIOHeader{RequestID: 1, FunctionID: 99}.Append(nil))
			return err
		}(), wire.ErrInvalid, wire.ErrUnknownFunction, "pnp/wire: ", "FunctionId"},
		{"simple truncated", func() error { _, _, err := simple.ParseFrame([]byte{1}); return err }(), simple.ErrTruncated, nil, "simple: frame", "frameLen"},
		{"simple too large", simple.Frame{Payload: make([]byte, simple.MaxPayload+1)}.Validate(), simple.ErrTooLarge, nil, "simple: frame", "payloadLen"},
		{"simple invalid", func() error { _, err := simple.FrameLen([]byte{1, 0, 0, 0}); return err }(), simple.ErrInvalid, nil, "simple: frame", "frameLen"},
		{"echo truncated", func() error { _, err := echo.ParseRequest(nil); return err }(), echo.ErrTruncated, nil, "echo: ECHO_REQUEST_PDU", "echoRequest"},
		{"echo too large", echo.Response{EchoResponse: make([]byte, echo.MaxSize+1)}.Validate(), echo.ErrTooLarge, nil, "echo: ECHO_RESPONSE_PDU", "echoResponse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e *codec.Error
			if !errors.As(tc.err, &e) {
				t.Fatalf("%v (%T) is not a *codec.Error", tc.err, tc.err)
			}
			if !strings.HasPrefix(tc.err.Error(), tc.prefix) || e.Field != tc.field {
				t.Fatalf("%q: want prefix %q and field %q (got field %q)", tc.err, tc.prefix, tc.field, e.Field)
			}
			for _, k := range kinds {
				if errors.Is(tc.err, k) != (k == tc.kind) {
					t.Fatalf("%q: errors.Is(%v) = %v", tc.err, k, !(k == tc.kind))
				}
			}
			if tc.narrow != nil && !errors.Is(tc.err, tc.narrow) {
				t.Fatalf("%q does not match %v", tc.err, tc.narrow)
			}
		})
	}
}
