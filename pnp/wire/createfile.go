package wire

import "github.com/rdpdvc/rdpdvc/hresult"

// CreateFileRequest is the CreateFile Request message (2.2.2.3.1): it
// opens the one file handle a FileRedirectorChannel instance carries.
type CreateFileRequest struct {
	RequestID           uint32 `json:"RequestId"`
	UnusedBits          uint8  `json:"UnusedBits"`
	DeviceID            uint32 `json:"DeviceId"`              // a ClientDeviceID from a Client Device Addition
	DesiredAccess       uint32 `json:"dwDesiredAccess"`       // GenericRead|GenericWrite (SHOULD be 0xC0000000)
	ShareMode           uint32 `json:"dwShareMode"`           // FileShare* bits
	CreationDisposition uint32 `json:"dwCreationDisposition"` // CreateNew .. TruncateExisting
	FlagsAndAttributes  uint32 `json:"dwFlagsAndAttributes"`  // FileAttribute*/FileFlag* bits
}

const createFileRequestLen = ServerIOHeaderLen + 20

// ParseCreateFileRequest decodes a CreateFile Request.
func ParseCreateFileRequest(b []byte) (CreateFileRequest, error) {
	r, h := readRequest(b, "CreateFileRequest", FunctionCreateFile)
	m := CreateFileRequest{
		RequestID:           h.RequestID,
		UnusedBits:          h.UnusedBits,
		DeviceID:            r.u32("DeviceId"),
		DesiredAccess:       r.u32("dwDesiredAccess"),
		ShareMode:           r.u32("dwShareMode"),
		CreationDisposition: r.u32("dwCreationDisposition"),
		FlagsAndAttributes:  r.u32("dwFlagsAndAttributes"),
	}
	r.end()
	if r.err != nil {
		return CreateFileRequest{}, r.err
	}
	return m, nil
}

func (m CreateFileRequest) Header() ServerIOHeader {
	return ServerIOHeader{RequestID: m.RequestID, UnusedBits: m.UnusedBits, FunctionID: FunctionCreateFile}
}

func (m CreateFileRequest) Len() int { return createFileRequestLen }

func (m CreateFileRequest) Append(b []byte) []byte {
	b = grow(b, createFileRequestLen)
	b = appendServerHeader(b, m.RequestID, m.UnusedBits, FunctionCreateFile)
	b = appendU32(b, m.DeviceID)
	b = appendU32(b, m.DesiredAccess)
	b = appendU32(b, m.ShareMode)
	b = appendU32(b, m.CreationDisposition)
	return appendU32(b, m.FlagsAndAttributes)
}

// CreateFileReply is the CreateFile Reply message (2.2.2.3.2).
type CreateFileReply struct {
	RequestID uint32          `json:"RequestId"`
	Result    hresult.HRESULT `json:"Result"`
}

const createFileReplyLen = ClientIOHeaderLen + 4

// ParseCreateFileReply decodes a CreateFile Reply.
func ParseCreateFileReply(b []byte) (CreateFileReply, error) {
	r, id := readReply(b, "CreateFileReply")
	m := CreateFileReply{RequestID: id, Result: hresult.HRESULT(r.u32("Result"))}
	r.end()
	if r.err != nil {
		return CreateFileReply{}, r.err
	}
	return m, nil
}

func (m CreateFileReply) Header() ClientIOHeader {
	return ClientIOHeader{RequestID: m.RequestID, PacketType: PacketTypeResponse}
}

func (m CreateFileReply) Function() FunctionID { return FunctionCreateFile }

func (m CreateFileReply) Len() int { return createFileReplyLen }

func (m CreateFileReply) Append(b []byte) []byte {
	b = grow(b, createFileReplyLen)
	b = appendClientHeader(b, m.RequestID, PacketTypeResponse)
	return appendU32(b, uint32(m.Result))
}
