package overlapped

import (
	"unsafe"

	"golang.org/x/sys/windows"
)

// unsafePointer converts the OVERLAPPED pointer a completion packet
// carries back into its op (op starts with it).
func unsafePointer(ov *windows.Overlapped) unsafe.Pointer { return unsafe.Pointer(ov) }
