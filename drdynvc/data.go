package drdynvc

import (
	"fmt"

	"github.com/rdpdvc/rdpdvc/codec"
)

// MaxPDU is the largest DVC PDU, header included (MS-RDPEDYC 2.2.3,
// 3.1.5). Data PDUs are sized so that none exceeds it.
const MaxPDU = 1600

// MaxSingleData is the most message data a DVC manager sends in one
// DYNVC_DATA: "A single DYNVC_DATA PDU is used to send a message when the
// total length of the message data is less than or equal to 1,590 bytes"
// (MS-RDPEDYC 2.2.3.2), and a longer message "MUST be sent using a
// DYNVC_DATA_FIRST" (2.2.3, 3.1.5.1.1). The 10 bytes of slack cover the
// largest DYNVC_DATA_FIRST header (1+4+4). rdpdvc's managers (package
// session) send by this rule.
const MaxSingleData = 1590

// DataHeaderLen is the size of a DYNVC_DATA header for channelID: the
// header byte and ChannelId in its smallest width.
func DataHeaderLen(channelID uint32) int { return 1 + UintLen(channelID) }

// DataFirstHeaderLen is the size of a DYNVC_DATA_FIRST header for
// channelID and a message of length bytes.
func DataFirstHeaderLen(channelID, length uint32) int {
	return 1 + UintLen(channelID) + UintLen(length)
}

// FitsInData reports whether a message of n bytes on channelID fits in a
// single DYNVC_DATA of at most MaxPDU bytes: whether
// DataHeaderLen(channelID)+n <= MaxPDU. It is the receiver's bound, and
// the rule AppendMessage packs by.
//
// It is looser than the sender's rule, MaxSingleData: a message of
// 1591..1598 bytes on a small ChannelId fits one DYNVC_DATA but the spec
// says it goes as DYNVC_DATA_FIRST (2.2.3). AppendMessage keeps the exact
// header size (FreeRDP's drdynvc_write_data does the same), so its output
// for those sizes differs from what rdpdvc's managers send; receivers size
// a DYNVC_DATA by its carrier (2.2.3.2) and accept either.
func FitsInData(channelID uint32, n int) bool {
	return n <= MaxPDU-DataHeaderLen(channelID)
}

// SendsInOneData reports whether a DVC manager sends a message of n bytes
// as one DYNVC_DATA (n <= MaxSingleData) rather than DYNVC_DATA_FIRST
// followed by DYNVC_DATA (MS-RDPEDYC 2.2.3, 3.1.5.1.1).
func SendsInOneData(n int) bool { return n <= MaxSingleData }

// DataFirst is DYNVC_DATA_FIRST (MS-RDPEDYC 2.2.3.1): the first PDU of a
// message too large for one DYNVC_DATA. Length is the whole message's
// length; Data is its first block.
type DataFirst struct {
	ChannelID uint32 `json:"ChannelId"`
	Length    uint32 `json:"Length"`
	// Data aliases the input of ParseDataFirst: copy it to keep it past
	// the input buffer's reuse.
	Data Bytes `json:"Data"`
}

const dataFirstPDU = "DYNVC_DATA_FIRST"

func (DataFirst) Cmd() Cmd     { return CmdDataFirst }
func (DataFirst) Name() string { return dataFirstPDU }

// HeaderLen is DataFirstHeaderLen(d.ChannelID, d.Length).
func (d DataFirst) HeaderLen() int { return DataFirstHeaderLen(d.ChannelID, d.Length) }
func (d DataFirst) Len() int       { return d.HeaderLen() + len(d.Data) }
func (d DataFirst) String() string {
	return fmt.Sprintf("DYNVC_DATA_FIRST{ChannelId: %d, Length: %d, Data: %d bytes}", d.ChannelID, d.Length, len(d.Data))
}

// Append appends the PDU, with ChannelId and Length each in their
// smallest width (the Len field says which).
func (d DataFirst) Append(b []byte) []byte {
	idc, lc := WidthCode(d.ChannelID), WidthCode(d.Length)
	b = append(b, byte(MakeHeader(CmdDataFirst, lc, idc)))
	b = AppendUint(b, idc, d.ChannelID)
	b = AppendUint(b, lc, d.Length)
	return append(b, d.Data...)
}

// ParseDataFirst decodes DYNVC_DATA_FIRST without allocating: Data is the
// rest of b after the header, aliasing b. Data longer than Length is an
// error; how much data a DATA_FIRST holds otherwise is the reassembler's
// business (2.2.3.1 ties it to the 1600-byte PDU size).
func ParseDataFirst(b []byte) (DataFirst, error) {
	h, err := checkHeader(b, CmdDataFirst, dataFirstPDU, true)
	if err != nil {
		return DataFirst{}, err
	}
	lc := h.Sp()
	if lc == 3 {
		return DataFirst{}, perr(dataFirstPDU, "Len", ErrInvalid, "0x3 is no width")
	}
	id, off, err := readUint(b, 1, h.CbID(), dataFirstPDU, "ChannelId")
	if err != nil {
		return DataFirst{}, err
	}
	length, off, err := readUint(b, off, lc, dataFirstPDU, "Length")
	if err != nil {
		return DataFirst{}, err
	}
	data := b[off:]
	if uint64(len(data)) > uint64(length) {
		return DataFirst{}, perr(dataFirstPDU, "Data", ErrInvalid, "%d bytes, more than Length %d", len(data), length)
	}
	return DataFirst{ChannelID: id, Length: length, Data: data}, nil
}

// Data is DYNVC_DATA (MS-RDPEDYC 2.2.3.2): a whole message, or a block of
// one that began with DYNVC_DATA_FIRST.
type Data struct {
	// Sp is unused, SHOULD be 0; Windows leaves it random (6 note 8), and
	// the section 4.3.2 example has 1.
	Sp        uint8  `json:"Sp"`
	ChannelID uint32 `json:"ChannelId"`
	// Data aliases the input of ParseData.
	Data Bytes `json:"Data"`
}

const dataPDU = "DYNVC_DATA"

func (Data) Cmd() Cmd     { return CmdData }
func (Data) Name() string { return dataPDU }

// HeaderLen is DataHeaderLen(d.ChannelID).
func (d Data) HeaderLen() int { return DataHeaderLen(d.ChannelID) }
func (d Data) Len() int       { return d.HeaderLen() + len(d.Data) }
func (d Data) String() string {
	return fmt.Sprintf("DYNVC_DATA{ChannelId: %d, Data: %d bytes}", d.ChannelID, len(d.Data))
}

// Append appends the PDU.
func (d Data) Append(b []byte) []byte {
	code := WidthCode(d.ChannelID)
	b = append(b, byte(MakeHeader(CmdData, d.Sp, code)))
	b = AppendUint(b, code, d.ChannelID)
	return append(b, d.Data...)
}

// ParseData decodes DYNVC_DATA without allocating: Data is the rest of b
// after ChannelId, aliasing b.
func ParseData(b []byte) (Data, error) {
	h, err := checkHeader(b, CmdData, dataPDU, true)
	if err != nil {
		return Data{}, err
	}
	id, off, err := readUint(b, 1, h.CbID(), dataPDU, "ChannelId")
	if err != nil {
		return Data{}, err
	}
	return Data{Sp: h.Sp(), ChannelID: id, Data: b[off:]}, nil
}

// ErrMessageTooLarge is returned by AppendMessage for a message longer
// than 2^32-1 bytes, the most DYNVC_DATA_FIRST.Length can say (2.2.3).
var ErrMessageTooLarge = codec.NewKind("drdynvc: message longer than 4294967295 bytes", codec.ErrTooLarge)

// AppendMessage produces the PDUs that carry msg on channelID
// (MS-RDPEDYC 3.1.5.1): one DYNVC_DATA if FitsInData (the exact header
// size, not MaxSingleData: see FitsInData), otherwise one
// DYNVC_DATA_FIRST holding MaxPDU-DataFirstHeaderLen bytes followed by as
// many DYNVC_DATA as needed, each holding up to MaxPDU-DataHeaderLen
// bytes, so that every PDU but the last is exactly MaxPDU bytes. An empty
// message is one DYNVC_DATA with no data.
//
// The PDUs are built one at a time in a single buffer: each is appended to
// dst after dst's existing len(dst) bytes, which are kept as a prefix
// (room for a carrier header the caller patches, for instance), and emit
// is called with prefix+PDU. emit must not keep the slice past its return:
// the next PDU overwrites it. AppendMessage stops at the first error from
// emit and returns it; it returns the buffer (grown to hold the prefix and
// MaxPDU bytes) for reuse as the next call's dst[:prefix]. msg is only
// read.
func AppendMessage(dst []byte, channelID uint32, msg []byte, emit func(buf []byte) error) ([]byte, error) {
	if uint64(len(msg)) > 0xFFFFFFFF {
		return dst, ErrMessageTooLarge
	}
	prefix := len(dst)
	if cap(dst) < prefix+MaxPDU {
		nb := make([]byte, prefix, prefix+MaxPDU)
		copy(nb, dst)
		dst = nb
	}
	if FitsInData(channelID, len(msg)) {
		dst = Data{ChannelID: channelID, Data: msg}.Append(dst[:prefix])
		return dst, emit(dst)
	}
	first := DataFirst{ChannelID: channelID, Length: uint32(len(msg))}
	n := MaxPDU - first.HeaderLen()
	first.Data = msg[:n]
	dst = first.Append(dst[:prefix])
	if err := emit(dst); err != nil {
		return dst, err
	}
	msg = msg[n:]
	per := MaxPDU - DataHeaderLen(channelID)
	for len(msg) > 0 {
		n := min(per, len(msg))
		dst = Data{ChannelID: channelID, Data: msg[:n]}.Append(dst[:prefix])
		if err := emit(dst); err != nil {
			return dst, err
		}
		msg = msg[n:]
	}
	return dst, nil
}

// MessagePDUs returns how many PDUs AppendMessage produces for a message
// of n bytes on channelID.
func MessagePDUs(channelID uint32, n int) int {
	if FitsInData(channelID, n) {
		return 1
	}
	rest := n - (MaxPDU - DataFirstHeaderLen(channelID, uint32(n)))
	per := MaxPDU - DataHeaderLen(channelID)
	return 1 + (rest+per-1)/per
}

// SplitMessage calls emit for each PDU that carries msg on channelID by
// the managers' rule: one DYNVC_DATA when SendsInOneData(len(msg)),
// otherwise a DYNVC_DATA_FIRST holding up to MaxPDU-DataFirstHeaderLen
// bytes and as many DYNVC_DATA as needed, each holding up to MaxPDU-DataHeaderLen
// bytes (MS-RDPEDYC 2.2.3, 3.1.5.1). Each PDU is head followed by body:
// head is built in hdr's storage (reused from call to call; at most 9
// bytes), body is a slice of msg, so a carrier that can write the two
// apart never copies the message. emit must not keep either slice. It
// stops at the first error from emit and returns it.
func SplitMessage(hdr []byte, channelID uint32, msg []byte, emit func(head, body []byte) error) error {
	if uint64(len(msg)) > 0xFFFFFFFF {
		return ErrMessageTooLarge
	}
	if SendsInOneData(len(msg)) {
		return emit(Data{ChannelID: channelID}.Append(hdr[:0]), msg)
	}
	total := uint32(len(msg))
	// 1591..1596 bytes fit the DYNVC_DATA_FIRST whole; its Length then
	// equals its data (2.2.3.1, the "less than 1,600 bytes" case).
	n := min(len(msg), MaxPDU-DataFirstHeaderLen(channelID, total))
	if err := emit(DataFirst{ChannelID: channelID, Length: total}.Append(hdr[:0]), msg[:n]); err != nil {
		return err
	}
	head := Data{ChannelID: channelID}.Append(hdr[:0])
	step := MaxPDU - DataHeaderLen(channelID)
	for off := n; off < len(msg); off += step {
		if err := emit(head, msg[off:min(off+step, len(msg))]); err != nil {
			return err
		}
	}
	return nil
}
