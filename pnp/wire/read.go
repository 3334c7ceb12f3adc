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
	id, res, data, unused, err := parseDataReply(b, "ReadReply", "cbBytesRead", MaxReadBytes)
	if err != nil {
		return ReadReply{}, err
	}
	return ReadReply{RequestID: id, Result: res, Data: data, UnusedByte: unused}, nil
}

// parseDataReply decodes the layout the Read Reply (2.2.2.3.4) and the
// IOControl Reply (2.2.2.3.8) share: CLIENT_IO_HEADER, Result, a length
// named lenField (at most max), that many bytes of data, UnusedByte.
func parseDataReply(b []byte, msg, lenField string, max int) (id uint32, res hresult.HRESULT, data []byte, unused uint8, err error) {
	r, id := readReply(b, msg)
	res = hresult.HRESULT(r.u32("Result"))
	n := r.length(lenField, max)
	data = r.bytes("Data", n)
	unused = r.u8("UnusedByte")
	r.end()
	return id, res, data, unused, r.err
}

// appendDataReply encodes the layout parseDataReply decodes.
func appendDataReply(b []byte, id uint32, res hresult.HRESULT, data []byte, unused uint8) []byte {
	b = grow(b, ClientIOHeaderLen+8+len(data)+1)
	b = appendClientHeader(b, id, PacketTypeResponse)
	b = appendU32(b, uint32(res))
	b = appendU32(b, uint32(len(data)))
	b = append(b, data...)
	return append(b, unused)
}

func (m ReadReply) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeResponse}
}

func (m ReadReply) Function() FunctionID { return FunctionRead }

func (m ReadReply) Len() int { return readReplyMinLen + len(m.Data) }

func (m ReadReply) Append(b []byte) []byte {
	return appendDataReply(b, m.RequestID, m.Result, m.Data, m.UnusedByte)
}
