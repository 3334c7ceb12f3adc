package drdynvc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// MaxChannelNameLen is the longest ChannelName accepted, in bytes, not
// counting the terminating NUL. The spec sets no limit (2.2.2.1); this one
// bounds the search for the terminator and the string a peer can make us
// keep. Real listener names are short ("Microsoft::Windows::RDS::...",
// "FileRedirectorChannel", "ECHO"), far below it.
const MaxChannelNameLen = 256

// CreateRequest is DYNVC_CREATE_REQ (MS-RDPEDYC 2.2.2.1): the server
// manager asks the client to open channel ChannelID to the listener
// ChannelName.
type CreateRequest struct {
	ChannelID uint32 `json:"ChannelId"`
	// Priority is the Pri field, the priority class 0..3 (version 2 and
	// above; version 1 clients ignore it).
	Priority uint8 `json:"Pri"`
	// ChannelName is the listener name, ANSI, without its NUL.
	ChannelName string `json:"ChannelName"`
}

const createReqPDU = "DYNVC_CREATE_REQ"

func (CreateRequest) Cmd() Cmd     { return CmdCreate }
func (CreateRequest) Name() string { return createReqPDU }
func (r CreateRequest) Len() int   { return 1 + UintLen(r.ChannelID) + len(r.ChannelName) + 1 }
func (r CreateRequest) String() string {
	return fmt.Sprintf("DYNVC_CREATE_REQ{ChannelId: %d, Pri: %d, ChannelName: %q}", r.ChannelID, r.Priority, r.ChannelName)
}

// Validate reports whether ChannelName can be sent: not empty, no NUL
// inside (it is NUL-terminated on the wire, MS-RDPEDYC 2.2.2.1), at most
// MaxChannelNameLen bytes (what ParseCreateRequest accepts). Append does
// not check. session.Server.Open calls Validate before anything is sent,
// and every backend's Listen applies the same rule to listener names
// (dvc/kit.CheckName, which calls Validate), so a name one end refuses
// can neither be opened nor listened for.
func (r CreateRequest) Validate() error {
	switch {
	case r.ChannelName == "":
		return perr(createReqPDU, "ChannelName", ErrInvalid, "empty")
	case len(r.ChannelName) > MaxChannelNameLen:
		return perr(createReqPDU, "ChannelName", ErrTooLarge, "%d bytes, longer than %d", len(r.ChannelName), MaxChannelNameLen)
	case strings.IndexByte(r.ChannelName, 0) >= 0:
		return perr(createReqPDU, "ChannelName", ErrInvalid, "contains a NUL byte")
	}
	return nil
}

// Append appends the PDU with ChannelName and a terminating NUL.
func (r CreateRequest) Append(b []byte) []byte {
	code := WidthCode(r.ChannelID)
	b = append(b, byte(MakeHeader(CmdCreate, r.Priority, code)))
	b = AppendUint(b, code, r.ChannelID)
	b = append(b, r.ChannelName...)
	return append(b, 0)
}

// ParseCreateRequest decodes DYNVC_CREATE_REQ. ChannelName must end in a
// NUL within MaxChannelNameLen+1 bytes; bytes after the NUL are ignored.
// An empty name decodes (the client manager refuses it).
func ParseCreateRequest(b []byte) (CreateRequest, error) {
	h, err := checkHeader(b, CmdCreate, createReqPDU, true)
	if err != nil {
		return CreateRequest{}, err
	}
	id, off, err := readUint(b, 1, h.CbID(), createReqPDU, "ChannelId")
	if err != nil {
		return CreateRequest{}, err
	}
	rest := b[off:]
	if len(rest) > MaxChannelNameLen+1 {
		rest = rest[:MaxChannelNameLen+1]
	}
	n := bytes.IndexByte(rest, 0)
	if n < 0 {
		if len(rest) > MaxChannelNameLen {
			return CreateRequest{}, perr(createReqPDU, "ChannelName", ErrTooLarge, "no NUL within %d bytes", MaxChannelNameLen+1)
		}
		return CreateRequest{}, perr(createReqPDU, "ChannelName", ErrTruncated, "missing NUL terminator")
	}
	return CreateRequest{ChannelID: id, Priority: h.Sp(), ChannelName: string(rest[:n])}, nil
}

// CreateResponse is DYNVC_CREATE_RSP (MS-RDPEDYC 2.2.2.2): the client's
// answer to a CreateRequest. A negative CreationStatus is a refusal.
type CreateResponse struct {
	// Sp is unused, SHOULD be 0.
	Sp             uint8           `json:"Sp"`
	ChannelID      uint32          `json:"ChannelId"`
	CreationStatus hresult.HRESULT `json:"CreationStatus"`
}

const createRspPDU = "DYNVC_CREATE_RSP"

func (CreateResponse) Cmd() Cmd     { return CmdCreate }
func (CreateResponse) Name() string { return createRspPDU }
func (r CreateResponse) Len() int   { return 1 + UintLen(r.ChannelID) + 4 }
func (r CreateResponse) String() string {
	return fmt.Sprintf("DYNVC_CREATE_RSP{ChannelId: %d, CreationStatus: %v}", r.ChannelID, r.CreationStatus)
}

// Append appends the PDU.
func (r CreateResponse) Append(b []byte) []byte {
	code := WidthCode(r.ChannelID)
	b = append(b, byte(MakeHeader(CmdCreate, r.Sp, code)))
	b = AppendUint(b, code, r.ChannelID)
	return binary.LittleEndian.AppendUint32(b, uint32(r.CreationStatus))
}

// ParseCreateResponse decodes DYNVC_CREATE_RSP; trailing bytes are ignored.
func ParseCreateResponse(b []byte) (CreateResponse, error) {
	h, err := checkHeader(b, CmdCreate, createRspPDU, true)
	if err != nil {
		return CreateResponse{}, err
	}
	id, off, err := readUint(b, 1, h.CbID(), createRspPDU, "ChannelId")
	if err != nil {
		return CreateResponse{}, err
	}
	if err := need(b, off, 4, createRspPDU, "CreationStatus"); err != nil {
		return CreateResponse{}, err
	}
	return CreateResponse{Sp: h.Sp(), ChannelID: id,
		CreationStatus: hresult.HRESULT(binary.LittleEndian.Uint32(b[off:]))}, nil
}
