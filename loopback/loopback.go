// Package loopback is an in-process dvc backend: a Hub is both the client
// side (a dvc.Registrar) and the server side (a dvc.Opener) of one
// imaginary RDP connection, with no wire format in between.
//
// It exists so that channel protocols can be tested, and embedded, without
// a transport: what a handler sees through it is exactly what it sees
// through the portable transport, xrdp or FreeRDP — named instances,
// whole messages, serialized callbacks, Closed exactly once.
//
// # Goroutines
//
// There is nothing to start: New returns a Hub ready for Listen and Open.
// The Listener's Accept runs on the goroutine that called Open, before
// Open returns. Each instance then gets one goroutine of its own that
// calls its Handler, in order and never overlapping; it ends after
// Closed. The caller owns the goroutines that call Open, Read and Write.
//
// A channel's Write may be called from any goroutine, including from
// inside Received (that is how a client answers): the client's Write
// queues for the server's Read and waits, bounded by its context, only
// while that inbox is full. Not from inside Accept: the instance opens
// when Accept returns. A channel's Close is safe anywhere, Received
// included; Closed then comes after Received returns.
//
// # Closing
//
// Hub.Close ends every instance with an error wrapping
// dvc.ErrConnectionLost (server Reads and Writes return it, each Handler
// gets Closed once) and waits until every Handler has had Closed. Unlike
// the portable transport's Close, that wait has no timeout: a Handler
// stuck in a callback holds Close.
package loopback

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
)

// Hub joins client-side listeners and server-side opens in one process.
type Hub struct {
	reg    kit.Registry
	mu     sync.Mutex
	nextID uint32
	open   map[uint32]*instance
	closed bool
	wg     sync.WaitGroup // delivery goroutines
}

// New returns an empty hub.
func New() *Hub {
	h := &Hub{open: map[uint32]*instance{}}
	h.reg.Prefix = "loopback"
	return h
}

// Listen registers a client-side listener. name must be one a
// DYNVC_CREATE_REQ can carry (MS-RDPEDYC 2.2.2.1, kit.CheckName), as on a
// real connection, so that what works here works there.
func (h *Hub) Listen(name string, l dvc.Listener) error { return h.reg.Listen(name, l) }

// Open creates a channel instance and hands its client end to the listener
// registered for name.
func (h *Hub) Open(ctx context.Context, name string, _ ...dvc.OpenOption) (dvc.Conn, error) {
	if err := kit.CheckName(name); err != nil {
		return nil, fmt.Errorf("loopback: open %q: %w", name, err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, fmt.Errorf("loopback: open %q: %w", name, dvc.ErrConnectionLost)
	}
	l := h.reg.Lookup(name)
	h.nextID++
	id := h.nextID
	h.mu.Unlock()
	if l == nil {
		return nil, &dvc.OpenError{Name: name, Status: dvc.StatusOf(nil)}
	}
	// Queued: the server's Write delivers into the inbox and stays
	// bounded by its context; the Handler runs on its own goroutine.
	in := &instance{hub: h, name: name, id: id, toServer: dvc.NewInbox(0),
		toClient: kit.NewSerial(kit.SerialConfig{Mode: kit.Queued, Borrowed: true, Group: &h.wg})}
	in.client = &clientEnd{in}
	handler, err := kit.Accept(l, in.client)
	if err != nil {
		return nil, &dvc.OpenError{Name: name, Status: dvc.StatusOf(err)}
	}
	if in.ended.Load() {
		// Closed during Accept: a refusal, as the DVC managers report it.
		return nil, &dvc.OpenError{Name: name, Status: dvc.StatusOf(nil)}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		handler.Closed(dvc.ErrConnectionLost)
		return nil, fmt.Errorf("loopback: open %q: %w", name, dvc.ErrConnectionLost)
	}
	h.open[id] = in
	in.opened.Store(true) // the client end may write from now on
	in.toClient.Attach(handler)
	h.mu.Unlock()
	return &serverEnd{in}, nil
}

// Close ends the imaginary connection: every open instance sees its
// connection lost, and Close waits until every Handler has had Closed.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	open := h.open
	h.open = map[uint32]*instance{}
	h.mu.Unlock()
	for _, in := range open {
		in.end(fmt.Errorf("loopback: hub closed: %w", dvc.ErrConnectionLost))
	}
	h.wg.Wait()
	return nil
}

type instance struct {
	hub      *Hub
	name     string
	id       uint32
	client   *clientEnd
	toServer *dvc.Inbox  // client Write → server Read
	toClient *kit.Serial // server Write → Handler.Received

	once   sync.Once
	ended  atomic.Bool
	opened atomic.Bool // Accept returned a Handler: writes may go
	lost   error       // set before ended when the hub closed
}

// end closes both directions with err (nil = orderly close).
func (in *instance) end(err error) {
	in.once.Do(func() {
		if errors.Is(err, dvc.ErrConnectionLost) {
			in.lost = err
		}
		in.ended.Store(true)
		if err == nil {
			in.toServer.CloseWithError(io.EOF)
			in.toClient.End(nil)
		} else {
			in.toServer.CloseWithError(err)
			in.toClient.End(err)
		}
		in.hub.mu.Lock()
		delete(in.hub.open, in.id)
		in.hub.mu.Unlock()
	})
}

// write puts msg where the other end reads it; put copies or not as it
// says.
func (in *instance) write(ctx context.Context, put func(context.Context, []byte) error, msg []byte) error {
	if err := put(ctx, msg); err != nil {
		if err == dvc.ErrClosed && in.ended.Load() && in.lost != nil {
			return in.lost
		}
		return err
	}
	return nil
}

type serverEnd struct{ in *instance }

func (s *serverEnd) Name() string { return s.in.name }
func (s *serverEnd) ID() uint32   { return s.in.id }
func (s *serverEnd) Write(ctx context.Context, msg []byte) error {
	return s.in.write(ctx, s.in.toClient.Put, msg) // Borrowed: the Serial copies
}
func (s *serverEnd) Read(ctx context.Context) ([]byte, error) { return s.in.toServer.Read(ctx) }
func (s *serverEnd) Close() error {
	s.in.toServer.Discard(dvc.ErrClosed) // this end's Read now says ErrClosed, not EOF
	s.in.end(nil)
	return nil
}

type clientEnd struct{ in *instance }

func (c *clientEnd) Name() string { return c.in.name }
func (c *clientEnd) ID() uint32   { return c.in.id }
func (c *clientEnd) Write(ctx context.Context, msg []byte) error {
	if !c.in.opened.Load() {
		// As on a DVC manager: the channel is not open until Accept returns.
		return fmt.Errorf("loopback: channel %q (%d) is not open yet: write after Accept returns", c.in.name, c.in.id)
	}
	return c.in.write(ctx, func(ctx context.Context, m []byte) error {
		return c.in.toServer.Put(ctx, append([]byte(nil), m...))
	}, msg)
}

// Close ends the instance from the client: the server reads io.EOF, and
// the Handler gets no more messages, then Closed(nil).
func (c *clientEnd) Close() error {
	c.in.toClient.Discard(dvc.ErrClosed) // Closed(nil) after the call in progress
	c.in.end(nil)
	return nil
}

var (
	_ dvc.Registrar = (*Hub)(nil)
	_ dvc.Opener    = (*Hub)(nil)
)
