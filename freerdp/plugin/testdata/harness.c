// A stand-in for FreeRDP's drdynvc, for plugin_test.go: it loads
// librdpdvc-client.so the way FreeRDP does (dlopen, DVCPluginEntry), with
// the entry points, channel manager and channel structures declared by
// the FreeRDP headers it is compiled against (freerdp/dvc.h), and drives
// one channel instance through the plugin's callbacks.
//
//	harness SO MAJOR CHANNEL ARG...
//
// MAJOR is what this process's freerdp_get_version reports (the plugin
// looks it up in the global scope, which -rdynamic puts this one in), so
// the test can pretend to be the other major. ARG... are the plugin's
// arguments after "rdpdvc". With CHANNEL not "-", the harness opens an
// instance of CHANNEL, sends it "ping" and expects the same bytes back
// (the Simple echo and the MS-RDPEECO responder both answer so), then
// closes it as a server would and terminates the plugin.
//
// It prints what happened on stdout and exits 0 when every step went as
// FreeRDP would need; DVCPluginEntry's error is printed as "entry rc=N"
// (exit 3).

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <freerdp/version.h>
#include <freerdp/dvc.h>

static int reported_major;

// The FreeRDP API function the plugin asks (freerdp/freerdp.h).
void freerdp_get_version(int* major, int* minor, int* revision)
{
	if (major)
		*major = reported_major;
	if (minor)
		*minor = 99;
	if (revision)
		*revision = 1;
}

// ---- entry points ----

typedef struct
{
	IDRDYNVC_ENTRY_POINTS iface;
	ADDIN_ARGV args;
	IWTSPlugin* plugin;
} entry_points;

static UINT register_plugin(IDRDYNVC_ENTRY_POINTS* ep, const char* name, IWTSPlugin* plugin)
{
	entry_points* e = (entry_points*)ep;
	printf("registered %s\n", name);
	e->plugin = plugin;
	return CHANNEL_RC_OK;
}

static IWTSPlugin* get_plugin(IDRDYNVC_ENTRY_POINTS* ep, const char* name)
{
	(void)ep;
	(void)name;
	return NULL;
}

#if FREERDP_VERSION_MAJOR >= 3
static const ADDIN_ARGV* get_plugin_data(IDRDYNVC_ENTRY_POINTS* ep)
#else
static ADDIN_ARGV* get_plugin_data(IDRDYNVC_ENTRY_POINTS* ep)
#endif
{
	return &((entry_points*)ep)->args;
}

// ---- channel manager ----

#define MAX_LISTENERS 16

static struct
{
	char* name;
	IWTSListenerCallback* cb;
} listeners[MAX_LISTENERS];
static int nlisteners;

static UINT create_listener(IWTSVirtualChannelManager* mgr, const char* name, ULONG flags,
                            IWTSListenerCallback* cb, IWTSListener** out)
{
	(void)mgr;
	(void)flags;
	if (out)
		*out = NULL;
	if (nlisteners == MAX_LISTENERS)
		return CHANNEL_RC_NO_MEMORY;
	listeners[nlisteners].name = strdup(name);
	listeners[nlisteners].cb = cb;
	nlisteners++;
	printf("listener %s\n", name);
	return CHANNEL_RC_OK;
}

// ---- one channel instance ----

typedef struct
{
	IWTSVirtualChannel iface;
	UINT32 id;
	IWTSVirtualChannelCallback* cb;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	BYTE got[256];
	size_t ngot;
	int writes, closed;
} channel;

static UINT32 get_channel_id(IWTSVirtualChannel* ch)
{
	return ((channel*)ch)->id;
}

// As FreeRDP's: a zero-length write closes the channel, calling OnClose
// before it returns; any other copies the data. The plugin writes from
// its own threads.
static UINT channel_write(IWTSVirtualChannel* ch, ULONG n, const BYTE* buf, void* reserved)
{
	channel* c = (channel*)ch;
	IWTSVirtualChannelCallback* cb = NULL;

	(void)reserved;
	pthread_mutex_lock(&c->mu);
	if (c->closed)
	{
		pthread_mutex_unlock(&c->mu);
		return CHANNEL_RC_BAD_CHANNEL;
	}
	if (n == 0)
	{
		c->closed = 1;
		cb = c->cb;
	}
	else if (c->ngot + n <= sizeof(c->got))
	{
		memcpy(c->got + c->ngot, buf, n);
		c->ngot += n;
	}
	c->writes++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->mu);
	if (cb)
		return cb->OnClose(cb);
	return CHANNEL_RC_OK;
}

static UINT channel_close(IWTSVirtualChannel* ch)
{
	return channel_write(ch, 0, NULL, NULL);
}

static int run_channel(const char* name)
{
	static const BYTE ping[] = "ping";
	IWTSListenerCallback* lcb = NULL;
	channel c;
	BOOL accept = FALSE;
	wStream s;
	struct timespec until;
	int ok;

	for (int i = 0; i < nlisteners; i++)
		if (strcmp(listeners[i].name, name) == 0)
			lcb = listeners[i].cb;
	if (!lcb)
	{
		printf("no listener for %s\n", name);
		return 0;
	}
	memset(&c, 0, sizeof(c));
	c.iface.Write = channel_write;
	c.iface.Close = channel_close;
	c.id = 7;
	pthread_mutex_init(&c.mu, NULL);
	pthread_cond_init(&c.cond, NULL);
	if (lcb->OnNewChannelConnection(lcb, &c.iface, NULL, &accept, &c.cb) != CHANNEL_RC_OK ||
	    !accept || !c.cb)
	{
		printf("channel %s refused\n", name);
		return 0;
	}
	if (c.cb->OnOpen && c.cb->OnOpen(c.cb) != CHANNEL_RC_OK)
	{
		printf("OnOpen failed\n");
		return 0;
	}

	// A whole message, as FreeRDP delivers it, in a stream whose read
	// position is not at the start of its buffer.
	memset(&s, 0, sizeof(s));
	{
		static BYTE buf[2 + sizeof(ping) - 1];
		memcpy(buf + 2, ping, sizeof(ping) - 1);
		s.buffer = buf;
		s.pointer = buf + 2;
		s.length = sizeof(buf);
		s.capacity = sizeof(buf);
	}
	if (c.cb->OnDataReceived(c.cb, &s) != CHANNEL_RC_OK)
	{
		printf("OnDataReceived failed\n");
		return 0;
	}

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&c.mu);
	while (c.ngot < sizeof(ping) - 1 && !c.closed)
		if (pthread_cond_timedwait(&c.cond, &c.mu, &until) == ETIMEDOUT)
			break;
	ok = c.ngot == sizeof(ping) - 1 && memcmp(c.got, ping, c.ngot) == 0;
	printf("echoed %zu bytes: %.*s\n", c.ngot, (int)c.ngot, (const char*)c.got);
	pthread_mutex_unlock(&c.mu);

	// The server closes the channel: FreeRDP calls OnClose, then frees
	// the channel.
	pthread_mutex_lock(&c.mu);
	c.closed = 1;
	pthread_mutex_unlock(&c.mu);
	if (c.cb->OnClose(c.cb) != CHANNEL_RC_OK)
	{
		printf("OnClose failed\n");
		return 0;
	}
	return ok;
}

int main(int argc, char** argv)
{
	entry_points ep;
	IWTSVirtualChannelManager mgr;
	PDVC_PLUGIN_ENTRY entry;
	void* lib;
	char** args;
	UINT rc;

	if (argc < 4)
	{
		fprintf(stderr, "usage: harness SO MAJOR CHANNEL ARG...\n");
		return 2;
	}
	reported_major = atoi(argv[2]);
	lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	if (!lib)
	{
		printf("dlopen: %s\n", dlerror());
		return 2;
	}
	*(void**)&entry = dlsym(lib, "DVCPluginEntry");
	if (!entry)
	{
		printf("no DVCPluginEntry\n");
		return 2;
	}

	memset(&ep, 0, sizeof(ep));
	ep.iface.RegisterPlugin = register_plugin;
	ep.iface.GetPlugin = get_plugin;
	ep.iface.GetPluginData = get_plugin_data;
	ep.iface.GetRdpSettings = NULL;
#if FREERDP_VERSION_MAJOR >= 3
	ep.iface.GetRdpContext = NULL;
#endif
	// The plugin's argv: its name, as FreeRDP passes it, then ARG...
	args = calloc((size_t)argc, sizeof(*args));
	if (!args)
		return 2;
	args[0] = "rdpdvc";
	for (int i = 4; i < argc; i++)
		args[i - 3] = argv[i];
	ep.args.argc = argc - 3;
	ep.args.argv = args;
	rc = entry(&ep.iface);
	if (rc != CHANNEL_RC_OK)
	{
		printf("entry rc=%u\n", rc);
		return 3;
	}
	if (!ep.plugin || !ep.plugin->Initialize || !ep.plugin->Terminated)
	{
		printf("no plugin registered\n");
		return 1;
	}

	memset(&mgr, 0, sizeof(mgr));
	mgr.CreateListener = create_listener;
	mgr.GetChannelId = get_channel_id;
	if (ep.plugin->Initialize(ep.plugin, &mgr) != CHANNEL_RC_OK)
	{
		printf("Initialize failed\n");
		return 1;
	}
	if (strcmp(argv[3], "-") != 0 && !run_channel(argv[3]))
		return 1;
	if (ep.plugin->Terminated(ep.plugin) != CHANNEL_RC_OK)
	{
		printf("Terminated failed\n");
		return 1;
	}
	printf("ok\n");
	return 0;
}
