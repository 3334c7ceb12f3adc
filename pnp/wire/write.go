package wire

import "github.com/rdpdvc/rdpdvc/hresult"

// WriteRequest is the Write Request message (2.2.2.3.5). cbWrite is
// len(Data).
type WriteRequest struct {
	RequestID  uint32 `json:"RequestId"`
	UnusedBits uint8  `json:"UnusedBits"`
	// Offset is OffsetHigh:OffsetLow, the 64-bit position to write at.
	Offset     uint64 `json:"Offset"`
	Data       Bytes  `json:"Data"`       // aliases the decoded input; at most MaxWriteBytes
	UnusedByte uint8  `json:"UnusedByte"` // trailing pad, ignored, kept for exact re-encoding
}

const writeRequestMinLen = ServerIOHeaderLen + 12 + 1

// ParseWriteRequest decodes a Write Request. Data aliases b.
func ParseWriteRequest(b []byte) (WriteRequest, error) {
	r, h := readRequest(b, "WriteRequest", FunctionWrite)
	n := r.length("cbWrite", MaxWriteBytes)
	hi := r.u32("OffsetHigh")
	lo := r.u32("OffsetLow")
	data := r.bytes("Data", n)
	unused := r.u8("UnusedByte")
	r.end()
	if r.err != nil {
		return WriteRequest{}, r.err
	}
	return WriteRequest{RequestID: h.RequestID, UnusedBits: h.UnusedBits, Offset: uint64(hi)<<32 | uint64(lo), Data: data, UnusedByte: unused}, nil
}

func (m WriteRequest) Header() ServerIOHeader {
	return ServerIOHeader{RequestID: m.RequestID, UnusedBits: m.UnusedBits, FunctionID: FunctionWrite}
}

func (m WriteRequest) Len() int { return writeRequestMinLen + len(m.Data) }

func (m WriteRequest) Append(b []byte) []byte {
	b = grow(b, m.Len())
	b = appendServerHeader(b, m.RequestID, m.UnusedBits, FunctionWrite)
	b = appendU32(b, uint32(len(m.Data)))
	b = appendU32(b, uint32(m.Offset>>32))
	b = appendU32(b, uint32(m.Offset))
	b = append(b, m.Data...)
	return append(b, m.UnusedByte)
}

// WriteReply is the Write Reply message (2.2.2.3.6).
type WriteReply struct {
	RequestID    uint32          `json:"RequestId"`
	Result       hresult.HRESULT `json:"Result"`
	BytesWritten uint32          `json:"cbBytesWritten"`
}

const writeReplyLen = ClientIOHeaderLen + 8

// ParseWriteReply decodes a Write Reply.
func ParseWriteReply(b []byte) (WriteReply, error) {
	r, id := readReply(b, "WriteReply")
	m := WriteReply{RequestID: id, Result: hresult.HRESULT(r.u32("Result")), BytesWritten: r.u32("cbBytesWritten")}
	r.end()
	if r.err != nil {
		return WriteReply{}, r.err
	}
	return m, nil
}

func (m WriteReply) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeResponse}
}

func (m WriteReply) Function() FunctionID { return FunctionWrite }

func (m WriteReply) Len() int { return writeReplyLen }

func (m WriteReply) Append(b []byte) []byte {
	b = grow(b, writeReplyLen)
	b = appendClientHeader(b, m.RequestID, PacketTypeResponse)
	b = appendU32(b, uint32(m.Result))
	return appendU32(b, m.BytesWritten)
}
