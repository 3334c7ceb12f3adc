package tunnel

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/lograte"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// DefaultDialTimeout bounds the client side's connect to a target.
const DefaultDialTimeout = 10 * time.Second

// Client is the client side of the tunnel (the RDP client): a dvc.Listener
// for rdpdvc::tunnel that connects each stream the server opens through
// Dial and carries it. Where connections may go is Dial's to decide
// (package tunnel/allow checks its rules there); nothing else is reached.
// Set the fields before Register; the zero value of each optional one is
// its default.
//
// Where the server's messages may arrive merged or split (a FreeRDP
// client whose server is behind xrdp: chansrv joins writes made back to
// back), register it through kit.Reframe(c, wire.Framer, wire.MaxMessage)
// instead of Register, as freerdp/features does for PNPDR.
type Client struct {
	// Dial connects to a target as the server named it: an IPv4 or IPv6
	// literal or a domain name, resolved here (required).
	Dial func(ctx context.Context, host string, port uint16) (net.Conn, error)
	// Code maps a Dial error to the SOCKS5 reply code sent back (nil:
	// DefaultCode). The rdpdvc command plugs in tunnel/socks's ReplyFor.
	Code func(error) byte
	// Listen opens a listener for a reverse forward the server asks for
	// (LISTEN), once it has checked that the user allowed that address.
	// nil refuses every LISTEN with ReplyNotAllowed.
	Listen func(host string, port uint16) (net.Listener, error)
	// Logger receives the tunnel's records (nil: slog.Default()).
	Logger *slog.Logger
	// Window is this side's receive window per stream (DefaultWindow; at
	// most MaxWindow).
	Window int
	// MaxStreams bounds the streams open (or connecting) at once
	// (DefaultMaxStreams); an OPEN over it gets ReplyGeneralFailure.
	MaxStreams int
	// MaxData is the largest DATA payload sent (DefaultMaxData).
	MaxData int
	// DialTimeout bounds each Dial (DefaultDialTimeout).
	DialTimeout time.Duration
	// WriteTimeout bounds each message written (DefaultWriteTimeout).
	WriteTimeout time.Duration

	once    sync.Once
	mu      sync.Mutex
	count   int // instances holding a stream slot
	insts   map[*instance]struct{}
	rev     reverseState
	closed  bool
	wg      sync.WaitGroup
	stop    context.Context // done once Close is called: ends every Join
	stopAll context.CancelFunc
	lim     *lograte.Limiter
}

func (c *Client) init() {
	c.once.Do(func() {
		setDefaults(&c.Logger, &c.Window, &c.MaxStreams, &c.MaxData, &c.WriteTimeout)
		if c.Code == nil {
			c.Code = DefaultCode
		}
		if c.DialTimeout <= 0 {
			c.DialTimeout = DefaultDialTimeout
		}
		c.insts = make(map[*instance]struct{})
		c.stop, c.stopAll = context.WithCancel(context.Background())
		c.lim = lograte.New(0, 0)
		c.rev.init()
	})
}

// Register registers the client's listener for rdpdvc::tunnel with r.
func (c *Client) Register(r dvc.Registrar) error {
	c.init()
	if c.Dial == nil {
		return errors.New("tunnel: Client.Dial is nil")
	}
	return r.Listen(wire.ChannelName, c)
}

// ErrClientClosed refuses instances after Close.
var ErrClientClosed = errors.New("tunnel: client closed")

// Accept accepts an instance; what it carries is decided by its first
// message (OPEN, ATTACH or LISTEN).
func (c *Client) Accept(ch dvc.Channel) (dvc.Handler, error) {
	c.init()
	in := &instance{c: c, ch: ch}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		in.cancel()
		return nil, ErrClientClosed
	}
	c.insts[in] = struct{}{}
	return in, nil
}

// Streams returns how many streams are open or connecting.
func (c *Client) Streams() int {
	c.init()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.count
}

// Close closes every instance and reverse listener and waits for the
// client's goroutines. Instances offered later are refused.
func (c *Client) Close() error {
	c.init()
	c.mu.Lock()
	c.closed = true
	ins := make([]*instance, 0, len(c.insts))
	for in := range c.insts {
		ins = append(ins, in)
	}
	c.mu.Unlock()
	for _, in := range ins {
		in.shutdown()
	}
	c.stopAll() // streams that ended in order may still be draining
	c.rev.closeAll()
	c.wg.Wait()
	c.lim.Flush(c.Logger)
	return nil
}

// go runs f on a goroutine Close waits for.
func (c *Client) goTracked(f func()) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		f()
	}()
}

// instance is the Handler of one channel instance.
type instance struct {
	c      *Client
	ch     dvc.Channel
	ctx    context.Context // cancelled when the instance closes
	cancel context.CancelFunc

	mu     sync.Mutex
	state  int     // stateNew, stateBusy (dialing, listening), stateStream, stateDone
	stream *Stream // once stateStream
	slot   bool    // holds one of MaxStreams
	onMsg  func(wire.Message) error
}

const (
	stateNew = iota
	stateBusy
	stateStream
	stateListen
	stateDone
)

func (in *instance) log() *slog.Logger { return in.c.Logger.With("channel", in.ch.ID()) }

// Received must not block: it parses and hands the message on.
func (in *instance) Received(msg []byte) {
	m, err := wire.Parse(msg)
	if err != nil {
		in.fail(err)
		return
	}
	in.mu.Lock()
	state, st, onMsg := in.state, in.stream, in.onMsg
	if state == stateNew {
		in.state = stateBusy
	}
	in.mu.Unlock()
	switch state {
	case stateNew:
		switch m := m.(type) {
		case wire.Open:
			in.open(m)
		case wire.Attach:
			in.attach(m)
		case wire.Listen:
			in.listen(m)
		default:
			in.fail(fmt.Errorf("%w: %v as the first message", ErrProtocol, m.Type()))
		}
	case stateStream:
		if err := st.deliver(m); err != nil {
			in.c.lim.Log(in.log(), slog.LevelWarn, "protocol", "tunnel: closing a stream", "target", st.remote.String(), "err", err)
			st.abort(err, wire.CloseProtocol)
		}
	case stateListen:
		if err := onMsg(m); err != nil {
			in.fail(err)
		}
	case stateBusy:
		if _, ok := m.(wire.Close); ok {
			in.ch.Close() // the server gave up waiting
			return
		}
		in.fail(fmt.Errorf("%w: %v before this side's REPLY", ErrProtocol, m.Type()))
	}
}

// fail ends the instance for a protocol error: CLOSE, then close.
func (in *instance) fail(err error) {
	in.c.lim.Log(in.log(), slog.LevelWarn, "protocol", "tunnel: closing a channel instance", "err", err)
	in.mu.Lock()
	st := in.stream
	in.mu.Unlock()
	if st != nil {
		st.abort(err, wire.CloseProtocol)
		return
	}
	in.cancel()
	in.c.goTracked(func() {
		in.writeClose(wire.CloseProtocol)
		in.ch.Close()
	})
}

func (in *instance) writeClose(reason uint8) {
	m, _ := wire.Close{Reason: reason}.Append(nil)
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	in.ch.Write(ctx, m)
}

// Closed ends whatever the instance carries.
func (in *instance) Closed(err error) {
	in.cancel()
	in.mu.Lock()
	st, slot := in.stream, in.slot
	in.state, in.slot = stateDone, false
	in.mu.Unlock()
	if st != nil {
		st.peerGone(err)
	}
	in.c.mu.Lock()
	delete(in.c.insts, in)
	if slot {
		in.c.count--
	}
	in.c.mu.Unlock()
}

// shutdown is Client.Close's end of an instance.
func (in *instance) shutdown() {
	in.cancel()
	in.mu.Lock()
	st := in.stream
	in.mu.Unlock()
	if st != nil {
		st.abort(ErrClientClosed, wire.CloseShutdown)
		return
	}
	in.ch.Close()
}

// takeSlot takes one of MaxStreams for the instance.
func (in *instance) takeSlot() bool {
	c := in.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.count >= c.MaxStreams || c.closed {
		return false
	}
	c.count++
	in.mu.Lock()
	in.slot = true
	in.mu.Unlock()
	return true
}

// reply writes REPLY; a failure also closes the instance.
func (in *instance) reply(code uint8, window int, bound net.Addr) error {
	r := wire.Reply{Code: code}
	if code == wire.ReplySucceeded {
		r.Window = uint32(window)
		r.Bound = wireAddr(bound)
	}
	m, err := r.Append(nil)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(in.ctx, in.c.WriteTimeout)
	defer cancel()
	err = in.ch.Write(ctx, m)
	if code != wire.ReplySucceeded || err != nil {
		in.ch.Close()
	}
	return err
}

// open serves OPEN: check the slot, dial on a goroutine, reply, join.
func (in *instance) open(o wire.Open) {
	log := in.log().With("target", o.Target.String())
	if !in.takeSlot() {
		in.c.lim.Log(log, slog.LevelWarn, "too many", "tunnel: refusing a stream: too many open", "max", in.c.MaxStreams)
		in.c.goTracked(func() { in.reply(wire.ReplyGeneralFailure, 0, nil) })
		return
	}
	in.c.goTracked(func() {
		ctx, cancel := context.WithTimeout(in.ctx, in.c.DialTimeout)
		conn, err := in.c.Dial(ctx, o.Target.Host, o.Target.Port)
		cancel()
		if err != nil {
			code := in.c.Code(err)
			if code == wire.ReplySucceeded {
				code = wire.ReplyGeneralFailure
			}
			// Once per refusal, with the rules that refused it (in
			// err), but rate-limited: the server can ask at will.
			in.c.lim.Log(log, slog.LevelWarn, "connect failed", "tunnel: connect failed", "err", err, "reply", ReplyText(code))
			in.reply(code, 0, nil)
			return
		}
		in.run(conn, o.Window, conn.RemoteAddr(), log)
	})
}

// run makes the stream of a connected instance, replies and joins conn
// with it until both are done. It runs on a tracked goroutine.
func (in *instance) run(conn net.Conn, peerWindow uint32, remote net.Addr, log *slog.Logger) {
	var st *Stream
	st = newStream(in.ch, conn.LocalAddr(), remote, in.c.Window, peerWindow, in.c.MaxData, in.c.WriteTimeout, nil)
	st.owner = in.c.stop
	st.peerCloses = true // the server closes; see Stream.peerCloses
	in.mu.Lock()
	if in.state == stateDone {
		in.mu.Unlock()
		conn.Close()
		return
	}
	in.state, in.stream = stateStream, st
	in.mu.Unlock()
	if err := in.reply(wire.ReplySucceeded, in.c.Window, conn.LocalAddr()); err != nil {
		st.peerGone(err)
		conn.Close()
		return
	}
	log.Debug("tunnel: stream open", "local", conn.LocalAddr().String())
	err := Join(conn, st)
	log.Debug("tunnel: stream done", "err", err)
}

// wireAddr is a net.Addr as a wire address (zero for nil or unparsable).
func wireAddr(a net.Addr) wire.Addr {
	if a == nil {
		return wire.Addr{}
	}
	if t, ok := a.(Addr); ok {
		return t.Addr
	}
	host, ps, err := net.SplitHostPort(a.String())
	if err != nil {
		return wire.Addr{}
	}
	p, _ := strconv.ParseUint(ps, 10, 16)
	host, _, _ = strings.Cut(host, "%") // a zone ("fe80::1%eth0") cannot be carried; the address can
	return wire.Addr{Host: host, Port: uint16(p)}
}

// DefaultCode maps a connect error to a SOCKS5 reply code (RFC 1928
// section 6) without knowing the rules that refused it: an error that has
// a ReplyCode() byte method gives its own; refused, network and host
// unreachable as the system said; timeouts and name errors as host
// unreachable; anything else general failure.
func DefaultCode(err error) byte {
	var rc interface{ ReplyCode() byte }
	var dns *net.DNSError
	switch {
	case errors.As(err, &rc):
		return rc.ReplyCode()
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.Errno(10061)): // WSAECONNREFUSED
		return wire.ReplyConnectionRefused
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.Errno(10051)): // WSAENETUNREACH
		return wire.ReplyNetworkUnreachable
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.Errno(10065)): // WSAEHOSTUNREACH
		return wire.ReplyHostUnreachable
	case errors.As(err, &dns), errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return wire.ReplyHostUnreachable
	}
	return wire.ReplyGeneralFailure
}
