package device

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// HRESULTs the backends and the client report, each
// HRESULT_FROM_WIN32 of the Win32 error Windows gives for the same
// condition (MS-ERREF 2.1.2, 2.2).
const (
	ErrorInvalidFunction    hresult.HRESULT = 0x80070001 // HRESULT_FROM_WIN32(ERROR_INVALID_FUNCTION): the device does not do that
	ErrorFileNotFound       hresult.HRESULT = 0x80070002 // HRESULT_FROM_WIN32(ERROR_FILE_NOT_FOUND)
	ErrorAccessDenied       hresult.HRESULT = 0x80070005 // HRESULT_FROM_WIN32(ERROR_ACCESS_DENIED) = E_ACCESSDENIED
	ErrorInvalidHandle      hresult.HRESULT = 0x80070006 // HRESULT_FROM_WIN32(ERROR_INVALID_HANDLE) = E_HANDLE
	ErrorWriteProtect       hresult.HRESULT = 0x80070013 // HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT)
	ErrorGenFailure         hresult.HRESULT = 0x8007001F // HRESULT_FROM_WIN32(ERROR_GEN_FAILURE)
	ErrorSharingViolation   hresult.HRESULT = 0x80070020 // HRESULT_FROM_WIN32(ERROR_SHARING_VIOLATION)
	ErrorNotSupported       hresult.HRESULT = 0x80070032 // HRESULT_FROM_WIN32(ERROR_NOT_SUPPORTED)
	ErrorDevNotExist        hresult.HRESULT = 0x80070037 // HRESULT_FROM_WIN32(ERROR_DEV_NOT_EXIST): the device was removed
	ErrorFileExists         hresult.HRESULT = 0x80070050 // HRESULT_FROM_WIN32(ERROR_FILE_EXISTS)
	ErrorInvalidParameter   hresult.HRESULT = 0x80070057 // HRESULT_FROM_WIN32(ERROR_INVALID_PARAMETER) = E_INVALIDARG
	ErrorDiskFull           hresult.HRESULT = 0x80070070 // HRESULT_FROM_WIN32(ERROR_DISK_FULL)
	ErrorInsufficientBuffer hresult.HRESULT = 0x8007007A // HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER)
	ErrorBusy               hresult.HRESULT = 0x800700AA // HRESULT_FROM_WIN32(ERROR_BUSY)
	ErrorFileTooLarge       hresult.HRESULT = 0x800700DF // HRESULT_FROM_WIN32(ERROR_FILE_TOO_LARGE)
	ErrorOperationAborted   hresult.HRESULT = 0x800703E3 // HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED): cancelled
	ErrorIODevice           hresult.HRESULT = 0x8007045D // HRESULT_FROM_WIN32(ERROR_IO_DEVICE)
	ErrorNoSystemResources  hresult.HRESULT = 0x800705AA // HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES)
)

// errorf returns an *hresult.Error for op with code and a detail.
func errorf(op string, code hresult.HRESULT, format string, args ...any) error {
	return &Error{Op: op, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// Error is a backend failure with the HRESULT to report for it.
type Error struct {
	Op     string // CreateFile, Read, Write, IOControl
	Code   hresult.HRESULT
	Detail string
	Err    error // the underlying error, if any
}

func (e *Error) Error() string {
	s := "device: " + e.Op + ": " + e.Code.String()
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// HRESULT returns the code, so that dvc.StatusOf and HRESULTOf find it.
func (e *Error) HRESULT() hresult.HRESULT { return e.Code }

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// HRESULTOf returns the HRESULT to report for err:
//
//   - S_OK for nil;
//   - the code of anything in err's chain with an HRESULT() method
//     (*Error, *hresult.Error);
//   - ERROR_OPERATION_ABORTED for context cancellation and deadlines;
//   - the Win32 equivalent of an operating-system error (syscall.Errno:
//     the code itself on Windows, a mapping of the POSIX errno elsewhere);
//   - ERROR_FILE_NOT_FOUND, ERROR_FILE_EXISTS and ERROR_ACCESS_DENIED for
//     the io/fs sentinels;
//   - E_FAIL for anything else.
func HRESULTOf(err error) hresult.HRESULT {
	if err == nil {
		return hresult.S_OK
	}
	var h interface{ HRESULT() hresult.HRESULT }
	if errors.As(err, &h) {
		return h.HRESULT()
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return ErrorOperationAborted
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if code, ok := errnoHRESULT(errno); ok {
			return code
		}
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return ErrorFileNotFound
	case errors.Is(err, fs.ErrExist):
		return ErrorFileExists
	case errors.Is(err, fs.ErrPermission):
		return ErrorAccessDenied
	}
	return hresult.E_FAIL
}

// wrap gives an operating-system error its HRESULT and names op.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Op: op, Code: HRESULTOf(err), Err: err}
}
