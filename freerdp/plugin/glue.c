//go:build (freerdp && !freerdp3) || (freerdp3 && !freerdp)

// dl_iterate_phdr, dladdr, RTLD_DEFAULT and RTLD_NOLOAD are GNU extensions.
#define _GNU_SOURCE

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <winpr/stream.h>
#include "glue.h"
#include "_cgo_export.h"

// This file calls no function of libfreerdp or libwinpr, only the
// function pointers FreeRDP hands over, so the plugin links neither (the
// build passes -Wl,--as-needed) and a plugin of one major can be loaded by
// the other, find that out (rdpdvc_host_versions) and refuse with a clear
// message, instead of failing to load for a missing libfreerdpN or, with
// both majors installed, running with the wrong structure layouts.

// remaining is the unread part of s. It reads wStream's members, which
// winpr/stream.h declares the same way in both majors (buffer, pointer,
// length), because FreeRDP 3 turned Stream_GetRemainingLength into a
// libwinpr3 export.
static size_t remaining(const wStream* s, const BYTE** p)
{
	size_t pos;

	*p = s->pointer;
	if (!s->buffer || !s->pointer || s->pointer < s->buffer)
		return 0;
	pos = (size_t)(s->pointer - s->buffer);
	return pos < s->length ? s->length - pos : 0;
}

static UINT on_data(IWTSVirtualChannelCallback* cb, wStream* s)
{
	rdpdvc_channel* c = RDPDVC_CONTAINER(cb, rdpdvc_channel, iface);
	const BYTE* p;
	size_t n = remaining(s, &p);

	goData(c->inst, (BYTE*)p, n);
	return CHANNEL_RC_OK;
}

// on_open has nothing to do that Accept has not done. It is set anyway:
// FreeRDP 3.15's drdynvc warns about every channel instance whose callback
// lacks OnOpen, at its open and its close.
static UINT on_open(IWTSVirtualChannelCallback* cb)
{
	(void)cb;
	return CHANNEL_RC_OK;
}

static UINT on_close(IWTSVirtualChannelCallback* cb)
{
	rdpdvc_channel* c = RDPDVC_CONTAINER(cb, rdpdvc_channel, iface);
	goGone(c->inst);
	free(c);
	return CHANNEL_RC_OK;
}

static UINT on_new_channel(IWTSListenerCallback* cb, IWTSVirtualChannel* channel, BYTE* data,
                           BOOL* accept, IWTSVirtualChannelCallback** out)
{
	rdpdvc_listener* l = RDPDVC_CONTAINER(cb, rdpdvc_listener, iface);
	rdpdvc_channel* c;
	UINT32 id = 0;

	(void)data;
	*accept = FALSE;
	c = calloc(1, sizeof(*c));
	if (!c)
		return CHANNEL_RC_NO_MEMORY;
	c->channel = channel;
	if (l->plugin->mgr && l->plugin->mgr->GetChannelId)
		id = l->plugin->mgr->GetChannelId(channel);
	c->inst = goNewChannel(l->plugin->host, l->name, id, c);
	if (!c->inst)
	{
		free(c); // FreeRDP answers DYNVC_CREATE_RSP with 0xC0000001
		return CHANNEL_RC_OK;
	}
	c->iface.OnDataReceived = on_data;
	c->iface.OnOpen = on_open;
	c->iface.OnClose = on_close;
#if FREERDP_VERSION_MAJOR >= 3
	// FreeRDP 3's freerdp/dvc.h added pInterface to the callback
	// interfaces, for the plugin's own use; rdpdvc keeps its state in
	// the containing structure instead.
	c->iface.pInterface = NULL;
#endif
	*accept = TRUE;
	*out = &c->iface;
	return CHANNEL_RC_OK;
}

UINT rdpdvc_create_listener(rdpdvc_plugin* p, const char* name)
{
	rdpdvc_listener* l = calloc(1, sizeof(*l));
	UINT rc;

	if (!l)
		return CHANNEL_RC_NO_MEMORY;
	l->name = strdup(name);
	if (!l->name)
	{
		free(l);
		return CHANNEL_RC_NO_MEMORY;
	}
	l->plugin = p;
	l->iface.OnNewChannelConnection = on_new_channel;
#if FREERDP_VERSION_MAJOR >= 3
	l->iface.pInterface = NULL; // see on_new_channel
#endif
	// The IWTSListener out-parameter is optional; the listeners live
	// until FreeRDP frees them at termination.
	rc = p->mgr->CreateListener(p->mgr, name, 0, &l->iface, NULL);
	if (rc != CHANNEL_RC_OK)
	{
		free(l->name);
		free(l);
		return rc;
	}
	l->next = p->listeners;
	p->listeners = l;
	return CHANNEL_RC_OK;
}

UINT rdpdvc_write(IWTSVirtualChannel* ch, const BYTE* buf, ULONG n)
{
	return ch->Write(ch, n, buf, NULL);
}

static UINT plugin_initialize(IWTSPlugin* plugin, IWTSVirtualChannelManager* mgr)
{
	rdpdvc_plugin* p = RDPDVC_CONTAINER(plugin, rdpdvc_plugin, iface);
	p->mgr = mgr;
	return goInitialize(p->host, p);
}

static UINT plugin_terminated(IWTSPlugin* plugin)
{
	rdpdvc_plugin* p = RDPDVC_CONTAINER(plugin, rdpdvc_plugin, iface);
	rdpdvc_listener* l = p->listeners;

	goTerminated(p->host);
	// FreeRDP frees its listeners after the plugins and never calls ours
	// again once Terminated has run (both majors).
	while (l)
	{
		rdpdvc_listener* next = l->next;
		free(l->name);
		free(l);
		l = next;
	}
	free(p);
	return CHANNEL_RC_OK;
}

// ---- Which FreeRDP loaded the plugin ----

typedef void (*get_version_fn)(int* major, int* minor, int* revision);

// The symbol every FreeRDP 2 and 3 core library exports with this
// signature (freerdp/freerdp.h of both majors).
static const char version_symbol[] = "freerdp_get_version";

#define MAX_MAPPED 8

struct mapped
{
	int n;
	char* names[MAX_MAPPED];
};

// core_major is N when the file name is libfreerdpN.so[.M...], FreeRDP's
// core library, and 0 for anything else (libfreerdp-client3 and the
// like): the rule of freerdp.MajorFromLibName, which the tests cover.
static int core_major(const char* path)
{
	const char* base = strrchr(path, '/');
	const char* d;
	int major = 0;

	base = base ? base + 1 : path;
	if (strncmp(base, "libfreerdp", 10) != 0)
		return 0;
	d = base + 10;
	if (*d < '1' || *d > '9')
		return 0;
	while (*d >= '0' && *d <= '9')
		major = major * 10 + (*d++ - '0');
	if (strncmp(d, ".so", 3) != 0 || (d[3] != '\0' && d[3] != '.'))
		return 0;
	return major;
}

static int collect(struct dl_phdr_info* info, size_t size, void* arg)
{
	struct mapped* m = arg;

	(void)size;
	if (m->n < MAX_MAPPED && info->dlpi_name && core_major(info->dlpi_name) > 0)
	{
		char* name = strdup(info->dlpi_name);
		if (name)
			m->names[m->n++] = name;
	}
	return 0;
}

static void set_path(rdpdvc_host_version* v, const char* path)
{
	snprintf(v->path, sizeof(v->path), "%s", path ? path : "");
}

int rdpdvc_host_versions(rdpdvc_host_version* out, int max)
{
	struct mapped m = { 0 };
	int n = 0;
	Dl_info info;
	void* sym;

	// The executable and the libraries it links are the global scope:
	// this is the FreeRDP that runs drdynvc. A library only this plugin
	// linked would not be (FreeRDP opens addins RTLD_LOCAL).
	sym = dlsym(RTLD_DEFAULT, version_symbol);
	if (sym && n < max)
	{
		rdpdvc_host_version* v = &out[n++];
		v->major = v->minor = v->revision = -1;
		((get_version_fn)sym)(&v->major, &v->minor, &v->revision);
		v->global = 1;
		set_path(v, dladdr(sym, &info) && info.dli_fname ? info.dli_fname : NULL);
	}

	// Every libfreerdpN mapped in the process, for hosts that opened
	// FreeRDP without RTLD_GLOBAL. dlopen is not called from inside
	// dl_iterate_phdr's callback, which runs under the loader's lock.
	dl_iterate_phdr(collect, &m);
	for (int i = 0; i < m.n; i++)
	{
		if (n < max)
		{
			rdpdvc_host_version* v = &out[n++];
			void* h = dlopen(m.names[i], RTLD_LAZY | RTLD_NOLOAD);

			v->major = core_major(m.names[i]);
			v->minor = v->revision = -1;
			v->global = 0;
			set_path(v, m.names[i]);
			if (h)
			{
				sym = dlsym(h, version_symbol);
				if (sym)
					((get_version_fn)sym)(&v->major, &v->minor, &v->revision);
				dlclose(h);
			}
		}
		free(m.names[i]);
	}
	return n;
}

// DVCPluginEntry is what FreeRDP's drdynvc looks up in
// lib<name>-client.so for /dvc:<name>,<args>.
UINT DVCPluginEntry(IDRDYNVC_ENTRY_POINTS* ep)
{
	const ADDIN_ARGV* args;
	rdpdvc_plugin* p;
	uintptr_t host;
	UINT rc;

	// First, before ep is read: its layout, and that of every structure
	// handed to FreeRDP, is the built major's.
	if (!goCheckHost())
		return ERROR_REVISION_MISMATCH;
	// FreeRDP 3 returns const ADDIN_ARGV*, FreeRDP 2 a mutable one.
	args = ep->GetPluginData ? ep->GetPluginData(ep) : NULL;
	if (ep->GetPlugin && ep->GetPlugin(ep, "rdpdvc"))
		return CHANNEL_RC_ALREADY_INITIALIZED;
	host = goNewHost(args ? args->argc : 0, args ? args->argv : NULL);
	if (!host)
		return ERROR_INVALID_PARAMETER;
	p = calloc(1, sizeof(*p));
	if (!p)
	{
		goTerminated(host);
		return CHANNEL_RC_NO_MEMORY;
	}
	p->host = host;
	p->iface.Initialize = plugin_initialize;
	// FreeRDP calls the optional notifications only when set (IFCALL in
	// both majors' drdynvc); rdpdvc needs none of them.
	p->iface.Connected = NULL;
	p->iface.Disconnected = NULL;
	p->iface.Terminated = plugin_terminated;
	p->iface.Attached = NULL;
	p->iface.Detached = NULL;
	// Both majors' IWTSPlugin end in pInterface, which other plugins may
	// fetch with GetPlugin for a client-specific interface; rdpdvc offers
	// none.
	p->iface.pInterface = NULL;
	rc = ep->RegisterPlugin(ep, "rdpdvc", &p->iface);
	if (rc != CHANNEL_RC_OK)
	{
		goTerminated(host);
		free(p);
	}
	return rc;
}
