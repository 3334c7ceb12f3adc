package server_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// The tests drive the server role against a scripted fake client: raw
// wire messages over the loopback backend, so that every reaction to bad
// input can be provoked exactly.

// patience bounds every wait in these tests. It is not a performance
// assertion: only a hang (a bug) ever reaches it.
const patience = 20 * time.Second

var quiet = slog.New(slog.DiscardHandler)

// fakeChan is the client end of one channel instance.
type fakeChan struct {
	ch     dvc.Channel
	msgs   chan []byte
	closed chan struct{}
	err    error

	smu     sync.Mutex
	entered chan<- struct{} // told when Received stalls
	release chan struct{}   // closed to end the stall; nil: no stall
	unstall func()
}

func newFakeChan(ch dvc.Channel) *fakeChan {
	return &fakeChan{ch: ch, msgs: make(chan []byte, 4096), closed: make(chan struct{})}
}

func (f *fakeChan) Received(m []byte) {
	f.smu.Lock()
	entered, release := f.entered, f.release
	f.smu.Unlock()
	if release != nil {
		// A client that stops reading: the backend's inbox fills behind
		// this call.
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}
	f.msgs <- bytes.Clone(m)
}

// stall makes every later Received block, telling entered, until unstall.
func (f *fakeChan) stall(entered chan<- struct{}) {
	f.smu.Lock()
	defer f.smu.Unlock()
	release := make(chan struct{})
	f.entered, f.release = entered, release
	f.unstall = sync.OnceFunc(func() {
		f.smu.Lock()
		f.entered, f.release = nil, nil
		f.smu.Unlock()
		close(release)
	})
}

func (f *fakeChan) Closed(err error) { f.err = err; close(f.closed) }

func (f *fakeChan) send(t testing.TB, b []byte) {
	t.Helper()
	if err := f.ch.Write(context.Background(), b); err != nil {
		t.Errorf("fake client: write: %v", err)
	}
}

// next returns the next message from the server, failing the test if the
// channel closes first.
func (f *fakeChan) next(t testing.TB) []byte {
	t.Helper()
	select {
	case m := <-f.msgs:
		return m
	case <-f.closed:
		select {
		case m := <-f.msgs:
			return m
		default:
		}
		t.Fatalf("fake client: channel %d closed (%v) while a message was expected", f.ch.ID(), f.err)
	case <-time.After(patience):
		t.Fatalf("fake client: no message on channel %d", f.ch.ID())
	}
	return nil
}

// waitClosed waits until the server has closed the channel.
func (f *fakeChan) waitClosed(t testing.TB) {
	t.Helper()
	select {
	case <-f.closed:
	case <-time.After(patience):
		t.Fatalf("fake client: channel %d was not closed", f.ch.ID())
	}
}

func (f *fakeChan) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// fakeClient is the client side of a loopback hub with listeners for both
// MS-RDPEPNP channels.
type fakeClient struct {
	hub   *loopback.Hub
	pnpdr chan *fakeChan
	files chan *fakeChan
}

func newFakeClient(t testing.TB) *fakeClient {
	c := &fakeClient{hub: loopback.New(), pnpdr: make(chan *fakeChan, 16), files: make(chan *fakeChan, 4096)}
	for name, to := range map[string]chan *fakeChan{wire.ChannelPNPDR: c.pnpdr, wire.ChannelFileRedirector: c.files} {
		to := to
		err := c.hub.Listen(name, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			f := newFakeChan(ch)
			to <- f
			return f, nil
		}))
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { c.hub.Close() })
	return c
}

func (c *fakeClient) nextFile(t testing.TB) *fakeChan {
	t.Helper()
	select {
	case f := <-c.files:
		return f
	case <-time.After(patience):
		t.Fatal("fake client: no FileRedirectorChannel opened")
	}
	return nil
}

// start runs the server against a fresh fake client and does the PNPDR
// handshake up to Authenticated Client (unless cfg.WaitForLogon).
func start(t testing.TB, cfg server.Config) (*server.Server, *fakeClient, *fakeChan) {
	t.Helper()
	return startWith(t, cfg, nil)
}

// startWith is start with the server's opener wrapped by wrap (if not
// nil), for the stream-backend shim.
func startWith(t testing.TB, cfg server.Config, wrap func(dvc.Opener) dvc.Opener) (*server.Server, *fakeClient, *fakeChan) {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	c := newFakeClient(t)
	var op dvc.Opener = c.hub
	if wrap != nil {
		op = wrap(op)
	}
	s, err := server.Start(context.Background(), op, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	p := <-c.pnpdr
	m, err := wire.ParsePNPDR(wire.ServerToClient, p.next(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(wire.ServerVersion); !ok {
		t.Fatalf("first PNPDR message is %T, want ServerVersion (3.3.5.1.1.1)", m)
	}
	p.send(t, wire.ClientVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: wire.CapDynamicDeviceAddition}.Append(nil))
	if !cfg.WaitForLogon {
		expectAuth(t, p)
	}
	return s, c, p
}

func expectAuth(t testing.TB, p *fakeChan) {
	t.Helper()
	m, err := wire.ParsePNPDR(wire.ServerToClient, p.next(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.(wire.AuthenticatedClient); !ok {
		t.Fatalf("PNPDR message is %T, want AuthenticatedClient", m)
	}
}

func desc(id uint32) wire.PNPDeviceDescription {
	return wire.PNPDeviceDescription{
		ClientDeviceID:    id,
		InterfaceGUIDs:    []wire.GUID{wire.MustParseGUID("{53F56307-B6BF-11D0-94F2-00A0C91EFB8B}")},
		HardwareIDs:       []string{"RDPDVC\\TEST"},
		DeviceDescription: "test device",
	}
}

func addition(ids ...uint32) []byte {
	var m wire.ClientDeviceAddition
	for _, id := range ids {
		m.Devices = append(m.Devices, desc(id))
	}
	return m.Append(nil)
}

func removal(id uint32) []byte { return wire.ClientDeviceRemoval{ClientDeviceID: id}.Append(nil) }

// addDevices announces ids and waits until the server lists them.
func addDevices(t testing.TB, s *server.Server, p *fakeChan, ids ...uint32) {
	t.Helper()
	p.send(t, addition(ids...))
	for _, id := range ids {
		waitDevice(t, s, id)
	}
}

func waitDevice(t testing.TB, s *server.Server, id uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := s.WaitDevice(ctx, func(d server.Device) bool { return d.ClientDeviceID == id }); err != nil {
		t.Fatalf("device 0x%X: %v", id, err)
	}
}

// request decodes a message from the server on a FileRedirectorChannel.
func request(t testing.TB, b []byte) wire.Request {
	t.Helper()
	r, err := wire.ParseRequest(b)
	if err != nil {
		t.Fatalf("server sent a bad request % x: %v", b, err)
	}
	return r
}

// handshake answers the capabilities request with version and the
// CreateFile request with S_OK, checking their order.
func handshake(t testing.TB, f *fakeChan, version uint16) wire.CreateFileRequest {
	t.Helper()
	caps, ok := request(t, f.next(t)).(wire.ServerCapabilitiesRequest)
	if !ok {
		t.Fatal("first FileRedirectorChannel message is not the Server Capabilities Request (3.3.5.2.1.1)")
	}
	if caps.Version != wire.IOVersionNoCustomEvents && caps.Version != wire.IOVersionCustomEvents {
		t.Fatalf("Server Capabilities Request Version %d, want 4 or 6 (2.2.2.2.1)", caps.Version)
	}
	f.send(t, wire.ClientCapabilitiesReply{RequestID: caps.RequestID, Version: version}.Append(nil))
	cf, ok := request(t, f.next(t)).(wire.CreateFileRequest)
	if !ok {
		t.Fatal("second FileRedirectorChannel message is not the CreateFile Request")
	}
	f.send(t, wire.CreateFileReply{RequestID: cf.RequestID}.Append(nil))
	return cf
}

// openHandle opens device id with a scripted client end, returning both.
func openHandle(t testing.TB, s *server.Server, c *fakeClient, id uint32, version uint16) (*server.Handle, *fakeChan) {
	t.Helper()
	type res struct {
		h   *server.Handle
		err error
	}
	done := make(chan res, 1)
	go func() {
		h, err := s.Open(context.Background(), id)
		done <- res{h, err}
	}()
	f := c.nextFile(t)
	handshake(t, f, version)
	r := <-done
	if r.err != nil {
		t.Fatalf("Open: %v", r.err)
	}
	t.Cleanup(func() { r.h.Close() })
	return r.h, f
}

// memResponder serves a FileRedirectorChannel instance like a memory
// device until the channel closes: Read and Write at offsets, IOControl
// echoing its input (truncated to cbOut). hook, if set, sees each request
// first and may answer it itself (returning true).
type memResponder struct {
	mu   sync.Mutex
	mem  []byte
	hook func(f *fakeChan, r wire.Request) bool
}

func (m *memResponder) serve(t testing.TB, f *fakeChan) {
	for {
		var b []byte
		select {
		case b = <-f.msgs:
		case <-f.closed:
			return
		}
		r, err := wire.ParseRequest(b)
		if err != nil {
			t.Errorf("server sent a bad request: %v", err)
			return
		}
		if m.hook != nil && m.hook(f, r) {
			continue
		}
		f.send(t, m.reply(r))
	}
}

func (m *memResponder) reply(r wire.Request) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch q := r.(type) {
	case wire.ServerCapabilitiesRequest:
		return wire.ClientCapabilitiesReply{RequestID: q.RequestID, Version: wire.IOVersionCustomEvents}.Append(nil)
	case wire.CreateFileRequest:
		return wire.CreateFileReply{RequestID: q.RequestID}.Append(nil)
	case wire.ReadRequest:
		var data []byte
		if q.Offset < uint64(len(m.mem)) {
			data = m.mem[q.Offset:min(uint64(len(m.mem)), q.Offset+uint64(q.BytesToRead))]
		}
		return wire.ReadReply{RequestID: q.RequestID, Data: data}.Append(nil)
	case wire.WriteRequest:
		if end := q.Offset + uint64(len(q.Data)); end > uint64(len(m.mem)) {
			return wire.WriteReply{RequestID: q.RequestID, Result: hresult.FromWin32(hresult.ERROR_INVALID_PARAMETER)}.Append(nil)
		}
		copy(m.mem[q.Offset:], q.Data)
		return wire.WriteReply{RequestID: q.RequestID, BytesWritten: uint32(len(q.Data))}.Append(nil)
	case wire.IOControlRequest:
		out := q.DataIn
		if len(out) > int(q.OutputBufferSize) {
			out = out[:q.OutputBufferSize]
		}
		return wire.IOControlReply{RequestID: q.RequestID, Data: out}.Append(nil)
	}
	return nil
}

// serveFiles runs m on every FileRedirectorChannel the client gets.
func (c *fakeClient) serveFiles(t testing.TB, m *memResponder) {
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case f := <-c.files:
				wg.Add(1)
				go func() { defer wg.Done(); m.serve(t, f) }()
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); c.hub.Close(); wg.Wait() })
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

// streamOpener wraps an Opener whose Conns keep message boundaries and
// makes them behave like a stream backend (xrdp): what the peer sends is
// concatenated, cut into pieces of cut bytes, and reassembled with the
// Framer given at Open, exactly as a stream backend must.
type streamOpener struct {
	dvc.Opener
	cut int
}

func (s streamOpener) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	c, err := s.Opener.Open(ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	o := dvc.ApplyOpenOptions(opts)
	if o.Framer == nil {
		return nil, errors.New("streamOpener: no Framer given for " + name)
	}
	return &streamConn{Conn: c, framer: o.Framer, cut: s.cut}, nil
}

type streamConn struct {
	dvc.Conn
	framer  dvc.Framer
	cut     int
	buf     []byte // stream bytes not yet framed
	pending []byte // pieces of the underlying messages not yet "received"
}

func (s *streamConn) Read(ctx context.Context) ([]byte, error) {
	for {
		if len(s.buf) > 0 {
			n, err := s.framer(s.buf)
			if err != nil {
				s.Conn.Close()
				return nil, err
			}
			if n > 0 {
				m := bytes.Clone(s.buf[:n])
				s.buf = s.buf[n:]
				return m, nil
			}
		}
		if len(s.pending) == 0 {
			m, err := s.Conn.Read(ctx)
			if err != nil {
				return nil, err
			}
			s.pending = m
		}
		k := min(s.cut, len(s.pending))
		s.buf = append(s.buf, s.pending[:k]...)
		s.pending = s.pending[k:]
	}
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

var _ = io.EOF
