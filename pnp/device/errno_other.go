//go:build !windows

package device

import (
	"syscall"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// errnoHRESULT maps the POSIX errors a file or device node gives to the
// Win32 errors Windows gives for the same condition.
func errnoHRESULT(e syscall.Errno) (hresult.HRESULT, bool) {
	switch e {
	case syscall.ENOENT:
		return ErrorFileNotFound, true
	case syscall.EACCES, syscall.EPERM, syscall.EISDIR:
		return ErrorAccessDenied, true
	case syscall.EROFS:
		return ErrorWriteProtect, true
	case syscall.EEXIST:
		return ErrorFileExists, true
	case syscall.EINVAL, syscall.ESPIPE:
		return ErrorInvalidParameter, true
	case syscall.ENOSPC:
		return ErrorDiskFull, true
	case syscall.EFBIG:
		return ErrorFileTooLarge, true
	case syscall.EBUSY, syscall.ETXTBSY:
		return ErrorBusy, true
	case syscall.ENXIO, syscall.ENODEV:
		return ErrorDevNotExist, true
	case syscall.ENOTTY, syscall.EOPNOTSUPP:
		return ErrorInvalidFunction, true
	case syscall.EIO:
		return ErrorIODevice, true
	case syscall.EBADF:
		return ErrorInvalidHandle, true
	case syscall.ENOMEM:
		return hresult.E_OUTOFMEMORY, true
	case syscall.ECANCELED, syscall.EINTR:
		return ErrorOperationAborted, true
	}
	return 0, false
}
