// Package echo is MS-RDPEECO, the Remote Desktop Protocol Virtual Channel
// Echo Extension: the server sends bytes over the dynamic channel "ECHO"
// and the client sends them back, so the server can measure round trips
// (MS-RDPEECO 1.3). Every Windows client, and FreeRDP with /echo, accepts
// the channel (MS-RDPEECO 2.1, product note <1>).
//
// This file is the codec (no I/O); prober.go is the server role and
// responder.go the client role.
package echo

import "github.com/rdpdvc/rdpdvc/codec"

// ChannelName is the dynamic virtual channel's name (MS-RDPEECO 2.1: the
// null-terminated ANSI string "ECHO"; the terminator is the transport's).
const ChannelName = "ECHO"

// MaxSize is the largest echoRequest/echoResponse this package builds or
// accepts. MS-RDPEECO sets no limit; the message travels as one DVC
// message, which the transports cap themselves, so this only keeps a probe
// from asking a client for something absurd.
const MaxSize = 16 << 20

// Request is an ECHO_REQUEST_PDU (MS-RDPEECO 2.2.1), server to client.
type Request struct {
	// EchoRequest (echoRequest) is the bytes to be echoed: at least one
	// (MS-RDPEECO 3.1.5.1).
	EchoRequest []byte
}

// Response is an ECHO_RESPONSE_PDU (MS-RDPEECO 2.2.2), client to server.
type Response struct {
	// EchoResponse (echoResponse) is the echoRequest of the request it
	// answers, unchanged (MS-RDPEECO 3.2.5.2).
	EchoResponse []byte
}

// Kinds of error, wrapped by every *Error of this package, for
// errors.Is: the kinds every rdpdvc codec shares (package codec).
var (
	// ErrTruncated: a PDU with no bytes (MS-RDPEECO 3.1.5.1 requires at
	// least one).
	ErrTruncated = codec.ErrTruncated
	// ErrTooLarge: a PDU over MaxSize.
	ErrTooLarge = codec.ErrTooLarge
	// ErrEmpty is the old name of ErrTruncated.
	//
	// Deprecated: use ErrTruncated.
	ErrEmpty = ErrTruncated
)

// Error names the message and field that are wrong: the shape all rdpdvc
// codecs share, with Codec "echo", Message ECHO_REQUEST_PDU or
// ECHO_RESPONSE_PDU, Field echoRequest or echoResponse.
type Error = codec.Error

func check(pdu, field string, b []byte) error {
	switch {
	case len(b) == 0:
		// MS-RDPEECO 3.1.5.1: "at least one byte in size"; a response
		// echoes a request, so the same holds for it.
		return codec.New("echo", pdu, field, ErrTruncated, "empty; MS-RDPEECO 3.1.5.1 requires at least one byte")
	case len(b) > MaxSize:
		return codec.New("echo", pdu, field, ErrTooLarge, "%d bytes exceeds ceiling %d", len(b), MaxSize)
	}
	return nil
}

// The whole DVC message is the one field (MS-RDPEECO 2.2.1, 2.2.2), so
// parsing is a check and the field aliases b.

// ParseRequest decodes an ECHO_REQUEST_PDU; r.EchoRequest aliases b.
func ParseRequest(b []byte) (r Request, err error) {
	if err := check("ECHO_REQUEST_PDU", "echoRequest", b); err != nil {
		return r, err
	}
	return Request{EchoRequest: b}, nil
}

// Append appends the encoding of r to b. It encodes what it is given;
// Validate says whether a client would accept it.
func (r Request) Append(b []byte) []byte { return append(b, r.EchoRequest...) }

// Validate reports a request MS-RDPEECO does not allow (empty) or one
// over MaxSize.
func (r Request) Validate() error { return check("ECHO_REQUEST_PDU", "echoRequest", r.EchoRequest) }

// ParseResponse decodes an ECHO_RESPONSE_PDU; r.EchoResponse aliases b.
func ParseResponse(b []byte) (r Response, err error) {
	if err := check("ECHO_RESPONSE_PDU", "echoResponse", b); err != nil {
		return r, err
	}
	return Response{EchoResponse: b}, nil
}

// Append appends the encoding of r to b. It encodes what it is given;
// Validate says whether a server would accept it.
func (r Response) Append(b []byte) []byte { return append(b, r.EchoResponse...) }

// Validate reports a response MS-RDPEECO does not allow (empty) or one
// over MaxSize.
func (r Response) Validate() error { return check("ECHO_RESPONSE_PDU", "echoResponse", r.EchoResponse) }

// ResponseTo is the response a client sends for req (MS-RDPEECO 3.2.5.1:
// the Echo Byte Stream is the request's bytes, sent back as they came).
func ResponseTo(req Request) Response { return Response{EchoResponse: req.EchoRequest} }
