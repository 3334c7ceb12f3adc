package device

import (
	"syscall"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// errnoHRESULT: on Windows a syscall.Errno is the Win32 error code itself.
func errnoHRESULT(e syscall.Errno) (hresult.HRESULT, bool) {
	if e == 0 {
		return 0, false
	}
	return hresult.FromWin32(uint32(e)), true
}
