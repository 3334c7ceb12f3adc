package wire

import "github.com/rdpdvc/rdpdvc/codec"

// Kinds of decoding failure. Every error a Parse function returns is an
// *Error wrapping exactly one of these, so callers can pick their reaction
// with errors.Is and still log which message and field were at fault. The
// first four are the kinds every rdpdvc codec shares (package codec); the
// others are narrower kinds of ErrInvalid.
var (
	// ErrTruncated: the input ends before a field, or before the length a
	// length field announces.
	ErrTruncated = codec.ErrTruncated
	// ErrTooLarge: a count or length read from the wire exceeds this
	// package's ceiling for it (see the Max constants). Nothing was
	// allocated for it.
	ErrTooLarge = codec.ErrTooLarge
	// ErrInvalid: a field breaks a MUST of the specification, or two fields
	// disagree (for example DataSize and the fields of a
	// PNP_DEVICE_DESCRIPTION).
	ErrInvalid = codec.ErrInvalid
	// ErrUnsupported: well-formed input rdpdvc does not implement.
	ErrUnsupported = codec.ErrUnsupported
	// ErrTrailingData: bytes are left over after the last field (an
	// ErrInvalid).
	ErrTrailingData = codec.NewKind("trailing data", codec.ErrInvalid)
	// ErrUnknownPacket: a PNP_INFO_HEADER PacketId, or a CLIENT_IO_HEADER
	// PacketType, that this direction does not carry (an ErrInvalid).
	ErrUnknownPacket = codec.NewKind("unknown packet", codec.ErrInvalid)
	// ErrUnknownFunction: a SERVER_IO_HEADER FunctionId that is not one of
	// the six the specification defines (an ErrInvalid). MS-RDPEPNP
	// 2.2.2.1.1 requires the client to close the FileRedirectorChannel
	// instance when it sees one.
	ErrUnknownFunction = codec.NewKind("unknown FunctionId", codec.ErrInvalid)
)

// Error is the error every decoder in this package returns: the shape
// all rdpdvc codecs share. Codec is "pnp/wire", Message the Go type name
// of the message being decoded (for example "ReadReply"), Field the
// field's name as the specification spells it (for example
// "cbBytesRead"), Err one of the Err* kinds above.
type Error = codec.Error

func newError(msg, field string, kind error, format string, args ...any) *Error {
	return codec.New("pnp/wire", msg, field, kind, format, args...)
}
