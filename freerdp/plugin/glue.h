// C half of librdpdvc-client.so: FreeRDP's DVC plugin interfaces
// (freerdp/dvc.h, FreeRDP 2 or 3, whichever headers pkg-config chose)
// backed by the Go functions in plugin.go.
#ifndef RDPDVC_GLUE_H
#define RDPDVC_GLUE_H

#include <stddef.h>
#include <stdint.h>
#include <freerdp/version.h>
#include <freerdp/dvc.h>

// The FreeRDP major of the headers this plugin is compiled against: its
// structures are laid out for that major only.
#define RDPDVC_BUILT_MAJOR FREERDP_VERSION_MAJOR

#if FREERDP_VERSION_MAJOR != 2 && FREERDP_VERSION_MAJOR != 3
#error "rdpdvc's plugin supports the FreeRDP 2 and 3 headers only"
#endif

// The structure that contains the member at ptr: FreeRDP hands back
// pointers to the interface members, and the wrappers below do not rely
// on them being first.
#define RDPDVC_CONTAINER(ptr, type, member) ((type*)(void*)((char*)(ptr)-offsetof(type, member)))

typedef struct rdpdvc_listener rdpdvc_listener;

// One per loaded plugin; registered with FreeRDP as "rdpdvc".
typedef struct
{
	IWTSPlugin iface; // FreeRDP passes &iface back
	uintptr_t host;   // cgo.Handle of the Go plugin state
	IWTSVirtualChannelManager* mgr;
	rdpdvc_listener* listeners;
} rdpdvc_plugin;

// One per CreateListener call; FreeRDP keeps a pointer to iface.
struct rdpdvc_listener
{
	IWTSListenerCallback iface;
	rdpdvc_plugin* plugin;
	char* name;
	rdpdvc_listener* next;
};

// One per accepted channel instance; freed in OnClose.
typedef struct
{
	IWTSVirtualChannelCallback iface;
	IWTSVirtualChannel* channel;
	uintptr_t inst; // cgo.Handle of the Go *freerdp.Instance
} rdpdvc_channel;

UINT rdpdvc_create_listener(rdpdvc_plugin* p, const char* name);
UINT rdpdvc_write(IWTSVirtualChannel* ch, const BYTE* buf, ULONG n);

// One FreeRDP core library found in this process (see
// rdpdvc_host_versions).
typedef struct
{
	int major, minor, revision; // minor and revision -1 when unknown
	int global;                 // found by dlsym(RTLD_DEFAULT, ...)
	char path[512];             // "" when unknown
} rdpdvc_host_version;

// rdpdvc_host_versions fills out with up to max FreeRDP core libraries
// (libfreerdpN) found in the process, the one the global symbol lookup
// finds first, and returns how many it filled.
int rdpdvc_host_versions(rdpdvc_host_version* out, int max);

#endif
