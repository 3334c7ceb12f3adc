package wire

import "encoding/binary"

// Framing: what a stream backend (xrdp's xrdpapi socket, a FreeRDP client
// behind xrdp) needs to recover whole MS-RDPEPNP messages from a byte
// stream. Each function has dvc.Framer's shape: given the bytes so far,
// the length of the first whole message, 0 if more bytes are needed, or
// an error if the bytes cannot start a valid message.

// MaxPNPDRMessage bounds one PNPDR message (its PNP_INFO_HEADER Size). A
// Client Device Addition of a few devices is a few hundred bytes each; a
// larger message is malformed.
const MaxPNPDRMessage = 1 << 20

// ReadReplyDataOffset is where a Read Reply's Data starts: after
// CLIENT_IO_HEADER, Result and cbBytesRead (2.2.2.3.4). A client reading
// a device straight into its reply reads to here, then encodes the reply
// with Append on the same buffer.
const ReadReplyDataOffset = ClientIOHeaderLen + 8

// PNPDRFramer delimits PNPDR messages: each starts with a PNP_INFO_HEADER
// whose Size is the whole message (2.2.1.1). A Size below the header's 8
// bytes or above MaxPNPDRMessage is an error.
func PNPDRFramer(buf []byte) (int, error) {
	if len(buf) < 4 {
		return 0, nil
	}
	size := binary.LittleEndian.Uint32(buf)
	if size < PNPInfoHeaderLen || size > MaxPNPDRMessage {
		return 0, newError("PNPInfoHeader", "Size", ErrInvalid, "%d is outside %d..%d", size, PNPInfoHeaderLen, MaxPNPDRMessage)
	}
	return need(buf, int(size)), nil
}

// Outstanding looks up an outstanding request by RequestId, for
// FileRedirectorFramer: its FunctionId and, for Read and IOControl, the
// most data its reply may carry (cbBytesToRead, cbOut).
type Outstanding func(requestID uint32) (fn FunctionID, maxData uint32, ok bool)

// FileRedirectorFramer returns the framer for what a client sends on a
// FileRedirectorChannel instance. A client message does not carry its
// length; it is recovered from the request each reply answers: the
// CLIENT_IO_HEADER's RequestId names an outstanding request, whose
// FunctionId fixes the reply's layout, and the Read and IOControl replies
// then give their data length (2.2.2.3.4, 2.2.2.3.8). A custom event
// carries cbData (2.2.2.3.10).
//
// A reply to a RequestId that is not outstanding cannot be delimited, nor
// can an unknown PacketType; both are errors. So is a data length above
// what the request allowed: such a reply would close the channel anyway
// (3.3.5.2.2.8), and the framer refuses it before anything buffers it.
func FileRedirectorFramer(lookup Outstanding) func(buf []byte) (int, error) {
	return func(buf []byte) (int, error) {
		if len(buf) < ClientIOHeaderLen {
			return 0, nil
		}
		h := binary.LittleEndian.Uint32(buf)
		id, pt := h&MaxRequestID, PacketType(h>>24)
		switch pt {
		case PacketTypeCustomEvent:
			const fixed = customEventMinLen - 1 // header, GUID, cbData
			if len(buf) < fixed {
				return 0, nil
			}
			n := binary.LittleEndian.Uint32(buf[fixed-4:])
			if n > MaxCustomEventBytes {
				return 0, newError("ClientDeviceCustomEvent", "cbData", ErrTooLarge, "%d > %d", n, MaxCustomEventBytes)
			}
			return need(buf, customEventMinLen+int(n)), nil
		case PacketTypeResponse:
		default:
			return 0, newError("ClientIOHeader", "PacketType", ErrUnknownPacket, "0x%02X", uint8(pt))
		}
		fn, max, ok := lookup(id)
		if !ok {
			return 0, newError("ClientIOHeader", "RequestId", ErrInvalid, "a reply to 0x%06X, which is not outstanding, cannot be delimited", id)
		}
		switch fn {
		case FunctionCapabilities:
			return need(buf, capsReplyLen), nil
		case FunctionCreateFile:
			return need(buf, createFileReplyLen), nil
		case FunctionWrite:
			return need(buf, writeReplyLen), nil
		case FunctionRead, FunctionIOControl:
			const fixed = readReplyMinLen - 1 // header, Result, the length
			if len(buf) < fixed {
				return 0, nil
			}
			n := binary.LittleEndian.Uint32(buf[fixed-4:])
			if n > max {
				msg, field := "ReadReply", "cbBytesRead"
				if fn == FunctionIOControl {
					msg, field = "IOControlReply", "cbBytesReadReturned"
				}
				return 0, newError(msg, field, ErrTooLarge, "reply to 0x%06X carries %d bytes, more than the %d asked for (3.3.5.2.2.8)", id, n, max)
			}
			return need(buf, readReplyMinLen+int(n)), nil
		}
		return 0, newError("ClientIOHeader", "RequestId", ErrInvalid, "no reply is defined for %v", fn)
	}
}

func need(buf []byte, n int) int {
	if len(buf) < n {
		return 0
	}
	return n
}
