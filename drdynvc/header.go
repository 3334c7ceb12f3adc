package drdynvc

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/rdpdvc/rdpdvc/codec"
)

// Cmd is the PDU type in the high 4 bits of the header byte
// (MS-RDPEDYC 2.2).
type Cmd uint8

// Cmd values (MS-RDPEDYC 2.2).
const (
	CmdCreate              Cmd = 0x01 // Create Request / Create Response
	CmdDataFirst           Cmd = 0x02 // Data First
	CmdData                Cmd = 0x03 // Data
	CmdClose               Cmd = 0x04 // Close Request / Close Response
	CmdCapability          Cmd = 0x05 // Capability Request / Capabilities Response
	CmdDataFirstCompressed Cmd = 0x06 // Data First Compressed
	CmdDataCompressed      Cmd = 0x07 // Data Compressed
	CmdSoftSyncRequest     Cmd = 0x08 // Soft-Sync Request
	CmdSoftSyncResponse    Cmd = 0x09 // Soft-Sync Response
)

var cmdNames = [...]string{
	CmdCreate:              "Create",
	CmdDataFirst:           "DataFirst",
	CmdData:                "Data",
	CmdClose:               "Close",
	CmdCapability:          "Capability",
	CmdDataFirstCompressed: "DataFirstCompressed",
	CmdDataCompressed:      "DataCompressed",
	CmdSoftSyncRequest:     "SoftSyncRequest",
	CmdSoftSyncResponse:    "SoftSyncResponse",
}

func (c Cmd) String() string {
	if int(c) < len(cmdNames) && cmdNames[c] != "" {
		return fmt.Sprintf("%s (0x%x)", cmdNames[c], uint8(c))
	}
	return fmt.Sprintf("0x%x", uint8(c))
}

// Header is the 1-byte header every PDU starts with (MS-RDPEDYC 2.2):
// cbId in bits 0-1, Sp (also called Pri or Len, depending on Cmd) in bits
// 2-3, Cmd in bits 4-7.
type Header byte

// MakeHeader builds a header byte; sp and cbID are masked to 2 bits.
func MakeHeader(cmd Cmd, sp, cbID uint8) Header {
	return Header(uint8(cmd)<<4 | (sp&3)<<2 | cbID&3)
}

// Cmd is bits 4-7.
func (h Header) Cmd() Cmd { return Cmd(h >> 4) }

// Sp is bits 2-3: Sp, Pri (CreateRequest) or Len (DataFirst) in the spec.
func (h Header) Sp() uint8 { return uint8(h>>2) & 3 }

// CbID is bits 0-1: the width code of ChannelId (see [Width]).
func (h Header) CbID() uint8 { return uint8(h) & 3 }

// ParseHeader returns the header byte of b.
func ParseHeader(b []byte) (Header, error) {
	if len(b) == 0 {
		return 0, perr("DVC PDU", "header", ErrTruncated, "empty")
	}
	return Header(b[0]), nil
}

// WidthCode returns the cbId/Len code for the smallest field that holds v:
// 0 for 1 byte, 1 for 2 bytes, 2 for 4 bytes (MS-RDPEDYC 2.2). Encoders use
// it; decoders accept every width.
func WidthCode(v uint32) uint8 {
	switch {
	case v <= 0xFF:
		return 0
	case v <= 0xFFFF:
		return 1
	default:
		return 2
	}
}

// Width returns the byte width a cbId/Len code stands for: 1, 2 or 4, and
// 0 for the invalid code 0x3.
func Width(code uint8) int {
	switch code {
	case 0:
		return 1
	case 1:
		return 2
	case 2:
		return 4
	}
	return 0
}

// UintLen is Width(WidthCode(v)): how many bytes v takes on the wire.
func UintLen(v uint32) int { return Width(WidthCode(v)) }

// AppendUint appends v, little-endian, in the width code stands for (code
// 3 is treated as 2). v must fit; the caller chose code with WidthCode.
func AppendUint(b []byte, code uint8, v uint32) []byte {
	switch code {
	case 0:
		return append(b, byte(v))
	case 1:
		return binary.LittleEndian.AppendUint16(b, uint16(v))
	default:
		return binary.LittleEndian.AppendUint32(b, v)
	}
}

// Kinds of error, wrapped by every *Error this package returns, for
// errors.Is: the kinds every rdpdvc codec shares (package codec).
var (
	ErrTruncated   = codec.ErrTruncated   // the PDU ends before a field
	ErrTooLarge    = codec.ErrTooLarge    // a length or count over its ceiling
	ErrInvalid     = codec.ErrInvalid     // a field breaks a rule of MS-RDPEDYC
	ErrUnsupported = codec.ErrUnsupported // well-formed, but not implemented
)

// Error reports a malformed PDU, naming the PDU (by its spec name, e.g.
// "DYNVC_DATA_FIRST") in Message, the field, and the kind (Err). It is the
// shape all rdpdvc codecs share. MS-RDPEDYC 3.1.5.2.4 says what to do
// about it: terminate the DRDYNVC channel.
type Error = codec.Error

// ParseError is the old name of Error.
//
// Deprecated: use Error.
type ParseError = Error

// perr returns the *Error for field of pdu.
func perr(pdu, field string, kind error, format string, args ...any) error {
	return codec.New("drdynvc", pdu, field, kind, format, args...)
}

func truncated(pdu, field string, need, have int) error {
	return perr(pdu, field, ErrTruncated, "need %d bytes, have %d", need, have)
}

// need checks that b holds n bytes at off.
func need(b []byte, off, n int, pdu, field string) error {
	if len(b)-off < n {
		return truncated(pdu, field, off+n, len(b))
	}
	return nil
}

// readUint reads a variable-width unsigned integer (ChannelId, Length) at
// b[off:] and returns it and the offset after it. code must be 0..2.
func readUint(b []byte, off int, code uint8, pdu, field string) (uint32, int, error) {
	w := Width(code)
	if err := need(b, off, w, pdu, field); err != nil {
		return 0, off, err
	}
	switch w {
	case 1:
		return uint32(b[off]), off + 1, nil
	case 2:
		return uint32(binary.LittleEndian.Uint16(b[off:])), off + 2, nil
	default:
		return binary.LittleEndian.Uint32(b[off:]), off + 4, nil
	}
}

// checkHeader checks the Cmd of b's header byte and, if checkCbID is set,
// that cbId is not the invalid 0x3.
func checkHeader(b []byte, want Cmd, pdu string, checkCbID bool) (Header, error) {
	if len(b) == 0 {
		return 0, truncated(pdu, "header", 1, 0)
	}
	h := Header(b[0])
	if h.Cmd() != want {
		return h, perr(pdu, "Cmd", ErrInvalid, "is %v, want %v", h.Cmd(), want)
	}
	if checkCbID && h.CbID() == 3 {
		return h, perr(pdu, "cbId", ErrInvalid, "0x3 is no width")
	}
	return h, nil
}

// Bytes is PDU data. It is a []byte (assignable both ways) whose JSON and
// text form is lowercase hex instead of encoding/json's base64, so that
// `rdpdvc decode` output can be read next to a hex dump.
type Bytes []byte

// MarshalText encodes b as hex.
func (b Bytes) MarshalText() ([]byte, error) { return hex.AppendEncode(nil, b), nil }

// UnmarshalText decodes hex.
func (b *Bytes) UnmarshalText(t []byte) error {
	d, err := hex.AppendDecode(nil, t)
	if err != nil {
		return err
	}
	*b = d
	return nil
}
