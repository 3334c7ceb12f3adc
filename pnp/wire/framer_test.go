package wire

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzFileRedirectorFramer: whatever the bytes, the framer never panics,
// never claims more than it has, and every message it delimits decodes as
// the reply to the request it names, within that request's limits: the
// framer and the decoders agree on every layout.
func FuzzFileRedirectorFramer(f *testing.F) {
	out := map[uint32]struct {
		fn  FunctionID
		max uint32
	}{
		0x000000: {FunctionCapabilities, 0},
		0x010101: {FunctionCreateFile, 0},
		0x020202: {FunctionRead, 16},
		0x030303: {FunctionWrite, 16},
		0x040404: {FunctionIOControl, 8},
	}
	framer := FileRedirectorFramer(func(id uint32) (FunctionID, uint32, bool) {
		o, ok := out[id]
		return o.fn, o.max, ok
	})
	f.Add(ReadReply{RequestID: 0x020202, Data: []byte("abc")}.Append(nil))
	f.Add(IOControlReply{RequestID: 0x040404, Data: []byte("abcdefgh")}.Append(nil))
	f.Add(ClientCapabilitiesReply{Version: 6}.Append(nil))
	f.Add(CreateFileReply{RequestID: 0x010101}.Append(nil))
	f.Add(WriteReply{RequestID: 0x030303}.Append(nil))
	f.Add(ClientDeviceCustomEvent{Data: []byte("ev")}.Append(nil))
	f.Fuzz(func(t *testing.T, buf []byte) {
		n, err := framer(buf)
		if err != nil {
			var we *Error
			if !errors.As(err, &we) {
				t.Fatalf("framer error %v is not a *wire.Error", err)
			}
			return
		}
		if n == 0 {
			return
		}
		if n > len(buf) {
			t.Fatalf("framer claims %d of %d bytes", n, len(buf))
		}
		msg := buf[:n]
		h := binary.LittleEndian.Uint32(msg)
		id, pt := h&MaxRequestID, PacketType(h>>24)
		if pt == PacketTypeCustomEvent {
			if _, err := ParseClientDeviceCustomEvent(msg); err != nil {
				t.Fatalf("framed custom event does not decode: %v", err)
			}
			return
		}
		o := out[id]
		rep, err := ParseReply(msg, o.fn)
		if err != nil {
			t.Fatalf("framed %v reply does not decode: %v", o.fn, err)
		}
		var req Request
		switch o.fn {
		case FunctionRead:
			req = ReadRequest{RequestID: id, BytesToRead: o.max}
		case FunctionIOControl:
			req = IOControlRequest{RequestID: id, OutputBufferSize: o.max}
		case FunctionWrite:
			req = WriteRequest{RequestID: id}
		case FunctionCreateFile:
			req = CreateFileRequest{RequestID: id}
		default:
			req = ServerCapabilitiesRequest{RequestID: id}
		}
		if err := CheckReply(req, rep); err != nil {
			t.Fatalf("framed reply breaks its request's limits: %v", err)
		}
	})
}

// FuzzPNPDRFramer: a delimited message is exactly its Size, within
// 8..MaxPNPDRMessage, and every PNPDR message the package encodes frames
// as itself.
func FuzzPNPDRFramer(f *testing.F) {
	f.Add(ClientDeviceRemoval{ClientDeviceID: 2}.Append(nil))
	f.Add(ServerVersion{}.Append(nil))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0x7F})
	f.Fuzz(func(t *testing.T, buf []byte) {
		n, err := PNPDRFramer(buf)
		if err != nil || n == 0 {
			return
		}
		if n > len(buf) || n < PNPInfoHeaderLen || n > MaxPNPDRMessage || uint32(n) != binary.LittleEndian.Uint32(buf) {
			t.Fatalf("PNPDRFramer(%d bytes, Size %d) = %d", len(buf), binary.LittleEndian.Uint32(buf), n)
		}
	})
}

func TestFramersOnEncodedMessages(t *testing.T) {
	for _, m := range [][]byte{ClientDeviceRemoval{ClientDeviceID: 2}.Append(nil), ServerVersion{}.Append(nil)} {
		if n, err := PNPDRFramer(append(m, 0xAA)); n != len(m) || err != nil {
			t.Errorf("PNPDRFramer(% x + 1 byte) = %d, %v", m, n, err)
		}
		if n, err := PNPDRFramer(m[:len(m)-1]); n != 0 || err != nil {
			t.Errorf("PNPDRFramer(short) = %d, %v", n, err)
		}
	}
	if _, err := PNPDRFramer([]byte{7, 0, 0, 0}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Size 7: %v", err)
	}
	fr := FileRedirectorFramer(func(id uint32) (FunctionID, uint32, bool) { return FunctionRead, 4, id == 9 })
	r := ReadReply{RequestID: 9, Data: []byte("abcd")}.Append(nil)
	if n, err := fr(append(r, 1, 2)); n != len(r) || err != nil {
		t.Errorf("Read reply: %d, %v", n, err)
	}
	big := ReadReply{RequestID: 9, Data: []byte("abcde")}.Append(nil)
	var we *Error
	if _, err := fr(big); !errors.As(err, &we) || we.Field != "cbBytesRead" || !errors.Is(err, ErrTooLarge) {
		t.Errorf("Read reply over cbBytesToRead: %v", err)
	}
	if _, err := fr(ReadReply{RequestID: 8}.Append(nil)); !errors.Is(err, ErrInvalid) {
		t.Errorf("reply to a request not outstanding: %v", err)
	}
	if got := len(ReadReply{RequestID: 1, Data: []byte("xy")}.Append(nil)); got != ReadReplyDataOffset+2+1 {
		t.Errorf("ReadReplyDataOffset %d does not match the encoder (%d bytes for 2 of data)", ReadReplyDataOffset, got)
	}
}
