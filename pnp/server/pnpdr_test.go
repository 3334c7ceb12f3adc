package server_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

func ids(ds []server.Device) []uint32 {
	var out []uint32
	for _, d := range ds {
		out = append(out, d.ClientDeviceID)
	}
	return out
}

func header(size uint32, id wire.PacketID) []byte {
	return wire.PNPInfoHeader{Size: size, PacketID: id}.Append(nil)
}

// TestPNPDRBadInput holds every reaction of the server to bad or
// unexpected PNPDR input, each with the rule that forces it.
func TestPNPDRBadInput(t *testing.T) {
	const marker = 0x99
	tests := []struct {
		name    string
		rule    string
		setup   []uint32 // devices announced first
		send    [][]byte
		closed  bool     // PNPDR must be closed
		want    []uint32 // the device list afterwards (without the marker)
		anyList bool     // the list is not checked, only its ceiling
	}{
		{
			name: "second Client Version", rule: "ignored: harmless, nothing in 3.3.5.1.1.2 forbids it",
			send: [][]byte{wire.ClientVersion{MajorVersion: 1, MinorVersion: 6, Capabilities: 1}.Append(nil)},
		},
		{
			name: "unknown PacketId", rule: "ignored: Size delimits it; future versions MAY add packets (3.3.5.1.1.2)",
			setup: []uint32{1},
			send:  [][]byte{append(header(12, 0x69), 1, 2, 3, 4)},
			want:  []uint32{1},
		},
		{
			name: "Authenticated Client from the client", rule: "ignored: not a client-to-server packet",
			send: [][]byte{header(8, wire.PacketServerLogon)},
		},
		{
			name: "removal of an unknown device", rule: "ignored: nothing to remove (3.3.5.1.2.2)",
			setup: []uint32{1},
			send:  [][]byte{removal(7)},
			want:  []uint32{1},
		},
		{
			name: "duplicate ClientDeviceID within one message", rule: "PNPDR closed, none of the message added (3.3.5.1.2.1)",
			setup:  []uint32{1},
			send:   [][]byte{addition(2, 3, 2)},
			closed: true,
			want:   []uint32{1},
		},
		{
			name: "ClientDeviceID already in the list", rule: "PNPDR closed, existing devices kept (3.3.5.1.2.1)",
			setup:  []uint32{1, 2},
			send:   [][]byte{addition(3, 1)},
			closed: true,
			want:   []uint32{1, 2},
		},
		{
			name: "truncated Client Device Addition", rule: "PNPDR closed: a malformed message",
			setup:  []uint32{1},
			send:   [][]byte{func() []byte { b := addition(5); b = b[:len(b)-3]; b[0] -= 3; return b }()},
			closed: true,
			want:   []uint32{1},
		},
		{
			name: "Size disagrees with the message", rule: "PNPDR closed: a malformed message",
			send:   [][]byte{func() []byte { b := removal(1); b[0]++; return b }()},
			closed: true,
		},
		{
			name: "message shorter than PNP_INFO_HEADER", rule: "PNPDR closed: a malformed message",
			send:   [][]byte{{8, 0, 0, 0}},
			closed: true,
		},
		{
			name: "message over MaxPNPDRMessage", rule: "PNPDR closed: the role's ceiling, as PNPDRFramer enforces on streams",
			setup: []uint32{1},
			send: [][]byte{func() []byte {
				b := header(server.MaxPNPDRMessage+1, 0x69)
				return append(b, make([]byte, server.MaxPNPDRMessage+1-len(b))...)
			}()},
			closed: true,
			want:   []uint32{1},
		},
		{
			name: "Client Version with a payload", rule: "PNPDR closed: a malformed message",
			send:   [][]byte{append(wire.ClientVersion{MajorVersion: 1}.Append(nil), 0)},
			closed: true,
		},
		{
			name: "device list past MaxDevices", rule: "PNPDR closed: 3.3.5.1.1.3 guards against floods of devices",
			send: func() [][]byte {
				var out [][]byte
				for base := uint32(0); base <= server.MaxDevices; base += wire.MaxDevicesPerAddition {
					var ids []uint32
					for i := range uint32(wire.MaxDevicesPerAddition) {
						ids = append(ids, 0x10000+base+i)
					}
					out = append(out, addition(ids...))
				}
				return out
			}(),
			closed:  true,
			anyList: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, c, p := start(t, server.Config{})
			if len(tt.setup) > 0 {
				addDevices(t, s, p, tt.setup...)
			}
			for _, m := range tt.send {
				p.send(t, m)
			}
			if tt.closed {
				p.waitClosed(t)
				if s.PNPDRErr() == nil {
					t.Error("PNPDRErr() = nil after PNPDR closed")
				}
			} else {
				// PNPDR is processed in order: once the marker is
				// listed, the bad input has been handled.
				addDevices(t, s, p, marker)
				if p.isClosed() {
					t.Fatal("PNPDR closed; want the input ignored")
				}
			}
			got := slices.DeleteFunc(ids(s.Devices()), func(id uint32) bool { return id == marker })
			if !tt.anyList && !slices.Equal(got, tt.want) {
				t.Errorf("devices %v, want %v", got, tt.want)
			}
			if len(got) > server.MaxDevices {
				t.Errorf("%d devices, more than MaxDevices", len(got))
			}
			if tt.closed && len(tt.want) > 0 {
				// 3.3.5.1.2.1: FileRedirectorChannel goes on serving
				// the devices already added.
				c.serveFiles(t, &memResponder{mem: []byte("still here")})
				h, err := s.Open(ctxT(t), tt.want[0])
				if err != nil {
					t.Fatalf("Open after PNPDR closed: %v", err)
				}
				defer h.Close()
				if b, err := h.Read(ctxT(t), 0, 10); err != nil || string(b) != "still here" {
					t.Errorf("Read after PNPDR closed = %q, %v", b, err)
				}
			}
		})
	}
}

// TestDeviceListLimit checks the edge of MaxDevices exactly: filling the
// list is fine, one more closes PNPDR.
func TestDeviceListLimit(t *testing.T) {
	s, _, p := start(t, server.Config{})
	var n uint32
	for n < server.MaxDevices {
		var ids []uint32
		for range min(wire.MaxDevicesPerAddition, server.MaxDevices-n) {
			ids = append(ids, n)
			n++
		}
		p.send(t, addition(ids...))
	}
	waitDevice(t, s, server.MaxDevices-1)
	if got := len(s.Devices()); got != server.MaxDevices {
		t.Fatalf("%d devices, want %d", got, server.MaxDevices)
	}
	p.send(t, addition(n))
	p.waitClosed(t)
	if got := len(s.Devices()); got != server.MaxDevices {
		t.Errorf("%d devices after the refused addition, want %d", got, server.MaxDevices)
	}
}

// TestNoDevicesBeforeAuthenticatedClient: 3.3.5.1.1.3, the server SHOULD
// NOT accept device messages before a user has logged on, and sends
// Authenticated Client only when told.
func TestNoDevicesBeforeAuthenticatedClient(t *testing.T) {
	// The server's log is the probe: Authenticate must come only after
	// the server has dropped both messages, or the addition could be
	// taken as arriving after it.
	warns := make(chan string, 16)
	s, c, p := start(t, server.Config{WaitForLogon: true, Logger: slog.New(logProbe{warns})})
	p.send(t, addition(1))
	p.send(t, removal(1))
	for _, want := range []string{"Client Device Addition before Authenticated Client", "Client Device Removal before Authenticated Client"} {
		select {
		case m := <-warns:
			if !strings.Contains(m, want) {
				t.Fatalf("server logged %q, want it to have ignored the %s", m, want)
			}
		case <-time.After(patience):
			t.Fatalf("the server never ignored the %s", want)
		}
	}
	// Open refuses before Authenticated Client, without opening a channel.
	if _, err := s.Open(ctxT(t), 1); !errors.Is(err, server.ErrNotAuthenticated) {
		t.Errorf("Open before Authenticated Client: %v, want ErrNotAuthenticated", err)
	}
	if s.Authenticated() {
		t.Fatal("Authenticated() before Authenticate")
	}
	if err := s.Authenticate(); err != nil {
		t.Fatal(err)
	}
	expectAuth(t, p)
	s.Authenticate() // a second call sends nothing more
	addDevices(t, s, p, 2)
	if got := ids(s.Devices()); !slices.Equal(got, []uint32{2}) {
		t.Errorf("devices %v, want [2]: the addition before Authenticated Client must be dropped", got)
	}
	select {
	case m := <-p.msgs:
		t.Errorf("unexpected PNPDR message % x", m)
	default:
	}
	select {
	case <-c.files:
		t.Error("a FileRedirectorChannel was opened before Authenticated Client")
	default:
	}
}

// logProbe passes the message of each Warn record to a channel, while it
// has room.
type logProbe struct{ warns chan<- string }

func (l logProbe) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelWarn }
func (l logProbe) Handle(_ context.Context, r slog.Record) error {
	select {
	case l.warns <- r.Message:
	default: // never block the server; the test reads only the first few
	}
	return nil
}
func (l logProbe) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l logProbe) WithGroup(string) slog.Handler      { return l }

// TestAuthenticateBeforeClientVersion: Authenticated Client waits for the
// Client Version (3.3.5.1.1.2: nothing meaningful before it).
func TestAuthenticateBeforeClientVersion(t *testing.T) {
	c := newFakeClient(t)
	s, err := server.Start(context.Background(), c.hub, server.Config{WaitForLogon: true, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := <-c.pnpdr
	if _, err := wire.ParseServerVersion(p.next(t)); err != nil {
		t.Fatal(err)
	}
	if err := s.Authenticate(); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-p.msgs:
		t.Fatalf("server sent % x before the Client Version", m)
	default:
	}
	p.send(t, wire.ClientVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil))
	expectAuth(t, p)
	if v, ok := s.ClientVersion(); !ok || v.MinorVersion != 5 {
		t.Errorf("ClientVersion() = %+v, %v", v, ok)
	}
}

func TestServerVersionFields(t *testing.T) {
	c := newFakeClient(t)
	s, err := server.Start(context.Background(), c.hub, server.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := <-c.pnpdr
	v, err := wire.ParseServerVersion(p.next(t))
	if err != nil {
		t.Fatal(err)
	}
	want := wire.ServerVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: wire.CapDynamicDeviceAddition}
	if v != want {
		t.Errorf("Server Version %+v, want %+v", v, want)
	}
}

type events struct {
	mu sync.Mutex
	l  []server.DeviceEvent
}

func (e *events) add(ev server.DeviceEvent) { e.mu.Lock(); e.l = append(e.l, ev); e.mu.Unlock() }
func (e *events) get() []server.DeviceEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.l)
}

func TestDeviceEvents(t *testing.T) {
	var ev events
	optional := desc(3)
	optional.CustomFlag = wire.CustomFlagOptional
	optional.DeviceDescription = "decline me"
	kept := desc(4)
	kept.CustomFlag = wire.CustomFlagOptional
	s, c, p := start(t, server.Config{
		OnDevice:       ev.add,
		AcceptOptional: func(d server.Device) bool { return d.DeviceDescription != "decline me" },
	})
	p.send(t, wire.ClientDeviceAddition{Devices: []wire.PNPDeviceDescription{desc(1), desc(2), optional, kept}}.Append(nil))
	waitDevice(t, s, 4)
	if got := ids(s.Devices()); !slices.Equal(got, []uint32{1, 2, 4}) {
		t.Errorf("devices %v, want [1 2 4]: the declined optional device must be dropped silently", got)
	}
	d, ok := s.Device(2)
	if !ok || d.DeviceDescription != "test device" || d.HardwareIDs[0] != `RDPDVC\TEST` {
		t.Errorf("Device(2) = %+v, %v", d, ok)
	}
	c.serveFiles(t, &memResponder{mem: make([]byte, 16)})
	h, err := s.Open(ctxT(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	p.send(t, removal(2))
	if err := s.WaitRemoved(ctxT(t), 2); err != nil {
		t.Fatal(err)
	}
	<-h.Done()
	if _, err := h.Read(ctxT(t), 0, 1); !errors.Is(err, server.ErrDeviceRemoved) {
		t.Errorf("Read on a removed device's handle: %v, want ErrDeviceRemoved", err)
	}
	if _, err := s.Open(ctxT(t), 2); !errors.Is(err, server.ErrNoDevice) {
		t.Errorf("Open of a removed device: %v, want ErrNoDevice", err)
	}
	// The connection goes: every remaining device is removed with it.
	c.hub.Close()
	<-s.Done()
	if !errors.Is(s.Err(), dvc.ErrConnectionLost) {
		t.Errorf("Err() = %v, want dvc.ErrConnectionLost", s.Err())
	}
	type kd struct {
		k    server.EventKind
		id   uint32
		lost bool
	}
	var got []kd
	for _, e := range ev.get() {
		got = append(got, kd{e.Kind, e.Device.ClientDeviceID, errors.Is(e.Err, dvc.ErrConnectionLost)})
	}
	want := []kd{
		{server.DeviceArrived, 1, false}, {server.DeviceArrived, 2, false}, {server.DeviceArrived, 4, false},
		{server.DeviceRemoved, 2, false},
		{server.DeviceRemoved, 1, true}, {server.DeviceRemoved, 4, true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events\n got %v\nwant %v", got, want)
	}
	if _, err := s.WaitDevice(ctxT(t), nil); err == nil {
		t.Error("WaitDevice after the connection ended: no error")
	}
}

func TestOpenUnknownDevice(t *testing.T) {
	s, c, p := start(t, server.Config{})
	addDevices(t, s, p, 1)
	if _, err := s.Open(ctxT(t), 2); !errors.Is(err, server.ErrNoDevice) {
		t.Errorf("Open(2) = %v, want ErrNoDevice", err)
	}
	select {
	case <-c.files:
		t.Error("a FileRedirectorChannel was opened for a device not in the list")
	default:
	}
}

func TestStartFailsWithoutListener(t *testing.T) {
	if _, err := server.Start(context.Background(), refuser{}, server.Config{Logger: quiet}); err == nil {
		t.Error("Start succeeded although PNPDR was refused")
	}
}

type refuser struct{}

func (refuser) Open(ctx context.Context, name string, _ ...dvc.OpenOption) (dvc.Conn, error) {
	return nil, &dvc.OpenError{Name: name, Status: 0xC0000001}
}

// TestWaitDeviceMatchMayCallServer: match runs without the server's lock.
func TestWaitDeviceMatchMayCallServer(t *testing.T) {
	s, _, p := start(t, server.Config{})
	addDevices(t, s, p, 1, 2)
	d, err := s.WaitDevice(ctxT(t), func(d server.Device) bool {
		_, ok := s.Device(d.ClientDeviceID + 1)
		return !ok && len(s.Devices()) == 2
	})
	if err != nil || d.ClientDeviceID != 2 {
		t.Fatalf("WaitDevice = %d, %v", d.ClientDeviceID, err)
	}
}

// A client that never sends its Client Version no longer holds the server:
// past VersionTimeout PNPDR is closed and the server ends with
// ErrVersionTimeout, which WaitVersion reports. Before, it waited for ever.
func TestVersionTimeoutEndsTheServer(t *testing.T) {
	c := newFakeClient(t)
	s, err := server.Start(context.Background(), c.hub, server.Config{Logger: quiet, VersionTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p := <-c.pnpdr
	if _, err := wire.ParseServerVersion(p.next(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WaitVersion(ctxT(t)); !errors.Is(err, server.ErrVersionTimeout) {
		t.Fatalf("WaitVersion: %v, want ErrVersionTimeout", err)
	}
	select {
	case <-s.Done():
	case <-time.After(patience):
		t.Fatal("server not ended")
	}
	p.waitClosed(t)
}
