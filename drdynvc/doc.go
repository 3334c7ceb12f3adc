// Package drdynvc encodes and decodes the PDUs of the Dynamic Channel
// Virtual Channel Extension, MS-RDPEDYC 2.2: what a DVC server manager and
// a DVC client manager say to each other over the DRDYNVC static virtual
// channel. It does no I/O and keeps no state; the managers live elsewhere.
//
// Every PDU is a value type with Append(b []byte) []byte, Len() int and a
// ParseXxx(b []byte) (Xxx, error) function that decodes one whole PDU (one
// reassembled DRDYNVC message). [Parse] decodes any PDU, given which side
// sent it, because Cmd 0x01 and 0x05 mean a request from the server and a
// response from the client.
//
// Decoders check every length against the input before reading and never
// allocate by a length taken from the wire. ParseData and ParseDataFirst
// do not allocate at all: their Data aliases the input.
//
// Where the spec leaves a field "unused, SHOULD be 0" and Windows sends
// garbage in it (the Sp bits of most PDUs, MS-RDPEDYC 6 notes 2, 4, 6-9),
// decoders accept any value and keep it in an Sp field, so that a decoded
// PDU re-encodes to the same bytes. Bytes after the last field of a
// fixed-layout PDU (capabilities, create response, close, soft-sync) are
// ignored, and ChannelId and Length are re-encoded in the smallest width,
// so re-encoding is byte-exact only for PDUs that were minimal to begin
// with, as every example in MS-RDPEDYC 4 is.
package drdynvc
