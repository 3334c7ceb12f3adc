package com

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/simple"
)

// These drive InProc the way a host in the process does (no COM runtime):
// they need no registry and no Wine fakes, so they run wherever the
// package's Windows tests run.

func getInstance(ip *InProc, riid *GUID, n *uint32, arr *uintptr) hresult.HRESULT {
	return ip.GetInstance(uintptr(unsafe.Pointer(riid)), uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(arr)))
}

// VirtualChannelGetInstance's protocol: the count with a NULL array, then
// up to *pNumObjs instances, each with one reference; anything but
// IID_IWTSPlugin refused.
func TestInProcGetInstance(t *testing.T) {
	ip := NewInProc(&Plugin{Logger: quiet})
	if h := ip.GetInstance(0, 0, 0); h != hresult.E_POINTER {
		t.Errorf("all NULL: %v, want E_POINTER", h)
	}
	n := uint32(7)
	if h := getInstance(ip, &IID_IWTSPlugin, nil, nil); h != hresult.E_POINTER {
		t.Errorf("NULL pNumObjs: %v, want E_POINTER", h)
	}
	if h := ip.GetInstance(0, uintptr(unsafe.Pointer(&n)), 0); h != hresult.E_POINTER || n != 7 {
		t.Errorf("NULL riid: %v (count %d), want E_POINTER and the count untouched", h, n)
	}
	if h := getInstance(ip, &IID_IWTSVirtualChannel, &n, nil); h != hresult.E_NOINTERFACE || n != 7 {
		t.Errorf("IID_IWTSVirtualChannel: %v (count %d), want E_NOINTERFACE", h, n)
	}
	if h := getInstance(ip, &IID_IWTSPlugin, &n, nil); h != hresult.S_OK || n != 1 {
		t.Fatalf("count query: %v, count %d, want S_OK, 1", h, n)
	}
	arr := [2]uintptr{0, 0xDEAD}
	n = 2
	if h := getInstance(ip, &IID_IWTSPlugin, &n, &arr[0]); h != hresult.S_OK || n != 1 || arr[0] == 0 || arr[1] != 0xDEAD {
		t.Fatalf("fill 2 slots: %v, count %d, array %#x", h, n, arr)
	}
	if o := lookup(arr[0]); o == nil || refs(o) != 1 {
		t.Fatal("the instance is not a plugin object with one reference")
	}
	n = 0
	if h := getInstance(ip, &IID_IWTSPlugin, &n, &arr[1]); h != hresult.S_OK || n != 0 || arr[1] != 0xDEAD {
		t.Errorf("0 slots: %v, count %d, slot %#x: want nothing filled", h, n, arr[1])
	}
	if ip.Live() != 1 {
		t.Errorf("live objects %d, want the 1 plugin", ip.Live())
	}
	comRelease(arr[0])
	if ip.Live() != 0 {
		t.Errorf("live objects %d after the release", ip.Live())
	}
}

func TestInProcClassObject(t *testing.T) {
	clsid, _ := ParseGUID("{5028102C-CE40-4D47-9CF9-0DD4E0996DFC}")
	ip := NewInProc(&Plugin{Logger: quiet})
	var f uintptr = 1
	if h := ip.GetClassObject(clsid, uintptr(unsafe.Pointer(&IID_IWTSPlugin)), uintptr(unsafe.Pointer(&IID_IClassFactory)), uintptr(unsafe.Pointer(&f))); h != ClassENotAvailable || f != 0 {
		t.Errorf("another CLSID: %v, %#x", h, f)
	}
	if h := ip.GetClassObject(clsid, uintptr(unsafe.Pointer(&clsid)), uintptr(unsafe.Pointer(&IID_IClassFactory)), 0); h != hresult.E_POINTER {
		t.Errorf("NULL ppv: %v", h)
	}
	if h := ip.GetClassObject(clsid, uintptr(unsafe.Pointer(&clsid)), uintptr(unsafe.Pointer(&IID_IWTSPlugin)), uintptr(unsafe.Pointer(&f))); h != hresult.E_NOINTERFACE || f != 0 {
		t.Errorf("class object as IWTSPlugin: %v", h)
	}
	if h := ip.GetClassObject(clsid, uintptr(unsafe.Pointer(&clsid)), uintptr(unsafe.Pointer(&IID_IClassFactory)), uintptr(unsafe.Pointer(&f))); h != hresult.S_OK || f == 0 {
		t.Fatalf("class object: %v", h)
	}
	var p uintptr
	const slotCreateInstance = 3
	if h := hr(comCall(f, slotCreateInstance, 0, uintptr(unsafe.Pointer(&IID_IWTSPlugin)), uintptr(unsafe.Pointer(&p)))); h != hresult.S_OK || pluginOf(p) == nil {
		t.Fatalf("CreateInstance: %v", h)
	}
	comRelease(f)
	comRelease(p)
	if ip.Live() != 0 {
		t.Errorf("live objects %d after the releases", ip.Live())
	}
}

// connect drives Initialize and one OnNewChannelConnection on the first
// listener, as a host does, and returns the channel's callback.
func connect(t *testing.T, plugin uintptr) (*fakeMgr, *object, *fakeChannel, uintptr) {
	t.Helper()
	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	t.Cleanup(func() { mgr.release() })
	if h := hr(comCall(plugin, slotInitialize, mgr.mem)); h.Failed() {
		t.Fatalf("Initialize: %v", h)
	}
	chState := &fakeChannel{}
	ch := newObject(fakeChannelVtbl, chState, nil, IID_IWTSVirtualChannel)
	var accept int32
	var cb uintptr
	if h := hr(comCall(mgrState.callbacks[0], slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))); h.Failed() || accept != 1 {
		t.Fatalf("OnNewChannelConnection: %v, accept %d", h, accept)
	}
	chState.mu.Lock()
	chState.callback = cb
	chState.mu.Unlock()
	return mgrState, ch, chState, cb
}

func finishPlugin(t *testing.T, ip *InProc, plugin uintptr, mgrState *fakeMgr, ch *object, cb uintptr) {
	t.Helper()
	if cb != 0 {
		comRelease(cb)
	}
	if h := hr(comCall(plugin, slotTerminated)); h.Failed() {
		t.Errorf("Terminated: %v", h)
	}
	if h := hr(comCall(plugin, slotTerminated)); h.Failed() {
		t.Errorf("Terminated again: %v", h)
	}
	for _, l := range mgrState.listeners {
		l.release()
	}
	for _, c := range mgrState.callbacks {
		comRelease(c)
	}
	comRelease(plugin)
	if refs(ch) != 1 {
		t.Errorf("the plugin still holds %d channel references", refs(ch)-1)
	}
	ch.release()
	if ip.Live() != 0 {
		t.Errorf("%d plugin objects alive at the end", ip.Live())
	}
}

// Simple pings from several goroutines at once, each on its own channel
// of one plugin: the calls arrive on whatever thread, and every echo comes
// back through IWTSVirtualChannel::Write byte for byte.
func TestInProcEchoFromManyThreads(t *testing.T) {
	p := &Plugin{Logger: quiet}
	if err := p.Listen(simple.ChannelName, &simple.Echoer{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	ip := NewInProc(p)
	var n uint32 = 1
	var plugin uintptr
	if h := getInstance(ip, &IID_IWTSPlugin, &n, &plugin); h.Failed() {
		t.Fatal(h)
	}
	mgrState, ch0, _, cb0 := connect(t, plugin)
	var frames [][]byte
	for seq := uint32(1); seq <= 20; seq++ {
		frames = append(frames, simpleFrame(t, seq))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		chState := &fakeChannel{}
		ch := newObject(fakeChannelVtbl, chState, nil, IID_IWTSVirtualChannel)
		var accept int32
		var cb uintptr
		comCall(mgrState.callbacks[0], slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))
		chState.callback = cb
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer ch.release()
			for _, f := range frames {
				if h := hr(comCall(cb, slotOnDataReceived, uintptr(len(f)), uintptr(unsafe.Pointer(&f[0])))); h.Failed() {
					errs <- hresult.New("OnDataReceived", h)
					return
				}
				chState.mu.Lock()
				last := chState.writes[len(chState.writes)-1]
				chState.mu.Unlock()
				if !bytes.Equal(last, f) {
					errs <- errors.New("an echo differs from its ping")
					return
				}
			}
			comCall(cb, slotOnClose)
			comRelease(cb)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	finishPlugin(t, ip, plugin, mgrState, ch0, cb0)
}

// panicky's handler panics on "boom" and echoes anything else.
type panicky struct {
	mu     sync.Mutex
	closed []error
	accept bool // panic in Accept instead
}

func (p *panicky) Accept(ch dvc.Channel) (dvc.Handler, error) {
	if p.accept {
		panic("Accept exploded")
	}
	return &panickyHandler{p: p, ch: ch}, nil
}

type panickyHandler struct {
	p  *panicky
	ch dvc.Channel
}

func (h *panickyHandler) Received(msg []byte) {
	if string(msg) == "boom" {
		panic("Received exploded")
	}
}

func (h *panickyHandler) Closed(err error) {
	h.p.mu.Lock()
	h.p.closed = append(h.p.closed, err)
	h.p.mu.Unlock()
}

// A panic in Received: E_FAIL to the host, the channel closed with
// IWTSVirtualChannel::Close, Closed told why, later data ignored, and the
// process (this test) still running.
func TestInProcPanicInReceived(t *testing.T) {
	h := &panicky{}
	p := &Plugin{Logger: quiet}
	if err := p.Listen("boom", h); err != nil {
		t.Fatal(err)
	}
	ip := NewInProc(p)
	var n uint32 = 1
	var plugin uintptr
	getInstance(ip, &IID_IWTSPlugin, &n, &plugin)
	mgrState, ch, chState, cb := connect(t, plugin)
	ok := []byte("fine")
	if r := hr(comCall(cb, slotOnDataReceived, uintptr(len(ok)), uintptr(unsafe.Pointer(&ok[0])))); r != hresult.S_OK {
		t.Fatalf("a normal message: %v", r)
	}
	boom := []byte("boom")
	if r := hr(comCall(cb, slotOnDataReceived, uintptr(len(boom)), uintptr(unsafe.Pointer(&boom[0])))); r != hresult.E_FAIL {
		t.Errorf("the panicking message: %v, want E_FAIL", r)
	}
	if chState.closes != 1 {
		t.Errorf("IWTSVirtualChannel::Close called %d times, want 1", chState.closes)
	}
	if len(h.closed) != 1 || h.closed[0] == nil || !strings.Contains(h.closed[0].Error(), "Received exploded") {
		t.Errorf("Closed calls: %v, want one with the panic", h.closed)
	}
	if r := hr(comCall(cb, slotOnDataReceived, uintptr(len(boom)), uintptr(unsafe.Pointer(&boom[0])))); r != hresult.S_OK {
		t.Errorf("data after the close: %v, want S_OK (ignored)", r)
	}
	if len(h.closed) != 1 {
		t.Errorf("Closed called %d times", len(h.closed))
	}
	finishPlugin(t, ip, plugin, mgrState, ch, cb)
}

// A panic in Accept: E_FAIL and *pbAccept = FALSE, the channel not kept.
func TestInProcPanicInAccept(t *testing.T) {
	p := &Plugin{Logger: quiet}
	p.Listen("boom", &panicky{accept: true})
	ip := NewInProc(p)
	var n uint32 = 1
	var plugin uintptr
	getInstance(ip, &IID_IWTSPlugin, &n, &plugin)
	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	comCall(plugin, slotInitialize, mgr.mem)
	ch := newObject(fakeChannelVtbl, &fakeChannel{}, nil, IID_IWTSVirtualChannel)
	accept := int32(1)
	cb := uintptr(1)
	if r := hr(comCall(mgrState.callbacks[0], slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))); r != hresult.E_FAIL || accept != 0 || cb != 0 {
		t.Errorf("OnNewChannelConnection: %v, accept %d, callback %#x", r, accept, cb)
	}
	finishPlugin(t, ip, plugin, mgrState, ch, 0)
}
