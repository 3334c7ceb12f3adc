/*
 * dvchost: a stand-in for mstsc's side of an in-process DVC plugin, for
 * testing rdpdvc-plugin.dll under Wine. It does what the Remote Desktop
 * Connection client does with a DllPath registration: LoadLibrary,
 * VirtualChannelGetInstance (or DllGetClassObject), IWTSPlugin::Initialize
 * with its own IWTSVirtualChannelManager, OnNewChannelConnection for each
 * listener the plugin created, OnDataReceived with whole messages (mstsc
 * reassembles them, MS-RDPEDYC 3.1.5.1.4), and checks what the plugin
 * writes back through IWTSVirtualChannel::Write. Then Terminated,
 * Release, FreeLibrary.
 *
 *   dvchost SCENARIO DLL [DLL2]
 *   dvchost chat DLL CHANNEL HEX...
 *
 * Prints "ok ..." per check passed and "FAIL ..." per check failed; the exit
 * status is the number of failures (0: all passed). A crash is a crash:
 * the Go test running this sees the exit status Wine reports for it.
 */
#define COBJMACROS
#define CINTERFACE
#include <windows.h>
#include <objbase.h>
#include <tsvirtualchannels.h>
#include <stdio.h>
#include <string.h>

static int failures;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		if (cond) {                                                  \
			printf("ok   ");                                     \
		} else {                                                     \
			failures++;                                          \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);          \
		}                                                            \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		fflush(stdout);                                              \
	} while (0)

/* The interface IDs (tsvirtualchannels.h), spelled out so that no import
 * library is needed. */
static const GUID iidUnknown = {0x00000000, 0x0000, 0x0000, {0xC0, 0, 0, 0, 0, 0, 0, 0x46}};
static const GUID iidClassFactory = {0x00000001, 0x0000, 0x0000, {0xC0, 0, 0, 0, 0, 0, 0, 0x46}};
static const GUID iidPlugin = {0xA1230201, 0x1439, 0x4E62, {0xA4, 0x14, 0x19, 0x0D, 0x0A, 0xC3, 0xD4, 0x0E}};
static const GUID iidListener = {0xA1230206, 0x9A39, 0x4D58, {0x86, 0x74, 0xCD, 0xB4, 0xDF, 0xF4, 0xE7, 0x3B}};
static const GUID iidManager = {0xA1230205, 0xD6A7, 0x11D8, {0xB9, 0xFD, 0x00, 0x0B, 0xDB, 0xD1, 0xF1, 0x98}};
static const GUID iidChannel = {0xA1230207, 0xD6A7, 0x11D8, {0xB9, 0xFD, 0x00, 0x0B, 0xDB, 0xD1, 0xF1, 0x98}};
/* The DLL's class (cmd/rdpdvc-plugin CLSID). */
static const GUID clsidPlugin = {0x5028102C, 0xCE40, 0x4D47, {0x9C, 0xF9, 0x0D, 0xD4, 0xE0, 0x99, 0x6D, 0xFC}};

#define HR_ALREADY_EXISTS ((HRESULT)0x800700B7) /* HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS) */

typedef HRESULT(WINAPI *GetInstanceFn)(REFIID, ULONG *, VOID **);
typedef HRESULT(WINAPI *GetClassObjectFn)(REFCLSID, REFIID, LPVOID *);
typedef HRESULT(WINAPI *CanUnloadFn)(void);

/* ---- the host's IWTSVirtualChannel ------------------------------------- */

typedef struct {
	IWTSVirtualChannel iface;
	LONG refs;
	CRITICAL_SECTION cs;
	IWTSVirtualChannelCallback *cb; /* the plugin's, to answer Close with OnClose */
	BYTE *last;                     /* the last message written */
	ULONG lastLen;
	LONG writes, closes;
	BOOL closeAnswers; /* Close calls OnClose on the spot, as mstsc may */
	BOOL print;        /* print each write as "recv HEX" (scenario chat) */
	HANDLE wrote;      /* set at each write, when not NULL */
} Channel;

static HRESULT STDMETHODCALLTYPE chQI(IWTSVirtualChannel *This, REFIID riid, void **ppv)
{
	if (!ppv)
		return E_POINTER;
	if (IsEqualGUID(riid, &iidUnknown) || IsEqualGUID(riid, &iidChannel)) {
		*ppv = This;
		IWTSVirtualChannel_AddRef(This);
		return S_OK;
	}
	*ppv = NULL;
	return E_NOINTERFACE;
}
static ULONG STDMETHODCALLTYPE chAddRef(IWTSVirtualChannel *This) { return InterlockedIncrement(&((Channel *)This)->refs); }
static ULONG STDMETHODCALLTYPE chRelease(IWTSVirtualChannel *This) { return InterlockedDecrement(&((Channel *)This)->refs); }
static HRESULT STDMETHODCALLTYPE chWrite(IWTSVirtualChannel *This, ULONG n, BYTE *buf, IUnknown *reserved)
{
	Channel *c = (Channel *)This;
	BYTE *copy = NULL;
	(void)reserved;
	if (n > 0 && !buf)
		return E_POINTER;
	if (n > 0 && !(copy = malloc(n)))
		return E_OUTOFMEMORY;
	if (n > 0)
		memcpy(copy, buf, n);
	EnterCriticalSection(&c->cs);
	free(c->last);
	c->last = copy;
	c->lastLen = n;
	c->writes++;
	if (c->print) {
		printf("recv ");
		for (ULONG i = 0; i < n; i++)
			printf("%02x", buf[i]);
		printf("\n");
		fflush(stdout);
	}
	if (c->wrote)
		SetEvent(c->wrote);
	LeaveCriticalSection(&c->cs);
	return S_OK;
}
static HRESULT STDMETHODCALLTYPE chClose(IWTSVirtualChannel *This)
{
	Channel *c = (Channel *)This;
	InterlockedIncrement(&c->closes);
	if (c->closeAnswers && c->cb)
		IWTSVirtualChannelCallback_OnClose(c->cb);
	return S_OK;
}
static IWTSVirtualChannelVtbl channelVtbl = {chQI, chAddRef, chRelease, chWrite, chClose};

static void channelInit(Channel *c)
{
	memset(c, 0, sizeof *c);
	c->iface.lpVtbl = &channelVtbl;
	c->refs = 1;
	c->closeAnswers = TRUE;
	InitializeCriticalSection(&c->cs);
}

/* ---- IWTSListener and IWTSVirtualChannelManager ----------------------- */

typedef struct {
	IWTSListener iface;
	LONG refs;
} Listener;

static HRESULT STDMETHODCALLTYPE lQI(IWTSListener *This, REFIID riid, void **ppv)
{
	if (!ppv)
		return E_POINTER;
	if (IsEqualGUID(riid, &iidUnknown) || IsEqualGUID(riid, &iidListener)) {
		*ppv = This;
		IWTSListener_AddRef(This);
		return S_OK;
	}
	*ppv = NULL;
	return E_NOINTERFACE;
}
static ULONG STDMETHODCALLTYPE lAddRef(IWTSListener *This) { return InterlockedIncrement(&((Listener *)This)->refs); }
static ULONG STDMETHODCALLTYPE lRelease(IWTSListener *This) { return InterlockedDecrement(&((Listener *)This)->refs); }
static HRESULT STDMETHODCALLTYPE lGetConfiguration(IWTSListener *This, IPropertyBag **pp)
{
	(void)This;
	if (pp)
		*pp = NULL;
	return E_NOTIMPL;
}
static IWTSListenerVtbl listenerVtbl = {lQI, lAddRef, lRelease, lGetConfiguration};

#define MAXL 8
typedef struct {
	IWTSVirtualChannelManager iface;
	LONG refs;
	int n;
	char names[MAXL][64];
	IWTSListenerCallback *cbs[MAXL]; /* AddRef'd */
	Listener listeners[MAXL];
} Manager;

static HRESULT STDMETHODCALLTYPE mQI(IWTSVirtualChannelManager *This, REFIID riid, void **ppv)
{
	if (!ppv)
		return E_POINTER;
	if (IsEqualGUID(riid, &iidUnknown) || IsEqualGUID(riid, &iidManager)) {
		*ppv = This;
		IWTSVirtualChannelManager_AddRef(This);
		return S_OK;
	}
	*ppv = NULL;
	return E_NOINTERFACE;
}
static ULONG STDMETHODCALLTYPE mAddRef(IWTSVirtualChannelManager *This) { return InterlockedIncrement(&((Manager *)This)->refs); }
static ULONG STDMETHODCALLTYPE mRelease(IWTSVirtualChannelManager *This) { return InterlockedDecrement(&((Manager *)This)->refs); }
static HRESULT STDMETHODCALLTYPE mCreateListener(IWTSVirtualChannelManager *This, const char *name, ULONG flags,
						 IWTSListenerCallback *cb, IWTSListener **pp)
{
	Manager *m = (Manager *)This;
	(void)flags;
	if (!name || !cb)
		return E_POINTER;
	if (m->n == MAXL || strlen(name) >= sizeof m->names[0])
		return E_INVALIDARG;
	strcpy(m->names[m->n], name);
	IWTSListenerCallback_AddRef(cb);
	m->cbs[m->n] = cb;
	m->listeners[m->n].iface.lpVtbl = &listenerVtbl;
	m->listeners[m->n].refs = 1;
	if (pp) {
		m->listeners[m->n].refs++;
		*pp = &m->listeners[m->n].iface;
	}
	m->n++;
	return S_OK;
}
static IWTSVirtualChannelManagerVtbl managerVtbl = {mQI, mAddRef, mRelease, mCreateListener};

static void managerInit(Manager *m)
{
	memset(m, 0, sizeof *m);
	m->iface.lpVtbl = &managerVtbl;
	m->refs = 1;
}

static IWTSListenerCallback *listenerFor(Manager *m, const char *name)
{
	for (int i = 0; i < m->n; i++)
		if (!strcmp(m->names[i], name))
			return m->cbs[i];
	return NULL;
}

/* Releases what the manager holds and checks the plugin released its
 * listeners (Terminated must have been called). */
static void managerDone(Manager *m, const char *tag)
{
	for (int i = 0; i < m->n; i++) {
		CHECK(m->listeners[i].refs == 1, "%s: listener %s released by the plugin (refs %ld)", tag, m->names[i], m->listeners[i].refs);
		IWTSListenerCallback_Release(m->cbs[i]);
	}
	CHECK(m->refs == 1, "%s: the plugin kept no channel manager reference (refs %ld)", tag, m->refs);
}

/* ---- Simple frames (simple/frame.go): frameLen u32, seq u32, ticks i64,
 * payloadLen u32, payload; little-endian, as x86 is. */

static ULONG makeFrame(BYTE *b, DWORD seq, DWORD payload)
{
	DWORD frameLen = 4 + 8 + 4 + payload;
	LONGLONG ticks = 133000000000000000LL + seq;
	memcpy(b, &frameLen, 4);
	memcpy(b + 4, &seq, 4);
	memcpy(b + 8, &ticks, 8);
	memcpy(b + 16, &payload, 4);
	for (DWORD i = 0; i < payload; i++)
		b[20 + i] = (BYTE)(i * 7 + seq);
	return 20 + payload;
}

static BOOL lastIs(Channel *c, const BYTE *b, ULONG n)
{
	BOOL same;
	EnterCriticalSection(&c->cs);
	same = c->lastLen == n && (n == 0 || (c->last && !memcmp(c->last, b, n)));
	LeaveCriticalSection(&c->cs);
	return same;
}

/* Opens a channel on listener lcb; returns the plugin's callback (NULL if
 * refused) and sets c->cb. */
static IWTSVirtualChannelCallback *openChannel(IWTSListenerCallback *lcb, Channel *c, const char *tag)
{
	BOOL accept = 7;
	IWTSVirtualChannelCallback *cb = (IWTSVirtualChannelCallback *)1;
	HRESULT hr = IWTSListenerCallback_OnNewChannelConnection(lcb, &c->iface, NULL, &accept, &cb);
	CHECK(hr == S_OK && accept == TRUE && cb != NULL, "%s: OnNewChannelConnection accepted (hr 0x%08lx, accept %d)", tag, hr, accept);
	if (hr != S_OK || !accept)
		return NULL;
	c->cb = cb;
	return cb;
}

/* The host closes the channel (the server did) and releases the callback;
 * the plugin must let go of the channel. */
static void closeChannel(Channel *c, const char *tag)
{
	if (!c->cb)
		return;
	HRESULT hr = IWTSVirtualChannelCallback_OnClose(c->cb);
	CHECK(hr == S_OK, "%s: OnClose (hr 0x%08lx)", tag, hr);
	IWTSVirtualChannelCallback_Release(c->cb);
	c->cb = NULL;
	CHECK(c->refs == 1, "%s: the plugin released the channel (refs %ld)", tag, c->refs);
}

static int pingSimple(IWTSVirtualChannelCallback *cb, Channel *c, int count, DWORD payload)
{
	static __thread BYTE *frame;
	int good = 0;
	if (!frame)
		frame = malloc(20 + 65536);
	for (int seq = 1; seq <= count; seq++) {
		ULONG n = makeFrame(frame, (DWORD)seq, payload);
		HRESULT hr = IWTSVirtualChannelCallback_OnDataReceived(cb, n, frame);
		if (hr == S_OK && lastIs(c, frame, n))
			good++;
	}
	return good;
}

/* The whole life of one plugin instance, as mstsc drives it: both
 * listeners, 5 Simple pings of 5140 bytes, one ECHO request, close,
 * Terminated (twice), release. */
static void drive(IWTSPlugin *p, const char *tag)
{
	Manager m;
	Channel sc, ec;
	HRESULT hr;
	managerInit(&m);
	channelInit(&sc);
	channelInit(&ec);
	hr = IWTSPlugin_Initialize(p, &m.iface);
	CHECK(hr == S_OK, "%s: Initialize (hr 0x%08lx)", tag, hr);
	CHECK(IWTSPlugin_Connected(p) == S_OK, "%s: Connected", tag);
	IWTSListenerCallback *simple = listenerFor(&m, "dvc::sample::simpleplugin");
	IWTSListenerCallback *echo = listenerFor(&m, "ECHO");
	CHECK(simple && echo, "%s: listeners created for dvc::sample::simpleplugin and ECHO (%d listeners)", tag, m.n);
	if (simple && openChannel(simple, &sc, tag)) {
		CHECK(sc.refs == 2, "%s: the plugin holds one channel reference (refs %ld)", tag, sc.refs);
		int good = pingSimple(sc.cb, &sc, 5, 5120);
		CHECK(good == 5 && sc.writes == 5, "%s: 5 Simple pings of 5140 bytes echoed byte for byte (%d good, %ld writes)", tag, good, sc.writes);
		closeChannel(&sc, tag);
	}
	if (echo && openChannel(echo, &ec, tag)) {
		BYTE req[32];
		for (int i = 0; i < 32; i++)
			req[i] = (BYTE)(0xA0 + i);
		hr = IWTSVirtualChannelCallback_OnDataReceived(ec.cb, sizeof req, req);
		CHECK(hr == S_OK && lastIs(&ec, req, sizeof req), "%s: ECHO request answered with the same bytes (MS-RDPEECO 3.2.5.1)", tag);
		closeChannel(&ec, tag);
	}
	CHECK(IWTSPlugin_Disconnected(p, 0) == S_OK, "%s: Disconnected", tag);
	hr = IWTSPlugin_Terminated(p);
	CHECK(hr == S_OK, "%s: Terminated (hr 0x%08lx)", tag, hr);
	hr = IWTSPlugin_Terminated(p);
	CHECK(hr == S_OK, "%s: Terminated again: S_OK, nothing to do (hr 0x%08lx)", tag, hr);
	managerDone(&m, tag);
	ULONG left = IWTSPlugin_Release(p);
	CHECK(left == 0, "%s: the last Release frees the plugin (%lu left)", tag, left);
}

static HMODULE load(const char *path)
{
	HMODULE h = LoadLibraryA(path);
	CHECK(h != NULL, "LoadLibrary(%s) (error %lu)", path, h ? 0 : GetLastError());
	return h;
}

static IWTSPlugin *getInstance(HMODULE h, const char *tag)
{
	GetInstanceFn gi = (GetInstanceFn)(void *)GetProcAddress(h, "VirtualChannelGetInstance");
	ULONG n = 0;
	IWTSPlugin *arr[2] = {NULL, (IWTSPlugin *)0xDEAD};
	CHECK(gi != NULL, "%s: VirtualChannelGetInstance exported", tag);
	if (!gi)
		return NULL;
	HRESULT hr = gi(&iidPlugin, &n, NULL);
	CHECK(hr == S_OK && n == 1, "%s: count query: 1 plugin (hr 0x%08lx, %lu)", tag, hr, n);
	n = 2;
	hr = gi(&iidPlugin, &n, (VOID **)arr);
	CHECK(hr == S_OK && n == 1 && arr[0] && arr[1] == (IWTSPlugin *)0xDEAD, "%s: 1 instance into 2 slots (hr 0x%08lx, %lu)", tag, hr, n);
	if (arr[0]) {
		/* Not Go memory: a block of the process heap (LocalAlloc). */
		CHECK(HeapValidate(GetProcessHeap(), 0, arr[0]), "%s: the plugin pointer is process-heap memory", tag);
	}
	return arr[0];
}

/* ---- scenarios --------------------------------------------------------- */

static void scenarioGetInstance(const char *dll)
{
	HMODULE h = load(dll);
	if (!h)
		return;
	/* FreeLibrary before any call: the DLL pinned itself inside
	 * LoadLibrary, before its Go runtime (started on a thread of its own)
	 * has run anything. */
	CHECK(FreeLibrary(h) && GetModuleHandleA(dll) == h, "FreeLibrary right after LoadLibrary leaves it loaded (pinned at load)");
	IWTSPlugin *p = getInstance(h, "first");
	if (p)
		drive(p, "first");
	CanUnloadFn can = (CanUnloadFn)(void *)GetProcAddress(h, "DllCanUnloadNow");
	CHECK(can && can() == S_FALSE, "DllCanUnloadNow answers S_FALSE");
	CHECK(FreeLibrary(h), "FreeLibrary");
	/* Pinned: still mapped, still running. */
	CHECK(GetModuleHandleA(dll) == h, "still loaded after FreeLibrary (pinned)");
	CHECK(can() == S_FALSE, "callable after FreeLibrary");
	HMODULE h2 = load(dll);
	CHECK(h2 == h, "LoadLibrary again gives the same module");
	if (h2) {
		p = getInstance(h2, "second");
		if (p)
			drive(p, "second");
		FreeLibrary(h2);
	}
}

static void scenarioClassObject(const char *dll)
{
	HMODULE h = load(dll);
	if (!h)
		return;
	GetClassObjectFn gco = (GetClassObjectFn)(void *)GetProcAddress(h, "DllGetClassObject");
	CHECK(gco != NULL, "DllGetClassObject exported");
	if (!gco)
		return;
	IClassFactory *f = (IClassFactory *)1;
	HRESULT hr = gco(&iidPlugin, &iidClassFactory, (void **)&f);
	CHECK(hr == CLASS_E_CLASSNOTAVAILABLE && f == NULL, "another CLSID: CLASS_E_CLASSNOTAVAILABLE (hr 0x%08lx)", hr);
	hr = gco(&clsidPlugin, &iidClassFactory, (void **)&f);
	CHECK(hr == S_OK && f, "class factory (hr 0x%08lx)", hr);
	if (!f)
		return;
	CHECK(IClassFactory_LockServer(f, TRUE) == S_OK && IClassFactory_LockServer(f, FALSE) == S_OK, "LockServer");
	IUnknown *agg = NULL;
	hr = IClassFactory_CreateInstance(f, (IUnknown *)&f, &iidPlugin, (void **)&agg);
	CHECK(hr == CLASS_E_NOAGGREGATION && agg == NULL, "aggregation refused (hr 0x%08lx)", hr);
	IWTSPlugin *p = NULL;
	hr = IClassFactory_CreateInstance(f, NULL, &iidChannel, (void **)&p);
	CHECK(hr == E_NOINTERFACE && p == NULL, "CreateInstance for IWTSVirtualChannel: E_NOINTERFACE (hr 0x%08lx)", hr);
	hr = IClassFactory_CreateInstance(f, NULL, &iidPlugin, (void **)&p);
	CHECK(hr == S_OK && p, "CreateInstance(IWTSPlugin) (hr 0x%08lx)", hr);
	CHECK(IClassFactory_Release(f) == 0, "class factory released");
	if (p)
		drive(p, "class object");
	FreeLibrary(h);
}

static void scenarioBadInput(const char *dll)
{
	HMODULE h = load(dll);
	if (!h)
		return;
	GetInstanceFn gi = (GetInstanceFn)(void *)GetProcAddress(h, "VirtualChannelGetInstance");
	GetClassObjectFn gco = (GetClassObjectFn)(void *)GetProcAddress(h, "DllGetClassObject");
	ULONG n = 5;
	IWTSPlugin *arr[1] = {NULL};
	HRESULT hr;
	CHECK(gi(NULL, &n, NULL) == E_POINTER, "VirtualChannelGetInstance(NULL riid): E_POINTER");
	CHECK(gi(&iidPlugin, NULL, NULL) == E_POINTER, "VirtualChannelGetInstance(NULL pNumObjs): E_POINTER");
	CHECK(gi(&iidPlugin, NULL, (VOID **)arr) == E_POINTER && !arr[0], "VirtualChannelGetInstance(NULL pNumObjs, array): E_POINTER");
	hr = gi(&iidChannel, &n, NULL);
	CHECK(hr == E_NOINTERFACE, "VirtualChannelGetInstance(IID_IWTSVirtualChannel): E_NOINTERFACE (hr 0x%08lx)", hr);
	CHECK(gi(&iidUnknown, &n, (VOID **)arr) == E_NOINTERFACE && !arr[0], "VirtualChannelGetInstance(IID_IUnknown): E_NOINTERFACE");
	n = 0;
	CHECK(gi(&iidPlugin, &n, (VOID **)arr) == S_OK && n == 0 && !arr[0], "0 slots: nothing made");
	CHECK(gco(&clsidPlugin, &iidClassFactory, NULL) == E_POINTER, "DllGetClassObject(NULL ppv): E_POINTER");
	void *pv = (void *)1;
	CHECK(gco(NULL, &iidClassFactory, &pv) == E_POINTER && pv == NULL, "DllGetClassObject(NULL clsid): E_POINTER");
	CHECK(gco(&clsidPlugin, NULL, &pv) == E_POINTER, "DllGetClassObject(NULL riid): E_POINTER");
	CHECK(gco(&clsidPlugin, &iidPlugin, &pv) == E_NOINTERFACE && pv == NULL, "DllGetClassObject(IID_IWTSPlugin): E_NOINTERFACE");

	IWTSPlugin *p = getInstance(h, "bad input");
	if (!p)
		return;
	CHECK(IWTSPlugin_Initialize(p, NULL) == E_POINTER, "Initialize(NULL): E_POINTER");
	Manager m;
	managerInit(&m);
	CHECK(IWTSPlugin_Initialize(p, &m.iface) == S_OK, "Initialize");
	CHECK(IWTSPlugin_Initialize(p, &m.iface) == E_UNEXPECTED, "Initialize twice: E_UNEXPECTED");
	IWTSListenerCallback *lcb = listenerFor(&m, "dvc::sample::simpleplugin");
	CHECK(lcb != NULL, "Simple listener");
	if (!lcb)
		return;
	Channel c;
	channelInit(&c);
	BOOL accept = TRUE;
	IWTSVirtualChannelCallback *cb = NULL;
	CHECK(IWTSListenerCallback_OnNewChannelConnection(lcb, &c.iface, NULL, NULL, &cb) == E_POINTER, "OnNewChannelConnection(NULL pbAccept): E_POINTER");
	CHECK(IWTSListenerCallback_OnNewChannelConnection(lcb, &c.iface, NULL, &accept, NULL) == E_POINTER, "OnNewChannelConnection(NULL ppCallback): E_POINTER");
	CHECK(IWTSListenerCallback_OnNewChannelConnection(lcb, NULL, NULL, &accept, &cb) == E_POINTER, "OnNewChannelConnection(NULL channel): E_POINTER");
	CHECK(c.refs == 1, "refused calls kept no channel reference");
	if (!openChannel(lcb, &c, "bad input"))
		return;
	hr = IWTSVirtualChannelCallback_OnDataReceived(c.cb, 5, NULL);
	CHECK(hr == E_POINTER, "OnDataReceived(5, NULL): E_POINTER (hr 0x%08lx)", hr);
	hr = IWTSVirtualChannelCallback_OnDataReceived(c.cb, 0, NULL);
	CHECK(hr == S_OK && c.writes == 1 && c.lastLen == 0, "OnDataReceived(0 bytes): S_OK, echoed as 0 bytes (hr 0x%08lx, %ld writes)", hr, c.writes);
	const ULONG big = 64u << 20;
	BYTE *huge = malloc(big);
	CHECK(huge != NULL, "64 MiB allocated");
	if (huge) {
		for (ULONG i = 0; i < big; i += 4096)
			huge[i] = (BYTE)(i >> 12);
		huge[big - 1] = 0x5A;
		hr = IWTSVirtualChannelCallback_OnDataReceived(c.cb, big, huge);
		CHECK(hr == S_OK && lastIs(&c, huge, big), "OnDataReceived(64 MiB): S_OK and echoed whole (hr 0x%08lx, last write %lu bytes)", hr, c.lastLen);
		free(huge);
	}
	CHECK(pingSimple(c.cb, &c, 3, 5120) == 3, "pings still echoed after the bad calls");
	closeChannel(&c, "bad input");
	hr = IWTSPlugin_Terminated(p);
	CHECK(hr == S_OK, "Terminated");
	hr = IWTSPlugin_Terminated(p);
	CHECK(hr == S_OK, "Terminated twice: S_OK, nothing done (hr 0x%08lx)", hr);
	CHECK(IWTSPlugin_Connected(p) == S_OK, "Connected after Terminated: an HRESULT");
	managerDone(&m, "bad input");
	CHECK(IWTSPlugin_Release(p) == 0, "plugin freed");
	FreeLibrary(h);
}

/* ---- calls from many host threads -------------------------------------- */

typedef struct {
	IWTSListenerCallback *lcb;
	DWORD apartment; /* 0: no COM; else COINIT_* + 1 */
	int good;
	Channel c;
} Worker;

static DWORD WINAPI work(void *arg)
{
	Worker *w = arg;
	if (w->apartment)
		CoInitializeEx(NULL, w->apartment - 1);
	BOOL accept = FALSE;
	IWTSVirtualChannelCallback *cb = NULL;
	if (IWTSListenerCallback_OnNewChannelConnection(w->lcb, &w->c.iface, NULL, &accept, &cb) == S_OK && accept) {
		w->c.cb = cb;
		w->good = pingSimple(cb, &w->c, 50, 1024);
		IWTSVirtualChannelCallback_OnClose(cb);
		IWTSVirtualChannelCallback_Release(cb);
		w->c.cb = NULL;
	}
	if (w->apartment)
		CoUninitialize();
	return 0;
}

static void scenarioThreads(const char *dll)
{
	enum { N = 6 };
	HMODULE h = load(dll);
	if (!h)
		return;
	IWTSPlugin *p = getInstance(h, "threads");
	if (!p)
		return;
	Manager m;
	managerInit(&m);
	CHECK(IWTSPlugin_Initialize(p, &m.iface) == S_OK, "Initialize");
	IWTSListenerCallback *lcb = listenerFor(&m, "dvc::sample::simpleplugin");
	if (!lcb)
		return;
	static Worker w[N];
	HANDLE t[N];
	for (int i = 0; i < N; i++) {
		w[i].lcb = lcb;
		/* Two threads in an STA (as mstsc's UI thread is), two in the MTA,
		 * two that never initialized COM. */
		w[i].apartment = i < 2 ? COINIT_APARTMENTTHREADED + 1 : i < 4 ? COINIT_MULTITHREADED + 1 : 0;
		channelInit(&w[i].c);
		t[i] = CreateThread(NULL, 0, work, &w[i], 0, NULL);
	}
	CHECK(WaitForMultipleObjects(N, t, TRUE, 120000) == WAIT_OBJECT_0, "all threads done within 2 minutes");
	for (int i = 0; i < N; i++) {
		CHECK(w[i].good == 50 && w[i].c.refs == 1, "thread %d (%s): 50 pings echoed, channel released (%d, refs %ld)", i,
		      i < 2 ? "STA" : i < 4 ? "MTA" : "no COM", w[i].good, w[i].c.refs);
		CloseHandle(t[i]);
	}
	CHECK(IWTSPlugin_Terminated(p) == S_OK, "Terminated");
	managerDone(&m, "threads");
	CHECK(IWTSPlugin_Release(p) == 0, "plugin freed");
	FreeLibrary(h);
}

/* ---- a panic in a channel handler -------------------------------------- */

static void scenarioPanic(const char *dll)
{
	HMODULE h = load(dll);
	if (!h)
		return;
	IWTSPlugin *p = getInstance(h, "panic");
	if (!p)
		return;
	Manager m;
	managerInit(&m);
	CHECK(IWTSPlugin_Initialize(p, &m.iface) == S_OK, "Initialize");
	IWTSListenerCallback *plcb = listenerFor(&m, "rdpdvc::test::panic");
	IWTSListenerCallback *slcb = listenerFor(&m, "dvc::sample::simpleplugin");
	CHECK(plcb && slcb, "the test channel and Simple are listened on");
	if (!plcb || !slcb)
		return;
	Channel pc, sc;
	channelInit(&pc);
	channelInit(&sc);
	pc.closeAnswers = FALSE; /* answer later, from here, as a host may */
	if (!openChannel(plcb, &pc, "panic") || !openChannel(slcb, &sc, "simple"))
		return;
	BYTE msg[4] = {1, 2, 3, 4};
	HRESULT hr = IWTSVirtualChannelCallback_OnDataReceived(pc.cb, sizeof msg, msg);
	CHECK(FAILED(hr), "the panicking handler's OnDataReceived failed (hr 0x%08lx)", hr);
	CHECK(pc.closes == 1, "the plugin closed the channel (IWTSVirtualChannel::Close x%ld)", pc.closes);
	CHECK(pc.refs == 1, "and let go of it (refs %ld)", pc.refs);
	hr = IWTSVirtualChannelCallback_OnDataReceived(pc.cb, sizeof msg, msg);
	CHECK(hr == S_OK, "later data on it is ignored (hr 0x%08lx)", hr);
	closeChannel(&pc, "panic");
	CHECK(pingSimple(sc.cb, &sc, 5, 5120) == 5, "the other channel still echoes: host and plugin unharmed");
	closeChannel(&sc, "simple");
	CHECK(IWTSPlugin_Terminated(p) == S_OK, "Terminated");
	managerDone(&m, "panic");
	CHECK(IWTSPlugin_Release(p) == 0, "plugin freed");
	FreeLibrary(h);
}

/* ---- a conversation on one channel ------------------------------------- */

static int unhex(const char *h, BYTE *out, int max)
{
	int n = 0;
	for (; h[0] && h[1] && n < max; h += 2) {
		unsigned v;
		if (sscanf(h, "%2x", &v) != 1)
			return -1;
		out[n++] = (BYTE)v;
	}
	return h[0] ? -1 : n;
}

/* chat: opens channel name and sends each message in turn (hex); after
 * each, waits up to 20 s for the plugin to write at least one message,
 * and prints every write as "recv HEX". For features whose answers come
 * from another thread (bridge, tunnel), the Go test reads the lines. */
static void scenarioChat(const char *dll, const char *name, int nmsgs, char **msgs)
{
	HMODULE h = load(dll);
	if (!h)
		return;
	IWTSPlugin *p = getInstance(h, "chat");
	if (!p)
		return;
	Manager m;
	Channel c;
	managerInit(&m);
	channelInit(&c);
	c.print = TRUE;
	c.wrote = CreateEventA(NULL, FALSE, FALSE, NULL);
	CHECK(IWTSPlugin_Initialize(p, &m.iface) == S_OK && IWTSPlugin_Connected(p) == S_OK, "chat: Initialize, Connected");
	IWTSListenerCallback *l = listenerFor(&m, name);
	CHECK(l != NULL, "chat: a listener for %s (%d listeners)", name, m.n);
	static BYTE buf[65536];
	if (l && openChannel(l, &c, "chat")) {
		for (int i = 0; i < nmsgs; i++) {
			int n = unhex(msgs[i], buf, sizeof buf);
			CHECK(n >= 0, "chat: message %d is hex", i + 1);
			if (n < 0)
				break;
			EnterCriticalSection(&c.cs);
			LONG before = c.writes;
			LeaveCriticalSection(&c.cs);
			HRESULT hr = IWTSVirtualChannelCallback_OnDataReceived(c.cb, (ULONG)n, buf);
			CHECK(hr == S_OK, "chat: message %d delivered (hr 0x%08lx)", i + 1, hr);
			DWORD deadline = GetTickCount() + 20000;
			for (;;) {
				EnterCriticalSection(&c.cs);
				LONG now = c.writes;
				LeaveCriticalSection(&c.cs);
				if (now > before || (LONG)(deadline - GetTickCount()) <= 0)
					break;
				WaitForSingleObject(c.wrote, deadline - GetTickCount());
			}
			EnterCriticalSection(&c.cs);
			CHECK(c.writes > before, "chat: the plugin answered message %d", i + 1);
			LeaveCriticalSection(&c.cs);
		}
		closeChannel(&c, "chat");
	}
	CHECK(IWTSPlugin_Terminated(p) == S_OK, "chat: Terminated");
	managerDone(&m, "chat");
	IWTSPlugin_Release(p);
	FreeLibrary(h);
}

/* ---- two Go DLLs in one process ---------------------------------------- */

static void scenarioTwoCopies(const char *dll, const char *dll2)
{
	HMODULE a = load(dll);
	if (!a)
		return;
	IWTSPlugin *p = getInstance(a, "first copy");
	HMODULE b = load(dll2);
	if (!b)
		return;
	CHECK(a != b, "two modules (two Go runtimes)");
	GetInstanceFn gi = (GetInstanceFn)(void *)GetProcAddress(b, "VirtualChannelGetInstance");
	GetClassObjectFn gco = (GetClassObjectFn)(void *)GetProcAddress(b, "DllGetClassObject");
	CanUnloadFn can = (CanUnloadFn)(void *)GetProcAddress(b, "DllCanUnloadNow");
	ULONG n = 9;
	HRESULT hr = gi(&iidPlugin, &n, NULL);
	CHECK(hr == HR_ALREADY_EXISTS && n == 0, "second copy refuses: HRESULT_FROM_WIN32(ERROR_ALREADY_EXISTS), 0 plugins (hr 0x%08lx, %lu)", hr, n);
	void *pv = (void *)1;
	hr = gco(&clsidPlugin, &iidClassFactory, &pv);
	CHECK(hr == HR_ALREADY_EXISTS && pv == NULL, "second copy's DllGetClassObject refuses too (hr 0x%08lx)", hr);
	CHECK(can() == S_FALSE, "second copy's runtime answers (DllCanUnloadNow S_FALSE)");
	if (p)
		drive(p, "first copy, with the second loaded");
	FreeLibrary(b);
	FreeLibrary(a);
	CHECK(GetModuleHandleA(dll) && GetModuleHandleA(dll2), "both still loaded (pinned)");
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: dvchost getinstance|classobject|badinput|threads|panic|twocopies DLL [DLL2]\n       dvchost chat DLL CHANNEL HEX...\n");
		return 100;
	}
	const char *s = argv[1], *dll = argv[2];
	if (!strcmp(s, "getinstance"))
		scenarioGetInstance(dll);
	else if (!strcmp(s, "classobject"))
		scenarioClassObject(dll);
	else if (!strcmp(s, "badinput"))
		scenarioBadInput(dll);
	else if (!strcmp(s, "threads"))
		scenarioThreads(dll);
	else if (!strcmp(s, "panic"))
		scenarioPanic(dll);
	else if (!strcmp(s, "twocopies") && argc > 3)
		scenarioTwoCopies(dll, argv[3]);
	else if (!strcmp(s, "chat") && argc > 3)
		scenarioChat(dll, argv[3], argc - 4, argv + 4);
	else {
		fprintf(stderr, "dvchost: unknown scenario %s\n", s);
		return 100;
	}
	printf("%s: %d failure(s)\n", s, failures);
	return failures;
}
