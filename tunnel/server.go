package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// DefaultOpenTimeout bounds Server.Dial's wait for the client's REPLY when
// the context has no earlier deadline: longer than the client's own
// DefaultDialTimeout, so that the client's answer, not this, ends a slow
// connect.
const DefaultOpenTimeout = 30 * time.Second

// Server is the server side of the tunnel (the program in the RDP
// session): Dial makes connections that leave from the client's network.
// Set the fields before the first call; the zero value of each is its
// default. Its methods are safe for concurrent use.
type Server struct {
	// Opener opens the channel instances (required).
	Opener dvc.Opener
	// Logger receives the tunnel's records (nil: slog.Default()).
	Logger *slog.Logger
	// Window is this side's receive window per stream (DefaultWindow; at
	// most MaxWindow).
	Window int
	// MaxStreams bounds the streams open at once (DefaultMaxStreams);
	// Dial over it fails with ReplyGeneralFailure.
	MaxStreams int
	// MaxData is the largest DATA payload sent (DefaultMaxData; at most
	// wire.MaxData).
	MaxData int
	// OpenTimeout bounds the wait for the client's REPLY
	// (DefaultOpenTimeout).
	OpenTimeout time.Duration
	// WriteTimeout bounds each message written (DefaultWriteTimeout).
	WriteTimeout time.Duration

	once     sync.Once
	mu       sync.Mutex
	streams  map[*Stream]struct{}
	reverses map[*Reverse]struct{}
	dialing  int // Dials between their slot and their stream
	closed   bool
	wg       sync.WaitGroup  // each stream's reader; reverse listeners
	stop     context.Context // done once Close is called: ends every Join
	stopAll  context.CancelFunc
}

func (s *Server) init() {
	s.once.Do(func() {
		setDefaults(&s.Logger, &s.Window, &s.MaxStreams, &s.MaxData, &s.WriteTimeout)
		if s.OpenTimeout <= 0 {
			s.OpenTimeout = DefaultOpenTimeout
		}
		s.streams = make(map[*Stream]struct{})
		s.reverses = make(map[*Reverse]struct{})
		s.stop, s.stopAll = context.WithCancel(context.Background())
	})
}

// setDefaults gives the settings both sides share their defaults.
func setDefaults(log **slog.Logger, window, maxStreams, maxData *int, writeTimeout *time.Duration) {
	if *log == nil {
		*log = slog.Default()
	}
	if *window <= 0 {
		*window = DefaultWindow
	}
	*window = min(*window, MaxWindow)
	if *maxStreams <= 0 {
		*maxStreams = DefaultMaxStreams
	}
	if *maxData <= 0 || *maxData > wire.MaxData {
		*maxData = DefaultMaxData
	}
	if *writeTimeout <= 0 {
		*writeTimeout = DefaultWriteTimeout
	}
}

// DialError is the error of a Dial the client answered with a failure, or
// that could not be set up here. Code is the SOCKS5 reply code (RFC 1928
// section 6) a SOCKS front-end should send for it.
type DialError struct {
	Target string // host:port as asked for
	Code   uint8  // RFC 1928 REP, never ReplySucceeded
	Err    error  // the local cause (nil when the client refused)
}

func (e *DialError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("tunnel: dial %s: %v", e.Target, e.Err)
	}
	return fmt.Sprintf("tunnel: dial %s: the client answered %s", e.Target, ReplyText(e.Code))
}

func (e *DialError) Unwrap() error { return e.Err }

// ReplyCode is the SOCKS5 reply code for the failure.
func (e *DialError) ReplyCode() byte { return e.Code }

// ReplyText names an RFC 1928 reply code.
func ReplyText(code uint8) string {
	t := map[uint8]string{
		wire.ReplySucceeded: "succeeded", wire.ReplyGeneralFailure: "general SOCKS server failure",
		wire.ReplyNotAllowed: "connection not allowed by ruleset", wire.ReplyNetworkUnreachable: "network unreachable",
		wire.ReplyHostUnreachable: "host unreachable", wire.ReplyConnectionRefused: "connection refused",
		wire.ReplyTTLExpired: "TTL expired", wire.ReplyCommandNotSupported: "command not supported",
		wire.ReplyAddressNotSupported: "address type not supported",
	}[code]
	if t == "" {
		t = "unassigned"
	}
	return fmt.Sprintf("%d (%s)", code, t)
}

// ErrServerClosed is returned by Dial after Close.
var ErrServerClosed = errors.New("tunnel: server closed")

// Dial asks the client to connect to host:port and returns the stream
// (a *Stream). host is as the SOCKS client gave it: an IPv4 or IPv6
// literal or a domain name, which the client resolves. A failure is a
// *DialError carrying the reply code.
func (s *Server) Dial(ctx context.Context, host string, port uint16) (net.Conn, error) {
	st, err := s.DialStream(ctx, host, port)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return st, nil
}

// DialContext is Dial with net.Dialer's signature, for http.Transport and
// the like; network must be "tcp" (or tcp4, tcp6: the client decides).
func (s *Server) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, &DialError{Target: address, Code: wire.ReplyCommandNotSupported, Err: fmt.Errorf("network %q: only tcp", network)}
	}
	host, ps, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &DialError{Target: address, Code: wire.ReplyAddressNotSupported, Err: err}
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil {
		return nil, &DialError{Target: address, Code: wire.ReplyAddressNotSupported, Err: fmt.Errorf("port %q: %w", ps, err)}
	}
	return s.Dial(ctx, host, uint16(port))
}

// DialStream is Dial returning the concrete type.
func (s *Server) DialStream(ctx context.Context, host string, port uint16) (*Stream, error) {
	s.init()
	target := wire.Addr{Host: host, Port: port}
	open, err := wire.Open{Window: uint32(s.Window), Target: target}.Append(nil)
	if err != nil {
		return nil, &DialError{Target: target.String(), Code: wire.ReplyAddressNotSupported, Err: err}
	}
	if err := s.reserve(); err != nil {
		return nil, &DialError{Target: target.String(), Code: wire.ReplyGeneralFailure, Err: err}
	}
	st, err := s.handshake(ctx, target, open)
	if err == nil {
		err = s.register(st)
	} else {
		s.unreserve()
	}
	if err != nil {
		var de *DialError
		if !errors.As(err, &de) {
			err = &DialError{Target: target.String(), Code: wire.ReplyGeneralFailure, Err: err}
		}
		return nil, err
	}
	return st, nil
}

func (s *Server) unreserve() {
	s.mu.Lock()
	s.dialing--
	s.mu.Unlock()
}

// register turns a reserved slot into the open stream st and starts its
// reader; after Close it closes st instead.
func (s *Server) register(st *Stream) error {
	s.mu.Lock()
	s.dialing--
	if s.closed {
		s.mu.Unlock()
		st.Close()
		return ErrServerClosed
	}
	s.streams[st] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go s.readLoop(st)
	return nil
}

// reserve takes a stream slot.
func (s *Server) reserve() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrServerClosed
	case len(s.streams)+s.dialing >= s.MaxStreams:
		return fmt.Errorf("tunnel: %d streams open, the most allowed (MaxStreams)", s.MaxStreams)
	}
	s.dialing++
	return nil
}

// handshake opens an instance, sends first (OPEN or ATTACH) and waits for
// the REPLY. The stream it returns has no reader yet.
func (s *Server) handshake(ctx context.Context, target wire.Addr, first []byte) (*Stream, error) {
	ctx, cancel := context.WithTimeout(ctx, s.OpenTimeout)
	defer cancel()
	conn, err := s.Opener.Open(ctx, wire.ChannelName, dvc.WithFramer(wire.Framer))
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", wire.ChannelName, err)
	}
	rep, err := firstReply(ctx, conn, first)
	if err != nil {
		conn.Close()
		var de *DialError
		if errors.As(err, &de) {
			de.Target = target.String()
		}
		return nil, err
	}
	var st *Stream
	st = newStream(conn, Addr{rep.Bound}, Addr{target}, s.Window, rep.Window, s.MaxData, s.WriteTimeout, func() { s.forget(st) })
	st.owner = s.stop
	return st, nil
}

func (s *Server) forget(st *Stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
}

// readLoop feeds one stream from its instance until it ends.
func (s *Server) readLoop(st *Stream) {
	defer s.wg.Done()
	conn := st.ch.(dvc.Conn)
	defer conn.Close() // after the peer's CLOSE, or this end's
	for {
		msg, err := conn.Read(st.ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			st.peerGone(err)
			return
		}
		m, err := wire.Parse(msg)
		if err == nil {
			err = st.deliver(m)
		}
		if err != nil {
			s.Logger.Warn("tunnel: closing a stream", "channel", conn.ID(), "target", st.remote.String(), "err", err)
			st.abort(err, wire.CloseProtocol)
			return
		}
	}
}

// Streams returns how many streams are open.
func (s *Server) Streams() int {
	s.init()
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.streams)
}

// Close ends every stream and reverse forward and fails later Dials; it
// waits for the tunnel's goroutines.
func (s *Server) Close() error {
	s.init()
	s.mu.Lock()
	s.closed = true
	sts := make([]*Stream, 0, len(s.streams))
	for st := range s.streams {
		sts = append(sts, st)
	}
	rs := make([]*Reverse, 0, len(s.reverses))
	for r := range s.reverses {
		rs = append(rs, r)
	}
	s.mu.Unlock()
	for _, r := range rs {
		r.cancel()
	}
	// In parallel: each Close may wait closeTimeout for its CLOSE on a
	// stalled carrier, so one after another N streams would take N times
	// that.
	var wg sync.WaitGroup
	for _, st := range sts {
		wg.Go(func() { st.Close() })
	}
	wg.Wait()
	s.stopAll() // streams that ended in order may still be draining
	s.wg.Wait()
	return nil
}
