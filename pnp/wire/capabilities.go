package wire

// ServerCapabilitiesRequest is the Server Capabilities Request message
// (2.2.2.2.1), the first message on every FileRedirectorChannel instance.
type ServerCapabilitiesRequest struct {
	RequestID  uint32 `json:"RequestId"`
	UnusedBits uint8  `json:"UnusedBits"` // SERVER_IO_HEADER padding, kept for exact re-encoding
	Version    uint16 `json:"Version"`    // IOVersionNoCustomEvents or IOVersionCustomEvents
}

const capsRequestLen = ServerIOHeaderLen + 2

// ParseServerCapabilitiesRequest decodes a Server Capabilities Request.
func ParseServerCapabilitiesRequest(b []byte) (ServerCapabilitiesRequest, error) {
	r, h := readRequest(b, "ServerCapabilitiesRequest", FunctionCapabilities)
	m := ServerCapabilitiesRequest{RequestID: h.RequestID, UnusedBits: h.UnusedBits, Version: r.u16("Version")}
	r.end()
	if r.err != nil {
		return ServerCapabilitiesRequest{}, r.err
	}
	return m, nil
}

func (m ServerCapabilitiesRequest) Header() ServerIOHeader {
	return ServerIOHeader{RequestID: m.RequestID, UnusedBits: m.UnusedBits, FunctionID: FunctionCapabilities}
}

func (m ServerCapabilitiesRequest) Len() int { return capsRequestLen }

func (m ServerCapabilitiesRequest) Append(b []byte) []byte {
	b = grow(b, capsRequestLen)
	b = appendServerHeader(b, m.RequestID, m.UnusedBits, FunctionCapabilities)
	return appendU16(b, m.Version)
}

// ClientCapabilitiesReply is the Client Capabilities Reply message
// (2.2.2.2.2).
type ClientCapabilitiesReply struct {
	RequestID uint32 `json:"RequestId"`
	Version   uint16 `json:"Version"` // IOVersionNoCustomEvents or IOVersionCustomEvents
}

const capsReplyLen = ClientIOHeaderLen + 2

// ParseClientCapabilitiesReply decodes a Client Capabilities Reply.
func ParseClientCapabilitiesReply(b []byte) (ClientCapabilitiesReply, error) {
	r, id := readReply(b, "ClientCapabilitiesReply")
	m := ClientCapabilitiesReply{RequestID: id, Version: r.u16("Version")}
	r.end()
	if r.err != nil {
		return ClientCapabilitiesReply{}, r.err
	}
	return m, nil
}

func (m ClientCapabilitiesReply) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeResponse}
}

func (m ClientCapabilitiesReply) Function() FunctionID { return FunctionCapabilities }

func (m ClientCapabilitiesReply) Len() int { return capsReplyLen }

func (m ClientCapabilitiesReply) Append(b []byte) []byte {
	b = grow(b, capsReplyLen)
	b = appendClientHeader(b, m.RequestID, PacketTypeResponse)
	return appendU16(b, m.Version)
}

// CustomEventsAllowed reports whether custom events (2.2.2.3.10) may be
// sent on a channel where the server sent serverVersion and the client
// clientVersion: only if both are 6 or later (3.2.5.2.1.1, 3.3.5.2.2.10).
func CustomEventsAllowed(serverVersion, clientVersion uint16) bool {
	return serverVersion >= IOVersionCustomEvents && clientVersion >= IOVersionCustomEvents
}
