// Package codec is the one error shape every rdpdvc wire codec returns
// (drdynvc, chanpdu, pnp/wire, simple's frames, echo's PDUs).
//
// A decoder's error is an *Error naming the codec, the message and the
// field as the specification spells them, and one kind, so a caller can
// choose its reaction with errors.Is and still log what was wrong:
//
//	drdynvc: DYNVC_DATA_FIRST.Length: too large: 70000000 exceeds ceiling 67108864
//
// The kinds are few: ErrTruncated, ErrTooLarge, ErrInvalid and
// ErrUnsupported. A codec may add narrower kinds of its own (made with
// NewKind) that also match one of these, such as pnp/wire's
// ErrUnknownFunction, which is an ErrInvalid. Each codec re-exports the
// kinds and the type under its own name (drdynvc.ErrTruncated is
// codec.ErrTruncated, drdynvc.Error is codec.Error), as os does for
// io/fs, so its users need not import this package.
package codec

import (
	"errors"
	"fmt"
)

// The kinds every codec shares.
var (
	// ErrTruncated: the input ends before a field, or before the length
	// a length field announces.
	ErrTruncated = errors.New("truncated")
	// ErrTooLarge: a length or count read from the wire (or given to an
	// encoder) is over a ceiling of the specification or of rdpdvc's.
	// Nothing was allocated for it.
	ErrTooLarge = errors.New("too large")
	// ErrInvalid: a field breaks a rule of the specification, two fields
	// disagree, or bytes are left over.
	ErrInvalid = errors.New("invalid")
	// ErrUnsupported: well-formed input that rdpdvc does not implement
	// (compression it never negotiates).
	ErrUnsupported = errors.New("unsupported")
)

// kind is a narrower kind that matches its parent under errors.Is.
type kind struct {
	text   string
	parent error
}

func (k *kind) Error() string { return k.text }
func (k *kind) Unwrap() error { return k.parent }

// NewKind returns a new kind, described by text, that errors.Is also
// matches to parent (one of the kinds above).
func NewKind(text string, parent error) error { return &kind{text: text, parent: parent} }

// Error is the error of every rdpdvc codec.
type Error struct {
	Codec   string // the package: "drdynvc", "chanpdu", "pnp/wire", "simple", "echo"
	Message string // the message or structure, as its specification names it
	Field   string // the field, as the specification spells it; empty for the whole message
	Err     error  // the kind: one of the Err values above, or a kind made by NewKind
	Detail  string // the values involved; may be empty
}

func (e *Error) Error() string {
	s := e.Codec + ": " + e.Message
	if e.Field != "" {
		s += "." + e.Field
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the kind, for errors.Is.
func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error; format and args, if format is not empty, make
// its Detail.
func New(codec, msg, field string, kind error, format string, args ...any) *Error {
	e := &Error{Codec: codec, Message: msg, Field: field, Err: kind}
	if format != "" {
		e.Detail = fmt.Sprintf(format, args...)
	}
	return e
}
