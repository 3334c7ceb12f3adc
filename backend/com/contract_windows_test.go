package com

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// The Plugin runs the channel contract under Wine, as the client side
// (the Registrar), against rdc: a Go stand-in for what drives a plugin in
// the RDP client, the DVC manager of mstsc and the server behind it (the
// Opener). mstsc itself cannot run here; the plugin is the real package
// code, reached the two ways a client reaches it: COM activation of the
// LocalServer (CoRegisterClassObject, then CoCreateInstance, as for
// rdp-simple-plugin-client) and InProc (VirtualChannelGetInstance, as for
// rdpdvc-plugin.dll). The stand-in keeps to what the interfaces
// (tsvirtualchannels.h) say and what the package doc and
// plugin_windows.go assume of mstsc:
//
//   - one channel thread: every call into the plugin (Initialize,
//     OnNewChannelConnection, OnDataReceived, OnClose, Terminated) is
//     made on it, in order, in the MTA for the LocalServer; a server
//     write waits for room in its bounded queue, no longer than its
//     context, while the thread is held up in a Handler;
//   - the connection starts (IWTSPlugin::Initialize, Connected) at the
//     server's first Open, after the listeners the program registered;
//   - whole messages each way; IWTSVirtualChannel::Write copies and
//     queues for the server, from any thread, at any time after the
//     channel was handed to the plugin;
//   - IWTSVirtualChannel::Close sends DYNVC_CLOSE and calls OnClose on
//     the channel thread; a server's close calls OnClose the same way;
//     the callback is released after OnClose;
//   - a refusal (*pbAccept = FALSE, or a failed HRESULT) and a name with
//     no listener go to the server as STATUS_UNSUCCESSFUL;
//   - a dropped connection is Disconnected, then Terminated with the
//     channels still open, then the callbacks released.
//
// The exceptions are COM's, each checked in TestContractExceptions:
var comExceptions = []dvctest.Option{
	dvctest.Except(dvctest.NoRefusalStatus, "OnNewChannelConnection refuses with *pbAccept = FALSE, a BOOL: "+
		"the listener's HRESULT cannot reach the client's DVC manager, which picks the status itself"),
	dvctest.Except(dvctest.NoLateListen, "IWTSPlugin::Initialize creates a listener (CreateListener) for every name registered by then, "+
		"once per connection; a later Listen is not served on that connection"),
}

func TestContractLocalServer(t *testing.T) {
	needWine(t) // CoRegisterClassObject and CoCreateInstance
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		return startRDC(t, &Plugin{Logger: quiet}, false).pair(t)
	}, comExceptions...)
}

func TestContractInProc(t *testing.T) {
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		return startRDC(t, &Plugin{Logger: quiet}, true).pair(t)
	}, comExceptions...)
}

// The exceptions are what the COM interfaces allow, not a way to hide a
// bug: each is checked here, on the plugin's side of the interface.
func TestContractExceptions(t *testing.T) {
	// NoRefusalStatus: a listener's error with an HRESULT of its own
	// comes out of OnNewChannelConnection as S_OK and *pbAccept = FALSE,
	// with no callback: nothing of the HRESULT is left for the client.
	t.Run("NoRefusalStatus", func(t *testing.T) {
		p := &Plugin{Logger: quiet}
		if err := p.Listen("deny", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
			return nil, refusal{hresult.E_ACCESSDENIED}
		})); err != nil {
			t.Fatal(err)
		}
		d := startRDC(t, p, true)
		t.Cleanup(func() { d.stop(t) })
		var oe *dvc.OpenError
		if _, err := d.Open(context.Background(), "deny"); !errors.As(err, &oe) {
			t.Fatalf("Open = %v, want a refusal", err)
		}
		d.mu.Lock()
		got := d.lastAnswer
		d.mu.Unlock()
		if got != (answer{hr: hresult.S_OK}) {
			t.Fatalf("OnNewChannelConnection answered %+v, want S_OK, *pbAccept = FALSE, no callback", got)
		}
	})

	// NoLateListen: a name registered after Initialize gets no
	// CreateListener on that connection, so its Open is refused as a
	// name with no listener; the next connection (a new plugin instance)
	// serves it.
	t.Run("NoLateListen", func(t *testing.T) {
		p := &Plugin{Logger: quiet}
		echo := func(ch dvc.Channel) (dvc.Handler, error) { return echoHandler{ch}, nil }
		if err := p.Listen("early", dvc.ListenerFunc(echo)); err != nil {
			t.Fatal(err)
		}
		d := startRDC(t, p, true)
		t.Cleanup(func() { d.stop(t) })
		ctx := context.Background()
		c, err := d.Open(ctx, "early")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := p.Listen("late", dvc.ListenerFunc(echo)); err != nil {
			t.Fatalf("Listen after Initialize = %v; it succeeds, for the next connection", err)
		}
		var oe *dvc.OpenError
		if _, err := d.Open(ctx, "late"); !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
			t.Fatalf("Open of the late name on the same connection = %v, want STATUS_UNSUCCESSFUL (no listener)", err)
		}
		if n := d.created(); fmt.Sprint(n) != "[early]" {
			t.Fatalf("CreateListener calls %q, want only the name registered before Initialize", n)
		}
		d2 := startRDC(t, p, true)
		t.Cleanup(func() { d2.stop(t) })
		c2, err := d2.Open(ctx, "late")
		if err != nil {
			t.Fatalf("Open of the late name on a new connection: %v", err)
		}
		defer c2.Close()
		if err := c2.Write(ctx, []byte("late")); err != nil {
			t.Fatal(err)
		}
		if m, err := c2.Read(ctx); err != nil || string(m) != "late" {
			t.Fatalf("echo on the new connection: %q, %v", m, err)
		}
	})
}

type refusal struct{ h hresult.HRESULT }

func (e refusal) Error() string            { return "refused" }
func (e refusal) HRESULT() hresult.HRESULT { return e.h }

type echoHandler struct{ ch dvc.Channel }

func (h echoHandler) Received(msg []byte) { _ = h.ch.Write(context.Background(), msg) }
func (echoHandler) Closed(error)          {}

// rdc is the stand-in for the RDP client's DVC manager and the server
// behind it, for one connection.
type rdc struct {
	plugin *Plugin
	inProc bool
	srv    *Server // the LocalServer, when not inProc
	ip     *InProc
	clsid  GUID

	thread *dvctest.Thread // the channel thread
	async  sync.WaitGroup  // closes waiting to be posted to the thread

	// The thread's own.
	pi        uintptr // IWTSPlugin*, the client's reference; 0 until connected
	mgr       *object // the IWTSVirtualChannelManager given to Initialize
	connected bool
	initErr   error
	all       []*rdcConn // every channel handed to the plugin

	mu         sync.Mutex
	lcbs       map[string]uintptr // IWTSListenerCallback* by name, referenced
	names      []string           // CreateListener calls, in order
	listeners  []*object          // the IWTSListeners handed out
	conns      map[*rdcConn]bool  // open channels
	lost       error
	nextID     uint32
	lastAnswer answer
}

// answer is what OnNewChannelConnection returned.
type answer struct {
	hr       hresult.HRESULT
	accept   int32
	callback bool
}

const rdcClsid = "{0F5E7A2C-9C1B-4E55-8E0A-7D3C1B2A9F04}"

func startRDC(t *testing.T, p *Plugin, inProc bool) *rdc {
	t.Helper()
	d := &rdc{plugin: p, inProc: inProc, lcbs: map[string]uintptr{}, conns: map[*rdcConn]bool{}}
	var init func() (func(), error)
	if !inProc {
		// mstsc's calls reach a LocalServer on RPC threads of the MTA.
		init = func() (func(), error) {
			if h := coInitializeEx(0); h.Failed() {
				return nil, hresult.New("CoInitializeEx", h)
			}
			return coUninitialize, nil
		}
	}
	th, err := dvctest.StartThread(16, init)
	if err != nil {
		t.Fatal(err)
	}
	d.thread = th
	if inProc {
		d.ip = NewInProc(p)
		return d
	}
	srv, err := NewServer(rdcClsid, p)
	if err != nil {
		th.Stop()
		t.Fatal(err)
	}
	d.srv = srv
	d.clsid, _ = ParseGUID(rdcClsid)
	return d
}

func (d *rdc) pair(t *testing.T) dvctest.Pair {
	return dvctest.Pair{Registrar: d.plugin, Opener: d, Kill: d.kill, Cleanup: func() { d.stop(t) }}
}

func (d *rdc) post(ctx context.Context, f func()) error { return d.thread.Post(ctx, f) }
func (d *rdc) call(ctx context.Context, f func()) error { return d.thread.Call(ctx, f) }

func (d *rdc) dead() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost
}

func (d *rdc) created() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.names...)
}

// connect starts the connection on the thread: the plugin, as mstsc gets
// it, then Initialize with the channel manager, then Connected.
func (d *rdc) connect() error {
	if d.connected {
		return d.initErr
	}
	d.connected = true
	if d.inProc {
		n := uint32(1)
		if h := d.ip.GetInstance(uintptr(unsafe.Pointer(&IID_IWTSPlugin)), uintptr(unsafe.Pointer(&n)), uintptr(unsafe.Pointer(&d.pi))); h.Failed() || n != 1 {
			d.initErr = fmt.Errorf("VirtualChannelGetInstance: %v, %d instances", h, n)
			return d.initErr
		}
	} else {
		p, h := coCreateInstance(&d.clsid, clsctxLocalServer, &IID_IWTSPlugin)
		if h.Failed() {
			d.initErr = hresult.New("CoCreateInstance", h)
			return d.initErr
		}
		d.pi = p
	}
	d.mgr = newObject(rdcMgrVtbl, d, nil, IID_IWTSVirtualChannelManager)
	if h := hr(comCall(d.pi, slotInitialize, d.mgr.mem)); h.Failed() {
		d.initErr = hresult.New("IWTSPlugin::Initialize", h)
		return d.initErr
	}
	if h := hr(comCall(d.pi, slotConnected)); h.Failed() {
		d.initErr = hresult.New("IWTSPlugin::Connected", h)
	}
	return d.initErr
}

// Open is the server's DYNVC_CREATE_REQ: the DVC manager hands the
// channel to the listener registered for the name.
func (d *rdc) Open(ctx context.Context, name string, _ ...dvc.OpenOption) (dvc.Conn, error) {
	if err := kit.CheckName(name); err != nil {
		return nil, fmt.Errorf("rdc: open %q: %w", name, err) // the server's own rule
	}
	if err := d.dead(); err != nil {
		return nil, err
	}
	type result struct {
		c   *rdcConn
		err error
	}
	res := make(chan result, 1)
	if err := d.post(ctx, func() {
		c, err := d.create(name)
		res <- result{c, err}
	}); err != nil {
		return nil, err
	}
	select {
	case r := <-res:
		if r.err != nil {
			return nil, r.err
		}
		return r.c, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (d *rdc) create(name string) (*rdcConn, error) {
	if err := d.connect(); err != nil {
		return nil, err
	}
	refused := &dvc.OpenError{Name: name, Status: hresult.StatusUnsuccessful}
	d.mu.Lock()
	lcb := d.lcbs[name]
	d.nextID++
	c := &rdcConn{d: d, name: name, id: d.nextID, in: dvc.NewInbox(0)}
	d.mu.Unlock()
	if lcb == 0 {
		return nil, refused
	}
	c.obj = newObject(rdcChannelVtbl, c, nil, IID_IWTSVirtualChannel)
	d.all = append(d.all, c)
	var accept int32
	var cb uintptr
	h := hr(comCall(lcb, slotOnNewChannelConnection, c.obj.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb))))
	d.mu.Lock()
	d.lastAnswer = answer{hr: h, accept: accept, callback: cb != 0}
	d.mu.Unlock()
	if h.Failed() || accept == 0 {
		if cb != 0 {
			comRelease(cb)
		}
		c.in.Discard(dvc.ErrClosed)
		return nil, refused
	}
	c.mu.Lock()
	c.cb = cb
	gone := c.peerGone
	c.mu.Unlock()
	d.mu.Lock()
	d.conns[c] = true
	d.mu.Unlock()
	if gone {
		// Closed by the plugin before it accepted: DYNVC_CREATE_RSP,
		// then DYNVC_CLOSE. The server sees an open channel that ends.
		c.onClose()
	}
	return c, nil
}

// kill is the connection dropping: the server's channels lose their
// carrier; the client calls Disconnected and Terminated with the
// channels open, and releases their callbacks.
func (d *rdc) kill() {
	lost := fmt.Errorf("rdc: connection dropped: %w", dvc.ErrConnectionLost)
	d.mu.Lock()
	if d.lost != nil {
		d.mu.Unlock()
		return
	}
	d.lost = lost
	conns := d.conns
	d.conns = map[*rdcConn]bool{}
	d.mu.Unlock()
	for c := range conns {
		c.in.CloseWithError(lost)
	}
	d.call(context.Background(), func() {
		if d.pi == 0 {
			return
		}
		comCall(d.pi, slotDisconnected, 0)
		comCall(d.pi, slotTerminated)
		for _, c := range d.all {
			c.release()
		}
	})
}

// stop ends the pair: the connection goes (kill), then the client
// releases everything it holds; the plugin must then hold nothing.
func (d *rdc) stop(t *testing.T) {
	d.kill()
	d.async.Wait()
	d.call(context.Background(), func() {
		if d.pi == 0 {
			return
		}
		d.mu.Lock()
		listeners, lcbs := d.listeners, d.lcbs
		d.mu.Unlock()
		for _, l := range listeners {
			if n := refs(l); n != 1 {
				t.Errorf("the plugin holds %d references to an IWTSListener after Terminated", n-1)
			}
			l.release()
		}
		for _, cb := range lcbs {
			comRelease(cb)
		}
		comRelease(d.pi)
		if n := refs(d.mgr); n != 1 {
			t.Errorf("the plugin holds %d references to the channel manager", n-1)
		}
		d.mgr.release()
		for _, c := range d.all {
			if n := refs(c.obj); n != 1 {
				t.Errorf("the plugin holds %d references to channel %d after Terminated", n-1, c.id)
			}
			c.obj.release()
		}
	})
	d.thread.Stop()
	if d.inProc {
		if n := d.ip.Live(); n != 0 {
			t.Errorf("%d plugin objects alive at the end", n)
		}
		return
	}
	if d.pi != 0 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := d.srv.Wait(ctx, 0); err != nil {
			t.Errorf("the LocalServer did not see the end: %v", err)
		}
	}
	if err := d.srv.Close(); err != nil {
		t.Error(err)
	}
}

// rdcConn is one channel: the server's dvc.Conn, and the
// IWTSVirtualChannel the plugin gets (obj).
type rdcConn struct {
	d    *rdc
	name string
	id   uint32
	in   *dvc.Inbox // what the plugin wrote, for the server's Read
	obj  *object

	mu        sync.Mutex
	cb        uintptr // the plugin's IWTSVirtualChannelCallback, referenced
	local     bool    // the server closed
	peerGone  bool    // the plugin closed
	onClosed  bool    // OnClose called, or the callback released
	closeOnce sync.Once
}

func (c *rdcConn) Name() string { return c.name }
func (c *rdcConn) ID() uint32   { return c.id }

func (c *rdcConn) Read(ctx context.Context) ([]byte, error) { return c.in.Read(ctx) }

// Write is the server's DYNVC_DATA: OnDataReceived on the thread.
func (c *rdcConn) Write(ctx context.Context, msg []byte) error {
	if err := c.d.dead(); err != nil {
		return err
	}
	c.mu.Lock()
	closed := c.local || c.peerGone
	c.mu.Unlock()
	if closed {
		return dvc.ErrClosed
	}
	m := bytes.Clone(msg)
	return c.d.post(ctx, func() {
		c.mu.Lock()
		cb, gone := c.cb, c.peerGone || c.onClosed
		c.mu.Unlock()
		if gone {
			return
		}
		var p *byte
		if len(m) > 0 {
			p = &m[0]
		}
		comCall(cb, slotOnDataReceived, uintptr(len(m)), uintptr(unsafe.Pointer(p)))
	})
}

// Close is the server's DYNVC_CLOSE: OnClose on the thread, after what is
// queued there. It does not wait for the thread.
func (c *rdcConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.local = true
		gone := c.peerGone
		c.mu.Unlock()
		c.in.Discard(dvc.ErrClosed)
		if gone || c.d.dead() != nil {
			return
		}
		c.closeLater()
	})
	return nil
}

func (c *rdcConn) closeLater() {
	c.d.async.Go(func() { c.d.post(context.Background(), c.onClose) })
}

// onClose runs on the thread: OnClose once, then the callback released.
func (c *rdcConn) onClose() {
	c.mu.Lock()
	cb, done := c.cb, c.onClosed
	if cb != 0 {
		c.onClosed = true
	}
	c.mu.Unlock()
	if done || cb == 0 || c.d.dead() != nil {
		return
	}
	comCall(cb, slotOnClose)
	comRelease(cb)
	c.d.mu.Lock()
	delete(c.d.conns, c)
	c.d.mu.Unlock()
}

// release drops the callback without OnClose (the connection is gone).
func (c *rdcConn) release() {
	c.mu.Lock()
	cb, done := c.cb, c.onClosed
	c.onClosed = true
	c.mu.Unlock()
	if !done && cb != 0 {
		comRelease(cb)
	}
}

// write is IWTSVirtualChannel::Write from the plugin: copied and queued
// for the server.
func (c *rdcConn) write(size, buf uintptr) hresult.HRESULT {
	n := int(uint32(size))
	if n > 0 && buf == 0 {
		return hresult.E_POINTER
	}
	if c.d.dead() != nil {
		return hresult.E_UNEXPECTED // the connection is gone
	}
	c.mu.Lock()
	gone := c.local || c.peerGone
	c.mu.Unlock()
	if gone {
		return hresult.S_OK // in flight as the channel closed: dropped, as DYNVC_DATA after DYNVC_CLOSE is
	}
	m := make([]byte, n)
	if n > 0 {
		copy(m, unsafe.Slice((*byte)(ptr(buf)), n))
	}
	_ = c.in.Put(context.Background(), m) // fails only once the server's end is gone
	return hresult.S_OK
}

// close is IWTSVirtualChannel::Close from the plugin: DYNVC_CLOSE to the
// server (it reads what was queued, then io.EOF), and OnClose.
func (c *rdcConn) close() {
	c.mu.Lock()
	if c.peerGone {
		c.mu.Unlock()
		return
	}
	c.peerGone = true
	cb := c.cb
	c.mu.Unlock()
	c.in.CloseWithError(nil)
	if cb != 0 {
		c.closeLater()
	}
}

var (
	rdcMgrVtbl = newVtable(syscall.NewCallback(func(this, name, flags, cb, ppListener uintptr) uintptr { // CreateListener
		o := lookup(this)
		if o == nil || name == 0 || cb == 0 {
			return uintptr(hresult.E_POINTER)
		}
		d := o.impl.(*rdc)
		var n []byte
		for p := name; *(*byte)(ptr(p)) != 0; p++ {
			n = append(n, *(*byte)(ptr(p)))
		}
		comAddRef(cb)
		l := newObject(fakeListenerVtbl, &fakeListener{}, nil, IID_IWTSListener)
		d.mu.Lock()
		if old := d.lcbs[string(n)]; old != 0 {
			d.mu.Unlock()
			comRelease(cb)
			l.release()
			return uintptr(hresult.FromWin32(183)) // ERROR_ALREADY_EXISTS
		}
		d.lcbs[string(n)] = cb
		d.names = append(d.names, string(n))
		d.listeners = append(d.listeners, l)
		d.mu.Unlock()
		if ppListener != 0 {
			l.addRef()
			*(*uintptr)(ptr(ppListener)) = l.mem
		}
		return 0
	}))
	rdcChannelVtbl = newVtable(
		syscall.NewCallback(func(this, size, buf, reserved uintptr) uintptr { // Write
			o := lookup(this)
			if o == nil {
				return uintptr(hresult.E_UNEXPECTED)
			}
			return uintptr(o.impl.(*rdcConn).write(size, buf))
		}),
		syscall.NewCallback(func(this uintptr) uintptr { // Close
			if o := lookup(this); o != nil {
				o.impl.(*rdcConn).close()
			}
			return 0
		}),
	)
)
