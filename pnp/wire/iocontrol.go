package wire

import "github.com/rdpdvc/rdpdvc/hresult"

// IOControlRequest is the IOControl Request message (2.2.2.3.7). cbIn is
// len(DataIn).
//
// After DataIn a request may carry DataOut, the initial contents of the
// output buffer. Its length is not sent: it is whatever lies between
// DataIn and the final UnusedByte (3.2.5.2.2.7). It SHOULD be absent or
// exactly OutputBufferSize (cbOut) bytes; a client completes a request
// where it is neither with ERROR_INSUFFICIENT_BUFFER, which DataOutHRESULT
// computes. Decoding keeps whatever DataOut arrived so that the client can
// answer, rather than dropping the request.
type IOControlRequest struct {
	RequestID  uint32 `json:"RequestId"`
	UnusedBits uint8  `json:"UnusedBits"`
	IoCode     uint32 `json:"IoCode"`
	// OutputBufferSize is cbOut: how many bytes the reply may return, at
	// most MaxIOControlBytes.
	OutputBufferSize uint32 `json:"cbOut"`
	DataIn           Bytes  `json:"DataIn"`     // aliases the decoded input; at most MaxIOControlBytes
	DataOut          Bytes  `json:"DataOut"`    // aliases the decoded input; usually empty
	UnusedByte       uint8  `json:"UnusedByte"` // trailing pad, ignored, kept for exact re-encoding
}

const ioControlRequestMinLen = ServerIOHeaderLen + 12 + 1

// ParseIOControlRequest decodes an IOControl Request. DataIn and DataOut
// alias b. cbIn or cbOut over MaxIOControlBytes is an error wrapping
// ErrTooLarge. A DataOut of the wrong size is not a decoding error; see
// DataOutHRESULT.
func ParseIOControlRequest(b []byte) (IOControlRequest, error) {
	r, h := readRequest(b, "IOControlRequest", FunctionIOControl)
	code := r.u32("IoCode")
	cbIn := r.length("cbIn", MaxIOControlBytes)
	cbOut := r.u32("cbOut")
	if r.err == nil && cbOut > MaxIOControlBytes {
		r.fail("cbOut", ErrTooLarge, "%d > %d", cbOut, MaxIOControlBytes)
	}
	in := r.bytes("DataIn", cbIn)
	outLen := max(r.left()-1, 0) // everything but the UnusedByte
	out := r.bytes("DataOut", outLen)
	unused := r.u8("UnusedByte")
	r.end()
	if r.err != nil {
		return IOControlRequest{}, r.err
	}
	return IOControlRequest{
		RequestID: h.RequestID, UnusedBits: h.UnusedBits, IoCode: code,
		OutputBufferSize: cbOut, DataIn: in, DataOut: out, UnusedByte: unused,
	}, nil
}

// DataOutHRESULT is the result a client MUST complete the request with
// because of its DataOut (3.2.5.2.2.7): S_OK when DataOut is absent or
// exactly cbOut bytes, otherwise HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER).
func (m IOControlRequest) DataOutHRESULT() hresult.HRESULT {
	if len(m.DataOut) == 0 || uint64(len(m.DataOut)) == uint64(m.OutputBufferSize) {
		return hresult.S_OK
	}
	return hresult.FromWin32(hresult.ERROR_INSUFFICIENT_BUFFER)
}

func (m IOControlRequest) Header() ServerIOHeader {
	return ServerIOHeader{RequestID: m.RequestID, UnusedBits: m.UnusedBits, FunctionID: FunctionIOControl}
}

func (m IOControlRequest) Len() int { return ioControlRequestMinLen + len(m.DataIn) + len(m.DataOut) }

func (m IOControlRequest) Append(b []byte) []byte {
	b = grow(b, m.Len())
	b = appendServerHeader(b, m.RequestID, m.UnusedBits, FunctionIOControl)
	b = appendU32(b, m.IoCode)
	b = appendU32(b, uint32(len(m.DataIn)))
	b = appendU32(b, m.OutputBufferSize)
	b = append(b, m.DataIn...)
	b = append(b, m.DataOut...)
	return append(b, m.UnusedByte)
}

// IOControlReply is the IOControl Reply message (2.2.2.3.8).
// cbBytesReadReturned is len(Data); it MUST NOT exceed the request's cbOut,
// which CheckReply verifies (a server MUST close the channel otherwise,
// 3.3.5.2.2.8).
type IOControlReply struct {
	RequestID  uint32          `json:"RequestId"`
	Result     hresult.HRESULT `json:"Result"`
	Data       Bytes           `json:"Data"`       // aliases the decoded input
	UnusedByte uint8           `json:"UnusedByte"` // trailing pad, ignored, kept for exact re-encoding
}

const ioControlReplyMinLen = ClientIOHeaderLen + 8 + 1

// ParseIOControlReply decodes an IOControl Reply. Data aliases b.
// cbBytesReadReturned over MaxIOControlBytes is an error wrapping
// ErrTooLarge.
func ParseIOControlReply(b []byte) (IOControlReply, error) {
	id, res, data, unused, err := parseDataReply(b, "IOControlReply", "cbBytesReadReturned", MaxIOControlBytes)
	if err != nil {
		return IOControlReply{}, err
	}
	return IOControlReply{RequestID: id, Result: res, Data: data, UnusedByte: unused}, nil
}

func (m IOControlReply) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeResponse}
}

func (m IOControlReply) Function() FunctionID { return FunctionIOControl }

func (m IOControlReply) Len() int { return ioControlReplyMinLen + len(m.Data) }

func (m IOControlReply) Append(b []byte) []byte {
	return appendDataReply(b, m.RequestID, m.Result, m.Data, m.UnusedByte)
}
