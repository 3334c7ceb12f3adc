package drdynvc

import "fmt"

// Close is DYNVC_CLOSE (MS-RDPEDYC 2.2.4), used both to ask for a close
// and to confirm one, from either side.
type Close struct {
	// Sp is unused, SHOULD be 0.
	Sp        uint8  `json:"Sp"`
	ChannelID uint32 `json:"ChannelId"`
}

const closePDU = "DYNVC_CLOSE"

func (Close) Cmd() Cmd         { return CmdClose }
func (Close) Name() string     { return closePDU }
func (c Close) Len() int       { return 1 + UintLen(c.ChannelID) }
func (c Close) String() string { return fmt.Sprintf("DYNVC_CLOSE{ChannelId: %d}", c.ChannelID) }

// Append appends the PDU.
func (c Close) Append(b []byte) []byte {
	code := WidthCode(c.ChannelID)
	b = append(b, byte(MakeHeader(CmdClose, c.Sp, code)))
	return AppendUint(b, code, c.ChannelID)
}

// ParseClose decodes DYNVC_CLOSE; trailing bytes are ignored.
func ParseClose(b []byte) (Close, error) {
	h, err := checkHeader(b, CmdClose, closePDU, true)
	if err != nil {
		return Close{}, err
	}
	id, _, err := readUint(b, 1, h.CbID(), closePDU, "ChannelId")
	if err != nil {
		return Close{}, err
	}
	return Close{Sp: h.Sp(), ChannelID: id}, nil
}
