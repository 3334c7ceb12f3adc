package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// Server is the DVC server manager (MS-RDPEDYC 3.3): it negotiates
// capabilities, opens channels by name and carries their data. It is a
// dvc.Opener.
type Server struct {
	core
	startOnce sync.Once
	startErr  error
	capsAt    time.Time // when the request went out
}

// NewServer returns a server manager that sends through carrier. Call
// Start, then feed every received PDU to Receive from one goroutine.
func NewServer(carrier Carrier, cfg Config) *Server {
	s := &Server{}
	s.core.init(roleServer, cfg, carrier)
	s.pump, _ = carrier.(Pump)
	return s
}

// Start sends the capabilities request (DYNVC_CAPS_VERSION2, 2.2.1.1.2):
// the server manager speaks first (3.3.3.1).
func (s *Server) Start() error {
	s.startOnce.Do(func() {
		s.capsAt = time.Now()
		s.mu.Lock()
		req := s.machine.start()
		s.mu.Unlock()
		s.startErr = s.sendNow(context.Background(), req)
	})
	return s.startErr
}

// Version returns the version the client answered with, 0 before then.
func (s *Server) Version() uint16 { return uint16(s.ver.Load()) }

// Receive handles one PDU from the client. pdu is not kept. A non-nil
// error means the connection must be terminated (3.1.5.2.4); the manager
// has then already failed every channel with it.
func (s *Server) Receive(pdu []byte) error { return s.core.receive(pdu) }

// ReceiveNoWait is Receive for a goroutine that must not wait (a Pump
// run by a reader, which has its own context to honour): when a message
// is for a channel whose inbox is full, or the connection's pool is, it
// stops there and returns blocked; the carrier must then call Resume,
// from a goroutine that may wait, before the next PDU.
func (s *Server) ReceiveNoWait(pdu []byte) (blocked bool, err error) {
	return s.core.receiveMode(pdu, true)
}

// Resume finishes what ReceiveNoWait left, waiting for room as Receive
// does. Its error is one Receive would have returned.
func (s *Server) Resume() error { return s.core.resume() }

// ErrOpenTimeout is what Open returns (wrapped) when the client has not
// answered its DYNVC_CREATE_REQ within Config.OpenTimeout.
var ErrOpenTimeout = errors.New("session: no DYNVC_CREATE_RSP within Config.OpenTimeout")

// Open opens a channel instance named name (2.2.2.1) and waits for the
// client's DYNVC_CREATE_RSP, at most Config.OpenTimeout (the wait for
// DYNVC_CAPS_RSP before it is bounded by CapsTimeout). Several instances
// may share a name.
func (s *Server) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	o := dvc.ApplyOpenOptions(opts)
	ctx, cancel := context.WithTimeoutCause(ctx, s.cfg.CapsTimeout+s.cfg.OpenTimeout, ErrOpenTimeout)
	defer cancel()
	// Checked before waiting for the capabilities as well as by the
	// machine: a name no DYNVC_CREATE_REQ can carry fails at once.
	if err := (drdynvc.CreateRequest{ChannelName: name}).Validate(); err != nil {
		return nil, fmt.Errorf("session: open %q: %w", name, err)
	}
	if err := s.waitCaps(ctx); err != nil {
		return nil, fmt.Errorf("session: open %q: %w", name, err)
	}
	s.mu.Lock()
	e, req, err := s.machine.open(name, o.Priority)
	if err != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("session: open %q: %w", name, err)
	}
	ch := newChannel(&s.core, e)
	ch.result = make(chan error, 1)
	r := ch.result
	s.mu.Unlock()

	if s.pump != nil {
		s.pump.Kick() // the answer must be read
	}
	if err := s.sendNow(ctx, req); err != nil {
		// Not sent (the carrier was not ours in time, or the connection
		// died, which empties the table): the id is free again.
		s.mu.Lock()
		s.machine.unsent(e)
		s.mu.Unlock()
		return nil, fmt.Errorf("session: open %q: %w", name, openCause(ctx, err))
	}
	// The request is out: the client has OpenTimeout from now.
	t := time.NewTimer(s.cfg.OpenTimeout)
	defer t.Stop()
	var gaveUp error
	select {
	case err := <-r:
		if err != nil {
			return nil, err
		}
		return &serverConn{ch}, nil
	case <-ctx.Done():
		gaveUp = ctx.Err()
		if errors.Is(context.Cause(ctx), ErrOpenTimeout) {
			gaveUp = fmt.Errorf("%w (%v)", ErrOpenTimeout, s.cfg.OpenTimeout)
		}
	case <-t.C:
		gaveUp = fmt.Errorf("%w (%v)", ErrOpenTimeout, s.cfg.OpenTimeout)
	}
	s.mu.Lock()
	abandoned := s.machine.abandon(e)
	s.mu.Unlock()
	if !abandoned {
		// The answer is in some output being acted on: wait for it, so an
		// open channel cannot be left without an owner.
		if err := <-r; err == nil {
			(&serverConn{ch}).Close()
		}
	}
	// Abandoned: whoever answers later closes it.
	return nil, fmt.Errorf("session: open %q: %w", name, gaveUp)
}

// openCause is err, or ErrOpenTimeout when Open's own overall deadline
// (CapsTimeout+OpenTimeout, for a stalled carrier) is what ended ctx.
func openCause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); errors.Is(c, ErrOpenTimeout) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w (the DYNVC_CREATE_REQ could not be written)", ErrOpenTimeout)
	}
	return err
}

// waitCaps waits for the capabilities exchange. The caps timer (3.3.2) is
// the driver's: when it fires first, the machine is told (capsTimer).
func (s *Server) waitCaps(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	s.mu.Lock()
	expired := s.capsExpired
	s.mu.Unlock()
	if expired {
		return errCapsTimeout
	}
	select {
	case <-s.capsDone:
		return nil
	default:
	}
	if s.pump != nil {
		s.pump.Kick()
	}
	t := time.NewTimer(max(0, s.cfg.CapsTimeout-time.Since(s.capsAt)))
	defer t.Stop()
	select {
	case <-s.capsDone:
		return nil
	case <-s.deadCh:
		return s.isDead()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		s.mu.Lock()
		won := s.machine.capsTimer()
		s.mu.Unlock()
		if !won {
			return nil // answered just as the timer fired
		}
		return errCapsTimeout
	}
}

// Shutdown ends the manager: every channel and pending Open fails with
// err (nil: ErrShutdown), and its goroutines stop.
func (s *Server) Shutdown(err error) {
	s.fail(err)
	s.wg.Wait()
}

// Done is closed when the manager has failed or been shut down.
func (s *Server) Done() <-chan struct{} { return s.deadCh }

// Err returns why the manager ended, nil while it runs.
func (s *Server) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dead
}

// serverConn is the dvc.Conn handed to server programs.
type serverConn struct{ ch *channel }

func (c *serverConn) Name() string { return c.ch.name }
func (c *serverConn) ID() uint32   { return c.ch.id }
func (c *serverConn) Write(ctx context.Context, msg []byte) error {
	return c.ch.c.sendMessage(ctx, c.ch, msg)
}

// Read returns the next message. While nobody else is receiving, it
// receives for the connection itself (Pump), so the message it waits
// for needs no hand-off from another goroutine.
func (c *serverConn) Read(ctx context.Context) ([]byte, error) {
	ch := c.ch
	in := ch.in
	p := ch.c.pump
	if p == nil || in.Ready() {
		return in.Read(ctx)
	}
	if p.Pump(ctx, in) {
		if err := ctx.Err(); err != nil && !in.Ready() {
			return nil, err
		}
		return in.Read(ctx)
	}
	// Another goroutine receives, and counts this reader asleep until a
	// delivery to it (apply) or the end of this wait says otherwise.
	ch.asleep.Store(true)
	m, err := in.Read(ctx)
	if ch.asleep.Swap(false) {
		p.Awake()
	}
	return m, err
}

// Close sends DYNVC_CLOSE; the client's reply frees the ChannelId
// (3.3.5.2). Reads then return dvc.ErrClosed. It never waits for the
// carrier: the close is queued behind any message being written.
func (c *serverConn) Close() error {
	ch := c.ch
	s := ch.c
	s.mu.Lock()
	pdu, first := s.machine.closeLocal(ch.m)
	s.mu.Unlock()
	if !first {
		return nil
	}
	ch.end(dvc.ErrClosed, true)
	ch.in.Discard(dvc.ErrClosed) // also when the peer closed first: reads say ErrClosed now
	if s.pump != nil {
		s.pump.Interrupt() // a Read of this channel may be reading the carrier
	}
	if pdu != nil {
		s.queueCtrl(pdu)
	}
	return nil
}
