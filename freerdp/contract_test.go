package freerdp

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// The Host runs the channel contract against drdynvcThread, a Go stand-in
// for FreeRDP's drdynvc client and the server behind it (FreeRDP itself
// cannot run inside go test; freerdp/plugin tests the cgo half against
// FreeRDP's headers). It behaves as the package doc says FreeRDP 2.11 and
// 3 do: every callback on one thread, whole messages, Write copies and
// queues from any thread, a zero-length Write closes the channel and
// calls OnClose before it returns, every refusal goes out as 0xC0000001.
func TestContract(t *testing.T) {
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		d := startDrdynvc(NewHost())
		return dvctest.Pair{Registrar: d.host, Opener: d, Kill: d.kill, Cleanup: d.stop}
	},
		dvctest.Except(dvctest.NoRefusalStatus, "FreeRDP's drdynvc sends CreationStatus 0xC0000001 for every refused channel"),
		dvctest.Except(dvctest.NoEmptyMessages, "a zero-length IWTSVirtualChannel::Write closes the channel, so Instance.Write drops empty messages"),
	)
}

// drdynvcThread runs every Host callback on one goroutine, in order, as
// FreeRDP's drdynvc channel thread does. Its queue is bounded: a server
// write waits while the thread is stalled in a Handler, bounded by its
// context.
type drdynvcThread struct {
	host   *Host
	thread *dvctest.Thread
	wg     sync.WaitGroup // deferred closes

	mu     sync.Mutex
	nextID uint32
	conns  map[*srvConn]bool
	lost   error
}

func startDrdynvc(h *Host) *drdynvcThread {
	th, _ := dvctest.StartThread(16, nil) // fails only in init
	return &drdynvcThread{host: h, thread: th, conns: map[*srvConn]bool{}}
}

func (d *drdynvcThread) post(ctx context.Context, f func()) error { return d.thread.Post(ctx, f) }
func (d *drdynvcThread) call(ctx context.Context, f func()) error { return d.thread.Call(ctx, f) }

func (d *drdynvcThread) dead() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.lost
}

// Open is the server's DYNVC_CREATE_REQ reaching OnNewChannelConnection.
func (d *drdynvcThread) Open(ctx context.Context, name string, _ ...dvc.OpenOption) (dvc.Conn, error) {
	if err := kit.CheckName(name); err != nil {
		return nil, fmt.Errorf("server: open %q: %w", name, err)
	}
	if err := d.dead(); err != nil {
		return nil, err
	}
	var conn *srvConn
	var oerr error
	if err := d.call(ctx, func() {
		d.mu.Lock()
		d.nextID++
		c := &srvConn{d: d, name: name, id: d.nextID, in: dvc.NewInbox(0)}
		d.mu.Unlock()
		n := &fakeChannel{c: c}
		inst, err := d.host.NewChannel(name, c.id, n)
		if err != nil {
			oerr = &dvc.OpenError{Name: name, Status: hresult.StatusUnsuccessful}
			return
		}
		c.inst = inst
		d.mu.Lock()
		d.conns[c] = true
		d.mu.Unlock()
		conn = c
	}); err != nil {
		return nil, err
	}
	return conn, oerr
}

// kill is the connection dropping: the server's channels lose their
// carrier and FreeRDP calls IWTSPlugin::Terminated.
func (d *drdynvcThread) kill() {
	lost := fmt.Errorf("connection dropped: %w", dvc.ErrConnectionLost)
	d.mu.Lock()
	already := d.lost != nil
	d.lost = lost
	conns := d.conns
	d.conns = map[*srvConn]bool{}
	d.mu.Unlock()
	if already {
		return
	}
	for c := range conns {
		c.in.CloseWithError(lost)
	}
	d.call(context.Background(), d.host.Terminate)
}

func (d *drdynvcThread) stop() {
	d.kill()
	d.thread.Stop()
	d.wg.Wait()
	d.host.wg.Wait()
}

// fakeChannel is the IWTSVirtualChannel FreeRDP gives the plugin.
type fakeChannel struct {
	c      *srvConn
	mu     sync.Mutex
	closed bool
}

func (n *fakeChannel) Write(msg []byte) error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		panic("write to a freed FreeRDP channel")
	}
	if len(msg) > 0 {
		n.mu.Unlock()
		// FreeRDP copies and queues without limit; the server's inbox
		// is this test's only bound.
		return n.c.in.Put(context.Background(), append([]byte(nil), msg...))
	}
	// DYNVC_CLOSE to the server, then OnClose before returning.
	n.closed = true
	n.mu.Unlock()
	n.c.peerClosed()
	n.c.inst.Gone(nil)
	return nil
}

// srvConn is the server's end of one channel.
type srvConn struct {
	d    *drdynvcThread
	name string
	id   uint32
	in   *dvc.Inbox
	inst *Instance

	mu        sync.Mutex
	local     bool // the server closed
	peerGone  bool // the client closed
	closeOnce sync.Once
}

func (c *srvConn) peerClosed() {
	c.mu.Lock()
	c.peerGone = true
	c.mu.Unlock()
	c.in.CloseWithError(nil)
}

func (c *srvConn) Name() string { return c.name }
func (c *srvConn) ID() uint32   { return c.id }

func (c *srvConn) Read(ctx context.Context) ([]byte, error) { return c.in.Read(ctx) }

func (c *srvConn) Write(ctx context.Context, msg []byte) error {
	if err := c.d.dead(); err != nil {
		return err
	}
	c.mu.Lock()
	closed := c.local || c.peerGone
	c.mu.Unlock()
	if closed {
		return dvc.ErrClosed
	}
	m := append([]byte(nil), msg...)
	return c.d.post(ctx, func() {
		c.mu.Lock()
		gone := c.peerGone
		c.mu.Unlock()
		if !gone {
			c.inst.Data(m)
		}
	})
}

// Close sends DYNVC_CLOSE: FreeRDP calls OnClose on its thread. It does
// not wait for the thread.
func (c *srvConn) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.local = true
		gone := c.peerGone
		c.mu.Unlock()
		c.in.Discard(dvc.ErrClosed)
		if gone || c.d.dead() != nil {
			return
		}
		c.d.wg.Go(func() {
			c.d.post(context.Background(), func() {
				c.mu.Lock()
				gone := c.peerGone
				c.peerGone = true
				c.mu.Unlock()
				if !gone {
					c.inst.Gone(nil)
				}
			})
		})
	})
	return nil
}
