// Package hresult names the HRESULT values rdpdvc puts on the wire
// (MS-ERREF 2.1) and maps Win32 error codes into them (MS-ERREF 2.1.2).
package hresult

import (
	"fmt"
	"strconv"
	"strings"
)

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

// Win32 error codes (MS-ERREF 2.2): the ones rdpdvc maps into HRESULTs and
// the ones a device commonly fails a CreateFile, Read, Write or IOCTL with,
// so that String names them and Parse takes their names.
const (
	ERROR_INVALID_FUNCTION     uint32 = 1
	ERROR_FILE_NOT_FOUND       uint32 = 2
	ERROR_PATH_NOT_FOUND       uint32 = 3
	ERROR_TOO_MANY_OPEN_FILES  uint32 = 4
	ERROR_ACCESS_DENIED        uint32 = 5
	ERROR_INVALID_HANDLE       uint32 = 6
	ERROR_NOT_ENOUGH_MEMORY    uint32 = 8
	ERROR_INVALID_ACCESS       uint32 = 12
	ERROR_INVALID_DATA         uint32 = 13
	ERROR_OUTOFMEMORY          uint32 = 14
	ERROR_WRITE_PROTECT        uint32 = 19
	ERROR_BAD_UNIT             uint32 = 20
	ERROR_NOT_READY            uint32 = 21
	ERROR_BAD_COMMAND          uint32 = 22
	ERROR_CRC                  uint32 = 23
	ERROR_BAD_LENGTH           uint32 = 24
	ERROR_SEEK                 uint32 = 25
	ERROR_SECTOR_NOT_FOUND     uint32 = 27
	ERROR_WRITE_FAULT          uint32 = 29
	ERROR_READ_FAULT           uint32 = 30
	ERROR_GEN_FAILURE          uint32 = 31
	ERROR_SHARING_VIOLATION    uint32 = 32
	ERROR_LOCK_VIOLATION       uint32 = 33
	ERROR_HANDLE_EOF           uint32 = 38
	ERROR_HANDLE_DISK_FULL     uint32 = 39
	ERROR_NOT_SUPPORTED        uint32 = 50
	ERROR_DEV_NOT_EXIST        uint32 = 55
	ERROR_FILE_EXISTS          uint32 = 80
	ERROR_INVALID_PARAMETER    uint32 = 87
	ERROR_DISK_FULL            uint32 = 112
	ERROR_CALL_NOT_IMPLEMENTED uint32 = 120
	ERROR_SEM_TIMEOUT          uint32 = 121
	ERROR_INSUFFICIENT_BUFFER  uint32 = 122
	ERROR_INVALID_NAME         uint32 = 123
	ERROR_BAD_ARGUMENTS        uint32 = 160
	ERROR_BUSY                 uint32 = 170
	ERROR_ALREADY_EXISTS       uint32 = 183
	ERROR_FILE_TOO_LARGE       uint32 = 223
	ERROR_MORE_DATA            uint32 = 234
	ERROR_NO_MORE_ITEMS        uint32 = 259
	ERROR_INVALID_ADDRESS      uint32 = 487
	ERROR_OPERATION_ABORTED    uint32 = 995
	ERROR_IO_INCOMPLETE        uint32 = 996
	ERROR_IO_PENDING           uint32 = 997
	ERROR_NOACCESS             uint32 = 998
	ERROR_MEDIA_CHANGED        uint32 = 1110
	ERROR_NO_MEDIA_IN_DRIVE    uint32 = 1112
	ERROR_IO_DEVICE            uint32 = 1117
	ERROR_DEVICE_DOOR_OPEN     uint32 = 1166
	ERROR_DEVICE_NOT_CONNECTED uint32 = 1167
	ERROR_NOT_FOUND            uint32 = 1168
	ERROR_CANCELLED            uint32 = 1223
	ERROR_REQUEST_ABORTED      uint32 = 1235
	ERROR_NO_SYSTEM_RESOURCES  uint32 = 1450
	ERROR_TIMEOUT              uint32 = 1460
	ERROR_DEVICE_REMOVED       uint32 = 1617
	ERROR_INVALID_USER_BUFFER  uint32 = 1784
	ERROR_NOT_ENOUGH_QUOTA     uint32 = 1816
	ERROR_DEVICE_NOT_AVAILABLE uint32 = 4319
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
	ERROR_INVALID_FUNCTION:     "ERROR_INVALID_FUNCTION",
	ERROR_FILE_NOT_FOUND:       "ERROR_FILE_NOT_FOUND",
	ERROR_PATH_NOT_FOUND:       "ERROR_PATH_NOT_FOUND",
	ERROR_TOO_MANY_OPEN_FILES:  "ERROR_TOO_MANY_OPEN_FILES",
	ERROR_ACCESS_DENIED:        "ERROR_ACCESS_DENIED",
	ERROR_INVALID_HANDLE:       "ERROR_INVALID_HANDLE",
	ERROR_NOT_ENOUGH_MEMORY:    "ERROR_NOT_ENOUGH_MEMORY",
	ERROR_INVALID_ACCESS:       "ERROR_INVALID_ACCESS",
	ERROR_INVALID_DATA:         "ERROR_INVALID_DATA",
	ERROR_OUTOFMEMORY:          "ERROR_OUTOFMEMORY",
	ERROR_WRITE_PROTECT:        "ERROR_WRITE_PROTECT",
	ERROR_BAD_UNIT:             "ERROR_BAD_UNIT",
	ERROR_NOT_READY:            "ERROR_NOT_READY",
	ERROR_BAD_COMMAND:          "ERROR_BAD_COMMAND",
	ERROR_CRC:                  "ERROR_CRC",
	ERROR_BAD_LENGTH:           "ERROR_BAD_LENGTH",
	ERROR_SEEK:                 "ERROR_SEEK",
	ERROR_SECTOR_NOT_FOUND:     "ERROR_SECTOR_NOT_FOUND",
	ERROR_WRITE_FAULT:          "ERROR_WRITE_FAULT",
	ERROR_READ_FAULT:           "ERROR_READ_FAULT",
	ERROR_GEN_FAILURE:          "ERROR_GEN_FAILURE",
	ERROR_SHARING_VIOLATION:    "ERROR_SHARING_VIOLATION",
	ERROR_LOCK_VIOLATION:       "ERROR_LOCK_VIOLATION",
	ERROR_HANDLE_EOF:           "ERROR_HANDLE_EOF",
	ERROR_HANDLE_DISK_FULL:     "ERROR_HANDLE_DISK_FULL",
	ERROR_NOT_SUPPORTED:        "ERROR_NOT_SUPPORTED",
	ERROR_DEV_NOT_EXIST:        "ERROR_DEV_NOT_EXIST",
	ERROR_FILE_EXISTS:          "ERROR_FILE_EXISTS",
	ERROR_INVALID_PARAMETER:    "ERROR_INVALID_PARAMETER",
	ERROR_DISK_FULL:            "ERROR_DISK_FULL",
	ERROR_CALL_NOT_IMPLEMENTED: "ERROR_CALL_NOT_IMPLEMENTED",
	ERROR_SEM_TIMEOUT:          "ERROR_SEM_TIMEOUT",
	ERROR_INSUFFICIENT_BUFFER:  "ERROR_INSUFFICIENT_BUFFER",
	ERROR_INVALID_NAME:         "ERROR_INVALID_NAME",
	ERROR_BAD_ARGUMENTS:        "ERROR_BAD_ARGUMENTS",
	ERROR_BUSY:                 "ERROR_BUSY",
	ERROR_ALREADY_EXISTS:       "ERROR_ALREADY_EXISTS",
	ERROR_FILE_TOO_LARGE:       "ERROR_FILE_TOO_LARGE",
	ERROR_MORE_DATA:            "ERROR_MORE_DATA",
	ERROR_NO_MORE_ITEMS:        "ERROR_NO_MORE_ITEMS",
	ERROR_INVALID_ADDRESS:      "ERROR_INVALID_ADDRESS",
	ERROR_OPERATION_ABORTED:    "ERROR_OPERATION_ABORTED",
	ERROR_IO_INCOMPLETE:        "ERROR_IO_INCOMPLETE",
	ERROR_IO_PENDING:           "ERROR_IO_PENDING",
	ERROR_NOACCESS:             "ERROR_NOACCESS",
	ERROR_MEDIA_CHANGED:        "ERROR_MEDIA_CHANGED",
	ERROR_NO_MEDIA_IN_DRIVE:    "ERROR_NO_MEDIA_IN_DRIVE",
	ERROR_IO_DEVICE:            "ERROR_IO_DEVICE",
	ERROR_DEVICE_DOOR_OPEN:     "ERROR_DEVICE_DOOR_OPEN",
	ERROR_DEVICE_NOT_CONNECTED: "ERROR_DEVICE_NOT_CONNECTED",
	ERROR_NOT_FOUND:            "ERROR_NOT_FOUND",
	ERROR_CANCELLED:            "ERROR_CANCELLED",
	ERROR_REQUEST_ABORTED:      "ERROR_REQUEST_ABORTED",
	ERROR_NO_SYSTEM_RESOURCES:  "ERROR_NO_SYSTEM_RESOURCES",
	ERROR_TIMEOUT:              "ERROR_TIMEOUT",
	ERROR_DEVICE_REMOVED:       "ERROR_DEVICE_REMOVED",
	ERROR_INVALID_USER_BUFFER:  "ERROR_INVALID_USER_BUFFER",
	ERROR_NOT_ENOUGH_QUOTA:     "ERROR_NOT_ENOUGH_QUOTA",
	ERROR_DEVICE_NOT_AVAILABLE: "ERROR_DEVICE_NOT_AVAILABLE",
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

// Parse reads an HRESULT as a person writes it: a number (0x80070013 or
// decimal), an SDK name String knows (E_FAIL, STATUS_NOT_FOUND), a Win32
// error name (ERROR_WRITE_PROTECT, taken through FromWin32) or
// HRESULT_FROM_WIN32(ERROR_...). Names are matched without regard to case.
func Parse(s string) (HRESULT, error) {
	name := strings.ToUpper(strings.TrimSpace(s))
	if inner, ok := strings.CutPrefix(name, "HRESULT_FROM_WIN32("); ok {
		if inner, ok = strings.CutSuffix(inner, ")"); ok {
			name = inner
			if !strings.HasPrefix(name, "ERROR_") {
				return 0, fmt.Errorf("hresult: %q: want HRESULT_FROM_WIN32(ERROR_...)", s)
			}
		}
	}
	if n, err := strconv.ParseUint(name, 0, 32); err == nil {
		return HRESULT(n), nil
	}
	for h, n := range names {
		if n == name {
			return h, nil
		}
	}
	for code, n := range win32Names {
		if n == name {
			return FromWin32(code), nil
		}
	}
	return 0, fmt.Errorf("hresult: unknown HRESULT %q: want a number (0x80070013) or a name (E_FAIL, ERROR_WRITE_PROTECT)", s)
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
