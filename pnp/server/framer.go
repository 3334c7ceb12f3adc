package server

import (
	"encoding/binary"
	"fmt"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// PNPDRFramer is the dvc.Framer for PNPDR on stream backends: every message
// starts with a PNP_INFO_HEADER whose Size is the whole message (2.2.1.1).
// A Size below the header's 8 bytes or above MaxPNPDRMessage is an error.
func PNPDRFramer(buf []byte) (int, error) {
	if len(buf) < 4 {
		return 0, nil
	}
	size := binary.LittleEndian.Uint32(buf)
	if size < wire.PNPInfoHeaderLen || size > MaxPNPDRMessage {
		return 0, fmt.Errorf("pnp/server: PNP_INFO_HEADER Size %d is outside %d..%d", size, wire.PNPInfoHeaderLen, MaxPNPDRMessage)
	}
	if uint32(len(buf)) < size {
		return 0, nil
	}
	return int(size), nil
}

// Outstanding looks up an outstanding request by RequestId for
// FileRedirectorFramer: its FunctionId and, for Read and IOControl, the
// most data its reply may carry (cbBytesToRead, cbOut).
type Outstanding func(requestID uint32) (fn wire.FunctionID, maxData uint32, ok bool)

// Lengths of the fixed parts of the client's messages (2.2.2.2.2,
// 2.2.2.3.2, 2.2.2.3.4, 2.2.2.3.6, 2.2.2.3.8, 2.2.2.3.10).
const (
	capsReplyLen       = wire.ClientIOHeaderLen + 2
	createFileReplyLen = wire.ClientIOHeaderLen + 4
	writeReplyLen      = wire.ClientIOHeaderLen + 8
	dataReplyFixed     = wire.ClientIOHeaderLen + 8 // Result, cbBytesRead / cbBytesReadReturned
	customEventFixed   = wire.ClientIOHeaderLen + 16 + 4
)

// FileRedirectorFramer returns the dvc.Framer for a FileRedirectorChannel
// instance on stream backends. A client message does not carry its length;
// it is recovered "from the request each reply answers": the
// CLIENT_IO_HEADER's RequestId names an outstanding request, whose
// FunctionId fixes the reply's layout, and the Read and IOControl replies
// then give their data length. A custom event carries cbData.
//
// A reply to a RequestId that is not outstanding cannot be delimited, nor
// can an unknown PacketType; both are errors (the backend closes the
// channel). So is a data length above what the request allowed: such a
// reply would close the channel anyway (3.3.5.2.2.8), and the framer
// refuses it before the backend buffers it.
func FileRedirectorFramer(lookup Outstanding) dvc.Framer {
	return func(buf []byte) (int, error) {
		if len(buf) < wire.ClientIOHeaderLen {
			return 0, nil
		}
		h := binary.LittleEndian.Uint32(buf)
		id, pt := h&wire.MaxRequestID, wire.PacketType(h>>24)
		switch pt {
		case wire.PacketTypeCustomEvent:
			if len(buf) < customEventFixed {
				return 0, nil
			}
			n := binary.LittleEndian.Uint32(buf[customEventFixed-4:])
			if n > wire.MaxCustomEventBytes {
				return 0, fmt.Errorf("pnp/server: ClientDeviceCustomEvent cbData %d > %d", n, wire.MaxCustomEventBytes)
			}
			return need(buf, customEventFixed+int(n)+1)
		case wire.PacketTypeResponse:
		default:
			return 0, fmt.Errorf("pnp/server: CLIENT_IO_HEADER PacketType 0x%02X is unknown", uint8(pt))
		}
		fn, max, ok := lookup(id)
		if !ok {
			return 0, fmt.Errorf("pnp/server: reply to RequestId 0x%06X, which is not outstanding, cannot be delimited", id)
		}
		switch fn {
		case wire.FunctionCapabilities:
			return need(buf, capsReplyLen)
		case wire.FunctionCreateFile:
			return need(buf, createFileReplyLen)
		case wire.FunctionWrite:
			return need(buf, writeReplyLen)
		case wire.FunctionRead, wire.FunctionIOControl:
			if len(buf) < dataReplyFixed {
				return 0, nil
			}
			n := binary.LittleEndian.Uint32(buf[dataReplyFixed-4:])
			if n > max {
				return 0, fmt.Errorf("pnp/server: reply to %v 0x%06X carries %d bytes, more than the %d asked for (3.3.5.2.2.8)", fn, id, n, max)
			}
			return need(buf, dataReplyFixed+int(n)+1)
		}
		return 0, fmt.Errorf("pnp/server: no reply is defined for %v", fn)
	}
}

func need(buf []byte, n int) (int, error) {
	if len(buf) < n {
		return 0, nil
	}
	return n, nil
}
