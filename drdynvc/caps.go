package drdynvc

import (
	"encoding/binary"
	"fmt"
)

// Protocol versions (MS-RDPEDYC 2.2.1).
const (
	Version1 uint16 = 0x0001 // DYNVC_CAPS_VERSION1
	Version2 uint16 = 0x0002 // DYNVC_CAPS_VERSION2: adds priority charges
	Version3 uint16 = 0x0003 // DYNVC_CAPS_VERSION3: adds compressed data PDUs
)

// CapsRequest is the DVC Capabilities Request PDU the server manager sends
// first (MS-RDPEDYC 2.2.1.1): DYNVC_CAPS_VERSION1 (2.2.1.1.1), which has
// no priority charges, or DYNVC_CAPS_VERSION2/3 (2.2.1.1.2, 2.2.1.1.3),
// which have four. Version decides the layout: 1 has no charges, 2 and
// above have them.
type CapsRequest struct {
	// Sp is unused and SHOULD be 0, but Windows leaves it uninitialised
	// (MS-RDPEDYC 6 note 2); the section 4.1.1 example has 2.
	Sp      uint8  `json:"Sp"`
	Version uint16 `json:"Version"`
	// PriorityCharges are PriorityCharge0..3 (2.2.1.1.2); zero for
	// version 1.
	PriorityCharges [4]uint16 `json:"PriorityCharges"`
}

const capsPDU = "DYNVC_CAPS"

func (CapsRequest) Cmd() Cmd { return CmdCapability }

// Name is DYNVC_CAPS_VERSION1, 2 or 3 (DYNVC_CAPS_VERSIONn for others).
func (c CapsRequest) Name() string {
	switch c.Version {
	case Version1:
		return "DYNVC_CAPS_VERSION1"
	case Version2:
		return "DYNVC_CAPS_VERSION2"
	case Version3:
		return "DYNVC_CAPS_VERSION3"
	}
	return fmt.Sprintf("DYNVC_CAPS_VERSION%d", c.Version)
}

// Len is 4 for version 1 (and 0), 12 otherwise.
func (c CapsRequest) Len() int {
	if c.Version < Version2 {
		return 4
	}
	return 12
}

// Append appends the PDU: header, Pad, Version and, for version 2 and
// above, the four priority charges.
func (c CapsRequest) Append(b []byte) []byte {
	b = append(b, byte(MakeHeader(CmdCapability, c.Sp, 0)), 0)
	b = binary.LittleEndian.AppendUint16(b, c.Version)
	if c.Version >= Version2 {
		for _, pc := range c.PriorityCharges {
			b = binary.LittleEndian.AppendUint16(b, pc)
		}
	}
	return b
}

func (c CapsRequest) String() string {
	if c.Version < Version2 {
		return c.Name() + "{}"
	}
	return fmt.Sprintf("%s{PriorityCharges: %v}", c.Name(), c.PriorityCharges)
}

// ParseCapsRequest decodes a DVC Capabilities Request PDU. Version 0 is
// rejected; versions above 3 are accepted (the manager answers with the
// highest version it supports) and must carry charges like 2 and 3. The
// unused cbId and Pad are ignored, as are bytes after the last field.
func ParseCapsRequest(b []byte) (CapsRequest, error) {
	h, err := checkHeader(b, CmdCapability, capsPDU, false)
	if err != nil {
		return CapsRequest{}, err
	}
	c := CapsRequest{Sp: h.Sp()}
	if err := need(b, 2, 2, capsPDU, "Version"); err != nil {
		return CapsRequest{}, err
	}
	c.Version = binary.LittleEndian.Uint16(b[2:])
	if c.Version == 0 {
		return CapsRequest{}, perr(capsPDU, "Version", ErrInvalid, "0 is not a version")
	}
	if c.Version >= Version2 {
		if len(b) < 12 {
			return CapsRequest{}, truncated(c.Name(), "PriorityCharge", 12, len(b))
		}
		for i := range c.PriorityCharges {
			c.PriorityCharges[i] = binary.LittleEndian.Uint16(b[4+2*i:])
		}
	}
	return c, nil
}

// CapsResponse is DYNVC_CAPS_RSP (MS-RDPEDYC 2.2.1.2), the client
// manager's answer: the highest version it supports.
type CapsResponse struct {
	// Sp is unused, SHOULD be 0, random from Windows (6 note 7).
	Sp      uint8  `json:"Sp"`
	Version uint16 `json:"Version"`
}

const capsRspPDU = "DYNVC_CAPS_RSP"

func (CapsResponse) Cmd() Cmd         { return CmdCapability }
func (CapsResponse) Name() string     { return capsRspPDU }
func (CapsResponse) Len() int         { return 4 }
func (c CapsResponse) String() string { return fmt.Sprintf("DYNVC_CAPS_RSP{Version: %d}", c.Version) }

// Append appends the PDU.
func (c CapsResponse) Append(b []byte) []byte {
	b = append(b, byte(MakeHeader(CmdCapability, c.Sp, 0)), 0)
	return binary.LittleEndian.AppendUint16(b, c.Version)
}

// ParseCapsResponse decodes DYNVC_CAPS_RSP. Version 0 is rejected; cbId,
// Pad and trailing bytes are ignored.
func ParseCapsResponse(b []byte) (CapsResponse, error) {
	h, err := checkHeader(b, CmdCapability, capsRspPDU, false)
	if err != nil {
		return CapsResponse{}, err
	}
	if err := need(b, 2, 2, capsRspPDU, "Version"); err != nil {
		return CapsResponse{}, err
	}
	c := CapsResponse{Sp: h.Sp(), Version: binary.LittleEndian.Uint16(b[2:])}
	if c.Version == 0 {
		return CapsResponse{}, perr(capsRspPDU, "Version", ErrInvalid, "0 is not a version")
	}
	return c, nil
}
