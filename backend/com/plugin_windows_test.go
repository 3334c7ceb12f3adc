package com

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/simple"
)

// Vtable slots of the plugin's interfaces, as a client calls them.
const (
	slotInitialize             = 3 // IWTSPlugin
	slotConnected              = 4
	slotDisconnected           = 5
	slotTerminated             = 6
	slotOnNewChannelConnection = 3 // IWTSListenerCallback
	slotOnDataReceived         = 3 // IWTSVirtualChannelCallback
	slotOnClose                = 4
)

// The fakes play mstsc's side: an IWTSVirtualChannelManager, the
// IWTSListener it returns and an IWTSVirtualChannel, made with the same
// object machinery (they are COM objects like any other to the plugin).
type fakeMgr struct {
	mu        sync.Mutex
	names     []string
	flags     []uint32
	callbacks []uintptr // IWTSListenerCallback*, AddRef'd
	listeners []*object
}

type fakeListener struct{}

type fakeChannel struct {
	mu       sync.Mutex
	writes   [][]byte
	closes   int
	callback uintptr // the plugin's IWTSVirtualChannelCallback, to answer Close with OnClose
}

var (
	fakeMgrVtbl = newVtable(syscall.NewCallback(func(this, name, flags, cb, ppListener uintptr) uintptr {
		m := lookup(this).impl.(*fakeMgr)
		var n []byte
		for p := name; *(*byte)(ptr(p)) != 0; p++ {
			n = append(n, *(*byte)(ptr(p)))
		}
		comAddRef(cb)
		l := newObject(fakeListenerVtbl, &fakeListener{}, nil, IID_IWTSListener)
		m.mu.Lock()
		m.names = append(m.names, string(n))
		m.flags = append(m.flags, uint32(flags))
		m.callbacks = append(m.callbacks, cb)
		m.listeners = append(m.listeners, l)
		m.mu.Unlock()
		if ppListener != 0 {
			l.addRef()
			*(*uintptr)(ptr(ppListener)) = l.mem
		}
		return 0
	}))
	fakeListenerVtbl = newVtable(syscall.NewCallback(func(this, pp uintptr) uintptr {
		return uintptr(hresult.E_NOTIMPL) // GetConfiguration
	}))
	fakeChannelVtbl = newVtable(
		syscall.NewCallback(func(this, size, buf, reserved uintptr) uintptr { // Write
			c := lookup(this).impl.(*fakeChannel)
			b := bytes.Clone(unsafe.Slice((*byte)(ptr(buf)), int(uint32(size))))
			c.mu.Lock()
			c.writes = append(c.writes, b)
			c.mu.Unlock()
			return 0
		}),
		syscall.NewCallback(func(this uintptr) uintptr { // Close: mstsc answers with OnClose
			c := lookup(this).impl.(*fakeChannel)
			c.mu.Lock()
			c.closes++
			cb := c.callback
			c.mu.Unlock()
			if cb != 0 {
				comCall(cb, slotOnClose)
			}
			return 0
		}),
	)
)

func refs(o *object) int32 { return o.refs.Load() }

var quiet = slog.New(slog.DiscardHandler)

// comEnv puts the test's thread in the MTA and registers a server for p.
func comEnv(t *testing.T, p *Plugin) (*Server, GUID) {
	t.Helper()
	needWine(t)
	runtime.LockOSThread()
	t.Cleanup(runtime.UnlockOSThread)
	if h := coInitializeEx(0); h.Failed() { // COINIT_MULTITHREADED = 0
		t.Fatalf("CoInitializeEx: %v", h)
	}
	t.Cleanup(coUninitialize)
	const clsid = "{0F5E7A2C-9C1B-4E55-8E0A-7D3C1B2A9F03}"
	s, err := NewServer(clsid, p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	g, _ := ParseGUID(clsid)
	return s, g
}

// createPlugin asks COM for the plugin the way mstsc does.
func createPlugin(t *testing.T, clsid GUID) uintptr {
	t.Helper()
	p, h := coCreateInstance(&clsid, clsctxLocalServer, &IID_IWTSPlugin)
	if h.Failed() || p == 0 {
		t.Fatalf("CoCreateInstance(CLSCTX_LOCAL_SERVER, IID_IWTSPlugin): %v", h)
	}
	if o := lookup(p); o == nil {
		t.Fatal("CoCreateInstance did not return the Go object (a proxy?)")
	} else if _, ok := o.impl.(*pluginInstance); !ok {
		t.Fatalf("CoCreateInstance returned a %T", o.impl)
	}
	return p
}

func simpleFrame(t *testing.T, seq uint32) []byte {
	t.Helper()
	return simple.Frame{Seq: seq, UTCTicks: 133_000_000_000_000_000 + int64(seq), Payload: simple.Pattern(5120)}.Append(nil)
}

// The plugin through the real COM runtime: CoRegisterClassObject +
// CoCreateInstance, then a fake channel manager drives Initialize ->
// CreateListener -> OnNewChannelConnection -> OnDataReceived, and every
// Simple ping comes back through IWTSVirtualChannel::Write byte for byte.
func TestPluginEchoesPingsThroughCOM(t *testing.T) {
	p := &Plugin{Logger: quiet}
	echo := &simple.Echoer{Logger: quiet}
	if err := p.Listen(simple.ChannelName, echo); err != nil {
		t.Fatal(err)
	}
	srv, clsid := comEnv(t, p)
	plugin := createPlugin(t, clsid)

	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	if h := hr(comCall(plugin, slotInitialize, mgr.mem)); h.Failed() {
		t.Fatalf("Initialize: %v", h)
	}
	if h := hr(comCall(plugin, slotConnected)); h.Failed() {
		t.Fatalf("Connected: %v", h)
	}
	if len(mgrState.names) != 1 || mgrState.names[0] != simple.ChannelName || mgrState.flags[0] != 0 {
		t.Fatalf("CreateListener calls: %q flags %v", mgrState.names, mgrState.flags)
	}
	if refs(mgr) != 1 {
		t.Errorf("the plugin kept %d references to the channel manager", refs(mgr)-1)
	}
	lcb := mgrState.callbacks[0]

	chState := &fakeChannel{}
	ch := newObject(fakeChannelVtbl, chState, nil, IID_IWTSVirtualChannel)
	defer ch.release()
	var accept int32
	var cb uintptr
	if h := hr(comCall(lcb, slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))); h.Failed() {
		t.Fatalf("OnNewChannelConnection: %v", h)
	}
	if accept != 1 || cb == 0 {
		t.Fatalf("OnNewChannelConnection: accept=%d callback=%#x", accept, cb)
	}
	chState.callback = cb
	if refs(ch) != 2 {
		t.Errorf("channel references = %d, want 2 (ours and the plugin's)", refs(ch))
	}

	var sent [][]byte
	for seq := uint32(1); seq <= 5; seq++ {
		f := simpleFrame(t, seq)
		sent = append(sent, f)
		if h := hr(comCall(cb, slotOnDataReceived, uintptr(len(f)), uintptr(unsafe.Pointer(&f[0])))); h.Failed() {
			t.Fatalf("OnDataReceived #%d: %v", seq, h)
		}
	}
	if len(chState.writes) != 5 {
		t.Fatalf("%d writes, want 5 echoes", len(chState.writes))
	}
	for i := range sent {
		if len(sent[i]) != 5140 || !bytes.Equal(chState.writes[i], sent[i]) {
			t.Errorf("echo %d differs from the ping (%d vs %d bytes)", i+1, len(chState.writes[i]), len(sent[i]))
		}
	}
	if c := echo.Counts(); c.Channels != 1 || c.Messages != 5 || c.Bytes != 5*5140 {
		t.Errorf("echoer counts %+v", c)
	}

	// The server closes the channel; mstsc then releases the callback.
	if h := hr(comCall(cb, slotOnClose)); h.Failed() {
		t.Fatalf("OnClose: %v", h)
	}
	if refs(ch) != 1 {
		t.Errorf("after OnClose the plugin still holds %d channel references", refs(ch)-1)
	}
	comRelease(cb)

	if h := hr(comCall(plugin, slotDisconnected, 0)); h.Failed() {
		t.Fatalf("Disconnected: %v", h)
	}
	if h := hr(comCall(plugin, slotTerminated)); h.Failed() {
		t.Fatalf("Terminated: %v", h)
	}
	for _, l := range mgrState.listeners {
		if refs(l) != 1 {
			t.Errorf("listener references after Terminated = %d, want 1 (the fake's own)", refs(l))
		}
		l.release()
	}
	comRelease(lcb) // the fake manager's reference
	comRelease(plugin)

	// Terminated and released: the server is done.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Wait(ctx, 0); err != nil {
		t.Fatalf("server did not see the end: %v", err)
	}
	if err := srv.Close(); err != nil { // revokes and frees the class factory
		t.Fatal(err)
	}
	if n := liveObjects(); n != 2 { // the fake manager and channel, released by the defers
		t.Errorf("%d objects alive, want only the 2 fakes", n)
	}
}

// closer closes its channel from inside Received: the fake answers Close
// with OnClose on the spot, which must neither deadlock nor report Closed
// before Received has returned.
type closer struct {
	mu     sync.Mutex
	events []string
}

func (c *closer) Accept(ch dvc.Channel) (dvc.Handler, error) {
	return &closerHandler{c: c, ch: ch}, nil
}

type closerHandler struct {
	c  *closer
	ch dvc.Channel
}

func (h *closerHandler) Received(msg []byte) {
	h.c.add("received")
	if err := h.ch.Close(); err != nil {
		h.c.add("close error " + err.Error())
	}
	if err := h.ch.Write(context.Background(), msg); !errors.Is(err, dvc.ErrClosed) {
		h.c.add("write after close: " + errString(err))
	}
	h.c.add("received done")
}

func (h *closerHandler) Closed(err error) { h.c.add("closed " + errString(err)) }

func (c *closer) add(s string) {
	c.mu.Lock()
	c.events = append(c.events, s)
	c.mu.Unlock()
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestCloseFromInsideReceived(t *testing.T) {
	p := &Plugin{Logger: quiet}
	c := &closer{}
	if err := p.Listen("closer", c); err != nil {
		t.Fatal(err)
	}
	srv, clsid := comEnv(t, p)
	plugin := createPlugin(t, clsid)
	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	if h := hr(comCall(plugin, slotInitialize, mgr.mem)); h.Failed() {
		t.Fatal(h)
	}
	chState := &fakeChannel{}
	ch := newObject(fakeChannelVtbl, chState, nil, IID_IWTSVirtualChannel)
	defer ch.release()
	var accept int32
	var cb uintptr
	comCall(mgrState.callbacks[0], slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))
	if accept != 1 {
		t.Fatal("not accepted")
	}
	chState.callback = cb
	msg := []byte("hello")
	comCall(cb, slotOnDataReceived, uintptr(len(msg)), uintptr(unsafe.Pointer(&msg[0])))
	want := []string{"received", "received done", "closed <nil>"}
	if len(c.events) != len(want) || c.events[0] != want[0] || c.events[1] != want[1] || c.events[2] != want[2] {
		t.Fatalf("events %q, want %q", c.events, want)
	}
	if chState.closes != 1 || refs(ch) != 1 {
		t.Errorf("Close calls %d, channel references %d (want 1, 1)", chState.closes, refs(ch))
	}
	// Late traffic after the close is ignored.
	comCall(cb, slotOnDataReceived, uintptr(len(msg)), uintptr(unsafe.Pointer(&msg[0])))
	comCall(cb, slotOnClose)
	if len(c.events) != 3 {
		t.Errorf("events after the close: %q", c.events[3:])
	}
	comRelease(cb)
	comCall(plugin, slotTerminated)
	for _, l := range mgrState.listeners {
		l.release()
	}
	comRelease(mgrState.callbacks[0])
	comRelease(plugin)
	if err := srv.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestRefusedChannel(t *testing.T) {
	p := &Plugin{Logger: quiet}
	refuse := dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, errors.New("no thanks") })
	if err := p.Listen("refuse", refuse); err != nil {
		t.Fatal(err)
	}
	srv, clsid := comEnv(t, p)
	plugin := createPlugin(t, clsid)
	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	comCall(plugin, slotInitialize, mgr.mem)
	ch := newObject(fakeChannelVtbl, &fakeChannel{}, nil, IID_IWTSVirtualChannel)
	defer ch.release()
	accept := int32(7)
	cb := uintptr(1)
	if h := hr(comCall(mgrState.callbacks[0], slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))); h != hresult.S_OK {
		t.Fatalf("OnNewChannelConnection: %v", h)
	}
	if accept != 0 || cb != 0 || refs(ch) != 1 {
		t.Fatalf("refusal: accept=%d callback=%#x channel references=%d", accept, cb, refs(ch))
	}
	comCall(plugin, slotTerminated)
	for _, l := range mgrState.listeners {
		l.release()
	}
	comRelease(mgrState.callbacks[0])
	comRelease(plugin)
	if err := srv.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

// A client that dies without Terminated: COM runs the references down,
// the plugin cleans up all the same and the server ends.
func TestReleaseWithoutTerminated(t *testing.T) {
	p := &Plugin{Logger: quiet}
	echo := &simple.Echoer{Logger: quiet}
	p.Listen(simple.ChannelName, echo)
	srv, clsid := comEnv(t, p)
	plugin := createPlugin(t, clsid)
	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	comCall(plugin, slotInitialize, mgr.mem)
	ch := newObject(fakeChannelVtbl, &fakeChannel{}, nil, IID_IWTSVirtualChannel)
	defer ch.release()
	var accept int32
	var cb uintptr
	comCall(mgrState.callbacks[0], slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))
	comRelease(cb)
	comRelease(plugin)
	for _, l := range mgrState.listeners {
		l.release()
	}
	comRelease(mgrState.callbacks[0])
	if refs(ch) != 1 {
		t.Errorf("channel references %d after the rundown, want 1", refs(ch))
	}
	if err := srv.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}

func TestWaitTimesOutWithoutActivation(t *testing.T) {
	srv, _ := comEnv(t, &Plugin{Logger: quiet})
	if err := srv.Wait(context.Background(), time.Millisecond); !errors.Is(err, ErrNotActivated) {
		t.Fatalf("Wait = %v, want ErrNotActivated", err)
	}
}

func TestListenValidates(t *testing.T) {
	p := &Plugin{Logger: quiet}
	l := dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil })
	if err := p.Listen("a", l); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "", "b\x00", "é"} {
		if err := p.Listen(n, l); err == nil {
			t.Errorf("Listen(%q) accepted", n)
		}
	}
}

// What COM itself asks of the objects: unknown interfaces refused, no
// aggregation, the reference handed out by CoCreateInstance the only one.
func TestCOMContract(t *testing.T) {
	p := &Plugin{Logger: quiet}
	p.Listen("x", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, errors.New("no") }))
	srv, clsid := comEnv(t, p)
	if _, h := coCreateInstance(&clsid, clsctxLocalServer, &IID_IWTSVirtualChannel); h != hresult.E_NOINTERFACE {
		t.Errorf("CoCreateInstance for an interface the plugin lacks: %v, want E_NOINTERFACE", h)
	}
	plugin := createPlugin(t, clsid)
	if n := refs(lookup(plugin)); n != 1 {
		t.Errorf("plugin references after CoCreateInstance = %d, want 1", n)
	}
	var q uintptr
	if h := hr(comCall(plugin, methodQueryInterface, uintptr(unsafe.Pointer(&IID_IWTSListenerCallback)), uintptr(unsafe.Pointer(&q)))); h != hresult.E_NOINTERFACE || q != 0 {
		t.Errorf("QueryInterface(IWTSListenerCallback) = %v, %#x", h, q)
	}
	if h := hr(comCall(plugin, methodQueryInterface, uintptr(unsafe.Pointer(&IID_IUnknown)), uintptr(unsafe.Pointer(&q)))); h != hresult.S_OK || q != plugin {
		t.Errorf("QueryInterface(IUnknown) = %v, %#x", h, q)
	}
	comRelease(q)
	if h := hr(comCall(plugin, methodQueryInterface, uintptr(unsafe.Pointer(&IID_IUnknown)), 0)); h != hresult.E_POINTER {
		t.Errorf("QueryInterface with a NULL out pointer = %v", h)
	}
	// Initialize twice is a client bug, refused.
	mgr := newObject(fakeMgrVtbl, &fakeMgr{}, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	if h := hr(comCall(plugin, slotInitialize, mgr.mem)); h.Failed() {
		t.Fatal(h)
	}
	if h := hr(comCall(plugin, slotInitialize, mgr.mem)); h != hresult.E_UNEXPECTED {
		t.Errorf("second Initialize = %v, want E_UNEXPECTED", h)
	}
	for _, l := range mgr.impl.(*fakeMgr).listeners {
		l.release()
	}
	comRelease(mgr.impl.(*fakeMgr).callbacks[0])
	comRelease(plugin) // without Terminated: the rundown path
	if err := srv.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}
