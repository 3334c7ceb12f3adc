//go:build freerdp && !freerdp3

package main

// -tags freerdp: the FreeRDP 2 build (Debian 12's freerdp2-dev and
// libwinpr2-dev). The tag is the one the plugin had before FreeRDP 3.

/*
#cgo pkg-config: freerdp2 winpr2
#include <freerdp/version.h>
#if FREERDP_VERSION_MAJOR != 2
#error "pkg-config freerdp2 gave the headers of another FreeRDP major"
#endif
*/
import "C"
