package drdynvc

import (
	"encoding/binary"
	"fmt"
)

// Soft-Sync Request flags (MS-RDPEDYC 2.2.5.1).
const (
	SoftSyncTCPFlushed         uint16 = 0x01 // SOFT_SYNC_TCP_FLUSHED
	SoftSyncChannelListPresent uint16 = 0x02 // SOFT_SYNC_CHANNEL_LIST_PRESENT
)

// Tunnel types (MS-RDPEDYC 2.2.5.1.1, 2.2.5.2).
const (
	TunnelTypeUDPFECR uint32 = 0x00000001 // TUNNELTYPE_UDPFECR: reliable UDP
	TunnelTypeUDPFECL uint32 = 0x00000003 // TUNNELTYPE_UDPFECL: lossy UDP
)

// MaxSoftSyncTunnels caps NumberOfTunnels in both Soft-Sync PDUs. The spec
// has two tunnel types and forbids listing one twice (2.2.5.1.1), so any
// honest PDU has at most 2; 16 leaves room for types yet to come. The
// number of DVC ids in a list is bounded only by the bytes present.
const MaxSoftSyncTunnels = 16

// SoftSyncChannelList is DYNVC_SOFT_SYNC_CHANNEL_LIST (MS-RDPEDYC
// 2.2.5.1.1): the channels whose server data moves to one tunnel.
type SoftSyncChannelList struct {
	TunnelType uint32   `json:"TunnelType"`
	DVCIDs     []uint32 `json:"ListOfDVCIds"`
}

// SoftSyncRequest is DYNVC_SOFT_SYNC_REQUEST (MS-RDPEDYC 2.2.5.1). rdpdvc
// has no multitransport tunnels, so the client manager refuses it; it is
// decoded in full so that the refusal can say what arrived.
type SoftSyncRequest struct {
	Flags uint16 `json:"Flags"`
	// NumberOfTunnels is written as given when ChannelLists is absent
	// (SoftSyncChannelListPresent clear); when the flag is set, Append
	// writes len(ChannelLists) and ParseSoftSyncRequest returns that many
	// lists.
	NumberOfTunnels uint16                `json:"NumberOfTunnels"`
	ChannelLists    []SoftSyncChannelList `json:"SoftSyncChannelLists,omitempty"`
}

const softSyncReqPDU = "DYNVC_SOFT_SYNC_REQUEST"

func (SoftSyncRequest) Cmd() Cmd     { return CmdSoftSyncRequest }
func (SoftSyncRequest) Name() string { return softSyncReqPDU }

func (r SoftSyncRequest) lists() []SoftSyncChannelList {
	if r.Flags&SoftSyncChannelListPresent == 0 {
		return nil
	}
	return r.ChannelLists
}

// Len is 10 plus each list's 6+4*len(DVCIDs).
func (r SoftSyncRequest) Len() int {
	n := 10
	for _, l := range r.lists() {
		n += 6 + 4*len(l.DVCIDs)
	}
	return n
}

func (r SoftSyncRequest) String() string {
	return fmt.Sprintf("DYNVC_SOFT_SYNC_REQUEST{Flags: 0x%x, NumberOfTunnels: %d, SoftSyncChannelLists: %v}", r.Flags, r.NumberOfTunnels, r.lists())
}

// Append appends the PDU, computing Length.
func (r SoftSyncRequest) Append(b []byte) []byte {
	b = append(b, byte(MakeHeader(CmdSoftSyncRequest, 0, 0)), 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(r.Len()-2))
	b = binary.LittleEndian.AppendUint16(b, r.Flags)
	n := r.NumberOfTunnels
	if r.Flags&SoftSyncChannelListPresent != 0 {
		n = uint16(len(r.ChannelLists))
	}
	b = binary.LittleEndian.AppendUint16(b, n)
	for _, l := range r.lists() {
		b = binary.LittleEndian.AppendUint32(b, l.TunnelType)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(l.DVCIDs)))
		for _, id := range l.DVCIDs {
			b = binary.LittleEndian.AppendUint32(b, id)
		}
	}
	return b
}

// ParseSoftSyncRequest decodes DYNVC_SOFT_SYNC_REQUEST. Length must cover
// at least its own fixed fields and fit in b; the channel lists are read
// within Length; bytes after Length are ignored. Counts are checked
// against the bytes left before anything is allocated, and NumberOfTunnels
// against MaxSoftSyncTunnels.
func ParseSoftSyncRequest(b []byte) (SoftSyncRequest, error) {
	const pdu = softSyncReqPDU
	if _, err := checkHeader(b, CmdSoftSyncRequest, pdu, false); err != nil {
		return SoftSyncRequest{}, err
	}
	if err := need(b, 2, 8, pdu, "Length"); err != nil {
		return SoftSyncRequest{}, err
	}
	length := binary.LittleEndian.Uint32(b[2:])
	if length < 8 || uint64(length) > uint64(len(b)-2) {
		return SoftSyncRequest{}, perr(pdu, "Length", ErrInvalid, "%d, want 8..%d", length, len(b)-2)
	}
	b = b[:2+length]
	r := SoftSyncRequest{
		Flags:           binary.LittleEndian.Uint16(b[6:]),
		NumberOfTunnels: binary.LittleEndian.Uint16(b[8:]),
	}
	if r.Flags&SoftSyncChannelListPresent == 0 {
		return r, nil
	}
	n := int(r.NumberOfTunnels)
	off := 10
	if n > MaxSoftSyncTunnels {
		return SoftSyncRequest{}, perr(pdu, "NumberOfTunnels", ErrTooLarge, "%d exceeds ceiling %d", n, MaxSoftSyncTunnels)
	}
	if err := need(b, off, 6*n, pdu, "SoftSyncChannelLists"); err != nil {
		return SoftSyncRequest{}, err
	}
	r.ChannelLists = make([]SoftSyncChannelList, n)
	for i := range r.ChannelLists {
		const lpdu = "DYNVC_SOFT_SYNC_CHANNEL_LIST"
		if err := need(b, off, 6, lpdu, "TunnelType"); err != nil {
			return SoftSyncRequest{}, err
		}
		l := &r.ChannelLists[i]
		l.TunnelType = binary.LittleEndian.Uint32(b[off:])
		cnt := int(binary.LittleEndian.Uint16(b[off+4:]))
		off += 6
		if err := need(b, off, 4*cnt, lpdu, "ListOfDVCIds"); err != nil {
			return SoftSyncRequest{}, err
		}
		l.DVCIDs = make([]uint32, cnt)
		for j := range l.DVCIDs {
			l.DVCIDs[j] = binary.LittleEndian.Uint32(b[off:])
			off += 4
		}
	}
	return r, nil
}

// SoftSyncResponse is DYNVC_SOFT_SYNC_RESPONSE (MS-RDPEDYC 2.2.5.2): the
// tunnels the client will write DVC data on. The server manager refuses
// it like the request.
type SoftSyncResponse struct {
	TunnelsToSwitch []uint32 `json:"TunnelsToSwitch"`
}

const softSyncRspPDU = "DYNVC_SOFT_SYNC_RESPONSE"

func (SoftSyncResponse) Cmd() Cmd     { return CmdSoftSyncResponse }
func (SoftSyncResponse) Name() string { return softSyncRspPDU }
func (r SoftSyncResponse) Len() int   { return 6 + 4*len(r.TunnelsToSwitch) }
func (r SoftSyncResponse) String() string {
	return fmt.Sprintf("DYNVC_SOFT_SYNC_RESPONSE{TunnelsToSwitch: %v}", r.TunnelsToSwitch)
}

// Append appends the PDU.
func (r SoftSyncResponse) Append(b []byte) []byte {
	b = append(b, byte(MakeHeader(CmdSoftSyncResponse, 0, 0)), 0)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(r.TunnelsToSwitch)))
	for _, t := range r.TunnelsToSwitch {
		b = binary.LittleEndian.AppendUint32(b, t)
	}
	return b
}

// ParseSoftSyncResponse decodes DYNVC_SOFT_SYNC_RESPONSE; NumberOfTunnels
// is checked against MaxSoftSyncTunnels and the bytes present before the
// list is allocated; trailing bytes are ignored.
func ParseSoftSyncResponse(b []byte) (SoftSyncResponse, error) {
	const pdu = softSyncRspPDU
	if _, err := checkHeader(b, CmdSoftSyncResponse, pdu, false); err != nil {
		return SoftSyncResponse{}, err
	}
	if err := need(b, 2, 4, pdu, "NumberOfTunnels"); err != nil {
		return SoftSyncResponse{}, err
	}
	n := binary.LittleEndian.Uint32(b[2:])
	if n > MaxSoftSyncTunnels {
		return SoftSyncResponse{}, perr(pdu, "NumberOfTunnels", ErrTooLarge, "%d exceeds ceiling %d", n, MaxSoftSyncTunnels)
	}
	if err := need(b, 6, 4*int(n), pdu, "TunnelsToSwitch"); err != nil {
		return SoftSyncResponse{}, err
	}
	r := SoftSyncResponse{TunnelsToSwitch: make([]uint32, n)}
	for i := range r.TunnelsToSwitch {
		r.TunnelsToSwitch[i] = binary.LittleEndian.Uint32(b[6+4*i:])
	}
	return r, nil
}
