package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// Reverse forwards: only the server opens channel instances, so the server
// opens a control instance with LISTEN, the client (if its user allowed the
// address) listens and announces each connection it accepts with ACCEPTED,
// and the server opens a stream instance for it with ATTACH and joins it
// with a connection to its own target.

const (
	// DefaultMaxPending bounds the accepted connections of a client that
	// wait for the server's ATTACH; over it, new ones are closed at once.
	DefaultMaxPending = 64
	// DefaultPendingTimeout is how long an accepted connection waits for
	// its ATTACH before it is closed.
	DefaultPendingTimeout = 30 * time.Second
)

// Reverse is one reverse forward: a listener on the client's side whose
// connections the server carries to its own target.
type Reverse struct {
	s      *Server
	conn   dvc.Conn
	bound  net.Addr
	dial   func(ctx context.Context) (net.Conn, error)
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Reverse asks the client to listen on addr (host:port on the client's
// side; the client refuses unless its user allowed it) and carries every
// connection accepted there to a connection dial makes on this side. It
// returns once the client listens; the forward runs until Close, ctx is
// done, or the client ends it.
func (s *Server) Reverse(ctx context.Context, addr string, dial func(ctx context.Context) (net.Conn, error)) (*Reverse, error) {
	s.init()
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, &DialError{Target: addr, Code: wire.ReplyAddressNotSupported, Err: err}
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return nil, &DialError{Target: addr, Code: wire.ReplyAddressNotSupported, Err: fmt.Errorf("port %q: %w", ps, err)}
	}
	la := wire.Addr{Host: host, Port: uint16(port)}
	msg, err := wire.Listen{Addr: la}.Append(nil)
	if err != nil {
		return nil, &DialError{Target: addr, Code: wire.ReplyAddressNotSupported, Err: err}
	}
	hctx, cancel := context.WithTimeout(ctx, s.OpenTimeout)
	defer cancel()
	conn, err := s.Opener.Open(hctx, wire.ChannelName, dvc.WithFramer(wire.Framer))
	if err != nil {
		return nil, &DialError{Target: addr, Code: wire.ReplyGeneralFailure, Err: err}
	}
	rep, err := firstReply(hctx, conn, msg)
	if err != nil {
		conn.Close()
		var de *DialError
		if !errors.As(err, &de) {
			err = &DialError{Target: addr, Code: wire.ReplyGeneralFailure, Err: err}
		} else {
			de.Target = addr
		}
		return nil, err
	}
	r := &Reverse{s: s, conn: conn, bound: Addr{rep.Bound}, dial: dial, done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(ctx)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		r.cancel()
		conn.Close()
		return nil, ErrServerClosed
	}
	s.reverses[r] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go r.serve()
	return r, nil
}

// firstReply writes first and reads the REPLY; a failure code is a
// *DialError without Target.
func firstReply(ctx context.Context, conn dvc.Conn, first []byte) (wire.Reply, error) {
	if err := conn.Write(ctx, first); err != nil {
		return wire.Reply{}, err
	}
	msg, err := conn.Read(ctx)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("the client closed the channel before its REPLY")
		}
		return wire.Reply{}, err
	}
	m, err := wire.Parse(msg)
	if err != nil {
		return wire.Reply{}, err
	}
	rep, ok := m.(wire.Reply)
	if !ok {
		return wire.Reply{}, fmt.Errorf("%w: %v instead of REPLY", ErrProtocol, m.Type())
	}
	if rep.Code != wire.ReplySucceeded {
		return rep, &DialError{Code: rep.Code}
	}
	return rep, nil
}

// Addr is the address the client listens on.
func (r *Reverse) Addr() net.Addr { return r.bound }

// Done is closed when the forward has ended.
func (r *Reverse) Done() <-chan struct{} { return r.done }

// Err is why the forward ended (nil for Close), once Done is closed.
func (r *Reverse) Err() error {
	<-r.done
	return r.err
}

// Close ends the forward: the client closes its listener. Streams already
// carried go on.
func (r *Reverse) Close() error {
	r.cancel()
	<-r.done
	return nil
}

func (r *Reverse) serve() {
	defer r.s.wg.Done()
	defer close(r.done)
	defer func() {
		r.s.mu.Lock()
		delete(r.s.reverses, r)
		r.s.mu.Unlock()
	}()
	defer r.conn.Close()
	stop := context.AfterFunc(r.ctx, func() { r.conn.Close() })
	defer stop()
	for {
		msg, err := r.conn.Read(r.ctx)
		if err != nil {
			if r.ctx.Err() == nil {
				r.err = err
			}
			return
		}
		m, err := wire.Parse(msg)
		if err != nil {
			r.err = err
			return
		}
		switch m := m.(type) {
		case wire.Accepted:
			r.s.wg.Add(1)
			go r.carry(m)
		case wire.Close:
			r.err = errors.New("tunnel: the client closed the reverse listener")
			return
		default:
			r.err = fmt.Errorf("%w: %v on a LISTEN instance", ErrProtocol, m.Type())
			return
		}
	}
}

// carry opens the stream of one accepted connection and joins it with a
// connection to the target.
func (r *Reverse) carry(a wire.Accepted) {
	defer r.s.wg.Done()
	s := r.s
	log := s.Logger.With("reverse", r.bound.String(), "peer", a.Peer.String())
	if err := s.reserve(); err != nil {
		log.Warn("tunnel: dropping a reverse connection", "err", err)
		return // the client closes it when its ATTACH does not come
	}
	ctx, cancel := context.WithTimeout(r.ctx, s.OpenTimeout)
	defer cancel()
	first, _ := wire.Attach{ID: a.ID, Window: uint32(s.Window)}.Append(nil)
	st, err := s.handshake(ctx, a.Peer, first)
	if err == nil {
		err = s.register(st)
	} else {
		s.unreserve()
	}
	if err != nil {
		log.Warn("tunnel: reverse connection not carried", "err", err)
		return
	}
	target, err := r.dial(ctx)
	if err != nil {
		log.Warn("tunnel: reverse target unreachable", "err", err)
		st.abort(err, wire.CloseReset)
		return
	}
	if err := Join(target, st); err != nil {
		log.Debug("tunnel: reverse stream ended", "err", err)
	}
}

// reverseState is the client side's accepted connections waiting for
// their ATTACH, and its listeners.
type reverseState struct {
	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]*pendingConn
	lns     map[net.Listener]struct{}
}

type pendingConn struct {
	conn  net.Conn
	timer *time.Timer
}

func (r *reverseState) init() {
	r.pending = make(map[uint32]*pendingConn)
	r.lns = make(map[net.Listener]struct{})
}

// add parks conn for its ATTACH and returns its ID, or false when too many
// wait.
func (r *reverseState) add(conn net.Conn) (uint32, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.pending) >= DefaultMaxPending {
		return 0, false
	}
	r.nextID++
	id := r.nextID
	p := &pendingConn{conn: conn}
	p.timer = time.AfterFunc(DefaultPendingTimeout, func() {
		if r.take(id) != nil {
			conn.Close()
		}
	})
	r.pending[id] = p
	return id, true
}

// take returns and forgets the connection parked as id, or nil.
func (r *reverseState) take(id uint32) net.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[id]
	if p == nil {
		return nil
	}
	delete(r.pending, id)
	p.timer.Stop()
	return p.conn
}

func (r *reverseState) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, p := range r.pending {
		p.timer.Stop()
		p.conn.Close()
		delete(r.pending, id)
	}
	for ln := range r.lns {
		ln.Close()
	}
}

// listen serves LISTEN: ask Listen for a listener, reply, then announce
// every connection accepted until the instance closes.
func (in *instance) listen(l wire.Listen) {
	c := in.c
	log := in.log().With("listen", l.Addr.String())
	if c.Listen == nil {
		log.Warn("tunnel: refusing a reverse listener: none is allowed")
		c.goTracked(func() { in.reply(wire.ReplyNotAllowed, 0, nil) })
		return
	}
	c.goTracked(func() {
		ln, err := c.Listen(l.Addr.Host, l.Addr.Port)
		if err != nil {
			code := c.Code(err)
			if code == wire.ReplySucceeded {
				code = wire.ReplyGeneralFailure
			}
			log.Warn("tunnel: refusing a reverse listener", "err", err, "reply", ReplyText(code))
			in.reply(code, 0, nil)
			return
		}
		c.rev.mu.Lock()
		c.rev.lns[ln] = struct{}{}
		c.rev.mu.Unlock()
		defer func() {
			ln.Close()
			c.rev.mu.Lock()
			delete(c.rev.lns, ln)
			c.rev.mu.Unlock()
		}()
		stop := context.AfterFunc(in.ctx, func() { ln.Close() })
		defer stop()
		in.mu.Lock()
		if in.state == stateDone {
			in.mu.Unlock()
			return
		}
		in.state = stateListen
		in.onMsg = func(m wire.Message) error {
			if _, ok := m.(wire.Close); ok {
				in.ch.Close()
				return nil
			}
			return fmt.Errorf("%w: %v on a LISTEN instance", ErrProtocol, m.Type())
		}
		in.mu.Unlock()
		if err := in.reply(wire.ReplySucceeded, c.Window, ln.Addr()); err != nil {
			return
		}
		log.Info("tunnel: reverse listener open", "addr", ln.Addr().String())
		for {
			conn, err := ln.Accept()
			if err != nil {
				if in.ctx.Err() == nil {
					log.Warn("tunnel: reverse listener failed", "err", err)
					in.writeClose(wire.CloseReset)
					in.ch.Close()
				}
				return
			}
			id, ok := c.rev.add(conn)
			if !ok {
				log.Warn("tunnel: closing a reverse connection: too many wait for the server", "max", DefaultMaxPending)
				conn.Close()
				continue
			}
			m, _ := wire.Accepted{ID: id, Peer: wireAddr(conn.RemoteAddr())}.Append(nil)
			ctx, cancel := context.WithTimeout(in.ctx, c.WriteTimeout)
			err = in.ch.Write(ctx, m)
			cancel()
			if err != nil {
				if p := c.rev.take(id); p != nil {
					p.Close()
				}
				return
			}
		}
	})
}

// attach serves ATTACH: join the parked connection with this instance.
func (in *instance) attach(a wire.Attach) {
	c := in.c
	conn := c.rev.take(a.ID)
	if conn == nil {
		in.log().Warn("tunnel: ATTACH for no waiting connection", "id", a.ID)
		c.goTracked(func() { in.reply(wire.ReplyGeneralFailure, 0, nil) })
		return
	}
	if !in.takeSlot() {
		conn.Close()
		in.log().Warn("tunnel: refusing a reverse stream: too many open", "max", c.MaxStreams)
		c.goTracked(func() { in.reply(wire.ReplyGeneralFailure, 0, nil) })
		return
	}
	log := in.log().With("peer", conn.RemoteAddr().String())
	c.goTracked(func() { in.run(conn, a.Window, conn.RemoteAddr(), log) })
}
