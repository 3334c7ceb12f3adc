//go:build freerdp3 && !freerdp

package main

// -tags freerdp3: the FreeRDP 3 build (Debian's freerdp3-dev and
// libwinpr3-dev).

/*
#cgo pkg-config: freerdp3 winpr3
#include <freerdp/version.h>
#if FREERDP_VERSION_MAJOR != 3
#error "pkg-config freerdp3 gave the headers of another FreeRDP major"
#endif
*/
import "C"
