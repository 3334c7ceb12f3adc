package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Config configures a Server. The zero value is usable.
type Config struct {
	// MajorVersion and MinorVersion go in the Server Version message
	// (2.2.1.2.1); zero means DefaultMajorVersion and DefaultMinorVersion.
	MajorVersion, MinorVersion uint32
	// IOVersion is the Version of every Server Capabilities Request
	// (2.2.2.2.1); zero means DefaultIOVersion (6: custom events).
	IOVersion uint16

	// WaitForLogon holds the Authenticated Client message (3.3.5.1.1.3)
	// until the application calls Authenticate, as an RDP server does
	// until a user has logged on. When false (the portable transport, where
	// nobody logs on) it is sent as soon as the Client Version arrives.
	WaitForLogon bool

	// AcceptOptional decides whether to redirect a device the client
	// marked optional (CustomFlag 0x00000001): 3.3.5.1.2.1 lets the server
	// silently decline it. Nil accepts every device.
	AcceptOptional func(Device) bool

	// OnDevice is told of each arrival and removal, in order, on the
	// server's own goroutine: it must not block for long, nor call Close.
	OnDevice func(DeviceEvent)

	// CancelTimeout is how long a call whose context has ended may take
	// to finish: to complete the write of its request (a client that stops
	// reading can stall it), to send its Specific IoCancel Request, and to
	// get the reply. Past it the handle's channel is closed and its calls
	// fail with ErrCancelTimeout. Zero means DefaultCancelTimeout;
	// negative waits forever.
	CancelTimeout time.Duration

	// VersionTimeout is how long the client has to send its Client
	// Version after the Server Version (the handshake's one wait on the
	// client: Authenticated Client is the server's to send). Past it
	// PNPDR is closed and the server ends with ErrVersionTimeout. Zero
	// means DefaultVersionTimeout; negative waits forever.
	VersionTimeout time.Duration

	// MaxMessage is the largest message the backend delivers to the
	// client whole (xrdp.MaxWrite, 32768, on xrdp); zero means no limit.
	// Handle.Write then sends larger data in several Write Requests, and
	// Handle.IoControl refuses larger input with an error wrapping
	// dvc.ErrTooLarge before sending anything. Without it, such a request
	// fails on a backend with a ceiling (dvc.ErrTooLarge from its Write).
	MaxMessage int

	// Logger gets protocol anomalies (ignored and refused input) at Debug
	// and Warn. Nil: slog.Default().
	Logger *slog.Logger
}

// Device is a device in the client device list: its description as the
// client announced it (2.2.1.3.1.1). ClientDeviceID names it in Open.
type Device struct {
	wire.PNPDeviceDescription
}

// EventKind says what a DeviceEvent reports.
type EventKind uint8

const (
	DeviceArrived EventKind = iota + 1 // a Client Device Addition announced it
	DeviceRemoved                      // a Client Device Removal, or the connection ended
)

func (k EventKind) String() string {
	switch k {
	case DeviceArrived:
		return "device-arrived"
	case DeviceRemoved:
		return "device-removed"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// DeviceEvent is an arrival or a removal.
type DeviceEvent struct {
	Kind   EventKind
	Device Device
	// Err is nil for a removal the client announced, and says why for one
	// it did not (the connection was lost).
	Err error
}

// CustomEvent is a Client Device Custom Event (2.2.2.3.10) as delivered to
// subscribers.
type CustomEvent struct {
	DeviceID uint32  // the device of the handle it came on
	Handle   *Handle // the handle whose channel carried it
	GUID     wire.GUID
	Data     []byte // shared by every subscriber: do not modify
}

type device struct {
	Device
	handles map[*Handle]struct{}
}

// Server is the server role of one connection. Create it with Start.
type Server struct {
	op  dvc.Opener
	cfg Config
	log *slog.Logger

	pnpdr dvc.Conn
	wmu   sync.Mutex // PNPDR writes

	mu      sync.Mutex
	devices map[uint32]*device
	// unnotified holds the devices removed from devices whose removal
	// OnDevice has not been told yet: WaitRemoved waits for them too, so
	// that it never returns before the callback has run.
	unnotified    map[uint32]bool
	changed       chan struct{} // closed and replaced whenever the list changes or the server ends
	clientVersion *wire.ClientVersion
	authWanted    bool
	authSent      bool
	pnpdrErr      error // why PNPDR ended; nil while it runs
	err           error // why the server ended; nil while it runs
	handles       map[*Handle]struct{}

	smu     sync.RWMutex
	subs    map[wire.GUID][]*subscription
	subsAll []*subscription

	notifyMu sync.Mutex // keeps OnDevice calls in order
	quit     chan struct{}
	quitOnce sync.Once
	done     chan struct{}
	endOnce  sync.Once
	wg       sync.WaitGroup
}

type subscription struct{ fn func(CustomEvent) }

// Start opens PNPDR on op, sends the Server Version message (3.3.5.1.1.1)
// and serves the channel until Close or until the connection ends. ctx
// bounds only the opening.
func Start(ctx context.Context, op dvc.Opener, cfg Config) (*Server, error) {
	if cfg.MajorVersion == 0 && cfg.MinorVersion == 0 {
		cfg.MajorVersion, cfg.MinorVersion = DefaultMajorVersion, DefaultMinorVersion
	}
	if cfg.IOVersion == 0 {
		cfg.IOVersion = DefaultIOVersion
	}
	if cfg.CancelTimeout == 0 {
		cfg.CancelTimeout = DefaultCancelTimeout
	}
	if cfg.VersionTimeout == 0 {
		cfg.VersionTimeout = DefaultVersionTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	cfg.Logger = log // each handle derives its own from it, not from PNPDR's
	s := &Server{
		op:         op,
		cfg:        cfg,
		log:        log.With("channel", wire.ChannelPNPDR),
		devices:    map[uint32]*device{},
		unnotified: map[uint32]bool{},
		changed:    make(chan struct{}),
		handles:    map[*Handle]struct{}{},
		subs:       map[wire.GUID][]*subscription{},
		quit:       make(chan struct{}),
		done:       make(chan struct{}),
	}
	conn, err := op.Open(ctx, wire.ChannelPNPDR, dvc.WithFramer(PNPDRFramer))
	if err != nil {
		return nil, fmt.Errorf("pnp/server: open %s: %w", wire.ChannelPNPDR, err)
	}
	s.pnpdr = conn
	v := wire.ServerVersion{MajorVersion: cfg.MajorVersion, MinorVersion: cfg.MinorVersion, Capabilities: wire.CapDynamicDeviceAddition}
	if err := s.writePNPDR(ctx, v); err != nil {
		conn.Close()
		return nil, fmt.Errorf("pnp/server: send Server Version: %w", err)
	}
	s.wg.Add(1)
	go s.runPNPDR()
	if cfg.VersionTimeout > 0 {
		s.wg.Add(1)
		go s.versionTimer(cfg.VersionTimeout)
	}
	// The portable transport, and any backend that can tell, reports the
	// end of the whole connection: devices go with it even after PNPDR
	// itself was closed (3.3.5.1.2.1: "removed when the session is
	// disconnected").
	if d, ok := op.(interface{ Done() <-chan struct{} }); ok {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			select {
			case <-d.Done():
				s.connectionLost(fmt.Errorf("%w: transport ended", dvc.ErrConnectionLost))
			case <-s.quit:
			}
		}()
	}
	return s, nil
}

// versionTimer ends the server if the Client Version has not come d after
// the Server Version went out.
func (s *Server) versionTimer(d time.Duration) {
	defer s.wg.Done()
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		s.mu.Lock()
		got, ended, ch := s.clientVersion != nil, s.err != nil, s.changed
		s.mu.Unlock()
		if got || ended {
			return
		}
		select {
		case <-ch:
		case <-s.quit:
			return
		case <-t.C:
			err := fmt.Errorf("%w (%v)", ErrVersionTimeout, d)
			s.log.Warn("pnp/server: closing PNPDR", "err", err)
			s.pnpdrEnded(err)
			s.pnpdr.Close()
			s.connectionLost(err)
			return
		}
	}
}

// WaitVersion waits until the client's Client Version has arrived, and
// fails when ctx is done or the server has ended first (ErrVersionTimeout
// among others).
func (s *Server) WaitVersion(ctx context.Context) (wire.ClientVersion, error) {
	for {
		s.mu.Lock()
		v, err, ch := s.clientVersion, s.err, s.changed
		s.mu.Unlock()
		if v != nil {
			return *v, nil
		}
		if err != nil {
			return wire.ClientVersion{}, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return wire.ClientVersion{}, ctx.Err()
		}
	}
}

func (s *Server) writePNPDR(ctx context.Context, m wire.Message) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.pnpdr.Write(ctx, m.Append(nil))
}

// Authenticate sends the Authenticated Client message (3.3.5.1.1.3), which
// lets the client announce devices: call it when a user has logged on to
// the session. It is needed only with Config.WaitForLogon. If the Client
// Version has not arrived yet, the message goes as soon as it does.
// Calling it again does nothing.
func (s *Server) Authenticate() error {
	s.mu.Lock()
	s.authWanted = true
	send := s.takeAuthLocked()
	s.mu.Unlock()
	if send {
		return s.sendAuth()
	}
	return nil
}

// takeAuthLocked reports whether the caller must send Authenticated Client
// now, and marks it sent.
func (s *Server) takeAuthLocked() bool {
	if !s.authWanted || s.authSent || s.clientVersion == nil || s.pnpdrErr != nil || s.err != nil {
		return false
	}
	s.authSent = true
	return true
}

func (s *Server) sendAuth() error {
	if err := s.writePNPDR(context.Background(), wire.AuthenticatedClient{}); err != nil {
		s.log.Warn("pnp/server: send Authenticated Client", "err", err)
		s.pnpdr.Close()
		return fmt.Errorf("pnp/server: send Authenticated Client: %w", err)
	}
	s.log.Debug("pnp/server: sent Authenticated Client")
	return nil
}

func (s *Server) runPNPDR() {
	defer s.wg.Done()
	for {
		msg, err := s.pnpdr.Read(context.Background())
		if err != nil {
			s.pnpdrEnded(lostError(wire.ChannelPNPDR, err))
			if errors.Is(err, dvc.ErrConnectionLost) {
				s.connectionLost(err)
			}
			return
		}
		if err := s.receivePNPDR(msg); err != nil {
			s.log.Warn("pnp/server: closing PNPDR; devices already added keep working", "err", err)
			s.pnpdrEnded(err)
			s.pnpdr.Close()
			return
		}
	}
}

func (s *Server) pnpdrEnded(err error) {
	s.mu.Lock()
	if s.pnpdrErr == nil {
		s.pnpdrErr = err
	}
	s.signalLocked()
	s.mu.Unlock()
}

// receivePNPDR handles one message from the client. An error means PNPDR
// is to be closed.
func (s *Server) receivePNPDR(msg []byte) error {
	if len(msg) > MaxPNPDRMessage {
		// What PNPDRFramer refuses on stream backends, refused here too.
		return protocolError(fmt.Errorf("PNPDR message of %d bytes exceeds %d", len(msg), MaxPNPDRMessage))
	}
	m, err := wire.ParsePNPDR(wire.ClientToServer, msg)
	if err != nil {
		if errors.Is(err, wire.ErrUnknownPacket) {
			// Future versions MAY have packets this one does not
			// understand (3.3.5.1.1.2); Size delimits it, so skip it.
			s.log.Debug("pnp/server: ignored unknown PNPDR packet", "err", err)
			return nil
		}
		return protocolError(err)
	}
	switch m := m.(type) {
	case wire.ClientVersion:
		s.mu.Lock()
		if s.clientVersion != nil {
			s.mu.Unlock()
			s.log.Debug("pnp/server: ignored a second Client Version", "version", m)
			return nil
		}
		s.clientVersion = &m
		if !s.cfg.WaitForLogon {
			s.authWanted = true
		}
		send := s.takeAuthLocked()
		s.signalLocked()
		s.mu.Unlock()
		if send {
			return s.sendAuth()
		}
		return nil
	case wire.ClientDeviceAddition:
		return s.addDevices(m.Devices)
	case wire.ClientDeviceRemoval:
		s.removeDevice(m.ClientDeviceID)
		return nil
	}
	return nil
}

// errDuplicateDevice is why PNPDR closes on a duplicate ClientDeviceID.
var errDuplicateDevice = errors.New("pnp/server: duplicate ClientDeviceID (3.3.5.1.2.1)")

func (s *Server) addDevices(ds []wire.PNPDeviceDescription) error {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.mu.Lock()
	if !s.authSent {
		s.mu.Unlock()
		// 3.3.5.1.1.3: no device redirection commands before a user
		// has logged on; the client MUST NOT send them.
		s.log.Warn("pnp/server: ignored Client Device Addition before Authenticated Client", "devices", len(ds))
		return nil
	}
	if s.err != nil {
		s.mu.Unlock()
		return nil
	}
	// All or nothing: a message with a duplicate adds none of its
	// devices, and PNPDR closes (3.3.5.1.2.1).
	seen := make(map[uint32]bool, len(ds))
	for _, d := range ds {
		if _, dup := s.devices[d.ClientDeviceID]; dup || seen[d.ClientDeviceID] {
			s.mu.Unlock()
			return fmt.Errorf("%w: 0x%08X", errDuplicateDevice, d.ClientDeviceID)
		}
		seen[d.ClientDeviceID] = true
	}
	if len(s.devices)+len(ds) > MaxDevices {
		s.mu.Unlock()
		return fmt.Errorf("pnp/server: Client Device Addition would take the device list past %d devices", MaxDevices)
	}
	var added []Device
	for _, d := range ds {
		dev := Device{d}
		if d.Optional() && s.cfg.AcceptOptional != nil && !s.cfg.AcceptOptional(dev) {
			s.log.Debug("pnp/server: declined optional device", "id", d.ClientDeviceID)
			continue
		}
		s.devices[d.ClientDeviceID] = &device{Device: dev}
		added = append(added, dev)
	}
	s.mu.Unlock()
	for _, d := range added {
		s.notify(DeviceEvent{Kind: DeviceArrived, Device: d})
	}
	s.signal() // after OnDevice, so that a waiter sees the callbacks done
	return nil
}

func (s *Server) removeDevice(id uint32) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	s.mu.Lock()
	if !s.authSent {
		s.mu.Unlock()
		s.log.Warn("pnp/server: ignored Client Device Removal before Authenticated Client", "id", id)
		return
	}
	d, ok := s.devices[id]
	if !ok {
		s.mu.Unlock()
		s.log.Debug("pnp/server: ignored Client Device Removal of an unknown device", "id", id)
		return
	}
	delete(s.devices, id)
	s.unnotified[id] = true
	handles := d.handles
	d.handles = nil
	for h := range handles {
		delete(s.handles, h)
	}
	s.mu.Unlock()
	// 3.3.5.1.2.2: remove all references to the device.
	for h := range handles {
		h.terminate(fmt.Errorf("%w: device 0x%08X", ErrDeviceRemoved, id))
	}
	s.notify(DeviceEvent{Kind: DeviceRemoved, Device: d.Device})
	s.mu.Lock()
	delete(s.unnotified, id)
	s.signalLocked()
	s.mu.Unlock()
}

// connectionLost ends the server: every device is gone with the session.
func (s *Server) connectionLost(cause error) {
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	err := fmt.Errorf("%w: %w", ErrChannelLost, cause)
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = err
	devs := s.sortedLocked()
	for id := range s.devices {
		s.unnotified[id] = true
	}
	s.devices = map[uint32]*device{}
	handles := s.handles
	s.handles = map[*Handle]struct{}{}
	s.signalLocked()
	s.mu.Unlock()
	for h := range handles {
		h.terminate(err)
	}
	for _, d := range devs {
		s.notify(DeviceEvent{Kind: DeviceRemoved, Device: d.Device, Err: err})
	}
	s.mu.Lock()
	clear(s.unnotified)
	s.signalLocked()
	s.mu.Unlock()
	s.endOnce.Do(func() { close(s.done) })
}

func (s *Server) notify(e DeviceEvent) {
	if s.cfg.OnDevice != nil {
		s.cfg.OnDevice(e)
	}
}

func (s *Server) signal() {
	s.mu.Lock()
	s.signalLocked()
	s.mu.Unlock()
}

func (s *Server) signalLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) sortedLocked() []*device {
	ds := make([]*device, 0, len(s.devices))
	for _, d := range s.devices {
		ds = append(ds, d)
	}
	slices.SortFunc(ds, func(a, b *device) int { return cmpU32(a.ClientDeviceID, b.ClientDeviceID) })
	return ds
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Devices returns the client device list, by ClientDeviceID.
func (s *Server) Devices() []Device {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Device
	for _, d := range s.sortedLocked() {
		out = append(out, d.Device)
	}
	return out
}

// Device returns the device with the given ClientDeviceID, if it is in the
// list.
func (s *Server) Device(id uint32) (Device, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[id]
	if !ok {
		return Device{}, false
	}
	return d.Device, true
}

// WaitDevice waits until a device for which match returns true is in the
// list (any device if match is nil) and returns it; the one with the
// lowest ID if several match. It fails when ctx is done or the server has
// ended.
func (s *Server) WaitDevice(ctx context.Context, match func(Device) bool) (Device, error) {
	for {
		// match runs without the lock: it may call the Server.
		s.mu.Lock()
		ds, err, ch := s.sortedLocked(), s.err, s.changed
		s.mu.Unlock()
		for _, d := range ds {
			if match == nil || match(d.Device) {
				return d.Device, nil
			}
		}
		if err != nil {
			return Device{}, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return Device{}, ctx.Err()
		}
	}
}

// WaitRemoved waits until no device with ClientDeviceID id is in the list.
func (s *Server) WaitRemoved(ctx context.Context, id uint32) error {
	for {
		s.mu.Lock()
		_, present := s.devices[id]
		present = present || s.unnotified[id]
		ch := s.changed
		s.mu.Unlock()
		if !present {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// ClientVersion returns the client's Client Version message, once it has
// arrived.
func (s *Server) ClientVersion() (wire.ClientVersion, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clientVersion == nil {
		return wire.ClientVersion{}, false
	}
	return *s.clientVersion, true
}

// Authenticated reports whether the Authenticated Client message has been
// sent.
func (s *Server) Authenticated() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authSent
}

// PNPDRErr returns why PNPDR ended (a duplicate ClientDeviceID, a
// malformed message, the client closing it), or nil while it runs. Devices
// already in the list stay usable after PNPDR ends.
func (s *Server) PNPDRErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pnpdrErr
}

// Done is closed when the server has ended: Close, or the connection was
// lost.
func (s *Server) Done() <-chan struct{} { return s.done }

// Err returns why the server ended, nil while it runs.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Subscribe registers fn for Client Device Custom Events (2.2.2.3.10)
// with the given GUID, from any handle. fn runs on the goroutine of the
// handle the event came on: it must not block for long, nor call that
// handle's methods and wait for them. The returned function unsubscribes.
func (s *Server) Subscribe(guid wire.GUID, fn func(CustomEvent)) (unsubscribe func()) {
	return s.subscribe(&guid, fn)
}

// SubscribeAll is Subscribe for every GUID: for monitors and logs.
func (s *Server) SubscribeAll(fn func(CustomEvent)) (unsubscribe func()) {
	return s.subscribe(nil, fn)
}

func (s *Server) subscribe(guid *wire.GUID, fn func(CustomEvent)) func() {
	sub := &subscription{fn: fn}
	s.smu.Lock()
	if guid == nil {
		s.subsAll = append(s.subsAll, sub)
	} else {
		s.subs[*guid] = append(s.subs[*guid], sub)
	}
	s.smu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.smu.Lock()
			defer s.smu.Unlock()
			if guid == nil {
				s.subsAll = without(s.subsAll, sub)
				return
			}
			if l := without(s.subs[*guid], sub); len(l) > 0 {
				s.subs[*guid] = l
			} else {
				delete(s.subs, *guid)
			}
		})
	}
}

// without returns l less sub, as a new slice: deliver may be ranging over
// the old one.
func without(l []*subscription, sub *subscription) []*subscription {
	if i := slices.Index(l, sub); i >= 0 {
		return slices.Delete(slices.Clone(l), i, i+1)
	}
	return l
}

// deliver passes a custom event to its subscribers; with none it is
// ignored (3.3.5.2.2.10).
func (s *Server) deliver(e CustomEvent) bool {
	s.smu.RLock()
	l, all := s.subs[e.GUID], s.subsAll
	s.smu.RUnlock()
	for _, sub := range l {
		sub.fn(e)
	}
	for _, sub := range all {
		sub.fn(e)
	}
	return len(l)+len(all) > 0
}

// Close closes PNPDR and every open handle (their pending calls fail with
// ErrClosed) and waits for the server's goroutines. It does not report
// the devices as removed.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.err == nil {
		s.err = ErrClosed
	}
	handles := s.handles
	s.handles = map[*Handle]struct{}{}
	s.signalLocked()
	s.mu.Unlock()
	for h := range handles {
		h.terminate(fmt.Errorf("%w: server closed", ErrClosed))
	}
	s.pnpdr.Close()
	s.endOnce.Do(func() { close(s.done) })
	s.quitOnce.Do(func() { close(s.quit) })
	s.wg.Wait()
	return nil
}
