package wire

// PNPInfoHeaderLen is the length of a PNP_INFO_HEADER.
const PNPInfoHeaderLen = 8

// PNPInfoHeader is PNP_INFO_HEADER (2.2.1.1), the header of every PNPDR
// message.
type PNPInfoHeader struct {
	Size     uint32   `json:"Size"` // whole message, header included
	PacketID PacketID `json:"PacketId"`
}

// ParsePNPInfoHeader reads the header at the start of b. It checks only
// that 8 bytes are there; the Parse function of each message checks Size
// against the message.
func ParsePNPInfoHeader(b []byte) (PNPInfoHeader, error) {
	r := newReader(b, "PNPInfoHeader")
	h := PNPInfoHeader{Size: r.u32("Size"), PacketID: PacketID(r.u32("PacketId"))}
	return h, r.err
}

// Append appends the header.
func (h PNPInfoHeader) Append(b []byte) []byte {
	b = appendU32(b, h.Size)
	return appendU32(b, uint32(h.PacketID))
}

// readPNPHeader starts decoding message msg: the header must be there,
// carry want, and Size must be exactly len(b), since each PNPDR message
// is one DVC message.
func readPNPHeader(b []byte, msg string, want PacketID) reader {
	r := newReader(b, msg)
	size := r.u32("Size")
	id := PacketID(r.u32("PacketId"))
	switch {
	case r.err != nil:
	case id != want:
		r.fail("PacketId", ErrInvalid, "got %v, want %v", id, want)
	case uint64(size) > uint64(len(b)):
		r.fail("Size", ErrTruncated, "Size %d, message has %d bytes", size, len(b))
	case uint64(size) < uint64(len(b)):
		r.fail("Size", ErrTrailingData, "Size %d, message has %d bytes", size, len(b))
	}
	return r
}

// ServerVersion is the Server Version message (2.2.1.2.1), the first
// message on PNPDR, server to client. Capabilities "MUST be" 0x00000001;
// decoding does not insist, so that a peer with a new bit still decodes
// and the role can decide.
type ServerVersion struct {
	MajorVersion uint32 `json:"MajorVersion"`
	MinorVersion uint32 `json:"MinorVersion"`
	Capabilities uint32 `json:"Capabilities"` // CapDynamicDeviceAddition
}

// ClientVersion is the Client Version message (2.2.1.2.2), the client's
// answer to ServerVersion. It has the same layout and PacketId as
// ServerVersion; only the direction tells them apart.
type ClientVersion struct {
	MajorVersion uint32 `json:"MajorVersion"`
	MinorVersion uint32 `json:"MinorVersion"`
	Capabilities uint32 `json:"Capabilities"` // CapDynamicDeviceAddition
}

const versionLen = PNPInfoHeaderLen + 12

func parseVersion(b []byte, msg string) (maj, min, caps uint32, err error) {
	r := readPNPHeader(b, msg, PacketVersion)
	maj = r.u32("MajorVersion")
	min = r.u32("MinorVersion")
	caps = r.u32("Capabilities")
	r.end()
	return maj, min, caps, r.err
}

func appendVersion(b []byte, maj, min, caps uint32) []byte {
	b = grow(b, versionLen)
	b = PNPInfoHeader{Size: versionLen, PacketID: PacketVersion}.Append(b)
	b = appendU32(b, maj)
	b = appendU32(b, min)
	return appendU32(b, caps)
}

// ParseServerVersion decodes a Server Version message.
func ParseServerVersion(b []byte) (ServerVersion, error) {
	maj, min, caps, err := parseVersion(b, "ServerVersion")
	if err != nil {
		return ServerVersion{}, err
	}
	return ServerVersion{maj, min, caps}, nil
}

func (m ServerVersion) Len() int { return versionLen }

func (m ServerVersion) Append(b []byte) []byte {
	return appendVersion(b, m.MajorVersion, m.MinorVersion, m.Capabilities)
}

// ParseClientVersion decodes a Client Version message.
func ParseClientVersion(b []byte) (ClientVersion, error) {
	maj, min, caps, err := parseVersion(b, "ClientVersion")
	if err != nil {
		return ClientVersion{}, err
	}
	return ClientVersion{maj, min, caps}, nil
}

func (m ClientVersion) Len() int { return versionLen }

func (m ClientVersion) Append(b []byte) []byte {
	return appendVersion(b, m.MajorVersion, m.MinorVersion, m.Capabilities)
}

// AuthenticatedClient is the Authenticated Client message (2.2.1.2.3):
// the server's word that a user has logged on and device messages may
// come. It is a bare header.
type AuthenticatedClient struct{}

// ParseAuthenticatedClient decodes an Authenticated Client message. It
// MUST NOT carry a payload, so any byte after the header is an error.
func ParseAuthenticatedClient(b []byte) (AuthenticatedClient, error) {
	r := readPNPHeader(b, "AuthenticatedClient", PacketServerLogon)
	r.end()
	return AuthenticatedClient{}, r.err
}

func (m AuthenticatedClient) Len() int { return PNPInfoHeaderLen }

func (m AuthenticatedClient) Append(b []byte) []byte {
	b = grow(b, PNPInfoHeaderLen)
	return PNPInfoHeader{Size: PNPInfoHeaderLen, PacketID: PacketServerLogon}.Append(b)
}

// ClientDeviceRemoval is the Client Device Removal message (2.2.1.3.2).
type ClientDeviceRemoval struct {
	ClientDeviceID uint32 `json:"ClientDeviceID"`
}

const removalLen = PNPInfoHeaderLen + 4

// ParseClientDeviceRemoval decodes a Client Device Removal message.
func ParseClientDeviceRemoval(b []byte) (ClientDeviceRemoval, error) {
	r := readPNPHeader(b, "ClientDeviceRemoval", PacketUnredirectDevice)
	m := ClientDeviceRemoval{ClientDeviceID: r.u32("ClientDeviceID")}
	r.end()
	if r.err != nil {
		return ClientDeviceRemoval{}, r.err
	}
	return m, nil
}

func (m ClientDeviceRemoval) Len() int { return removalLen }

func (m ClientDeviceRemoval) Append(b []byte) []byte {
	b = grow(b, removalLen)
	b = PNPInfoHeader{Size: removalLen, PacketID: PacketUnredirectDevice}.Append(b)
	return appendU32(b, m.ClientDeviceID)
}

// ParsePNPDR decodes one PNPDR message sent in direction dir. Server to
// client it returns ServerVersion or AuthenticatedClient; client to server
// ClientVersion, ClientDeviceAddition or ClientDeviceRemoval. A PacketId
// the direction does not carry is an error wrapping ErrUnknownPacket.
func ParsePNPDR(dir Direction, b []byte) (Message, error) {
	h, err := ParsePNPInfoHeader(b)
	if err != nil {
		return nil, err
	}
	switch {
	case dir == ServerToClient && h.PacketID == PacketVersion:
		return asMessage(ParseServerVersion(b))
	case dir == ServerToClient && h.PacketID == PacketServerLogon:
		return asMessage(ParseAuthenticatedClient(b))
	case dir == ClientToServer && h.PacketID == PacketVersion:
		return asMessage(ParseClientVersion(b))
	case dir == ClientToServer && h.PacketID == PacketRedirectDevices:
		return asMessage(ParseClientDeviceAddition(b))
	case dir == ClientToServer && h.PacketID == PacketUnredirectDevice:
		return asMessage(ParseClientDeviceRemoval(b))
	case dir != ServerToClient && dir != ClientToServer:
		return nil, newError("PNPInfoHeader", "", ErrInvalid, "direction %v", dir)
	}
	return nil, newError("PNPInfoHeader", "PacketId", ErrUnknownPacket, "%v is not sent %v", h.PacketID, dir)
}
