package drdynvc

import (
	"errors"
	"fmt"
)

// PDU is any MS-RDPEDYC PDU. The concrete types are the values CapsRequest,
// CapsResponse, CreateRequest, CreateResponse, DataFirst, Data, Close,
// DataFirstCompressed, DataCompressed, SoftSyncRequest and
// SoftSyncResponse (not pointers). Their exported fields carry JSON tags
// with the spec's field names; data fields marshal as hex (see [Bytes]).
type PDU interface {
	// Cmd is the header's Cmd value.
	Cmd() Cmd
	// Name is the PDU's name in the spec, e.g. "DYNVC_DATA_FIRST".
	Name() string
	// Len is the encoded size in bytes.
	Len() int
	// Append appends the encoded PDU to b.
	Append(b []byte) []byte
}

// Sender says which manager sent a PDU: Cmd 0x01 is DYNVC_CREATE_REQ from
// the server and DYNVC_CREATE_RSP from the client, Cmd 0x05 a capabilities
// request from the server and DYNVC_CAPS_RSP from the client.
type Sender uint8

// Senders. The zero Sender is invalid, so that forgetting to say is an
// error rather than a silent guess.
const (
	FromServer Sender = 1 // sent by the DVC server manager
	FromClient Sender = 2 // sent by the DVC client manager
)

func (s Sender) String() string {
	switch s {
	case FromServer:
		return "server"
	case FromClient:
		return "client"
	}
	return fmt.Sprintf("Sender(%d)", uint8(s))
}

// ErrSender is returned by Parse for a Sender other than FromServer and
// FromClient.
var ErrSender = errors.New("drdynvc: Parse needs FromServer or FromClient")

// Parse decodes one whole PDU sent by from. It only checks syntax: which
// PDUs are acceptable in which state and direction (a client sending
// DYNVC_SOFT_SYNC_REQUEST, compressed data without version 3) is for the
// managers to decide.
//
// The result is boxed in an interface, which costs an allocation; the
// receive path of a manager can switch on ParseHeader's Cmd and call
// ParseData or ParseDataFirst directly to decode data without any.
// Data fields alias b, as in the ParseXxx functions.
func Parse(b []byte, from Sender) (PDU, error) {
	if from != FromServer && from != FromClient {
		return nil, ErrSender
	}
	h, err := ParseHeader(b)
	if err != nil {
		return nil, err
	}
	switch h.Cmd() {
	case CmdCreate:
		if from == FromServer {
			return wrap(ParseCreateRequest(b))
		}
		return wrap(ParseCreateResponse(b))
	case CmdDataFirst:
		return wrap(ParseDataFirst(b))
	case CmdData:
		return wrap(ParseData(b))
	case CmdClose:
		return wrap(ParseClose(b))
	case CmdCapability:
		if from == FromServer {
			return wrap(ParseCapsRequest(b))
		}
		return wrap(ParseCapsResponse(b))
	case CmdDataFirstCompressed:
		return wrap(ParseDataFirstCompressed(b))
	case CmdDataCompressed:
		return wrap(ParseDataCompressed(b))
	case CmdSoftSyncRequest:
		return wrap(ParseSoftSyncRequest(b))
	case CmdSoftSyncResponse:
		return wrap(ParseSoftSyncResponse(b))
	}
	return nil, perr("DVC PDU", "Cmd", ErrInvalid, "unknown value %v", h.Cmd())
}

// wrap returns a nil interface, not a typed zero value, on error.
func wrap[T PDU](p T, err error) (PDU, error) {
	if err != nil {
		return nil, err
	}
	return p, nil
}
