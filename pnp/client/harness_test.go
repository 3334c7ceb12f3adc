package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// guard bounds every wait in these tests. It is a hang detector, not a
// timing assertion: nothing here expects anything to be fast.
const guard = 30 * time.Second

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// spy wraps a device and counts what the client does with it.
type spy struct {
	device.Device
	opens, reads, writes, ioctls atomic.Int32
}

func (s *spy) Open(ctx context.Context, req device.OpenRequest) (device.Handle, error) {
	s.opens.Add(1)
	h, err := s.Device.Open(ctx, req)
	if err != nil {
		return nil, err
	}
	return &spyHandle{Handle: h, s: s}, nil
}

func (s *spy) touched() int32 {
	return s.opens.Load() + s.reads.Load() + s.writes.Load() + s.ioctls.Load()
}

type spyHandle struct {
	device.Handle
	s *spy
}

func (h *spyHandle) ReadAt(ctx context.Context, p []byte, off uint64) (int, error) {
	h.s.reads.Add(1)
	return h.Handle.ReadAt(ctx, p, off)
}
func (h *spyHandle) WriteAt(ctx context.Context, p []byte, off uint64) (int, error) {
	h.s.writes.Add(1)
	return h.Handle.WriteAt(ctx, p, off)
}
func (h *spyHandle) IoControl(ctx context.Context, code uint32, in []byte, outMax uint32) ([]byte, error) {
	h.s.ioctls.Add(1)
	return h.Handle.IoControl(ctx, code, in, outMax)
}

// server is the scripted fake server: raw wire messages over loopback.
type server struct {
	t   testing.TB
	hub *loopback.Hub
	c   *Client
}

// newServer starts a client redirecting devs on a loopback hub. Cleanup
// closes the hub and the client.
func newServer(t testing.TB, cfg Config, devs ...device.Device) *server {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	c, err := New(cfg, devs...)
	if err != nil {
		t.Fatal(err)
	}
	hub := loopback.New()
	if err := c.Register(hub); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		hub.Close()
		c.Close()
	})
	return &server{t: t, hub: hub, c: c}
}

func (s *server) open(name string) dvc.Conn {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	conn, err := s.hub.Open(ctx, name)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { conn.Close() })
	return conn
}

func send(t testing.TB, conn dvc.Conn, msgs ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for _, m := range msgs {
		if err := conn.Write(ctx, m); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
}

func recv(t testing.TB, conn dvc.Conn) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	m, err := conn.Read(ctx)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return m
}

// wantClosed checks that the client closed the channel without sending
// anything more.
func wantClosed(t testing.TB, conn dvc.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	m, err := conn.Read(ctx)
	if err == nil {
		t.Fatalf("the client sent % x; want the channel closed", m)
	}
	if !errors.Is(err, io.EOF) {
		t.Fatalf("read: %v; want io.EOF (the client closed the channel)", err)
	}
}

// pnpdrReady opens PNPDR and runs the handshake up to Authenticated
// Client; it returns the channel and the devices announced.
func (s *server) pnpdrReady() (dvc.Conn, []wire.PNPDeviceDescription) {
	s.t.Helper()
	conn := s.open(wire.ChannelPNPDR)
	send(s.t, conn, wire.ServerVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: wire.CapDynamicDeviceAddition}.Append(nil))
	if _, err := wire.ParseClientVersion(recv(s.t, conn)); err != nil {
		s.t.Fatalf("want Client Version: %v", err)
	}
	send(s.t, conn, wire.AuthenticatedClient{}.Append(nil))
	var devs []wire.PNPDeviceDescription
	for len(devs) < len(s.c.Devices()) {
		a, err := wire.ParseClientDeviceAddition(recv(s.t, conn))
		if err != nil {
			s.t.Fatalf("want Client Device Addition: %v", err)
		}
		devs = append(devs, a.Devices...)
	}
	return conn, devs
}

// fileChannel opens a FileRedirectorChannel instance and exchanges
// capabilities with server version v.
func (s *server) fileChannel(v uint16) dvc.Conn {
	s.t.Helper()
	conn := s.open(wire.ChannelFileRedirector)
	send(s.t, conn, wire.ServerCapabilitiesRequest{RequestID: 0, Version: v}.Append(nil))
	r, err := wire.ParseClientCapabilitiesReply(recv(s.t, conn))
	if err != nil || r.Version != wire.IOVersionCustomEvents {
		s.t.Fatalf("capabilities reply %+v, %v", r, err)
	}
	return conn
}

// openDevice opens a FileRedirectorChannel instance and a handle on
// device id, and checks the CreateFile succeeded.
func (s *server) openDevice(id uint32) dvc.Conn {
	s.t.Helper()
	conn := s.fileChannel(wire.IOVersionCustomEvents)
	if r := createFile(s.t, conn, 1, id); r != hresult.S_OK {
		s.t.Fatalf("CreateFile: %v", r)
	}
	return conn
}

func createFile(t testing.TB, conn dvc.Conn, reqID, devID uint32) hresult.HRESULT {
	t.Helper()
	send(t, conn, wire.CreateFileRequest{
		RequestID: reqID, DeviceID: devID,
		DesiredAccess: wire.GenericRead | wire.GenericWrite, ShareMode: wire.FileShareRead | wire.FileShareWrite,
		CreationDisposition: wire.OpenExisting,
	}.Append(nil))
	r, err := wire.ParseCreateFileReply(recv(t, conn))
	if err != nil || r.RequestID != reqID {
		t.Fatalf("CreateFile reply %+v, %v", r, err)
	}
	return r.Result
}

// reply reads one reply to a request of function fn.
func reply(t testing.TB, conn dvc.Conn, fn wire.FunctionID) wire.Reply {
	t.Helper()
	r, err := wire.ParseReply(recv(t, conn), fn)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	return r
}

func result(r wire.Reply) hresult.HRESULT {
	switch r := r.(type) {
	case wire.ReadReply:
		return r.Result
	case wire.WriteReply:
		return r.Result
	case wire.IOControlReply:
		return r.Result
	case wire.CreateFileReply:
		return r.Result
	}
	return 0
}

// fakeChannel is a dvc.Channel that records what the client writes, for
// driving handlers directly (fuzz tests).
type fakeChannel struct {
	name   string
	mu     sync.Mutex
	writes [][]byte
	closed bool
}

func (f *fakeChannel) Name() string { return f.name }
func (f *fakeChannel) ID() uint32   { return 1 }
func (f *fakeChannel) Write(_ context.Context, m []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return dvc.ErrClosed
	}
	f.writes = append(f.writes, append([]byte(nil), m...))
	return nil
}
func (f *fakeChannel) Close() error {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	return nil
}

func (f *fakeChannel) sent() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][]byte(nil), f.writes...)
}
