// Package wire encodes and decodes the messages of MS-RDPEPNP, the Plug and
// Play Devices Virtual Channel Extension, for both of its subprotocols:
//
//   - the PNP Device Info Subprotocol on the PNPDR channel (section 2.2.1):
//     every message starts with PNP_INFO_HEADER; see ParsePNPDR;
//   - the PNP Device I/O Subprotocol on FileRedirectorChannel (section
//     2.2.2): requests from the server start with SERVER_IO_HEADER, replies
//     and custom events from the client with CLIENT_IO_HEADER; see
//     ParseRequest, ParseReply and ParseFileRedirector.
//
// The package only turns bytes into values and back. It does no I/O and
// keeps no state: ordering rules, outstanding requests, capability
// negotiation and every reaction to bad input belong to the roles built on
// it (package pnp).
//
// # Shape
//
// Every message type T has ParseT(b []byte) (T, error), which decodes a
// whole DVC message and nothing else (trailing bytes are an error), and
// the methods Len() int and Append(b []byte) []byte of the Message
// interface. Header-carrying types also satisfy Request or Reply. Types
// and fields are named after the specification; doc comments give its
// section numbers, and struct tags give its field spellings, which is what
// encoding/json prints. Fields the specification says to ignore
// (UnusedBits, UnusedByte) are decoded and re-encoded as they came, so
// that every capture of section 4 re-encodes byte for byte.
//
// Decoded Data, DataIn and DataOut alias the input buffer: a 4 KiB Read
// Reply decodes without allocating. Copy them if the buffer is reused.
// Strings and GUID arrays are copies.
//
// # Replies need their request
//
// A client reply carries only the RequestId of the request it answers
// (2.2.2.1.2), not the function; the Read and IOControl replies even share
// a layout. So ParseReply and ParseFileRedirector take the FunctionID of
// the request, which the caller finds by looking up the RequestId from
// ParseClientIOHeader among its outstanding requests. CheckReply then
// enforces the size rules between a reply and its request.
//
// # Errors and ceilings
//
// Bad input never panics. Decoders return an *Error naming the message
// (its Go type) and the field (its spec spelling), wrapping one of
// ErrTruncated, ErrTrailingData, ErrTooLarge, ErrInvalid, ErrUnknownPacket
// or ErrUnknownFunction. Every count and length read from the wire is
// checked against what is left of the input and against a ceiling (the
// Max constants) before anything is allocated or sliced for it.
//
// Append panics only on values that cannot be represented at all: a
// RequestId wider than 24 bits. Device descriptions built from user input
// should go through PNPDeviceDescription.Validate first.
//
// # JSON
//
// Values marshal with encoding/json for `rdpdvc decode`: GUIDs as
// "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}", byte strings (type Bytes) as
// lower case hex, which reads against the hex dumps of section 4; multisz
// strings as arrays of strings; HRESULTs as numbers.
//
// # Where the specification is unclear
//
// Two layouts are ambiguous, and the package's choices are documented on
// the types concerned: the meaning of DataSize in PNP_DEVICE_DESCRIPTION
// (written as the section 4.2 capture does, read both ways; see
// PNPDeviceDescription) and the position of idToCancel in the Specific
// IoCancel Request (written as the normative diagram draws it, both
// readings exposed on receive; see SpecificIoCancelRequest).
package wire
