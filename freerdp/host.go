// Package freerdp hosts rdpdvc's client-side channels in FreeRDP 2 and 3:
// the pure-Go half of librdpdvc-client.so, the plugin xfreerdp3 (or
// FreeRDP 2's xfreerdp) loads with /dvc:rdpdvc,<feature>,<feature>=<value>.
//
// The cgo half (freerdp/plugin, built with -tags freerdp3 against
// freerdp3-dev, or -tags freerdp against freerdp2-dev) only translates
// FreeRDP's C callbacks into calls on a [Host]; everything with state
// lives here, so it is tested by plain `go test` without FreeRDP:
//
//	DVCPluginEntry                              -> CheckHost (the FreeRDP major), Configure
//	IWTSPlugin::Initialize                      -> Host.Attach (CreateListener per name)
//	IWTSListenerCallback::OnNewChannelConnection -> Host.NewChannel
//	IWTSVirtualChannelCallback::OnDataReceived   -> Instance.Data
//	IWTSVirtualChannelCallback::OnClose          -> Instance.Gone
//	IWTSPlugin::Terminated                      -> Host.Terminate
//
// Handler calls run on FreeRDP's drdynvc channel thread, inside the
// callback that reports the event (kit.Serial's Direct mode): a Received
// that blocks holds up every channel of the connection, as a C plugin's
// OnDataReceived would, and is FreeRDP's only flow control.
//
// What FreeRDP's drdynvc client does, in 2.11 and in 3.10 to 3.33 alike,
// and this package relies on: all callbacks run on the drdynvc channel
// thread; OnDataReceived gets whole messages (FreeRDP reassembles
// DYNVC_DATA_FIRST/DYNVC_DATA); IWTSVirtualChannel::Write copies the data
// and queues it, so it may be called from any thread; a zero-length Write
// sends DYNVC_CLOSE and frees the channel (calling OnClose before it
// returns), so Channel.Close uses that and an empty message cannot be
// sent (FreeRDP 2's IWTSVirtualChannel::Close does nothing; FreeRDP 3's
// does the same as the zero-length Write); a refused channel is always
// reported to the server as 0xC0000001, whatever HRESULT the Listener's
// error carries.
//
// # Goroutines and closing
//
// The package starts no goroutine per channel: Accept and every Handler
// call run on FreeRDP's thread, in the callback (a deferred DYNVC_CLOSE
// runs on a timer's goroutine). A channel's Write may be called from any
// goroutine, including from inside Received, which is how a client
// answers; it never waits for the server, since FreeRDP copies and queues
// the data, so its context only matters before the call. Not from inside
// Accept: the channel opens when Accept returns. Close is safe anywhere;
// inside Received, Closed comes after Received returns. Host.Terminate
// (the client disconnecting) gives every open instance
// Closed(dvc.ErrConnectionLost) and waits for deferred closes, which
// happen once the Handler's call in progress returns: a Handler that
// never returns holds Terminate, and FreeRDP's thread with it.
package freerdp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
)

// Native is one FreeRDP channel instance (IWTSVirtualChannel), as the cgo
// glue exposes it.
type Native interface {
	// Write is IWTSVirtualChannel::Write: it copies msg and queues it.
	// A zero-length write closes the channel (FreeRDP 2.11 and 3).
	Write(msg []byte) error
}

// Host is a dvc.Registrar whose listeners are FreeRDP listeners. Create
// one per plugin instance; it is safe for concurrent use.
type Host struct {
	reg   kit.Registry
	mu    sync.Mutex
	open  map[*Instance]struct{}
	done  bool
	wg    sync.WaitGroup // deferred closes in flight
	atEnd []func()       // OnTerminate functions, in registration order
}

var _ dvc.Registrar = (*Host)(nil)

// NewHost returns a Host with no listeners.
func NewHost() *Host {
	h := &Host{open: map[*Instance]struct{}{}}
	h.reg.Prefix = "freerdp"
	return h
}

// Listen registers l for channels named name, which must be one a
// DYNVC_CREATE_REQ can carry (MS-RDPEDYC 2.2.2.1). Before Attach the
// listener is created in FreeRDP when the plugin is initialized; after,
// at once.
func (h *Host) Listen(name string, l dvc.Listener) error { return h.reg.Listen(name, l) }

// Names returns the registered listener names in registration order.
func (h *Host) Names() []string { return h.reg.Names() }

// Attach is called from IWTSPlugin::Initialize: create makes a FreeRDP
// listener (IWTSVirtualChannelManager::CreateListener) and is called now
// for every registered name, and later for names registered after.
func (h *Host) Attach(create func(name string) error) error { return h.reg.Watch(create) }

// NewChannel is OnNewChannelConnection: it asks the listener registered
// for name to accept the instance. An error means refuse (FreeRDP then
// sends CreationStatus 0xC0000001).
func (h *Host) NewChannel(name string, id uint32, n Native) (*Instance, error) {
	l := h.reg.Lookup(name)
	if l == nil {
		return nil, fmt.Errorf("freerdp: no listener for %q", name)
	}
	in := &Instance{host: h, name: name, id: id, native: n,
		s: kit.NewSerial(kit.SerialConfig{Mode: kit.Direct, Borrowed: true})}
	hd, err := kit.Accept(l, in)
	in.mu.Lock()
	if err == nil && in.localClosed {
		err = fmt.Errorf("freerdp: channel %q closed inside Accept", name)
	}
	if err != nil {
		in.native = nil
		in.mu.Unlock()
		return nil, err
	}
	in.opened = true
	in.mu.Unlock()
	in.s.Attach(hd)
	h.mu.Lock()
	if h.done {
		// Terminated during Accept: the Handler still gets its Closed.
		h.mu.Unlock()
		in.Gone(fmt.Errorf("freerdp: client terminated: %w", dvc.ErrConnectionLost))
		return nil, errors.New("freerdp: plugin terminated")
	}
	h.open[in] = struct{}{}
	h.mu.Unlock()
	return in, nil
}

// Terminate is IWTSPlugin::Terminated: every instance still open gets
// Closed(dvc.ErrConnectionLost) and no new one is accepted. It waits for
// deferred closes (see Instance.Close) to finish, then runs the
// OnTerminate functions.
func (h *Host) Terminate() {
	h.reg.Close()
	h.mu.Lock()
	h.done = true
	open := h.open
	h.open = map[*Instance]struct{}{}
	atEnd := h.atEnd
	h.atEnd = nil
	h.mu.Unlock()
	for in := range open {
		in.Gone(fmt.Errorf("freerdp: client terminated: %w", dvc.ErrConnectionLost))
	}
	h.wg.Wait()
	for _, f := range atEnd {
		f()
	}
}

// OnTerminate has Terminate call f once every instance is closed: a
// feature whose listeners share state (goroutines, open files) releases
// it there. After Terminate, f runs at once.
func (h *Host) OnTerminate(f func()) {
	h.mu.Lock()
	if !h.done {
		h.atEnd = append(h.atEnd, f)
		h.mu.Unlock()
		return
	}
	h.mu.Unlock()
	f()
}

func (h *Host) forget(in *Instance) {
	h.mu.Lock()
	delete(h.open, in)
	h.mu.Unlock()
}

// Instance is one accepted channel: the dvc.Channel its Handler writes
// to, and the target of the glue's data and close callbacks.
type Instance struct {
	host *Host
	name string
	id   uint32

	// mu guards native: it is held across native calls so that OnClose,
	// after which FreeRDP frees the channel, waits for them.
	mu          sync.Mutex
	native      Native      // nil once FreeRDP freed the channel (or we had it close it)
	opened      bool        // Accept returned a Handler: writes may go
	localClosed bool        // Close was called: no more writes
	closing     atomic.Bool // inside the zero-length Write that closes the channel

	s *kit.Serial // the Handler's calls, on the thread that reports each event
}

var _ dvc.Channel = (*Instance)(nil)

// Name is the listener name.
func (in *Instance) Name() string { return in.name }

// ID is FreeRDP's ChannelId for the instance (MS-RDPEDYC 2.2.2.1).
func (in *Instance) ID() uint32 { return in.id }

// Write queues msg in FreeRDP, which copies it. FreeRDP cannot send an
// empty message (a zero-length write closes the channel): Write drops
// it. Write never blocks for flow control: FreeRDP queues without limit.
func (in *Instance) Write(ctx context.Context, msg []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(msg) == 0 {
		return nil
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.native == nil || in.localClosed {
		return dvc.ErrClosed
	}
	if !in.opened {
		return fmt.Errorf("freerdp: channel %q %d is not open yet: write after Accept returns", in.name, in.id)
	}
	if err := in.native.Write(msg); err != nil {
		return fmt.Errorf("freerdp: channel %q %d: write: %w", in.name, in.id, err)
	}
	return nil
}

// Close sends DYNVC_CLOSE (by FreeRDP's zero-length write) and delivers
// Closed(nil) to the handler, after the call in progress if any. Inside
// Accept it only marks the instance, which NewChannel then refuses.
//
// While a call is in progress (Close from inside Received, or during
// it), the DYNVC_CLOSE goes out closeGrace after the delivery is over:
// FreeRDP 2.11 frees the channel in the zero-length write, and its
// receive path still touches the channel after OnDataReceived returns
// when the message was reassembled from fragments (FreeRDP 3 holds a
// reference to the channel while it delivers, but the wait costs nothing
// there). The instance is closed for the handler at once either way.
func (in *Instance) Close() error {
	in.mu.Lock()
	if in.native == nil || in.localClosed {
		in.mu.Unlock()
		return nil
	}
	in.localClosed = true
	opened := in.opened
	in.mu.Unlock()
	if !opened {
		return nil
	}
	in.host.forget(in)
	in.s.Discard(dvc.ErrClosed) // Closed(nil), now or after the call in progress
	if in.s.Busy() {
		in.host.wg.Add(1)
		in.s.WhenIdle(func() {
			time.AfterFunc(closeGrace, func() {
				defer in.host.wg.Done()
				in.closeWire()
			})
		})
		return nil
	}
	if err := in.closeWire(); err != nil {
		return fmt.Errorf("freerdp: channel %q %d: close: %w", in.name, in.id, err)
	}
	return nil
}

// closeWire makes FreeRDP send DYNVC_CLOSE and free the channel, unless
// it already has (Gone).
func (in *Instance) closeWire() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.native == nil {
		return nil
	}
	// FreeRDP calls OnClose (Gone) from inside this call, on this
	// goroutine: Gone must not take mu then.
	in.closing.Store(true)
	err := in.native.Write(nil)
	in.closing.Store(false)
	in.native = nil
	return err
}

// closeGrace is how long a deferred close waits after the delivery ended,
// for FreeRDP to finish with the message it delivered (a few instructions
// after OnDataReceived returns). It is one timer, not a poll: nothing
// tells the plugin when FreeRDP is done with the channel.
const closeGrace = time.Millisecond

// Data is OnDataReceived: msg is one whole message, valid during the
// call only. The Handler's Received runs inside the call (after any call
// in progress on another thread); a message for a closed instance is
// dropped.
func (in *Instance) Data(msg []byte) { _ = in.s.Put(context.Background(), msg) }

// Gone is OnClose: FreeRDP frees the channel when it returns. err is nil
// for a close by the server.
//
// Waiting on mu makes OnClose wait for a Write in progress on another
// goroutine. Gone skips that while Close's own zero-length write is in
// progress, since that write is what called it; a server close racing a
// local Close is then not waited for (FreeRDP gives no way to tell the
// two apart).
func (in *Instance) Gone(err error) {
	if !in.closing.Load() {
		in.mu.Lock()
		in.native = nil
		in.mu.Unlock()
	}
	in.host.forget(in)
	in.s.End(err)
}
