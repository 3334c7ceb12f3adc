// Package dvctest is the channel contract of package dvc as one battery of
// tests that every backend runs, in the spirit of golang.org/x/net/nettest's
// TestConn: a backend supplies a MakePair that returns a connected client
// side (dvc.Registrar) and server side (dvc.Opener), and TestContract checks
// every rule of "The contract every backend keeps" in docs/design.md as a
// subtest of its own.
//
// A backend that cannot keep a rule says so with an Exception, which skips
// that rule's subtest and names the reason in the test output; every
// exception is listed in docs/design.md beside the rule it relaxes.
//
// Empty messages: a Write of zero bytes is a message of zero bytes
// (MS-RDPEDYC carries it as a DYNVC_DATA with no data). The receiver's
// Received or Read sees a message of length 0, which may be nil.
package dvctest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// Pair is one connected client side and server side.
type Pair struct {
	Registrar dvc.Registrar // the client side: listeners
	Opener    dvc.Opener    // the server side: opens
	// Kill, if not nil, kills the carrier under both ends at once, as a
	// dropped connection does. Backends whose carrier a test cannot kill
	// leave it nil, and the carrier-loss rule is skipped.
	Kill func()
	// Cleanup, if not nil, ends the pair; it runs when the subtest ends,
	// after Kill if the subtest called it. It must return only once every
	// Handler has had Closed and no goroutine of the pair is left.
	Cleanup func()
}

// MakePair returns a fresh pair for one subtest.
type MakePair func(t *testing.T) Pair

// Exception names a rule a backend cannot keep. Each skips one subtest.
type Exception string

const (
	// NoNameRules: the backend's Listen and Open do not refuse names a
	// DYNVC_CREATE_REQ cannot carry (MS-RDPEDYC 2.2.2.1); the platform
	// decides.
	NoNameRules Exception = "NameRules"
	// NoEmptyMessages: the backend cannot carry a zero-byte message
	// (stream backends, where an empty write moves nothing).
	NoEmptyMessages Exception = "EmptyMessages"
	// NoRefusalStatus: the client reports every refusal with
	// STATUS_UNSUCCESSFUL (0xC0000001), whatever HRESULT the Listener's
	// error carries (FreeRDP). The RefusalStatus rule still runs and
	// checks that status, and that the connection is unharmed.
	NoRefusalStatus Exception = "RefusalStatus"
	// NoPeerCloseEOF: a close by the client never reaches the server,
	// whose Read does not return io.EOF for it (xrdp: chansrv does not
	// pass a client's DYNVC_CLOSE on to the xrdpapi socket). It skips
	// the rules that need the server to see the client's close.
	NoPeerCloseEOF Exception = "PeerCloseEOF"
	// NoLateListen: a Listen made once the client side has connected is
	// not served on that connection; only the listeners registered before
	// it are (COM: IWTSPlugin::Initialize creates every listener, once).
	// It skips ListenAfterOpen.
	NoLateListen Exception = "LateListen"
	// NoWriteDeadline: a Write inside the platform's call cannot be
	// abandoned, so behind a stalled peer it waits past its context, and
	// Close waits for it (WTS API mode: WTSVirtualChannelWrite blocks, and
	// the API's calls on a handle must not overlap). It skips
	// WriteHonoursContext.
	NoWriteDeadline Exception = "WriteDeadline"
	// NoConnectionLost: the server cannot tell a dropped connection from
	// the client's close; both end its channels as io.EOF (WTS: the
	// channel handle is all it sees). It skips ConnectionLost.
	NoConnectionLost Exception = "ConnectionLost"
)

// Option changes how TestContract runs.
type Option func(*options)

type options struct {
	except  map[Exception]string
	maxSize int
}

// Except skips the rule e, giving why; the reason is logged.
func Except(e Exception, why string) Option {
	return func(o *options) { o.except[e] = why }
}

// MaxMessage caps the message sizes the suite sends (default 1 MiB).
func MaxMessage(n int) Option { return func(o *options) { o.maxSize = n } }

// stuck is how long any single wait may take before the suite calls the
// backend stuck. It only tells "stuck" from "slow"; nothing is timed.
const stuck = 60 * time.Second

// TestContract runs every rule of the channel contract against pairs made
// by mp, each rule in its own subtest with its own pair.
func TestContract(t *testing.T, mp MakePair, opts ...Option) {
	o := options{except: map[Exception]string{}, maxSize: 1 << 20}
	for _, f := range opts {
		f(&o)
	}
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			if why, ok := o.except[r.exception]; ok && r.exception != "" {
				t.Skipf("exception %s: %s", r.exception, why)
			}
			p := mp(t)
			if p.Cleanup != nil {
				t.Cleanup(p.Cleanup)
			}
			r.run(t, p, &o)
		})
	}
}

type rule struct {
	name      string
	exception Exception // the Exception that skips it, if any
	run       func(t *testing.T, p Pair, o *options)
}

var rules = []rule{
	{"MessagesWhole", "", testMessagesWhole},
	{"EmptyMessage", NoEmptyMessages, testEmptyMessage},
	{"InstancesShareName", "", testInstances},
	{"HandlerSerializedInOrder", "", testSerialized},
	{"ClosedOnceAfterServerClose", "", testServerClose},
	{"ClosedOnceAfterClientClose", NoPeerCloseEOF, testClientClose},
	{"CloseInsideReceived", NoPeerCloseEOF, testCloseInsideReceived},
	{"RefusalStatus", "", testRefusal},
	{"UnknownNameRefused", "", testUnknownName},
	{"ReadAfterLocalClose", "", testLocalClose},
	{"WriteAfterPeerClose", NoPeerCloseEOF, testWriteAfterPeerClose},
	{"ConnectionLost", NoConnectionLost, testConnectionLost},
	{"AcceptMustNotWrite", "", testAcceptNoWrite},
	{"CloseInsideAcceptRefuses", "", testCloseInAccept},
	{"WriteHonoursContext", NoWriteDeadline, testWriteContext},
	{"ConcurrentWritesOnChannels", "", testConcurrent},
	{"NameRules", NoNameRules, testNameRules},
	{"DuplicateListen", "", testDuplicateListen},
	{"ListenAfterOpen", NoLateListen, testLateListen},
}

// handler records what a channel instance's Handler sees and checks the
// calling rules as it goes.
type handler struct {
	ch   dvc.Channel
	echo bool

	inflight atomic.Int32
	mu       sync.Mutex
	closes   int
	errs     []string // rule violations seen

	got    chan []byte // copies of received messages
	closed chan error  // Closed's argument, once per call
	// onReceive, if set, runs inside Received after the checks. Set it
	// with setOnReceive once the handler is out (guarded by mu: a backend
	// whose carrier is a socket gives the race detector no other order).
	onReceive func(h *handler, msg []byte)
}

func newHandler(ch dvc.Channel, echo bool) *handler {
	return &handler{ch: ch, echo: echo, got: make(chan []byte, 4096), closed: make(chan error, 4)}
}

func (h *handler) setOnReceive(f func(h *handler, msg []byte)) {
	h.mu.Lock()
	h.onReceive = f
	h.mu.Unlock()
}

func (h *handler) violation(format string, args ...any) {
	h.mu.Lock()
	h.errs = append(h.errs, fmt.Sprintf(format, args...))
	h.mu.Unlock()
}

func (h *handler) Received(msg []byte) {
	if h.inflight.Add(1) != 1 {
		h.violation("Received ran concurrently with another callback")
	}
	defer h.inflight.Add(-1)
	h.mu.Lock()
	after := h.closes > 0
	onReceive := h.onReceive
	h.mu.Unlock()
	if after {
		h.violation("Received after Closed")
	}
	c := append([]byte{}, msg...)
	select {
	case h.got <- c:
	default:
		h.violation("test handler's buffer overflowed (suite bug)")
	}
	if onReceive != nil {
		onReceive(h, msg)
	} else if h.echo {
		_ = h.ch.Write(context.Background(), msg)
	}
}

func (h *handler) Closed(err error) {
	if h.inflight.Add(1) != 1 {
		h.violation("Closed ran concurrently with another callback")
	}
	defer h.inflight.Add(-1)
	h.mu.Lock()
	h.closes++
	n := h.closes
	h.mu.Unlock()
	if n > 1 {
		h.violation("Closed called %d times", n)
	}
	h.closed <- err
}

// check fails t with every violation the handler saw.
func (h *handler) check(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.errs {
		t.Error(e)
	}
}

// next returns the next message the handler received.
func (h *handler) next(t *testing.T) []byte {
	t.Helper()
	select {
	case m := <-h.got:
		return m
	case <-time.After(stuck):
		t.Fatal("stuck: the handler received nothing")
		return nil
	}
}

// waitClosed waits for Closed and returns its argument.
func (h *handler) waitClosed(t *testing.T) error {
	t.Helper()
	select {
	case err := <-h.closed:
		return err
	case <-time.After(stuck):
		t.Fatal("stuck: Closed was never called")
		return nil
	}
}

// accepting registers name on r and sends every handler it creates on the
// returned channel.
func accepting(t *testing.T, r dvc.Registrar, name string, echo bool) <-chan *handler {
	t.Helper()
	hs := make(chan *handler, 64)
	err := r.Listen(name, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		h := newHandler(ch, echo)
		hs <- h
		return h, nil
	}))
	if err != nil {
		t.Fatalf("Listen(%q): %v", name, err)
	}
	return hs
}

func ctxStuck(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), stuck)
	t.Cleanup(cancel)
	return ctx
}

func open(t *testing.T, p Pair, name string) dvc.Conn {
	t.Helper()
	c, err := p.Opener.Open(ctxStuck(t), name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	return c
}

func take(t *testing.T, hs <-chan *handler) *handler {
	t.Helper()
	select {
	case h := <-hs:
		return h
	case <-time.After(stuck):
		t.Fatal("stuck: no channel was accepted")
		return nil
	}
}

func pattern(n, seed int) []byte {
	m := make([]byte, n)
	for i := range m {
		m[i] = byte(i*7 + seed)
	}
	return m
}

func sizes(o *options) []int {
	var s []int
	for _, n := range []int{1, 2, 1589, 1590, 1591, 1596, 1597, 1600, 3195, 5140, 65536, 100000, 1 << 20} {
		if n <= o.maxSize {
			s = append(s, n)
		}
	}
	return s
}

// One Write is one message, received whole, each way.
func testMessagesWhole(t *testing.T, p Pair, o *options) {
	hs := accepting(t, p.Registrar, "whole", false)
	c := open(t, p, "whole")
	h := take(t, hs)
	ctx := ctxStuck(t)
	for i, n := range sizes(o) {
		msg := pattern(n, i)
		if err := c.Write(ctx, msg); err != nil {
			t.Fatalf("server Write of %d bytes: %v", n, err)
		}
		if got := h.next(t); !bytes.Equal(got, msg) {
			t.Fatalf("server to client, %d bytes: the handler got %d bytes, not the message", n, len(got))
		}
		if err := h.ch.Write(ctx, msg); err != nil {
			t.Fatalf("client Write of %d bytes: %v", n, err)
		}
		got, err := c.Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("client to server, %d bytes: Read got %d bytes, %v", n, len(got), err)
		}
	}
	// Pipelined: several messages in flight arrive as several messages.
	for i, n := range sizes(o) {
		if err := c.Write(ctx, pattern(n, i)); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range sizes(o) {
		if got := h.next(t); !bytes.Equal(got, pattern(n, i)) {
			t.Fatalf("pipelined message %d (%d bytes) arrived as %d bytes", i, n, len(got))
		}
	}
	h.check(t)
}

// A zero-byte Write is a zero-byte message.
func testEmptyMessage(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "empty", false)
	c := open(t, p, "empty")
	h := take(t, hs)
	ctx := ctxStuck(t)
	for _, m := range [][]byte{nil, {}, {1}, nil} {
		if err := c.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
		if got := h.next(t); !bytes.Equal(got, m) {
			t.Fatalf("handler got % x, want % x", got, m)
		}
		if err := h.ch.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
		if got, err := c.Read(ctx); err != nil || !bytes.Equal(got, m) {
			t.Fatalf("Read = % x, %v; want % x", got, err, m)
		}
	}
	h.check(t)
}

// Several instances share a name; IDs tell them apart on both ends, and
// each instance's messages reach only it.
func testInstances(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "shared", true)
	const n = 5
	var conns []dvc.Conn
	var handlers []*handler
	serverIDs, clientIDs := map[uint32]bool{}, map[uint32]bool{}
	for range n {
		c := open(t, p, "shared")
		h := take(t, hs)
		if serverIDs[c.ID()] || clientIDs[h.ch.ID()] {
			t.Fatalf("ID %d/%d handed out twice", c.ID(), h.ch.ID())
		}
		serverIDs[c.ID()], clientIDs[h.ch.ID()] = true, true
		if c.Name() != "shared" || h.ch.Name() != "shared" {
			t.Fatalf("names %q/%q, want %q", c.Name(), h.ch.Name(), "shared")
		}
		conns = append(conns, c)
		handlers = append(handlers, h)
	}
	ctx := ctxStuck(t)
	for i, c := range conns {
		if err := c.Write(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, h := range handlers {
		if got := h.next(t); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("instance %d's handler got % x", i, got)
		}
	}
	for i, c := range conns {
		if got, err := c.Read(ctx); err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("instance %d read % x, %v", i, got, err)
		}
	}
	for _, h := range handlers {
		h.check(t)
	}
}

// Handler calls for one instance are serialized and in order.
func testSerialized(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "order", false)
	c := open(t, p, "order")
	h := take(t, hs)
	ctx := ctxStuck(t)
	const n = 1000
	for i := range n {
		size := 4 + i%3*1000 // some single-PDU, some fragmented
		m := pattern(size, i)
		m[0], m[1] = byte(i), byte(i>>8)
		if err := c.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		got := h.next(t)
		if len(got) < 2 || int(got[0])|int(got[1])<<8 != i {
			t.Fatalf("message %d out of order: starts % x", i, got[:min(len(got), 2)])
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v) after the server closed, want nil", err)
	}
	h.check(t)
}

// Closed comes once, after the last Received, with nil when the server
// closes in an orderly way.
func testServerClose(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "sclose", false)
	c := open(t, p, "sclose")
	h := take(t, hs)
	ctx := ctxStuck(t)
	for i := range 3 {
		if err := c.Write(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if got := h.next(t); len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("message %d: % x", i, got)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v (Close is idempotent)", err)
	}
	if err := h.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
	h.check(t)
}

// The client closes after writing: the server reads every message, then
// io.EOF; the handler's Closed(nil) comes once.
func testClientClose(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "cclose", false)
	c := open(t, p, "cclose")
	h := take(t, hs)
	ctx := ctxStuck(t)
	for i := range 3 {
		if err := h.ch.Write(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.ch.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.ch.Close(); err != nil {
		t.Fatalf("second Close: %v (Close is idempotent)", err)
	}
	for i := range 3 {
		if got, err := c.Read(ctx); err != nil || len(got) != 1 || got[0] != byte(i) {
			t.Fatalf("read %d: % x, %v (queued messages come before EOF)", i, got, err)
		}
	}
	if _, err := c.Read(ctx); err != io.EOF {
		t.Fatalf("Read after the client closed = %v, want io.EOF", err)
	}
	if _, err := c.Read(ctx); err != io.EOF {
		t.Fatalf("second Read after the client closed = %v, want io.EOF again", err)
	}
	if err := h.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v) after its own close, want nil", err)
	}
	c.Close()
	h.check(t)
}

// Close from inside Received: no Received after it, Closed(nil) once, and
// the server reads what was written before it, then io.EOF.
func testCloseInsideReceived(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "inside", false)
	c := open(t, p, "inside")
	h := take(t, hs)
	var calls atomic.Int32
	h.setOnReceive(func(h *handler, _ []byte) {
		if calls.Add(1) == 1 {
			_ = h.ch.Write(context.Background(), []byte("bye"))
			_ = h.ch.Close()
		}
	})
	ctx := ctxStuck(t)
	for range 5 {
		if err := c.Write(ctx, []byte("hi")); err != nil && !errors.Is(err, dvc.ErrClosed) {
			t.Fatalf("Write: %v", err)
		}
	}
	if got, err := c.Read(ctx); err != nil || string(got) != "bye" {
		t.Fatalf("Read = %q, %v", got, err)
	}
	if _, err := c.Read(ctx); err != io.EOF {
		t.Fatalf("Read = %v, want io.EOF", err)
	}
	if err := h.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("Received called %d times; the handler closed in the first", n)
	}
	h.check(t)
}

type statusErr struct{ h hresult.HRESULT }

func (e statusErr) Error() string            { return "refused by test" }
func (e statusErr) HRESULT() hresult.HRESULT { return e.h }

// A listener's refusal reaches Open as *dvc.OpenError with dvc.StatusOf's
// status: the error's own HRESULT, or STATUS_UNSUCCESSFUL. Every listener
// is registered before the first Open (ListenAfterOpen is a rule of its
// own).
func testRefusal(t *testing.T, p Pair, o *options) {
	status := dvc.StatusOf
	if why, ok := o.except[NoRefusalStatus]; ok {
		t.Logf("exception %s: %s; every refusal must be 0xC0000001", NoRefusalStatus, why)
		status = func(error) hresult.HRESULT { return hresult.StatusUnsuccessful }
	}
	refusals := map[string]error{
		"deny":  statusErr{hresult.E_ACCESSDENIED},
		"plain": errors.New("no"),
		"wrap":  fmt.Errorf("wrapped: %w", statusErr{hresult.E_OUTOFMEMORY}),
	}
	for name, err := range refusals {
		if lerr := p.Registrar.Listen(name, dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, err })); lerr != nil {
			t.Fatal(lerr)
		}
	}
	// A listener returning neither a Handler nor an error refuses too.
	if err := p.Registrar.Listen("nil", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil })); err != nil {
		t.Fatal(err)
	}
	hs := accepting(t, p.Registrar, "after", true)
	for name, err := range refusals {
		_, oerr := p.Opener.Open(ctxStuck(t), name)
		var oe *dvc.OpenError
		if !errors.As(oerr, &oe) || oe.Status != status(err) || oe.Name != name {
			t.Fatalf("Open(%q) = %v, want *dvc.OpenError{Name: %q, Status: %v}", name, oerr, name, status(err))
		}
	}
	var oe *dvc.OpenError
	if _, err := p.Opener.Open(ctxStuck(t), "nil"); !errors.As(err, &oe) {
		t.Fatalf("Open of a (nil, nil) listener = %v, want *dvc.OpenError", err)
	}
	// The connection is unharmed.
	c := open(t, p, "after")
	take(t, hs)
	roundTrip(t, c, []byte("still here"))
}

func roundTrip(t *testing.T, c dvc.Conn, m []byte) {
	t.Helper()
	ctx := ctxStuck(t)
	if err := c.Write(ctx, m); err != nil {
		t.Fatal(err)
	}
	if got, err := c.Read(ctx); err != nil || !bytes.Equal(got, m) {
		t.Fatalf("echo: %q, %v", got, err)
	}
}

// A name with no listener is refused with STATUS_UNSUCCESSFUL (0xC0000001),
// as mstsc and FreeRDP do.
func testUnknownName(t *testing.T, p Pair, _ *options) {
	_, err := p.Opener.Open(ctxStuck(t), "nobody-listens")
	var oe *dvc.OpenError
	if !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
		t.Fatalf("Open = %v, want *dvc.OpenError with 0xC0000001", err)
	}
}

// After this end's Close, Read and Write say dvc.ErrClosed, even with
// messages still queued.
func testLocalClose(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "local", false)
	c := open(t, p, "local")
	h := take(t, hs)
	ctx := ctxStuck(t)
	if err := h.ch.Write(ctx, []byte("queued")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(ctx); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Read after Close = %v, want dvc.ErrClosed", err)
	}
	if err := c.Write(ctx, []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after Close = %v, want dvc.ErrClosed", err)
	}
	if err := h.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
	// The client end, closed by the server, says ErrClosed too.
	if err := h.ch.Write(ctx, []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("client Write after the server closed = %v, want dvc.ErrClosed", err)
	}
	h.check(t)
}

// A write after the peer closed fails with dvc.ErrClosed, on both ends.
func testWriteAfterPeerClose(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "late", false)
	ctx := ctxStuck(t)

	a := open(t, p, "late")
	ha := take(t, hs)
	ha.ch.Close()
	if _, err := a.Read(ctx); err != io.EOF {
		t.Fatalf("Read after the client closed = %v, want io.EOF", err)
	}
	if err := a.Write(ctx, []byte("late")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("server Write after the client closed = %v, want dvc.ErrClosed", err)
	}
	a.Close()

	b := open(t, p, "late")
	hb := take(t, hs)
	b.Close()
	if err := hb.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
	if err := hb.ch.Write(ctx, []byte("late")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("client Write after the server closed = %v, want dvc.ErrClosed", err)
	}
	ha.check(t)
	hb.check(t)
}

// When the carrier dies, Read (after queued messages), Write, Open and
// the Handler all see an error wrapping dvc.ErrConnectionLost, and a Read
// already waiting returns.
func testConnectionLost(t *testing.T, p Pair, _ *options) {
	if p.Kill == nil {
		t.Skip("the pair cannot kill its carrier (Pair.Kill is nil)")
	}
	hs := accepting(t, p.Registrar, "lost", false)
	c := open(t, p, "lost")
	h := take(t, hs)
	ctx := ctxStuck(t)
	read := make(chan error, 1)
	go func() {
		_, err := c.Read(ctx)
		read <- err
	}()
	p.Kill()
	select {
	case err := <-read:
		if !errors.Is(err, dvc.ErrConnectionLost) {
			t.Fatalf("pending Read = %v, want dvc.ErrConnectionLost", err)
		}
	case <-time.After(stuck):
		t.Fatal("stuck: a pending Read did not return when the carrier died")
	}
	if err := h.waitClosed(t); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("Closed(%v), want dvc.ErrConnectionLost", err)
	}
	if _, err := c.Read(ctx); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("Read = %v, want dvc.ErrConnectionLost", err)
	}
	if err := c.Write(ctx, []byte("x")); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("Write = %v, want dvc.ErrConnectionLost", err)
	}
	if _, err := p.Opener.Open(ctx, "lost"); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("Open = %v, want dvc.ErrConnectionLost", err)
	}
	c.Close()
	h.check(t)
}

// Accept must not write: a Write inside Accept fails, and the channel
// still opens; the server's first message from the handler comes after
// Open returned.
func testAcceptNoWrite(t *testing.T, p Pair, _ *options) {
	werr := make(chan error, 1)
	hs := make(chan *handler, 1)
	err := p.Registrar.Listen("nowrite", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		werr <- ch.Write(context.Background(), []byte("too early"))
		h := newHandler(ch, true)
		hs <- h
		return h, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, p, "nowrite")
	if err := <-werr; err == nil {
		t.Fatal("Write inside Accept succeeded; it must fail (the channel is not open yet)")
	}
	take(t, hs)
	roundTrip(t, c, []byte("first"))
}

// Closing the channel inside Accept refuses it.
func testCloseInAccept(t *testing.T, p Pair, _ *options) {
	err := p.Registrar.Listen("shy", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		ch.Close()
		return newHandler(ch, false), nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	hs := accepting(t, p.Registrar, "after", true)
	var oe *dvc.OpenError
	if _, err := p.Opener.Open(ctxStuck(t), "shy"); !errors.As(err, &oe) {
		t.Fatalf("Open = %v, want *dvc.OpenError", err)
	}
	// The connection is unharmed.
	c := open(t, p, "after")
	take(t, hs)
	roundTrip(t, c, []byte("still here"))
}

// Write waits no longer than its context allows, even behind a stalled
// peer, and Close returns without waiting for the carrier.
func testWriteContext(t *testing.T, p Pair, o *options) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	hs := make(chan *handler, 1)
	err := p.Registrar.Listen("stall", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		h := newHandler(ch, false)
		h.onReceive = func(*handler, []byte) {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release // a handler that stopped returning
		}
		hs <- h
		return h, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	c := open(t, p, "stall")
	h := take(t, hs)
	var released sync.Once
	unblock := func() { released.Do(func() { close(release) }) }
	defer unblock()

	// A Write that need not wait may succeed whatever its context (the
	// rule is only that it waits no longer than the context allows), so
	// the context is tested where the write has to wait.
	// Fill the stalled channel from one goroutine until its writes block;
	// meanwhile writes with short deadlines must start failing with
	// DeadlineExceeded rather than block with the filler.
	ctx := ctxStuck(t)
	fill := min(o.maxSize, 1<<20)
	var filler sync.WaitGroup
	stop := make(chan struct{})
	var fillErr error // the filler's last Write, read after filler.Wait
	filler.Go(func() {
		m := pattern(fill, 1)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fillErr = c.Write(ctx, m); fillErr != nil {
				return
			}
		}
	})
	select {
	case <-entered:
	case <-time.After(stuck):
		t.Fatal("stuck: the handler never received")
	}
	const limit = 1 << 30 // far beyond any inbox: a backend that never stalls fails
	exceeded := false
	for sent := 0; sent < limit; sent += fill {
		short, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		err := c.Write(short, pattern(fill, 2))
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			exceeded = true
			break
		}
		if err != nil {
			t.Fatalf("Write behind a stalled handler = %v, want nil or DeadlineExceeded", err)
		}
	}
	if !exceeded {
		t.Fatalf("%d bytes written to a handler that never returns; the channel has no limit", limit)
	}
	// Close must return while the carrier is stalled.
	closeDone := make(chan error, 1)
	go func() { closeDone <- c.Close() }()
	select {
	case err := <-closeDone:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(stuck):
		t.Fatal("stuck: Close waited for a stalled carrier")
	}
	close(stop)
	unblock()
	filler.Wait()
	// The filler's context ends only when the suite calls the backend
	// stuck: if its Write ran out, the short Writes above waited behind it
	// that long before they failed, instead of no longer than their own.
	if errors.Is(fillErr, context.DeadlineExceeded) {
		t.Errorf("the filler's Write ran out its %v context: a Write waited behind another for that long", stuck)
	}
	if err := h.waitClosed(t); err != nil {
		t.Fatalf("Closed(%v), want nil", err)
	}
	h.check(t)
}

// Writes on different channels from different goroutines, both ways, each
// arrive whole on their own channel.
func testConcurrent(t *testing.T, p Pair, o *options) {
	hs := accepting(t, p.Registrar, "busy", true)
	const chans, msgs = 4, 40
	var conns []dvc.Conn
	var handlers []*handler
	for range chans {
		conns = append(conns, open(t, p, "busy"))
		handlers = append(handlers, take(t, hs))
	}
	var wg sync.WaitGroup
	errs := make(chan error, chans)
	for i, c := range conns {
		wg.Go(func() {
			ctx := ctxStuck(t)
			for j := range msgs {
				n := []int{1, 1590, 5140, min(o.maxSize, 100000)}[j%4]
				m := pattern(n, i*msgs+j)
				if err := c.Write(ctx, m); err != nil {
					errs <- err
					return
				}
				got, err := c.Read(ctx)
				if err != nil || !bytes.Equal(got, m) {
					errs <- fmt.Errorf("channel %d, message %d (%d bytes): echo of %d bytes, %v", i, j, n, len(got), err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, h := range handlers {
		h.check(t)
	}
}

// Names a DYNVC_CREATE_REQ cannot carry (MS-RDPEDYC 2.2.2.1: empty, with a
// NUL, over 256 bytes) are refused by Listen, and fail Open without
// harming the connection.
func testNameRules(t *testing.T, p Pair, _ *options) {
	bad := []string{"", "a\x00b", strings.Repeat("n", 257)}
	for _, name := range bad {
		if err := p.Registrar.Listen(name, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			return newHandler(ch, false), nil
		})); err == nil {
			t.Errorf("Listen(%.20q) succeeded; want an error", name)
		}
		var oe *dvc.OpenError
		if _, err := p.Opener.Open(ctxStuck(t), name); err == nil || errors.As(err, &oe) || errors.Is(err, dvc.ErrConnectionLost) {
			t.Errorf("Open(%.20q) = %v; want a local error (not a refusal, not a lost connection)", name, err)
		}
	}
	long := strings.Repeat("n", 256)
	hs := accepting(t, p.Registrar, long, true)
	c := open(t, p, long)
	take(t, hs)
	roundTrip(t, c, []byte("long name"))
}

// Registering a name twice is an error; the first listener stays.
func testDuplicateListen(t *testing.T, p Pair, _ *options) {
	hs := accepting(t, p.Registrar, "dup", true)
	if err := p.Registrar.Listen("dup", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return nil, errors.New("second listener")
	})); err == nil {
		t.Fatal("a second Listen of the same name succeeded")
	}
	c := open(t, p, "dup")
	take(t, hs)
	roundTrip(t, c, []byte("first listener"))
}

// A Listen made while channels are open serves the next Open of its name:
// the listeners are not fixed when the client side connects.
func testLateListen(t *testing.T, p Pair, _ *options) {
	early := accepting(t, p.Registrar, "early", true)
	c := open(t, p, "early")
	take(t, early)
	roundTrip(t, c, []byte("early"))
	late := accepting(t, p.Registrar, "late", true)
	d := open(t, p, "late")
	take(t, late)
	roundTrip(t, d, []byte("late"))
	roundTrip(t, c, []byte("early, still"))
}
