package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// Server is the DVC server manager (MS-RDPEDYC 3.3): it negotiates
// capabilities, opens channels by name and carries their data. It is a
// dvc.Opener.
type Server struct {
	core
	startOnce    sync.Once
	startErr     error
	capsDone     chan struct{} // closed when DYNVC_CAPS_RSP arrived
	capsAt       time.Time     // when the request went out
	version      uint16        // the client's, once capsDone
	capsTimedOut atomic.Bool   // the caps timer fired first: Open fails from then on
	nextID       uint32
	rules        roleRules
}

// NewServer returns a server manager that sends through carrier. Call
// Start, then feed every received PDU to Receive from one goroutine.
func NewServer(carrier Carrier, cfg Config) *Server {
	s := &Server{capsDone: make(chan struct{})}
	s.core.init(cfg, carrier)
	s.core.abort = s.abort
	s.rules = roleRules{
		capsDone:   func() bool { return s.Version() != 0 },
		beforeCaps: "received before DYNVC_CAPS_RSP (2.2.1: capabilities come first)",
		caps:       s.onCaps,
		create: func(b []byte) error {
			p, err := drdynvc.ParseCreateResponse(b)
			if err != nil {
				return decodeErr("DYNVC_CREATE_RSP", err)
			}
			return s.onCreateResponse(p)
		},
		close:      s.onClose,
		compressed: "compressed data needs version 3, which this server did not offer (2.2.3.3)",
	}
	return s
}

// Start sends the capabilities request (DYNVC_CAPS_VERSION2, 2.2.1.1.2):
// the server manager speaks first (3.3.3.1).
func (s *Server) Start() error {
	s.startOnce.Do(func() {
		s.capsAt = time.Now()
		s.startErr = s.sendNow(context.Background(), drdynvc.CapsRequest{Version: Version, PriorityCharges: DefaultPriorityCharges}.Append(nil))
	})
	return s.startErr
}

// Version returns the version the client answered with, 0 before then.
func (s *Server) Version() uint16 {
	select {
	case <-s.capsDone:
		return s.version
	default:
		return 0
	}
}

// Receive handles one PDU from the client. pdu is not kept. A non-nil
// error means the connection must be terminated (3.1.5.2.4); the manager
// has then already failed every channel with it.
func (s *Server) Receive(pdu []byte) error {
	err := s.receive(pdu)
	if err == nil {
		err = s.overflowErr()
	}
	if err != nil {
		s.fail(err)
	}
	return err
}

func (s *Server) receive(b []byte) error {
	return s.dispatch(b, &s.rules)
}

// capsRspLen is DYNVC_CAPS_RSP's size: header, Pad, Version (2.2.1.2).
const capsRspLen = 4

// onCaps handles DYNVC_CAPS_RSP (2.2.1.2).
func (s *Server) onCaps(b []byte) error {
	p, err := drdynvc.ParseCapsResponse(b)
	if err != nil {
		return decodeErr("DYNVC_CAPS_RSP", err)
	}
	// The PDU is exactly Cmd, Pad and Version (2.2.1.2). Anything after
	// Version is malformed, and 3.1.5.2.4 makes a malformed packet end
	// the connection: ignoring it would let a client pad every answer
	// with up to a chunk of junk the server keeps reading.
	if len(b) != capsRspLen {
		return protoErr("DYNVC_CAPS_RSP", "%d bytes after the Version field (2.2.1.2: the PDU is %d bytes)", len(b)-capsRspLen, capsRspLen)
	}
	if s.Version() != 0 {
		return protoErr("DYNVC_CAPS_RSP", "received twice (3.1.5.2.4)")
	}
	if p.Version < 1 || p.Version > 3 {
		return protoErr("DYNVC_CAPS_RSP", "Version %d is not 1, 2 or 3 (2.2.1.2)", p.Version)
	}
	// A client answering above what we offered gets what we offered:
	// the server "MUST adjust to the version level supported by the
	// client" (3.3.3.1) only downwards.
	s.version = min(p.Version, Version)
	close(s.capsDone)
	return nil
}

func (s *Server) onCreateResponse(p drdynvc.CreateResponse) error {
	s.mu.Lock()
	ch := s.channels[p.ChannelID]
	if ch == nil || (ch.state != statePending && ch.state != stateAbandon) {
		s.mu.Unlock()
		return protoErr("DYNVC_CREATE_RSP", "ChannelId %d answers no pending DYNVC_CREATE_REQ (3.1.5.2.4)", p.ChannelID)
	}
	ok := int32(p.CreationStatus) >= 0 // "A zero or positive value indicates success" (2.2.2.2)
	abandoned := ch.state == stateAbandon
	r := ch.result
	ch.result = nil
	switch {
	case ok && abandoned:
		ch.state = stateClosing // nobody wants it: close it, wait for the reply
	case ok:
		ch.state = stateOpen
	default:
		delete(s.channels, p.ChannelID) // the id may be reused at once (3.2.3.2.1)
	}
	s.mu.Unlock()
	if ok && abandoned {
		s.queueCtrl(drdynvc.Close{ChannelID: p.ChannelID}.Append(nil))
		return nil
	}
	if r != nil {
		if ok {
			r <- nil
		} else {
			r <- &dvc.OpenError{Name: ch.name, Status: p.CreationStatus}
		}
	}
	return nil
}

func (s *Server) onClose(id uint32) {
	s.mu.Lock()
	ch := s.channels[id]
	if ch == nil {
		s.mu.Unlock()
		s.cfg.Logger.Debug("session: DYNVC_CLOSE for an unknown channel; ignored", "channelId", id)
		return
	}
	st := ch.state
	delete(s.channels, id)
	ch.state = stateGone // writes now fail instead of going to a freed id
	s.mu.Unlock()
	switch st {
	case stateOpen:
		// The client closed it; the server does not answer (3.3.5.2).
		ch.end(nil, false)
	case statePending, stateAbandon:
		// Some clients close instead of refusing; treat it as a refusal.
		ch.end(&dvc.OpenError{Name: ch.name, Status: hresult.E_FAIL}, true)
	case stateClosing:
		// The reply to our own close: the id is free again.
	}
}

// live counts the channels that count against MaxChannels: not those only
// waiting for the client's close reply, which a client may never send
// (3.2.5.2: it MAY answer). Called with s.mu held.
func (s *Server) live() int {
	n := 0
	for _, ch := range s.channels {
		if ch.state != stateClosing {
			n++
		}
	}
	return n
}

// allocID picks an unused ChannelId (2.2.2.1: unique within the
// connection). Ids of channels still closing are not reused until the
// client's DYNVC_CLOSE reply, so a late PDU can never land on a new
// channel. Called with s.mu held.
func (s *Server) allocID() uint32 {
	for {
		s.nextID++
		if s.nextID == 0 {
			s.nextID = 1
		}
		if _, used := s.channels[s.nextID]; !used {
			return s.nextID
		}
	}
}

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
	// A name the client cannot parse would make it end the whole
	// connection (MS-RDPEDYC 3.1.5.2.4): refuse it here, before anything
	// is sent.
	if err := (drdynvc.CreateRequest{ChannelName: name}).Validate(); err != nil {
		return nil, fmt.Errorf("session: open %q: %w", name, err)
	}
	if err := s.waitCaps(ctx); err != nil {
		return nil, fmt.Errorf("session: open %q: %w", name, err)
	}
	s.mu.Lock()
	if s.dead != nil {
		err := s.dead
		s.mu.Unlock()
		return nil, fmt.Errorf("session: open %q: %w: %v", name, dvc.ErrConnectionLost, err)
	}
	if s.live() >= s.cfg.MaxChannels {
		s.mu.Unlock()
		return nil, fmt.Errorf("session: open %q: %d channels already open (Config.MaxChannels)", name, s.cfg.MaxChannels)
	}
	id := s.allocID()
	ch := newChannel(&s.core, id, name, statePending)
	ch.result = make(chan error, 1)
	s.channels[id] = ch
	r := ch.result
	s.mu.Unlock()

	req := drdynvc.CreateRequest{ChannelID: id, Priority: o.Priority, ChannelName: name}
	if err := s.sendNow(ctx, req.Append(nil)); err != nil {
		// Not sent (the carrier was not ours in time, or the connection
		// died, which empties the table): the id is free again.
		s.mu.Lock()
		if s.channels[id] == ch && ch.state == statePending {
			delete(s.channels, id)
			ch.result = nil
		}
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
	if ch.result != nil {
		// Still unanswered: whoever answers later closes it.
		ch.state = stateAbandon
		ch.result = nil
		s.mu.Unlock()
		return nil, fmt.Errorf("session: open %q: %w", name, gaveUp)
	}
	s.mu.Unlock()
	// The answer was taken and is being sent to r: wait for it, so an
	// open channel cannot be left without an owner.
	if err := <-r; err == nil {
		(&serverConn{ch}).Close()
	}
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

var errCapsTimeout = errors.New("the client did not answer the capabilities request in time (MS-RDPEDYC 3.3.2)")

func (s *Server) waitCaps(ctx context.Context) error {
	if err := s.Start(); err != nil {
		return err
	}
	if s.capsTimedOut.Load() {
		// 3.3.3.1.4: after the timer, no further create requests, even if
		// the answer turns up late.
		return errCapsTimeout
	}
	select {
	case <-s.capsDone:
		return nil
	default:
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
		select {
		case <-s.capsDone:
			return nil // answered just as the timer fired
		default:
		}
		s.capsTimedOut.Store(true)
		return errCapsTimeout
	}
}

// abort closes ch from the receive path; the client will answer.
func (s *Server) abort(ch *channel, cause error) {
	s.mu.Lock()
	if s.channels[ch.id] == ch && ch.state == stateOpen {
		ch.state = stateClosing
		s.mu.Unlock()
		s.queueCtrl(drdynvc.Close{ChannelID: ch.id}.Append(nil))
	} else {
		s.mu.Unlock()
	}
	ch.end(cause, true)
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
func (c *serverConn) Read(ctx context.Context) ([]byte, error) { return c.ch.in.Read(ctx) }

// Close sends DYNVC_CLOSE; the client's reply frees the ChannelId
// (3.3.5.2). Reads then return dvc.ErrClosed. It never waits for the
// carrier: the close is queued behind any message being written.
func (c *serverConn) Close() error {
	ch := c.ch
	s := ch.c
	s.mu.Lock()
	if ch.localDone {
		s.mu.Unlock()
		return nil
	}
	ch.localDone = true
	send := s.channels[ch.id] == ch && ch.state == stateOpen && s.dead == nil
	if send {
		ch.state = stateClosing
	}
	s.mu.Unlock()
	ch.end(dvc.ErrClosed, true)
	ch.in.Discard(dvc.ErrClosed) // also when the peer closed first: reads say ErrClosed now
	if send {
		s.queueCtrl(drdynvc.Close{ChannelID: ch.id}.Append(nil))
	}
	return nil
}
