// C half of librdpdvc-client.so: FreeRDP 2's DVC plugin interfaces
// (freerdp/dvc.h) backed by the Go functions in plugin.go.
#ifndef RDPDVC_GLUE_H
#define RDPDVC_GLUE_H

#include <stdint.h>
#include <freerdp/dvc.h>

typedef struct rdpdvc_listener rdpdvc_listener;

// One per loaded plugin; registered with FreeRDP as "rdpdvc".
typedef struct
{
	IWTSPlugin iface; // first: FreeRDP passes &iface back
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

#endif
