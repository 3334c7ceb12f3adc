package main

// The DLL pins itself while LoadLibrary is still loading it: a C
// constructor runs in the loader's DLL_PROCESS_ATTACH, on the loading
// thread, before LoadLibrary returns. The Go runtime, by contrast,
// initializes on a thread of its own that DLL_PROCESS_ATTACH only starts,
// so pinning from a Go init function would leave a host that calls
// FreeLibrary right after LoadLibrary a window to unmap the runtime
// under that thread. pin (plugin_windows.go) pins again, harmlessly, and
// reports a failure of either.

/*
#include <windows.h>

static int rdpdvcPinnedAtLoad;

static void __attribute__((constructor)) rdpdvcPinAtLoad(void)
{
	HMODULE h;
	rdpdvcPinnedAtLoad = GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
		(LPCWSTR)(void *)&rdpdvcPinAtLoad, &h) ? 1 : 0;
}

static int rdpdvcPinned(void) { return rdpdvcPinnedAtLoad; }
*/
import "C"

func init() { pinnedAtLoad = func() bool { return C.rdpdvcPinned() != 0 } }
