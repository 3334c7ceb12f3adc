package xrdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// The Opener runs the channel contract against the fake chansrv, whose
// client end (fakeClient) is a Registrar as an RDP client behind chansrv
// is: chansrv asks it before answering the open, and it sees the server's
// bytes as chansrv forwards them.
//
// xrdp's socket keeps no message boundaries, so the pair frames every
// message the suite sends with a u32 length, on both ends, and Open is
// given the matching Framer: what every protocol over xrdp does (Simple's
// frameLen, PNPDR's Size). The exceptions are the platform's:
func TestContract(t *testing.T) {
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		fc := &fakeClient{}
		f := startFakeChansrv(t, fc)
		fc.f = f
		op := f.opener(t, Options{SplitLarge: true}) // the client reframes
		return dvctest.Pair{Registrar: fc, Opener: framedOpener{op}, Kill: f.stop, Cleanup: func() { f.stop(); fc.wg.Wait() }}
	},
		dvctest.Except(dvctest.NoPeerCloseEOF, "xrdp does not pass a client's DYNVC_CLOSE on to the xrdpapi socket: chansrv closes it only when it goes away"),
		dvctest.Except(dvctest.NoNameRules, "chansrv decides: it takes names up to 260 bytes (MaxNameLen), beyond MS-RDPEDYC's 256"),
	)
}

func startFakeChansrv(t *testing.T, fc *fakeClient) *fakeChansrv {
	f := startFake(t, 9, nil)
	f.mu.Lock()
	f.accept = fc.accept
	f.mu.Unlock()
	return f
}

const contractMax = 2 << 20

// frame32 is the pair's framing: a u32 length, then the message.
func frame32(msg []byte) []byte {
	return append(binary.LittleEndian.AppendUint32(make([]byte, 0, 4+len(msg)), uint32(len(msg))), msg...)
}

func framer32(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, nil
	}
	return 4 + int(binary.LittleEndian.Uint32(b)), nil
}

// framedOpener opens with framer32 and frames what the suite writes.
type framedOpener struct{ op *Opener }

func (o framedOpener) Open(ctx context.Context, name string, _ ...dvc.OpenOption) (dvc.Conn, error) {
	c, err := o.op.Open(ctx, name, dvc.WithFramer(framer32))
	if err != nil {
		return nil, err
	}
	return framedConn{c}, nil
}

type framedConn struct{ dvc.Conn }

func (c framedConn) Write(ctx context.Context, msg []byte) error {
	return c.Conn.Write(ctx, frame32(msg))
}

func (c framedConn) Read(ctx context.Context) ([]byte, error) {
	m, err := c.Conn.Read(ctx)
	if err != nil {
		return nil, err
	}
	return m[4:], nil
}

// fakeClient is the RDP client behind the fake chansrv: its listeners
// decide each open, and each accepted channel's Handler is fed by the
// goroutine reading the socket (kit.Direct, as FreeRDP's thread does).
type fakeClient struct {
	reg kit.Registry
	f   *fakeChansrv
	wg  sync.WaitGroup
	mu  sync.Mutex
	id  uint32
}

func (fc *fakeClient) Listen(name string, l dvc.Listener) error { return fc.reg.Listen(name, l) }

func (fc *fakeClient) accept(name string, c *net.UnixConn) (uint32, func()) {
	l := fc.reg.Lookup(name)
	if l == nil {
		return uint32(hresult.StatusUnsuccessful), nil
	}
	fc.mu.Lock()
	fc.id++
	ch := &clientChan{name: name, id: fc.id, c: c, s: kit.NewSerial(kit.SerialConfig{Mode: kit.Direct}), out: dvc.NewInbox(64 << 20)}
	fc.mu.Unlock()
	h, err := kit.Accept(l, ch)
	ch.mu.Lock()
	if err == nil && ch.closed {
		err = errors.New("closed inside Accept")
	}
	if err != nil {
		ch.mu.Unlock()
		return uint32(dvc.StatusOf(err)), nil
	}
	ch.open = true
	ch.mu.Unlock()
	ch.s.Attach(h)
	return 0, func() {
		fc.wg.Go(ch.forward)
		ch.read(fc.f)
		ch.out.CloseWithError(nil)
	}
}

type clientChan struct {
	name string
	id   uint32
	c    *net.UnixConn
	s    *kit.Serial
	out  *dvc.Inbox // what the client sent, queued in chansrv for the socket

	mu     sync.Mutex
	open   bool
	closed bool
}

func (ch *clientChan) Name() string { return ch.name }
func (ch *clientChan) ID() uint32   { return ch.id }

func (ch *clientChan) Write(ctx context.Context, msg []byte) error {
	ch.mu.Lock()
	open, closed := ch.open, ch.closed
	ch.mu.Unlock()
	switch {
	case closed:
		return dvc.ErrClosed
	case !open:
		return errors.New("fake client: channel not open yet: write after Accept returns")
	}
	if err := ch.out.Put(ctx, frame32(msg)); err != nil {
		return fmt.Errorf("fake client: %w: %w", dvc.ErrConnectionLost, err)
	}
	return nil
}

// forward is chansrv writing what the client sent into the socket.
func (ch *clientChan) forward() {
	for {
		m, err := ch.out.Read(context.Background())
		if err != nil {
			return
		}
		if _, err := ch.c.Write(m); err != nil {
			ch.out.Discard(err)
			return
		}
	}
}

// Close is the client's DYNVC_CLOSE, which chansrv does not pass on: the
// socket stays open, what the server sends is dropped.
func (ch *clientChan) Close() error {
	ch.mu.Lock()
	ch.closed = true
	ch.mu.Unlock()
	ch.s.Discard(dvc.ErrClosed)
	return nil
}

// read feeds the Handler from the socket until chansrv closes it: the
// server's close (Closed(nil)) or chansrv stopping (connection lost).
func (ch *clientChan) read(f *fakeChansrv) {
	st := kit.Stream{Framer: framer32, Max: contractMax}
	for {
		n, err := ch.c.Read(st.Space(32768))
		st.Added(n)
		for {
			m, ferr := st.Next()
			if ferr != nil {
				ch.s.End(ferr)
				return
			}
			if m == nil {
				break
			}
			ch.s.Put(context.Background(), m[4:])
		}
		if err != nil {
			f.mu.Lock()
			stopped := f.stopped
			f.mu.Unlock()
			// Closed before Closed is reported: a Write from the handler's
			// owner once it has seen Closed must find the channel closed.
			ch.mu.Lock()
			ch.closed = true
			ch.mu.Unlock()
			if stopped {
				ch.s.End(fmt.Errorf("fake chansrv stopped: %w", dvc.ErrConnectionLost))
			} else {
				ch.s.End(nil) // the server closed: chansrv sends DYNVC_CLOSE
			}
			return
		}
	}
}

// The exceptions are what xrdp does, not a way to hide a bug: each is
// checked here.
func TestContractExceptions(t *testing.T) {
	ctx := context.Background()
	pair := func(t *testing.T) (*fakeClient, *fakeChansrv, dvc.Opener) {
		fc := &fakeClient{}
		f := startFakeChansrv(t, fc)
		fc.f = f
		t.Cleanup(fc.wg.Wait)
		t.Cleanup(f.stop)
		return fc, f, framedOpener{f.opener(t, Options{})}
	}

	// NoPeerCloseEOF: after the client's close the socket stays open, so
	// a server write still goes through, and the server learns of an end
	// only when chansrv goes away: connection lost, not io.EOF.
	t.Run("NoPeerCloseEOF", func(t *testing.T) {
		fc, f, op := pair(t)
		accepted := make(chan dvc.Channel, 1)
		closed := make(chan error, 1)
		fc.Listen("x", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			accepted <- ch
			return closedFunc(func(err error) { closed <- err }), nil
		}))
		c, err := op.Open(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		(<-accepted).Close()
		if err := <-closed; err != nil {
			t.Fatalf("client's Closed(%v)", err)
		}
		if err := c.Write(ctx, []byte("after the client closed")); err != nil {
			t.Fatalf("server Write after the client's close = %v; chansrv keeps the socket, so it should go through", err)
		}
		f.stop()
		if _, err := c.Read(ctx); !errors.Is(err, dvc.ErrConnectionLost) {
			t.Fatalf("Read once chansrv went away = %v, want dvc.ErrConnectionLost (never io.EOF)", err)
		}
	})

	// NoNameRules: chansrv's limit is 260 bytes, not MS-RDPEDYC's 256.
	t.Run("NoNameRules", func(t *testing.T) {
		fc, _, op := pair(t)
		long := strings.Repeat("n", 257)
		if err := fc.Listen(long, dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, errors.New("no") })); err == nil {
			t.Fatal("the fake client accepted a 257-byte name; it applies MS-RDPEDYC's rule")
		}
		var oe *dvc.OpenError
		if _, err := op.Open(ctx, long); !errors.As(err, &oe) {
			t.Fatalf("Open of a 257-byte name = %v; the Opener should send it (chansrv takes up to %d) and get a refusal", err, MaxNameLen)
		}
		if _, err := op.Open(ctx, strings.Repeat("n", MaxNameLen+1)); err == nil || errors.As(err, &oe) {
			t.Fatalf("Open of a %d-byte name = %v, want a local error", MaxNameLen+1, err)
		}
	})
}

// closedFunc is a Handler that only reports Closed.
type closedFunc func(error)

func (closedFunc) Received([]byte)    {}
func (f closedFunc) Closed(err error) { f(err) }
