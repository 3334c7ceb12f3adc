package wire

import "fmt"

// Header lengths.
const (
	ServerIOHeaderLen = 8 // SERVER_IO_HEADER
	ClientIOHeaderLen = 4 // CLIENT_IO_HEADER
)

// ServerIOHeader is SERVER_IO_HEADER (2.2.2.1.1), the header of every
// FileRedirectorChannel message from the server: a little-endian dword
// whose low 24 bits are RequestId and high 8 bits UnusedBits, then
// FunctionId. (Section 4 lists "Unused" before "Request Id" because it
// names the dword's bytes high to low; the Client Device Custom Event
// capture, where PacketType 0x01 is the fourth byte, shows the layout.)
type ServerIOHeader struct {
	RequestID  uint32     `json:"RequestId"` // 24 bits
	UnusedBits uint8      `json:"UnusedBits"`
	FunctionID FunctionID `json:"FunctionId"`
}

// ParseServerIOHeader reads the header at the start of b. A role that
// rejects a request's body can still use it to answer the RequestId, and
// it is how a dispatcher learns the FunctionId. An unknown FunctionId is
// not an error here; ParseRequest reports it.
func ParseServerIOHeader(b []byte) (ServerIOHeader, error) {
	r := newReader(b, "ServerIOHeader")
	h := r.serverHeader()
	return h, r.err
}

func (r *reader) serverHeader() ServerIOHeader {
	v := r.u32("RequestId")
	fn := FunctionID(r.u32("FunctionId"))
	return ServerIOHeader{RequestID: v & MaxRequestID, UnusedBits: uint8(v >> 24), FunctionID: fn}
}

// Append appends the header. It panics if RequestID does not fit in 24
// bits: truncating it would make the reply match some other request.
func (h ServerIOHeader) Append(b []byte) []byte {
	return appendServerHeader(b, h.RequestID, h.UnusedBits, h.FunctionID)
}

func appendServerHeader(b []byte, id uint32, unused uint8, fn FunctionID) []byte {
	checkRequestID(id)
	b = appendU32(b, id|uint32(unused)<<24)
	return appendU32(b, uint32(fn))
}

func checkRequestID(id uint32) {
	if id > MaxRequestID {
		panic(fmt.Sprintf("pnp/wire: RequestId 0x%X does not fit in 24 bits", id))
	}
}

// readRequest starts decoding a request of type msg, which must carry
// FunctionId fn.
func readRequest(b []byte, msg string, fn FunctionID) (reader, ServerIOHeader) {
	r := newReader(b, msg)
	h := r.serverHeader()
	if r.err == nil && h.FunctionID != fn {
		r.fail("FunctionId", ErrInvalid, "got %v, want %v", h.FunctionID, fn)
	}
	return r, h
}

// ClientIOHeader is CLIENT_IO_HEADER (2.2.2.1.2), the header of every
// FileRedirectorChannel message from the client: a little-endian dword
// whose low 24 bits are RequestId and high 8 bits PacketType.
type ClientIOHeader struct {
	RequestID  uint32     `json:"RequestId"` // 24 bits
	PacketType PacketType `json:"PacketType"`
}

// ParseClientIOHeader reads the header at the start of b. A server role
// uses it to find the outstanding request a reply answers (and from it the
// FunctionID that ParseReply needs), or to see a custom event.
func ParseClientIOHeader(b []byte) (ClientIOHeader, error) {
	r := newReader(b, "ClientIOHeader")
	h := r.clientHeader()
	return h, r.err
}

func (r *reader) clientHeader() ClientIOHeader {
	v := r.u32("RequestId")
	return ClientIOHeader{RequestID: v & MaxRequestID, PacketType: PacketType(v >> 24)}
}

// Append appends the header. It panics if RequestID does not fit in 24
// bits.
func (h ClientIOHeader) Append(b []byte) []byte {
	return appendClientHeader(b, h.RequestID, h.PacketType)
}

func appendClientHeader(b []byte, id uint32, pt PacketType) []byte {
	checkRequestID(id)
	return appendU32(b, id|uint32(pt)<<24)
}

// readReply starts decoding a reply of type msg: PacketType must be
// RESPONSE_PACKET.
func readReply(b []byte, msg string) (reader, uint32) {
	r := newReader(b, msg)
	h := r.clientHeader()
	switch {
	case r.err != nil:
	case h.PacketType == PacketTypeCustomEvent:
		r.fail("PacketType", ErrInvalid, "CUSTOM_EVENT_PACKET, not a reply")
	case h.PacketType != PacketTypeResponse:
		r.fail("PacketType", ErrUnknownPacket, "0x%02X", uint8(h.PacketType))
	}
	return r, h.RequestID
}
