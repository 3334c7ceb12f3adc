// Package device is what an MS-RDPEPNP client redirects: one interface for
// device backends, and three backends behind it — a file or block/character
// device node (File), a memory device of a fixed size (Memory) and an
// emulated device with programmable IOCTL handlers and custom events
// (Emulated).
//
// A Device carries the description the client announces for it in a Client
// Device Addition message (MS-RDPEPNP 2.2.1.3.1.1) and opens Handles the way
// the client's CreateFile Request asks (2.2.2.3.1, 3.2.5.2.2.1): desired
// access, share mode and creation disposition keep their Windows meaning,
// so that a server application sees what it would see locally. Every
// failure is an error carrying the HRESULT the client puts in the reply
// (see HRESULTOf).
//
// The package knows nothing about channels: package pnp/client turns wire
// requests into calls on a Handle.
package device

import (
	"context"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Device is one redirectable device.
type Device interface {
	// Describe returns the description announced for the device. It is
	// called when the device is added to a client and must not change
	// afterwards.
	Describe() Description
	// Open opens a handle as a CreateFile Request asks (3.2.5.2.2.1). It
	// may block (opening a device node can), but should honour ctx.
	Open(ctx context.Context, req OpenRequest) (Handle, error)
}

// Handle is one open handle: what a FileRedirectorChannel instance carries
// (2.1: one handle per channel instance). Its methods may be called
// concurrently — the client services pipelined requests in parallel — and
// should return soon after ctx is done (the server sent a Specific IoCancel
// Request, 3.2.5.2.2.9, or the channel went away). A method that gives up
// because of ctx returns ctx.Err() (or an error wrapping it), which the
// client reports as ERROR_OPERATION_ABORTED.
type Handle interface {
	// ReadAt reads up to len(p) bytes at offset off. As with ReadFile and
	// unlike io.ReaderAt, a short count with a nil error means the end of
	// the device; a stream device (a character device or FIFO) ignores off
	// and returns what one read gives.
	ReadAt(ctx context.Context, p []byte, off uint64) (int, error)
	// WriteAt writes p at offset off and returns how many bytes were
	// written; a count short of len(p) comes with an error.
	WriteAt(ctx context.Context, p []byte, off uint64) (int, error)
	// IoControl performs the device I/O control code with input in and
	// returns at most outMax bytes of output (cbOut, 2.2.2.3.7). The
	// returned slice is not kept by the device after the call.
	IoControl(ctx context.Context, code uint32, in []byte, outMax uint32) ([]byte, error)
	// Close releases the handle. It is called once, after every other call
	// on the handle has returned.
	Close() error
}

// OpenRequest is what a CreateFile Request asks for (2.2.2.3.1), plus the
// client's channel for custom events.
type OpenRequest struct {
	DesiredAccess       uint32 // dwDesiredAccess: wire.GenericRead|wire.GenericWrite, or other access-mask bits
	ShareMode           uint32 // dwShareMode: wire.FileShareRead|wire.FileShareWrite
	CreationDisposition uint32 // dwCreationDisposition: wire.CreateNew .. wire.TruncateExisting
	FlagsAndAttributes  uint32 // dwFlagsAndAttributes

	// Events, when not nil, receives the device's custom events for as
	// long as the handle is open: the client set it because both ends of
	// the channel announced version 6 or later (3.2.5.2.2.10). It does
	// not block and copies ev.Data. Devices without events ignore it.
	Events func(ev Event)
}

// Event is a custom device event (2.2.2.3.10).
type Event struct {
	GUID wire.GUID // CustomEventGUID
	Data []byte
}

// Access-mask bits, beyond the GENERIC_READ and GENERIC_WRITE that the
// specification names (2.2.2.3.1), that a CreateFile may carry. A Windows
// server sends 0xC0000000 (Appendix A <9>); the others are recognised so
// that a server that asks for FILE_READ_DATA gets read access, not none.
const (
	FileReadData   uint32 = 0x00000001 // FILE_READ_DATA
	FileWriteData  uint32 = 0x00000002 // FILE_WRITE_DATA
	FileAppendData uint32 = 0x00000004 // FILE_APPEND_DATA
	MaximumAllowed uint32 = 0x02000000 // MAXIMUM_ALLOWED
	GenericAll     uint32 = 0x10000000 // GENERIC_ALL
)

// WantsRead reports whether the request asks for read access.
func (r OpenRequest) WantsRead() bool {
	return r.DesiredAccess&(wire.GenericRead|GenericAll|MaximumAllowed|FileReadData) != 0
}

// WantsWrite reports whether the request asks for write access.
func (r OpenRequest) WantsWrite() bool {
	return r.DesiredAccess&(wire.GenericWrite|GenericAll|MaximumAllowed|FileWriteData|FileAppendData) != 0
}

// CheckOpen applies the rules every backend shares to a CreateFile
// request, before it touches anything:
//
//   - dwCreationDisposition must be one of the five values of 2.2.2.3.1
//     (ERROR_INVALID_PARAMETER otherwise, as CreateFile answers);
//   - FILE_FLAG_DELETE_ON_CLOSE is refused with ERROR_ACCESS_DENIED: the
//     client's user named a device to redirect, not to have deleted.
func CheckOpen(req OpenRequest) error {
	if req.CreationDisposition < wire.CreateNew || req.CreationDisposition > wire.TruncateExisting {
		return errorf("CreateFile", ErrorInvalidParameter, "dwCreationDisposition %d", req.CreationDisposition)
	}
	if req.FlagsAndAttributes&wire.FileFlagDeleteOnClose != 0 {
		return errorf("CreateFile", ErrorAccessDenied, "FILE_FLAG_DELETE_ON_CLOSE is not allowed on a redirected device")
	}
	return nil
}

// checkDeviceDisposition applies the dispositions to a device that always
// exists and has a fixed size (Memory, Emulated): it can be opened, not
// created again (ERROR_FILE_EXISTS) nor truncated
// (ERROR_INVALID_PARAMETER).
func checkDeviceDisposition(req OpenRequest) error {
	switch req.CreationDisposition {
	case wire.CreateNew:
		return errorf("CreateFile", ErrorFileExists, "CREATE_NEW: the device exists")
	case wire.CreateAlways, wire.TruncateExisting:
		return errorf("CreateFile", ErrorInvalidParameter, "a fixed-size device cannot be truncated")
	}
	return nil
}
