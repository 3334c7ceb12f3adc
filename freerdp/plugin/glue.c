//go:build freerdp

#include <stdlib.h>
#include <string.h>
#include <winpr/stream.h>
#include <freerdp/channels/log.h>
#include "glue.h"
#include "_cgo_export.h"

static UINT on_data(IWTSVirtualChannelCallback* cb, wStream* s)
{
	rdpdvc_channel* c = (rdpdvc_channel*)cb;
	goData(c->inst, Stream_Pointer(s), Stream_GetRemainingLength(s));
	return CHANNEL_RC_OK;
}

static UINT on_close(IWTSVirtualChannelCallback* cb)
{
	rdpdvc_channel* c = (rdpdvc_channel*)cb;
	goGone(c->inst);
	free(c);
	return CHANNEL_RC_OK;
}

static UINT on_new_channel(IWTSListenerCallback* cb, IWTSVirtualChannel* channel, BYTE* data,
                           BOOL* accept, IWTSVirtualChannelCallback** out)
{
	rdpdvc_listener* l = (rdpdvc_listener*)cb;
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
	c->iface.OnClose = on_close;
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
	rdpdvc_plugin* p = (rdpdvc_plugin*)plugin;
	p->mgr = mgr;
	return goInitialize(p->host, p);
}

static UINT plugin_terminated(IWTSPlugin* plugin)
{
	rdpdvc_plugin* p = (rdpdvc_plugin*)plugin;
	rdpdvc_listener* l = p->listeners;

	goTerminated(p->host);
	// FreeRDP frees its listeners after the plugins and never calls ours
	// again once Terminated has run.
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

// DVCPluginEntry is what FreeRDP's drdynvc looks up in
// lib<name>-client.so for /dvc:<name>,<args>.
UINT DVCPluginEntry(IDRDYNVC_ENTRY_POINTS* ep)
{
	ADDIN_ARGV* args = ep->GetPluginData ? ep->GetPluginData(ep) : NULL;
	rdpdvc_plugin* p;
	uintptr_t host;
	UINT rc;

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
	p->iface.Terminated = plugin_terminated;
	rc = ep->RegisterPlugin(ep, "rdpdvc", &p->iface);
	if (rc != CHANNEL_RC_OK)
	{
		goTerminated(host);
		free(p);
	}
	return rc;
}
