package wire

import "github.com/rdpdvc/rdpdvc/hresult"

// ReadRequest is the Read Request message (2.2.2.3.3).
type ReadRequest struct {
	RequestID   uint32 `json:"RequestId"`
	UnusedBits  uint8  `json:"UnusedBits"`
	BytesToRead uint32 `json:"cbBytesToRead"` // at most MaxReadBytes
	// Offset is OffsetHigh:OffsetLow, the 64-bit position to read at.
	Offset uint64 `json:"Offset"`
}

const readRequestLen = ServerIOHeaderLen + 12

// ParseReadRequest decodes a Read Request. cbBytesToRead over MaxReadBytes
// is an error wrapping ErrTooLarge.
func ParseReadRequest(b []byte) (ReadRequest, error) {
	r, h := readRequest(b, "ReadRequest", FunctionRead)
	n := r.u32("cbBytesToRead")
	if r.err == nil && n > MaxReadBytes {
		r.fail("cbBytesToRead", ErrTooLarge, "%d > %d", n, MaxReadBytes)
	}
	hi := r.u32("OffsetHigh")
	lo := r.u32("OffsetLow")
	r.end()
	if r.err != nil {
		return ReadRequest{}, r.err
	}
	return ReadRequest{RequestID: h.RequestID, UnusedBits: h.UnusedBits, BytesToRead: n, Offset: uint64(hi)<<32 | uint64(lo)}, nil
}

func (m ReadRequest) Header() ServerIOHeader {
	return ServerIOHeader{RequestID: m.RequestID, UnusedBits: m.UnusedBits, FunctionID: FunctionRead}
}

func (m ReadRequest) Len() int { return readRequestLen }

func (m ReadRequest) Append(b []byte) []byte {
	b = grow(b, readRequestLen)
	b = appendServerHeader(b, m.RequestID, m.UnusedBits, FunctionRead)
	b = appendU32(b, m.BytesToRead)
	b = appendU32(b, uint32(m.Offset>>32))
	return appendU32(b, uint32(m.Offset))
}

// ReadReply is the Read Reply message (2.2.2.3.4). cbBytesRead is
// len(Data).
type ReadReply struct {
	RequestID  uint32          `json:"RequestId"`
	Result     hresult.HRESULT `json:"Result"`
	Data       Bytes           `json:"Data"`       // aliases the decoded input
	UnusedByte uint8           `json:"UnusedByte"` // trailing pad, ignored, kept for exact re-encoding
}

const readReplyMinLen = ClientIOHeaderLen + 8 + 1

// ParseReadReply decodes a Read Reply. Data aliases b. cbBytesRead over
// MaxReadBytes is an error wrapping ErrTooLarge; whether it exceeds the
// request's cbBytesToRead is for CheckReply.
func ParseReadReply(b []byte) (ReadReply, error) {
	r, id := readReply(b, "ReadReply")
	res := hresult.HRESULT(r.u32("Result"))
	n := r.length("cbBytesRead", MaxReadBytes)
	data := r.bytes("Data", n)
	unused := r.u8("UnusedByte")
	r.end()
	if r.err != nil {
		return ReadReply{}, r.err
	}
	return ReadReply{RequestID: id, Result: res, Data: data, UnusedByte: unused}, nil
}

func (m ReadReply) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeResponse}
}

func (m ReadReply) Function() FunctionID { return FunctionRead }

func (m ReadReply) Len() int { return readReplyMinLen + len(m.Data) }

func (m ReadReply) Append(b []byte) []byte {
	b = grow(b, m.Len())
	b = appendClientHeader(b, m.RequestID, PacketTypeResponse)
	b = appendU32(b, uint32(m.Result))
	b = appendU32(b, uint32(len(m.Data)))
	b = append(b, m.Data...)
	return append(b, m.UnusedByte)
}
