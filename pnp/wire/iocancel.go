package wire

import "encoding/json"

// SpecificIoCancelRequest is the Specific IoCancel Request message
// (2.2.2.3.9). It gets no reply of its own: the request it cancels is
// still answered (3.2.5.2.2.9), so its own RequestID never enters the
// outstanding requests list. (The section 4.4 capture uses 0xFFFFFF.)
//
// # Where idToCancel sits
//
// The four bytes after the header are read two ways:
//
//   - The 2.2.2.3.9 diagram, which is normative: byte 8 is UnusedBits and
//     bytes 9-11 are idToCancel, little-endian.
//   - The section 4.4 example, which is informative, annotates those bytes
//     "00 -> Unused, 00 00 00 -> IdToCancel" exactly as it annotates
//     SERVER_IO_HEADER ("00 -> Unused, 00 00 00 -> Request Id"), where the
//     custom event capture proves the annotation names a dword's bytes high
//     to low. Read that way idToCancel is bytes 8-10 and the unused byte
//     is byte 11: the header's own layout, mirrored. The capture's bytes
//     are all zero, so they fit both readings.
//
// This package writes the diagram's layout, because sections 2 and 3 are
// the normative ones (section 1) and because justrdp, the other open
// implementation, reads and writes that layout. IDToCancel and
// BodyUnusedBits hold the diagram's reading. AltIDToCancel gives the other
// reading of the same bytes; a client should cancel the request that
// IDToCancel names if it is outstanding, and otherwise the one
// AltIDToCancel names, so that it understands a server of either school.
//
// A server can make the question moot: a RequestId whose three bytes are
// equal (CancelSafeRequestID) encodes to the same four bytes under both
// readings when BodyUnusedBits repeats that byte, which
// NewSpecificIoCancelRequest arranges. That leaves 256 such IDs per
// channel, and one handle rarely has that many requests outstanding.
type SpecificIoCancelRequest struct {
	RequestID  uint32 `json:"RequestId"`
	UnusedBits uint8  `json:"UnusedBits"` // SERVER_IO_HEADER padding
	// BodyUnusedBits is the diagram's UnusedBits at byte 8 (SHOULD be 0).
	BodyUnusedBits uint8 `json:"BodyUnusedBits"`
	// IDToCancel is idToCancel as the diagram places it (bytes 9-11).
	IDToCancel uint32 `json:"idToCancel"`
}

const ioCancelLen = ServerIOHeaderLen + 4

// NewSpecificIoCancelRequest builds a cancel of idToCancel sent with
// RequestId requestID. BodyUnusedBits is 0 unless idToCancel is a
// CancelSafeRequestID, in which case it repeats the ID's byte so that both
// readings of the message name idToCancel.
func NewSpecificIoCancelRequest(requestID, idToCancel uint32) SpecificIoCancelRequest {
	m := SpecificIoCancelRequest{RequestID: requestID, IDToCancel: idToCancel}
	if IsCancelSafeRequestID(idToCancel) {
		m.BodyUnusedBits = uint8(idToCancel)
	}
	return m
}

// CancelSafeRequestID returns the RequestId 0xNNNNNN for n: an ID that
// every reading of the Specific IoCancel Request agrees on.
func CancelSafeRequestID(n uint8) uint32 { return uint32(n) * 0x010101 }

// IsCancelSafeRequestID reports whether id's three bytes are equal.
func IsCancelSafeRequestID(id uint32) bool {
	return id <= MaxRequestID && id == CancelSafeRequestID(uint8(id))
}

// AltIDToCancel is idToCancel read as section 4.4 suggests: bytes 8-10,
// little-endian.
func (m SpecificIoCancelRequest) AltIDToCancel() uint32 {
	return uint32(m.BodyUnusedBits) | (m.IDToCancel&0xFFFF)<<8
}

// CandidateIDs returns the RequestIds the message may mean, the
// normative reading first.
func (m SpecificIoCancelRequest) CandidateIDs() [2]uint32 {
	return [2]uint32{m.IDToCancel, m.AltIDToCancel()}
}

// ParseSpecificIoCancelRequest decodes a Specific IoCancel Request.
func ParseSpecificIoCancelRequest(b []byte) (SpecificIoCancelRequest, error) {
	r, h := readRequest(b, "SpecificIoCancelRequest", FunctionSpecificIoCancel)
	v := r.u32("idToCancel")
	r.end()
	if r.err != nil {
		return SpecificIoCancelRequest{}, r.err
	}
	return SpecificIoCancelRequest{
		RequestID: h.RequestID, UnusedBits: h.UnusedBits,
		BodyUnusedBits: uint8(v), IDToCancel: v >> 8,
	}, nil
}

func (m SpecificIoCancelRequest) Header() ServerIOHeader {
	return ServerIOHeader{RequestID: m.RequestID, UnusedBits: m.UnusedBits, FunctionID: FunctionSpecificIoCancel}
}

func (m SpecificIoCancelRequest) Len() int { return ioCancelLen }

// Append appends the message in the diagram's layout. It panics if
// RequestID or IDToCancel does not fit in 24 bits.
func (m SpecificIoCancelRequest) Append(b []byte) []byte {
	checkRequestID(m.IDToCancel)
	b = grow(b, ioCancelLen)
	b = appendServerHeader(b, m.RequestID, m.UnusedBits, FunctionSpecificIoCancel)
	return appendU32(b, uint32(m.BodyUnusedBits)|m.IDToCancel<<8)
}

// MarshalJSON adds the other reading, AltIDToCancel, to the fields, so
// that a decoded message shows both.
func (m SpecificIoCancelRequest) MarshalJSON() ([]byte, error) {
	type plain SpecificIoCancelRequest
	return json.Marshal(struct {
		plain
		AltIDToCancel uint32 `json:"AltIdToCancel"`
	}{plain(m), m.AltIDToCancel()})
}
