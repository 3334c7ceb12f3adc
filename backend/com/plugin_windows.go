package com

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// Plugin is the dvc.Registrar a COM-hosted IWTSPlugin presents to channel
// protocols: every listener registered before the client calls
// IWTSPlugin::Initialize is created with
// IWTSVirtualChannelManager::CreateListener there.
type Plugin struct {
	Logger *slog.Logger // slog.Default() if nil

	once sync.Once
	reg  kit.Registry
}

var _ dvc.Registrar = (*Plugin)(nil)

func (p *Plugin) registry() *kit.Registry {
	p.once.Do(func() {
		p.reg.Prefix = "com"
		p.reg.Check = asciiName
	})
	return &p.reg
}

// asciiName is COM's rule on top of MS-RDPEDYC 2.2.2.1's:
// IWTSVirtualChannelManager::CreateListener takes a char*, ANSI.
func asciiName(name string) error {
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return errors.New("channel names must be ASCII (CreateListener takes a char*)")
		}
	}
	return nil
}

// Listen implements dvc.Registrar: name must be one a DYNVC_CREATE_REQ
// can carry, in ASCII. Registering after the client has initialized the
// plugin has no effect on that instance.
func (p *Plugin) Listen(name string, l dvc.Listener) error { return p.registry().Listen(name, l) }

func (p *Plugin) log() *slog.Logger {
	if p.Logger != nil {
		return p.Logger
	}
	return slog.Default()
}

// Vtable slots of the interfaces this package calls (after IUnknown's 3).
const (
	methodCreateListener = 3 // IWTSVirtualChannelManager::CreateListener
	methodWrite          = 3 // IWTSVirtualChannel::Write
	methodClose          = 4 // IWTSVirtualChannel::Close
)

const classENoAggregation hresult.HRESULT = 0x80040110 // CLASS_E_NOAGGREGATION

// The vtables, one per interface this package implements.
var (
	classFactoryVtbl = newVtable(
		syscall.NewCallback(classFactoryCreateInstance),
		syscall.NewCallback(classFactoryLockServer),
	)
	pluginVtbl = newVtable(
		syscall.NewCallback(pluginInitialize),
		syscall.NewCallback(pluginConnected),
		syscall.NewCallback(pluginDisconnected),
		syscall.NewCallback(pluginTerminated),
	)
	listenerCallbackVtbl = newVtable(
		syscall.NewCallback(onNewChannelConnection),
	)
	channelCallbackVtbl = newVtable(
		syscall.NewCallback(onDataReceived),
		syscall.NewCallback(onClose),
	)
)

// --- IClassFactory ---------------------------------------------------------

type classFactory struct{ s *Server }

func classFactoryCreateInstance(this, outer, riid, ppv uintptr) uintptr {
	if ppv == 0 || riid == 0 {
		return uintptr(hresult.E_POINTER)
	}
	*(*uintptr)(ptr(ppv)) = 0
	if outer != 0 {
		return uintptr(classENoAggregation)
	}
	o := lookup(this)
	if o == nil {
		return uintptr(hresult.E_UNEXPECTED)
	}
	s := o.impl.(*classFactory).s
	pi := s.newPlugin()
	r := queryInterface(pi.obj.mem, riid, ppv)
	pi.obj.release() // the creation reference; the caller's, if any, remains
	return uintptr(r)
}

func classFactoryLockServer(this, lock uintptr) uintptr {
	o := lookup(this)
	if o == nil {
		return uintptr(hresult.E_UNEXPECTED)
	}
	s := o.impl.(*classFactory).s
	if uint32(lock) != 0 {
		s.hold()
	} else {
		s.drop()
	}
	return uintptr(hresult.S_OK)
}

// --- IWTSPlugin ------------------------------------------------------------

// pluginInstance is one IWTSPlugin object: what one mstsc connection
// creates.
type pluginInstance struct {
	s   *Server
	obj *object
	log *slog.Logger

	mu          sync.Mutex
	listeners   []uintptr // IWTSListener pointers CreateListener gave us
	lcbs        []*object // our IWTSListenerCallback objects (our reference)
	channels    map[*channelCallback]struct{}
	initialized bool
	terminated  bool
}

func (s *Server) newPlugin() *pluginInstance {
	pi := &pluginInstance{s: s, log: s.plugin.log(), channels: map[*channelCallback]struct{}{}}
	s.hold()
	s.markUsed()
	pi.obj = newObject(pluginVtbl, pi, func() { pi.freed() }, IID_IWTSPlugin)
	return pi
}

func pluginOf(this uintptr) *pluginInstance {
	if o := lookup(this); o != nil {
		if pi, ok := o.impl.(*pluginInstance); ok {
			return pi
		}
	}
	return nil
}

// pluginInitialize is IWTSPlugin::Initialize(IWTSVirtualChannelManager*):
// one CreateListener per registered name. The manager pointer is used
// only during the call, so it is not kept (nor AddRef'd).
func pluginInitialize(this, mgr uintptr) uintptr {
	pi := pluginOf(this)
	if pi == nil || mgr == 0 {
		return uintptr(hresult.E_POINTER)
	}
	pi.mu.Lock()
	if pi.initialized || pi.terminated {
		pi.mu.Unlock()
		return uintptr(hresult.E_UNEXPECTED)
	}
	pi.initialized = true
	pi.mu.Unlock()

	reg := pi.s.plugin.registry()
	names := reg.Names()
	ls := make([]dvc.Listener, len(names))
	for i, n := range names {
		ls[i] = reg.Lookup(n)
	}

	for i, name := range names {
		lcb := pi.newListenerCallback(name, ls[i])
		cname := append([]byte(name), 0)
		var listener uintptr
		r := hr(comCall(mgr, methodCreateListener, uintptr(unsafe.Pointer(&cname[0])), 0, lcb.mem, uintptr(unsafe.Pointer(&listener))))
		if r.Failed() {
			pi.log.Error("CreateListener failed", "channel", name, "hr", r)
			return uintptr(r)
		}
		pi.mu.Lock()
		if listener != 0 {
			pi.listeners = append(pi.listeners, listener)
		}
		pi.mu.Unlock()
		pi.log.Info("listening", "channel", name)
	}
	return uintptr(hresult.S_OK)
}

func pluginConnected(this uintptr) uintptr {
	if pi := pluginOf(this); pi != nil {
		pi.log.Info("RDP connection established")
	}
	return uintptr(hresult.S_OK)
}

func pluginDisconnected(this, code uintptr) uintptr {
	if pi := pluginOf(this); pi != nil {
		pi.log.Info("RDP connection lost", "code", uint32(code))
	}
	return uintptr(hresult.S_OK)
}

// pluginTerminated is IWTSPlugin::Terminated: the client is done with the
// plugin. Everything it gave us is released; channels still open (the
// client should have closed them) are reported closed with
// ErrConnectionLost.
func pluginTerminated(this uintptr) uintptr {
	pi := pluginOf(this)
	if pi == nil {
		return uintptr(hresult.E_POINTER)
	}
	pi.terminate()
	return uintptr(hresult.S_OK)
}

func (pi *pluginInstance) terminate() {
	pi.mu.Lock()
	if pi.terminated {
		pi.mu.Unlock()
		return
	}
	pi.terminated = true
	listeners, lcbs := pi.listeners, pi.lcbs
	pi.listeners, pi.lcbs = nil, nil
	var open []*channelCallback
	for cb := range pi.channels {
		open = append(open, cb)
	}
	pi.mu.Unlock()
	for _, cb := range open {
		cb.closeFromClient(fmt.Errorf("com: plugin terminated with the channel open: %w", dvc.ErrConnectionLost))
	}
	for _, l := range listeners {
		callOut(pi.s.inProc, func() hresult.HRESULT { comRelease(l); return 0 })
	}
	for _, o := range lcbs {
		o.release()
	}
	pi.log.Info("plugin terminated")
}

// freed runs when the last reference to the plugin object is gone (if
// the client never called Terminated, e.g. it crashed and COM ran the
// references down, this does its work).
func (pi *pluginInstance) freed() {
	pi.terminate()
	pi.s.drop()
}

// --- IWTSListenerCallback --------------------------------------------------

type listenerCallback struct {
	pi   *pluginInstance
	name string
	l    dvc.Listener
}

func (pi *pluginInstance) newListenerCallback(name string, l dvc.Listener) *object {
	pi.s.hold()
	lc := &listenerCallback{pi: pi, name: name, l: l}
	o := newObject(listenerCallbackVtbl, lc, pi.s.drop, IID_IWTSListenerCallback)
	pi.mu.Lock()
	pi.lcbs = append(pi.lcbs, o)
	pi.mu.Unlock()
	return o
}

var lastChannelID atomic.Uint32

// onNewChannelConnection is IWTSListenerCallback::OnNewChannelConnection(
// IWTSVirtualChannel *pChannel, BSTR data, BOOL *pbAccept,
// IWTSVirtualChannelCallback **ppCallback).
func onNewChannelConnection(this, pChannel, data, pbAccept, ppCallback uintptr) uintptr {
	if pbAccept == 0 || ppCallback == 0 || pChannel == 0 {
		return uintptr(hresult.E_POINTER)
	}
	*(*int32)(ptr(pbAccept)) = 0
	*(*uintptr)(ptr(ppCallback)) = 0
	o := lookup(this)
	if o == nil {
		return uintptr(hresult.E_UNEXPECTED)
	}
	lc := o.impl.(*listenerCallback)
	pi := lc.pi
	log := pi.log.With("channel", lc.name)

	// Held from here: the listener may write from inside Accept.
	comAddRef(pChannel)
	ch := &channel{name: lc.name, id: lastChannelID.Add(1), pch: pChannel, log: log, direct: pi.s.inProc}
	var h dvc.Handler
	var err error
	perr := guarded(log, "Accept", func() { h, err = kit.Accept(lc.l, ch) })
	ch.mu.Lock()
	if perr == nil && err == nil && ch.closing.Load() {
		err = fmt.Errorf("com: channel %q closed inside Accept", lc.name)
	}
	if perr == nil && err == nil {
		ch.opened.Store(true)
	}
	ch.mu.Unlock()
	if perr != nil || err != nil {
		ch.closing.Store(true)
		ch.drop()
		if perr != nil {
			return uintptr(hresult.E_FAIL) // and *pbAccept = FALSE
		}
		log.Info("channel refused", "err", err)
		return uintptr(hresult.S_OK) // *pbAccept = FALSE is the refusal
	}
	cb := &channelCallback{pi: pi, ch: ch, s: kit.NewSerial(kit.SerialConfig{Mode: kit.Direct, Borrowed: true})}
	cb.s.Attach(&ending{cb: cb, h: h})
	pi.s.hold()
	cb.obj = newObject(channelCallbackVtbl, cb, cb.freed, IID_IWTSVirtualChannelCallback)
	pi.mu.Lock()
	pi.channels[cb] = struct{}{}
	pi.mu.Unlock()
	*(*int32)(ptr(pbAccept)) = 1
	*(*uintptr)(ptr(ppCallback)) = cb.obj.mem // our creation reference goes to the caller
	return uintptr(hresult.S_OK)
}

// --- the channel, as dvc.Channel -------------------------------------------

// channel is one IWTSVirtualChannel as a dvc.Channel.
type channel struct {
	name string
	id   uint32
	log  *slog.Logger

	mu      sync.Mutex
	pch     uintptr // IWTSVirtualChannel*, one reference held; 0 once dropped
	closing atomic.Bool
	// opened is set (under mu) once Accept has returned and the channel is
	// accepted: until then nothing goes to the client, whose
	// DYNVC_CREATE_RSP must come first, and a Close is the refusal.
	opened atomic.Bool
	direct bool // in process: call the host's pointers on any thread (callOut)
}

func (c *channel) Name() string { return c.name }
func (c *channel) ID() uint32   { return c.id }

// hold returns the channel pointer with an extra reference for one call,
// or 0 once it has been dropped. The call is then made without c.mu held,
// so that a client that answers Close with OnClose on the spot (mstsc
// may; the tests' fake does) finds nothing locked.
func (c *channel) hold() uintptr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pch != 0 {
		comAddRef(c.pch)
	}
	return c.pch
}

// Write implements dvc.Channel with IWTSVirtualChannel::Write, which
// copies msg before it returns. ctx is checked before the call; the call
// itself cannot be abandoned.
func (c *channel) Write(ctx context.Context, msg []byte) error {
	if c.closing.Load() {
		return dvc.ErrClosed
	}
	if !c.opened.Load() {
		return fmt.Errorf("com: channel %q: not open yet: write after Accept returns", c.name)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if uint64(len(msg)) > 0xFFFFFFFF {
		return fmt.Errorf("com: channel %q: write of %d bytes: %w", c.name, len(msg), dvc.ErrTooLarge)
	}
	var r hresult.HRESULT
	closed := false
	callOut(c.direct, func() hresult.HRESULT {
		p := c.hold()
		if p == 0 {
			closed = true
			return 0
		}
		var b *byte
		if len(msg) > 0 {
			b = &msg[0]
		}
		r = hr(comCall(p, methodWrite, uintptr(len(msg)), uintptr(unsafe.Pointer(b)), 0))
		comRelease(p)
		return 0
	})
	switch {
	case closed || (r.Failed() && c.closing.Load()):
		return dvc.ErrClosed
	case r.Failed():
		return fmt.Errorf("com: channel %q: IWTSVirtualChannel::Write: %w: %w", c.name, dvc.ErrConnectionLost, hresult.New("Write", r))
	}
	return nil
}

// Close implements dvc.Channel with IWTSVirtualChannel::Close. The client
// answers with OnClose, which reports Closed(nil) to the handler and
// drops the channel pointer.
func (c *channel) Close() error {
	c.mu.Lock()
	if c.closing.Swap(true) {
		c.mu.Unlock()
		return nil
	}
	opened := c.opened.Load()
	c.mu.Unlock()
	if !opened {
		return nil // inside Accept: the channel is refused
	}
	var r hresult.HRESULT
	callOut(c.direct, func() hresult.HRESULT {
		p := c.hold()
		if p == 0 {
			return 0
		}
		r = hr(comCall(p, methodClose))
		comRelease(p)
		return 0
	})
	if r.Failed() {
		return fmt.Errorf("com: channel %q: IWTSVirtualChannel::Close: %w", c.name, hresult.New("Close", r))
	}
	return nil
}

// drop releases the channel pointer, once.
func (c *channel) drop() {
	c.mu.Lock()
	p := c.pch
	c.pch = 0
	c.mu.Unlock()
	if p != 0 {
		callOut(c.direct, func() hresult.HRESULT { comRelease(p); return 0 })
	}
}

// --- IWTSVirtualChannelCallback --------------------------------------------

// channelCallback is the IWTSVirtualChannelCallback of one accepted
// channel. Handler calls go through a Direct kit.Serial: they run on the
// thread of the COM call that reports the event, never overlapping, and
// an OnClose that arrives during a Received (a Close from inside
// Received is answered at once by the client) is delivered after it
// returns, so Closed always comes last and exactly once.
type channelCallback struct {
	pi  *pluginInstance
	obj *object
	ch  *channel
	s   *kit.Serial
	// panicked is the first byte of the message whose Received panicked,
	// for the OnDataReceived that passed that buffer to answer E_FAIL. A
	// host may call OnDataReceived from several threads: a message that
	// arrived during another's Received is copied, queued and delivered on
	// that other call's thread, and its own call has returned by then, so
	// neither call is told E_FAIL for it. Later data is dropped (the
	// instance has ended) with S_OK.
	panicked atomic.Pointer[byte]
}

// ending is the Handler the Serial calls: the channel pointer goes before
// the protocol's Closed.
type ending struct {
	cb *channelCallback
	h  dvc.Handler
}

// Received runs the protocol's Received; a panic in it is recovered,
// the host is told with IWTSVirtualChannel::Close, and the instance ends
// with the panic as Closed's error, whatever OnClose the host answers
// with (the Serial delivers that End after this call returns).
func (e *ending) Received(msg []byte) {
	if perr := guarded(e.cb.ch.log, "Received", func() { e.h.Received(msg) }); perr != nil {
		e.cb.panicked.Store(unsafe.SliceData(msg))
		e.cb.s.End(perr) // first: a host may answer Close with OnClose on the spot
		_ = e.cb.ch.Close()
	}
}

func (e *ending) Closed(err error) {
	cb := e.cb
	cb.ch.closing.Store(true)
	cb.ch.drop()
	guarded(cb.ch.log, "Closed", func() { e.h.Closed(err) })
	pi := cb.pi
	pi.mu.Lock()
	delete(pi.channels, cb)
	pi.mu.Unlock()
}

func channelCallbackOf(this uintptr) *channelCallback {
	if o := lookup(this); o != nil {
		if cb, ok := o.impl.(*channelCallback); ok {
			return cb
		}
	}
	return nil
}

// onDataReceived is IWTSVirtualChannelCallback::OnDataReceived(ULONG
// cbSize, BYTE *pBuffer): one whole message, valid during the call.
func onDataReceived(this, size, buf uintptr) uintptr {
	cb := channelCallbackOf(this)
	if cb == nil {
		return uintptr(hresult.E_UNEXPECTED)
	}
	n := int(uint32(size))
	if n > 0 && buf == 0 {
		return uintptr(hresult.E_POINTER)
	}
	var msg []byte
	if n > 0 {
		msg = unsafe.Slice((*byte)(ptr(buf)), n)
	} else {
		msg = make([]byte, 0, 1) // an address of its own, for panicked
	}
	_ = cb.s.Put(context.Background(), msg) // dropped once the channel closed
	if cb.panicked.CompareAndSwap(unsafe.SliceData(msg), nil) {
		return uintptr(hresult.E_FAIL) // this call's Received panicked: the channel is closed
	}
	return uintptr(hresult.S_OK)
}

// onClose is IWTSVirtualChannelCallback::OnClose: the channel is gone
// (either end closed it).
func onClose(this uintptr) uintptr {
	cb := channelCallbackOf(this)
	if cb == nil {
		return uintptr(hresult.E_UNEXPECTED)
	}
	cb.closeFromClient(nil)
	return uintptr(hresult.S_OK)
}

// closeFromClient ends the instance: Closed(err), after the call in
// progress if any.
func (cb *channelCallback) closeFromClient(err error) { cb.s.End(err) }

// freed runs when the client releases the callback. Without an OnClose
// before it the channel did not end in order.
func (cb *channelCallback) freed() {
	var err error
	if !cb.ch.closing.Load() {
		err = fmt.Errorf("com: channel %q released without OnClose: %w", cb.ch.name, dvc.ErrConnectionLost)
	}
	cb.closeFromClient(err)
	cb.pi.s.drop()
}
