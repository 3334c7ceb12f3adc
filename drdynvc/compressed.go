package drdynvc

import "fmt"

// DataFirstCompressed is DYNVC_DATA_FIRST_COMPRESSED (MS-RDPEDYC 2.2.3.3).
// Only version 3 peers send it, and rdpdvc never offers version 3, so the
// managers refuse it; it is decoded so that the refusal and `rdpdvc
// decode` can say what arrived. Data is kept raw: an RDP_SEGMENTED_DATA
// holding one RDP8_BULK_ENCODED_DATA segment (MS-RDPEGFX 2.2.5.1, 2.2.5.3),
// not decompressed.
type DataFirstCompressed struct {
	ChannelID uint32 `json:"ChannelId"`
	// Length is the total uncompressed length of the message.
	Length uint32 `json:"Length"`
	// Data aliases the input of ParseDataFirstCompressed.
	Data Bytes `json:"Data"`
}

const dataFirstCompressedPDU = "DYNVC_DATA_FIRST_COMPRESSED"

func (DataFirstCompressed) Cmd() Cmd     { return CmdDataFirstCompressed }
func (DataFirstCompressed) Name() string { return dataFirstCompressedPDU }
func (d DataFirstCompressed) Len() int {
	return DataFirstHeaderLen(d.ChannelID, d.Length) + len(d.Data)
}
func (d DataFirstCompressed) String() string {
	return fmt.Sprintf("DYNVC_DATA_FIRST_COMPRESSED{ChannelId: %d, Length: %d, Data: %d bytes}", d.ChannelID, d.Length, len(d.Data))
}

// Append appends the PDU.
func (d DataFirstCompressed) Append(b []byte) []byte {
	idc, lc := WidthCode(d.ChannelID), WidthCode(d.Length)
	b = append(b, byte(MakeHeader(CmdDataFirstCompressed, lc, idc)))
	b = AppendUint(b, idc, d.ChannelID)
	b = AppendUint(b, lc, d.Length)
	return append(b, d.Data...)
}

// ParseDataFirstCompressed decodes DYNVC_DATA_FIRST_COMPRESSED without
// allocating; Data aliases b.
func ParseDataFirstCompressed(b []byte) (DataFirstCompressed, error) {
	const pdu = dataFirstCompressedPDU
	h, err := checkHeader(b, CmdDataFirstCompressed, pdu, true)
	if err != nil {
		return DataFirstCompressed{}, err
	}
	lc := h.Sp()
	if lc == 3 {
		return DataFirstCompressed{}, perr(pdu, "Len", ErrInvalid, "0x3 is no width")
	}
	id, off, err := readUint(b, 1, h.CbID(), pdu, "ChannelId")
	if err != nil {
		return DataFirstCompressed{}, err
	}
	length, off, err := readUint(b, off, lc, pdu, "Length")
	if err != nil {
		return DataFirstCompressed{}, err
	}
	return DataFirstCompressed{ChannelID: id, Length: length, Data: b[off:]}, nil
}

// DataCompressed is DYNVC_DATA_COMPRESSED (MS-RDPEDYC 2.2.3.4), refused
// like DataFirstCompressed. Data is kept raw.
type DataCompressed struct {
	// Sp is unused, SHOULD be 0, random from Windows (6 note 9).
	Sp        uint8  `json:"Sp"`
	ChannelID uint32 `json:"ChannelId"`
	// Data aliases the input of ParseDataCompressed.
	Data Bytes `json:"Data"`
}

const dataCompressedPDU = "DYNVC_DATA_COMPRESSED"

func (DataCompressed) Cmd() Cmd     { return CmdDataCompressed }
func (DataCompressed) Name() string { return dataCompressedPDU }
func (d DataCompressed) Len() int   { return DataHeaderLen(d.ChannelID) + len(d.Data) }
func (d DataCompressed) String() string {
	return fmt.Sprintf("DYNVC_DATA_COMPRESSED{ChannelId: %d, Data: %d bytes}", d.ChannelID, len(d.Data))
}

// Append appends the PDU.
func (d DataCompressed) Append(b []byte) []byte {
	code := WidthCode(d.ChannelID)
	b = append(b, byte(MakeHeader(CmdDataCompressed, d.Sp, code)))
	b = AppendUint(b, code, d.ChannelID)
	return append(b, d.Data...)
}

// ParseDataCompressed decodes DYNVC_DATA_COMPRESSED without allocating;
// Data aliases b.
func ParseDataCompressed(b []byte) (DataCompressed, error) {
	h, err := checkHeader(b, CmdDataCompressed, dataCompressedPDU, true)
	if err != nil {
		return DataCompressed{}, err
	}
	id, off, err := readUint(b, 1, h.CbID(), dataCompressedPDU, "ChannelId")
	if err != nil {
		return DataCompressed{}, err
	}
	return DataCompressed{Sp: h.Sp(), ChannelID: id, Data: b[off:]}, nil
}
