package wire

import "fmt"

// Channel names (2.1).
const (
	// ChannelPNPDR is the control channel of the PNP Device Info
	// Subprotocol: one instance per connection.
	ChannelPNPDR = "PNPDR"
	// ChannelFileRedirector carries the PNP Device I/O Subprotocol: one
	// instance per file handle.
	ChannelFileRedirector = "FileRedirectorChannel"
)

// Direction says which end sent a message. Both channels need it to
// decode: the Server and Client Version messages share one layout and
// PacketId, and FileRedirectorChannel uses a different header each way.
type Direction uint8

const (
	ServerToClient Direction = 1
	ClientToServer Direction = 2
)

func (d Direction) String() string {
	switch d {
	case ServerToClient:
		return "server-to-client"
	case ClientToServer:
		return "client-to-server"
	}
	return fmt.Sprintf("Direction(%d)", uint8(d))
}

// PacketID is the PacketId of a PNP_INFO_HEADER (2.2.1.1).
type PacketID uint32

const (
	PacketVersion          PacketID = 0x00000065 // IRPDR_ID_VERSION
	PacketRedirectDevices  PacketID = 0x00000066 // IRPDR_ID_REDIRECT_DEVICES
	PacketServerLogon      PacketID = 0x00000067 // IRPDR_ID_SERVER_LOGON
	PacketUnredirectDevice PacketID = 0x00000068 // IRPDR_ID_UNREDIRECT_DEVICE
)

func (p PacketID) String() string {
	switch p {
	case PacketVersion:
		return "IRPDR_ID_VERSION"
	case PacketRedirectDevices:
		return "IRPDR_ID_REDIRECT_DEVICES"
	case PacketServerLogon:
		return "IRPDR_ID_SERVER_LOGON"
	case PacketUnredirectDevice:
		return "IRPDR_ID_UNREDIRECT_DEVICE"
	}
	return fmt.Sprintf("PacketID(0x%08X)", uint32(p))
}

// FunctionID is the FunctionId of a SERVER_IO_HEADER (2.2.2.1.1).
type FunctionID uint32

const (
	FunctionRead             FunctionID = 0x00000000 // READ_REQUEST
	FunctionWrite            FunctionID = 0x00000001 // WRITE_REQUEST
	FunctionIOControl        FunctionID = 0x00000002 // IOCONTROL_REQUEST
	FunctionCreateFile       FunctionID = 0x00000004 // CREATE_FILE_REQUEST
	FunctionCapabilities     FunctionID = 0x00000005 // CAPABILITIES_REQUEST
	FunctionSpecificIoCancel FunctionID = 0x00000006 // SPECIFIC_IOCANCEL_REQUEST
)

// Known reports whether f is one of the six FunctionIds of 2.2.2.1.1.
func (f FunctionID) Known() bool {
	switch f {
	case FunctionRead, FunctionWrite, FunctionIOControl, FunctionCreateFile,
		FunctionCapabilities, FunctionSpecificIoCancel:
		return true
	}
	return false
}

func (f FunctionID) String() string {
	switch f {
	case FunctionRead:
		return "READ_REQUEST"
	case FunctionWrite:
		return "WRITE_REQUEST"
	case FunctionIOControl:
		return "IOCONTROL_REQUEST"
	case FunctionCreateFile:
		return "CREATE_FILE_REQUEST"
	case FunctionCapabilities:
		return "CAPABILITIES_REQUEST"
	case FunctionSpecificIoCancel:
		return "SPECIFIC_IOCANCEL_REQUEST"
	}
	return fmt.Sprintf("FunctionID(0x%08X)", uint32(f))
}

// PacketType is the PacketType of a CLIENT_IO_HEADER (2.2.2.1.2).
type PacketType uint8

const (
	PacketTypeResponse    PacketType = 0x00 // RESPONSE_PACKET
	PacketTypeCustomEvent PacketType = 0x01 // CUSTOM_EVENT_PACKET
)

func (p PacketType) String() string {
	switch p {
	case PacketTypeResponse:
		return "RESPONSE_PACKET"
	case PacketTypeCustomEvent:
		return "CUSTOM_EVENT_PACKET"
	}
	return fmt.Sprintf("PacketType(0x%02X)", uint8(p))
}

// MaxRequestID is the largest RequestId: the field is 24 bits wide
// (2.2.2.1.1).
const MaxRequestID = 0x00FFFFFF

// Capabilities of the Server and Client Version messages (2.2.1.2.1,
// 2.2.1.2.2). The specification gives the bit no name.
const CapDynamicDeviceAddition uint32 = 0x00000001 // "supports dynamic addition of devices"

// PNPDR versions. The specification says MajorVersion and MinorVersion
// SHOULD be the implementation's version; Windows sends 1 and 5
// (Appendix A <2>-<5>), while the section 4.1 capture shows 1 and 6.
const (
	WindowsMajorVersion uint32 = 1
	WindowsMinorVersion uint32 = 5
)

// FileRedirectorChannel versions (2.2.2.2.1, 2.2.2.2.2). Custom events
// (2.2.2.3.10) may flow only when both ends sent 6 or later (3.2.5.2.1.1).
const (
	IOVersionNoCustomEvents uint16 = 0x0004
	IOVersionCustomEvents   uint16 = 0x0006
)

// CustomFlag values of a PNP_DEVICE_DESCRIPTION (2.2.1.3.1.1).
const (
	CustomFlagRedirectable    uint32 = 0x00000000 // the device is redirectable
	CustomFlagOptional        uint32 = 0x00000001 // the device is optionally redirectable
	CustomFlagRedirectableAlt uint32 = 0x00000002 // also "redirectable"; the section 4.2 capture uses it
)

// DeviceCaps flags of a PNP_DEVICE_DESCRIPTION (2.2.1.3.1.1).
const (
	DevCapsLockSupported     uint32 = 0x00000001 // PNP_DEVCAPS_LOCKSUPPORTED
	DevCapsEjectSupported    uint32 = 0x00000002 // PNP_DEVCAPS_EJECTSUPPORTED
	DevCapsRemovable         uint32 = 0x00000004 // PNP_DEVCAPS_REMOVABLE
	DevCapsSurpriseRemovalOK uint32 = 0x00000008 // PNP_DEVCAPS_SURPRISEREMOVALOK
)

// dwDesiredAccess bits of a CreateFile Request (2.2.2.3.1). The
// specification names only the value 0xC0000000, "generic read and generic
// write"; these are the Windows access-mask bits that make it up.
const (
	GenericRead  uint32 = 0x80000000 // GENERIC_READ
	GenericWrite uint32 = 0x40000000 // GENERIC_WRITE
)

// dwShareMode bits of a CreateFile Request (2.2.2.3.1).
const (
	FileShareRead  uint32 = 0x00000001 // FILE_SHARE_READ
	FileShareWrite uint32 = 0x00000002 // FILE_SHARE_WRITE
)

// dwCreationDisposition values of a CreateFile Request (2.2.2.3.1).
const (
	CreateNew        uint32 = 0x00000001 // CREATE_NEW
	CreateAlways     uint32 = 0x00000002 // CREATE_ALWAYS
	OpenExisting     uint32 = 0x00000003 // OPEN_EXISTING
	OpenAlways       uint32 = 0x00000004 // OPEN_ALWAYS
	TruncateExisting uint32 = 0x00000005 // TRUNCATE_EXISTING
)

// dwFlagsAndAttributes bits of a CreateFile Request (2.2.2.3.1).
const (
	FileAttributeDirectory    uint32 = 0x00000010 // FILE_ATTRIBUTE_DIRECTORY
	FileAttributeArchive      uint32 = 0x00000020 // FILE_ATTRIBUTE_ARCHIVE
	FileAttributeDevice       uint32 = 0x00000040 // FILE_ATTRIBUTE_DEVICE
	FileAttributeNormal       uint32 = 0x00000080 // FILE_ATTRIBUTE_NORMAL
	FileFlagFirstPipeInstance uint32 = 0x00080000 // FILE_FLAG_FIRST_PIPE_INSTANCE
	FileFlagOpenNoRecall      uint32 = 0x00100000 // FILE_FLAG_OPEN_NO_RECALL
	FileFlagOpenReparsePoint  uint32 = 0x00200000 // FILE_FLAG_OPEN_REPARSE_POINT
	FileFlagPosixSemantics    uint32 = 0x01000000 // FILE_FLAG_POSIX_SEMANTICS
	FileFlagBackupSemantics   uint32 = 0x02000000 // FILE_FLAG_BACKUP_SEMANTICS
	FileFlagDeleteOnClose     uint32 = 0x04000000 // FILE_FLAG_DELETE_ON_CLOSE
	FileFlagSequentialScan    uint32 = 0x08000000 // FILE_FLAG_SEQUENTIAL_SCAN
	FileFlagRandomAccess      uint32 = 0x10000000 // FILE_FLAG_RANDOM_ACCESS
	FileFlagNoBuffering       uint32 = 0x20000000 // FILE_FLAG_NO_BUFFERING
	FileFlagOverlapped        uint32 = 0x40000000 // FILE_FLAG_OVERLAPPED
	FileFlagWriteThrough      uint32 = 0x80000000 // FILE_FLAG_WRITE_THROUGH
)
