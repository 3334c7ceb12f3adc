package tunnel

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// stuckTimeout is how long a test waits for something that must happen
// before it calls it stuck: far longer than it takes, never a speed.
const stuckTimeout = 15 * time.Second

// returns waits for done, failing the test if it is stuck.
func returns(t *testing.T, what string, done <-chan struct{}) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(stuckTimeout):
		t.Fatalf("%s is stuck", what)
	}
}

// pipeTarget is a Client.Dial whose targets are net.Pipe ends nobody
// reads; closeAll closes their other ends (deferred by the test, so that
// a stuck test's cleanup does not hang too).
func pipeTarget() (dial func(context.Context, string, uint16) (net.Conn, error), closeAll func()) {
	var mu sync.Mutex
	var ends []net.Conn
	closeAll = func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range ends {
			c.Close()
		}
	}
	dial = func(context.Context, string, uint16) (net.Conn, error) {
		a, b := net.Pipe()
		mu.Lock()
		ends = append(ends, b)
		mu.Unlock()
		return a, nil
	}
	return dial, closeAll
}

// TestClientCloseNonReadingTarget: a server ends a stream in order (DATA,
// EOF, CLOSE 0) to a target that reads nothing: the client's Join is left
// writing to it, and Client.Close still returns.
func TestClientCloseNonReadingTarget(t *testing.T) {
	dial, closeAll := pipeTarget()
	cli := &Client{Dial: dial}
	p := newPortable(t, &Server{}, cli)
	defer closeAll()
	ctx := ctxT(t)
	conn, err := p.srv.Opener.Open(ctx, wire.ChannelName, dvc.WithFramer(wire.Framer))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg, _ := wire.Open{Window: 1 << 20, Target: wire.Addr{Host: "127.0.0.1", Port: 1}}.Append(nil)
	if err := conn.Write(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if r, ok := readMsg(t, ctx, conn).(wire.Reply); !ok || r.Code != 0 {
		t.Fatalf("reply %#v", r)
	}
	for _, m := range orderlyEnd {
		b, _ := m.Append(nil)
		if err := conn.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	waitFor(t, "the client to end the stream", func() bool { return cli.Streams() == 0 })
	done := make(chan struct{})
	go func() { cli.Close(); close(done) }()
	returns(t, "Client.Close", done)
}

// orderlyEnd is the messages of a stream the peer ends in order, with
// bytes still to write out.
var orderlyEnd = []wire.Message{wire.Data{Payload: []byte("nobody reads this")}, wire.EOF{}, wire.Close{Reason: wire.CloseNormal}}

// joinEnded starts Join of a stream the peer ended in order (orderlyEnd)
// with a socket nobody reads; done is closed when Join returns.
func joinEnded(t *testing.T, st *Stream) (done chan struct{}) {
	for _, m := range orderlyEnd {
		if err := st.deliver(m); err != nil {
			t.Fatal(err)
		}
	}
	a, b := net.Pipe()
	t.Cleanup(func() { b.Close() })
	done = make(chan struct{})
	go func() { Join(a, st); close(done) }()
	return done
}

// TestDrainBounded: after an orderly end, Join writes out what arrived,
// but a socket that takes nothing for WriteTimeout ends it.
func TestDrainBounded(t *testing.T) {
	st := newStream(&nullChannel{}, nil, nil, 1000, 1000, DefaultMaxData, time.Millisecond, nil)
	returns(t, "Join on a socket nobody reads", joinEnded(t, st))
}

// TestOwnerCloseEndsDrain: the owner's Close (Server's or Client's) ends
// a Join draining to a socket nobody reads, long before WriteTimeout.
func TestOwnerCloseEndsDrain(t *testing.T) {
	st := newStream(&nullChannel{}, nil, nil, 1000, 1000, DefaultMaxData, time.Hour, nil)
	owner, closeOwner := context.WithCancel(context.Background())
	st.owner = owner
	done := joinEnded(t, st)
	closeOwner()
	returns(t, "Join after its owner closed", done)
}

// TestServerCloseNonReadingProgram: Server.Close while Join carries a
// stream to a local program that reads nothing ends Join.
func TestServerCloseNonReadingProgram(t *testing.T) {
	fh, fp := flooder(t)
	p := newPortable(t, &Server{}, &Client{})
	st, err := p.srv.DialStream(ctxT(t), fh, fp)
	if err != nil {
		t.Fatal(err)
	}
	a, b := net.Pipe() // nobody reads b
	defer b.Close()
	done := make(chan struct{})
	go func() { Join(a, st); close(done) }()
	waitFor(t, "bytes to arrive for the program", func() bool { return st.bufferedForTest() > 0 })
	p.srv.Close()
	returns(t, "Join after Server.Close", done)
}

// stallConn is a carrier whose instance answers OPEN with a REPLY and
// then takes no more writes: each one waits for its context. It counts
// the writes waiting at once.
type stallConn struct {
	o     *stallOpener
	reply chan []byte
	done  chan struct{}
	once  sync.Once
}

func (*stallConn) Name() string { return wire.ChannelName }
func (*stallConn) ID() uint32   { return 1 }

func (c *stallConn) Write(ctx context.Context, msg []byte) error {
	if m, err := wire.Parse(msg); err == nil {
		if _, ok := m.(wire.Open); ok {
			b, _ := wire.Reply{Window: 1000}.Append(nil)
			c.reply <- b
			return nil
		}
	}
	c.o.mu.Lock()
	c.o.waiting++
	c.o.most = max(c.o.most, c.o.waiting)
	c.o.mu.Unlock()
	defer func() {
		c.o.mu.Lock()
		c.o.waiting--
		c.o.mu.Unlock()
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-c.o.release:
		return nil
	}
}

func (c *stallConn) Read(ctx context.Context) ([]byte, error) {
	select {
	case b := <-c.reply:
		return b, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return nil, net.ErrClosed
	}
}

func (c *stallConn) Close() error { c.once.Do(func() { close(c.done) }); return nil }

type stallOpener struct {
	release chan struct{} // closed to let every stalled write through
	mu      sync.Mutex
	waiting int
	most    int
}

func (o *stallOpener) Open(context.Context, string, ...dvc.OpenOption) (dvc.Conn, error) {
	return &stallConn{o: o, reply: make(chan []byte, 1), done: make(chan struct{})}, nil
}

func (o *stallOpener) counts() (int, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.waiting, o.most
}

// TestServerCloseStalledCarrier: Server.Close on a carrier that takes no
// writes has every stream's CLOSE waiting at once, not one after another
// (each may wait closeTimeout).
func TestServerCloseStalledCarrier(t *testing.T) {
	const n = 8
	o := &stallOpener{release: make(chan struct{})}
	s := &Server{Opener: o}
	for range n {
		if _, err := s.DialStream(ctxT(t), "127.0.0.1", 1); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	waitFor(t, "every stream's CLOSE to be written at once", func() bool { w, _ := o.counts(); return w == n })
	close(o.release)
	returns(t, "Server.Close", done)
}
