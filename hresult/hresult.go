// Package hresult names the HRESULT values rdpdvc puts on the wire
// (MS-ERREF 2.1) and maps Win32 error codes into them (MS-ERREF 2.1.2).
package hresult

import "fmt"

// HRESULT is a 32-bit Windows result code (MS-ERREF 2.1). Bit 31 (S) set
// means failure.
type HRESULT uint32

// Values used by rdpdvc. Names keep the Windows spelling in comments so a
// grep for the SDK name finds them.
const (
	S_OK HRESULT = 0x00000000 // S_OK

	E_NOTIMPL      HRESULT = 0x80004001 // E_NOTIMPL
	E_NOINTERFACE  HRESULT = 0x80004002 // E_NOINTERFACE
	E_POINTER      HRESULT = 0x80004003 // E_POINTER
	E_ABORT        HRESULT = 0x80004004 // E_ABORT
	E_FAIL         HRESULT = 0x80004005 // E_FAIL
	E_UNEXPECTED   HRESULT = 0x8000FFFF // E_UNEXPECTED
	E_ACCESSDENIED HRESULT = 0x80070005 // E_ACCESSDENIED = HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED)
	E_HANDLE       HRESULT = 0x80070006 // E_HANDLE
	E_OUTOFMEMORY  HRESULT = 0x8007000E // E_OUTOFMEMORY
	E_INVALIDARG   HRESULT = 0x80070057 // E_INVALIDARG

	// StatusUnsuccessful is the NTSTATUS STATUS_UNSUCCESSFUL that mstsc,
	// and FreeRDP after it, send as DYNVC_CREATE_RSP CreationStatus when no
	// listener takes the channel; xrdp's chansrv reports it as-is to the
	// opener.
	StatusUnsuccessful HRESULT = 0xC0000001
	// StatusNotFound is the NTSTATUS STATUS_NOT_FOUND (MS-ERREF 2.3.1) that
	// FreeRDP 3.11 and later send as CreationStatus when no listener has
	// the channel's name (3.10 and earlier send STATUS_UNSUCCESSFUL).
	StatusNotFound HRESULT = 0xC0000225
)

// Win32 error codes (MS-ERREF 2.2) that rdpdvc maps into HRESULTs.
const (
	ERROR_FILE_NOT_FOUND      uint32 = 2
	ERROR_ACCESS_DENIED       uint32 = 5
	ERROR_INVALID_HANDLE      uint32 = 6
	ERROR_NOT_ENOUGH_MEMORY   uint32 = 8
	ERROR_WRITE_PROTECT       uint32 = 19
	ERROR_SHARING_VIOLATION   uint32 = 32
	ERROR_NOT_SUPPORTED       uint32 = 50
	ERROR_DEV_NOT_EXIST       uint32 = 55
	ERROR_FILE_EXISTS         uint32 = 80
	ERROR_INVALID_PARAMETER   uint32 = 87
	ERROR_INSUFFICIENT_BUFFER uint32 = 122
	ERROR_ALREADY_EXISTS      uint32 = 183
	ERROR_OPERATION_ABORTED   uint32 = 995
	ERROR_IO_PENDING          uint32 = 997
	ERROR_NOT_FOUND           uint32 = 1168
	ERROR_CANCELLED           uint32 = 1223
)

// FromWin32 is HRESULT_FROM_WIN32 (MS-ERREF 2.1.2): 0 stays 0, everything
// else becomes 0x8007xxxx with the low 16 bits of code.
func FromWin32(code uint32) HRESULT {
	if int32(code) <= 0 {
		return HRESULT(code)
	}
	return HRESULT(code&0xFFFF | 7<<16 | 0x80000000)
}

// Failed reports whether h is a failure code (S bit set).
func (h HRESULT) Failed() bool { return int32(h) < 0 }

// Succeeded reports whether h is a success code.
func (h HRESULT) Succeeded() bool { return int32(h) >= 0 }

var names = map[HRESULT]string{
	S_OK:               "S_OK",
	E_NOTIMPL:          "E_NOTIMPL",
	E_NOINTERFACE:      "E_NOINTERFACE",
	E_POINTER:          "E_POINTER",
	E_ABORT:            "E_ABORT",
	E_FAIL:             "E_FAIL",
	E_UNEXPECTED:       "E_UNEXPECTED",
	E_ACCESSDENIED:     "E_ACCESSDENIED",
	E_HANDLE:           "E_HANDLE",
	E_OUTOFMEMORY:      "E_OUTOFMEMORY",
	E_INVALIDARG:       "E_INVALIDARG",
	StatusUnsuccessful: "STATUS_UNSUCCESSFUL",
	StatusNotFound:     "STATUS_NOT_FOUND",
}

var win32Names = map[uint32]string{
	ERROR_FILE_NOT_FOUND:      "ERROR_FILE_NOT_FOUND",
	ERROR_WRITE_PROTECT:       "ERROR_WRITE_PROTECT",
	ERROR_SHARING_VIOLATION:   "ERROR_SHARING_VIOLATION",
	ERROR_NOT_SUPPORTED:       "ERROR_NOT_SUPPORTED",
	ERROR_DEV_NOT_EXIST:       "ERROR_DEV_NOT_EXIST",
	ERROR_FILE_EXISTS:         "ERROR_FILE_EXISTS",
	ERROR_INSUFFICIENT_BUFFER: "ERROR_INSUFFICIENT_BUFFER",
	ERROR_ALREADY_EXISTS:      "ERROR_ALREADY_EXISTS",
	ERROR_OPERATION_ABORTED:   "ERROR_OPERATION_ABORTED",
	ERROR_IO_PENDING:          "ERROR_IO_PENDING",
	ERROR_NOT_FOUND:           "ERROR_NOT_FOUND",
	ERROR_CANCELLED:           "ERROR_CANCELLED",
}

// String gives the SDK name where rdpdvc knows it, and the hex value always.
func (h HRESULT) String() string {
	if n, ok := names[h]; ok {
		return fmt.Sprintf("%s (0x%08X)", n, uint32(h))
	}
	if uint32(h)&0xFFFF0000 == 0x80070000 {
		if n, ok := win32Names[uint32(h)&0xFFFF]; ok {
			return fmt.Sprintf("HRESULT_FROM_WIN32(%s) (0x%08X)", n, uint32(h))
		}
	}
	return fmt.Sprintf("0x%08X", uint32(h))
}

// Error lets an HRESULT be returned as an error; its HRESULT method lets
// callers that need a wire status (dvc.StatusOf) recover it.
type Error struct {
	Code HRESULT
	Op   string // what failed, for the message; may be empty
}

func (e *Error) Error() string {
	if e.Op == "" {
		return e.Code.String()
	}
	return e.Op + ": " + e.Code.String()
}

// HRESULT returns the code.
func (e *Error) HRESULT() HRESULT { return e.Code }

// New returns an error carrying code.
func New(op string, code HRESULT) error { return &Error{Code: code, Op: op} }
