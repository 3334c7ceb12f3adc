package wire

import (
	"errors"
	"fmt"
)

// Kinds of decoding failure. Every error a Parse function returns is an
// *Error wrapping exactly one of these, so callers can pick their reaction
// with errors.Is and still log which message and field were at fault.
var (
	// ErrTruncated: the input ends before a field, or before the length a
	// length field announces.
	ErrTruncated = errors.New("truncated")
	// ErrTrailingData: bytes are left over after the last field.
	ErrTrailingData = errors.New("trailing data")
	// ErrTooLarge: a count or length read from the wire exceeds this
	// package's ceiling for it (see the Max constants). Nothing was
	// allocated for it.
	ErrTooLarge = errors.New("exceeds ceiling")
	// ErrInvalid: a field breaks a MUST of the specification, or two fields
	// disagree (for example DataSize and the fields of a
	// PNP_DEVICE_DESCRIPTION).
	ErrInvalid = errors.New("invalid value")
	// ErrUnknownPacket: a PNP_INFO_HEADER PacketId, or a CLIENT_IO_HEADER
	// PacketType, that this direction does not carry.
	ErrUnknownPacket = errors.New("unknown packet")
	// ErrUnknownFunction: a SERVER_IO_HEADER FunctionId that is not one of
	// the six the specification defines. MS-RDPEPNP 2.2.2.1.1 requires the
	// client to close the FileRedirectorChannel instance when it sees one.
	ErrUnknownFunction = errors.New("unknown FunctionId")
)

// Error is the error every decoder in this package returns. Message is the
// Go type name of the message being decoded (for example "ReadReply"),
// Field the field's name as the specification spells it (for example
// "cbBytesRead"), Err one of the Err* kinds above.
type Error struct {
	Message string
	Field   string
	Err     error
	Detail  string // extra context, such as the values involved; may be empty
}

func (e *Error) Error() string {
	s := "pnp/wire: " + e.Message
	if e.Field != "" {
		s += "." + e.Field
	}
	s += ": " + e.Err.Error()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the error kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

func newError(msg, field string, kind error, format string, args ...any) *Error {
	e := &Error{Message: msg, Field: field, Err: kind}
	if format != "" {
		e.Detail = fmt.Sprintf(format, args...)
	}
	return e
}
