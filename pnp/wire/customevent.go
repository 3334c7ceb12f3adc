package wire

// ClientDeviceCustomEvent is the Client Device Custom Event message
// (2.2.2.3.10): a device event the client passes on unasked. It is sent
// only when both ends announced version 6 or later (CustomEventsAllowed).
// cbData is len(Data).
type ClientDeviceCustomEvent struct {
	// RequestID SHOULD be 0 and MUST be ignored; it is kept for exact
	// re-encoding.
	RequestID       uint32 `json:"RequestId"`
	CustomEventGUID GUID   `json:"CustomEventGUID"`
	Data            Bytes  `json:"Data"`       // aliases the decoded input; at most MaxCustomEventBytes
	UnusedByte      uint8  `json:"UnusedByte"` // trailing pad, ignored, kept for exact re-encoding
}

const customEventMinLen = ClientIOHeaderLen + 16 + 4 + 1

// ParseClientDeviceCustomEvent decodes a Client Device Custom Event. Data
// aliases b.
func ParseClientDeviceCustomEvent(b []byte) (ClientDeviceCustomEvent, error) {
	r := newReader(b, "ClientDeviceCustomEvent")
	h := r.clientHeader()
	if r.err == nil && h.PacketType != PacketTypeCustomEvent {
		r.fail("PacketType", ErrInvalid, "%v, want CUSTOM_EVENT_PACKET", h.PacketType)
	}
	g := r.guid("CustomEventGUID")
	n := r.length("cbData", MaxCustomEventBytes)
	data := r.bytes("Data", n)
	unused := r.u8("UnusedByte")
	r.end()
	if r.err != nil {
		return ClientDeviceCustomEvent{}, r.err
	}
	return ClientDeviceCustomEvent{RequestID: h.RequestID, CustomEventGUID: g, Data: data, UnusedByte: unused}, nil
}

func (m ClientDeviceCustomEvent) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeCustomEvent}
}

func (m ClientDeviceCustomEvent) Len() int { return customEventMinLen + len(m.Data) }

func (m ClientDeviceCustomEvent) Append(b []byte) []byte {
	b = grow(b, m.Len())
	b = appendClientHeader(b, m.RequestID, PacketTypeCustomEvent)
	b = m.CustomEventGUID.AppendWire(b)
	b = appendU32(b, uint32(len(m.Data)))
	b = append(b, m.Data...)
	return append(b, m.UnusedByte)
}
