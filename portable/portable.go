// Package portable is rdpdvc's embedded transport: MS-RDPEDYC carried over
// any reliable byte stream (TCP on loopback, net.Pipe, stdio) with no RDP
// underneath. It is the DRDYNVC static virtual channel exactly as RDP's
// virtual channel layer delivers it (MS-RDPBCGR 2.2.6.1, 3.1.5.2), minus
// the TPKT/X.224/MCS/security headers: the stream is a sequence of
// chunks, each a CHANNEL_PDU_HEADER followed by that chunk's bytes, and
// every chunk but the last of a message is exactly 1600 bytes, so a reader
// knows each chunk's length from the header and what it already has.
// docs/portable-transport.md is the full wire description.
//
// The RDP-server side ([Server], from [Listener.Accept] or [NewServer])
// runs the DVC server manager and speaks first; the RDP-client side
// ([Client], from [Dial] or [NewClient]) runs the DVC client manager.
// Neither authenticates nor encrypts: keep it on loopback or inside
// something that does.
//
// # Starting
//
// There is one way to start either side: construct it (nothing is sent,
// read or started), then call Run, which serves the connection on the
// calling goroutine until it ends:
//
//   - Client: [Dial] (or [NewClient]), [Client.Listen] for each channel
//     name, then [Client.Run]. Listeners may also be added while it runs.
//   - Server: [Listener.Accept] (or [NewServer]), then go [Server.Run],
//     then [Server.Open] from any goroutine while Run runs; [Server.Wait]
//     returns what Run returned.
//
// # Goroutines
//
// Run's goroutine reads the connection and runs the DVC manager. On a
// server, a Conn.Read that has to wait, while no other Read is asleep,
// does that reading itself for as long as it waits (Run's goroutine lends
// it and parks), so the message reaches it without a hand-off between
// goroutines; the reading goes back to Run's goroutine when someone else
// needs it, and within 10 ms of nobody using it. A client's channel
// instance gets a goroutine of its own for its
// Listener.Accept and Handler calls; once the Handler has returned
// quickly a few times in a row, its calls move to Run's goroutine (which
// saves a thread hand-off per message). So a dvc.Handler must not assume
// which goroutine calls it, and should return promptly: while an inline
// Received runs, every channel of the connection waits. Calls for one
// instance never overlap and arrive in order (dvc.Handler).
//
// A channel's Write may be called from any goroutine, including from
// inside Received (that is how a client answers; give it a context with a
// deadline, since a Write waiting for a stalled peer holds up delivery),
// but not from inside Listener.Accept: the channel opens when Accept
// returns. A Write whose context ends while the peer is not reading
// returns ctx.Err() at once, even mid-message; the message is then
// finished behind it, whole (a stream cannot carry half a message), so
// such a Write may still have delivered it, and Config.WriteTimeout still
// bounds it. A channel's Close is safe anywhere, Received included; its
// Closed then comes after Received returns. The caller owns the
// goroutine that runs Run and those that call Open, Read and Write;
// portable owns the rest and stops them when the connection ends.
//
// # Closing
//
// The connection ends when the peer hangs up, on bad input (MS-RDPEDYC
// 3.1.5.2.4 says to drop the connection), when Run's context is done, or
// on Close. Then every channel fails: server-side Reads and Writes return
// an error wrapping dvc.ErrConnectionLost, and each Handler gets Closed
// once. Close and the end of Run wait for the Handlers at most
// Config.CloseTimeout ([DefaultCloseTimeout]): a Handler that does not
// return is logged and left behind, not waited for. Close never waits for
// the peer.
package portable

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/session"
)

// ChunkSize is the chunk length of the stream (CHANNEL_CHUNK_LENGTH,
// MS-RDPBCGR 2.2.6.1): every chunk but a message's last is this long.
const ChunkSize = chanpdu.ChunkLength

// DefaultMaxMessage caps CHANNEL_PDU_HEADER.length on receive. A DRDYNVC
// message is one PDU of at most 1600 bytes (MS-RDPEDYC 2.2.3), so anything
// near this ceiling is already odd; it is generous only so that a peer
// chunking differently still works. Garbage such as an HTTP request reads
// as a length of hundreds of megabytes and is refused before any
// allocation.
const DefaultMaxMessage = 64 << 10

// DefaultWriteTimeout bounds every write to the connection: a peer that
// stops reading fails the connection after it instead of holding the
// writer (and every channel behind it) for ever.
const DefaultWriteTimeout = 10 * time.Second

// DefaultCloseTimeout bounds how long Close and Run wait for Handlers to
// return once the connection has ended. Every Handler is told at once
// (Closed); this is only for one stuck in a callback, which must not hold
// the program's shutdown for ever.
const DefaultCloseTimeout = 5 * time.Second

// Config configures either side.
type Config struct {
	Session    session.Config // the DVC manager's limits; Logger is shared
	MaxMessage uint32         // receive ceiling on CHANNEL_PDU_HEADER.length (DefaultMaxMessage)
	// WriteTimeout is the deadline of each write to the connection
	// (DefaultWriteTimeout; negative: none). A write that passes it fails
	// the connection.
	WriteTimeout time.Duration
	// CloseTimeout bounds how long Close, and Run once the connection has
	// ended, wait for the Handlers to return from their last callback
	// (DefaultCloseTimeout; negative: do not wait).
	CloseTimeout time.Duration
	Logger       *slog.Logger // nil: slog.Default()
}

func (c Config) withDefaults() Config {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Session.Logger == nil {
		c.Session.Logger = c.Logger
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
	return c
}

// bufSize is each direction's buffer: large enough that bulk transfers
// move in few system calls (256 KiB measured 1.35x faster than 64 KiB for
// 1 MiB messages), at 0.5 MiB per connection.
const bufSize = 256 << 10

// link reads and writes the chunk stream; it is the session.Carrier and
// a session.Interrupter.
type link struct {
	conn  net.Conn
	br    *bufio.Reader
	rhdr  [chanpdu.HeaderSize]byte // read side only
	reasm chanpdu.Reassembler

	// The write side, used only under the session's carrier lock. wb is
	// its own buffer rather than a bufio.Writer because an interrupted
	// write must keep what it has not written (bufio's errors stick).
	wtimeout time.Duration
	wb       []byte // queued; wb[woff:] not yet written
	woff     int
	whdr     [chanpdu.HeaderSize]byte
	wctx     context.Context // the writer's, from SetWriteContext

	// One context.AfterFunc per writer context, kept while writers come
	// with the same one: it cuts a socket write short only while that
	// context is the writer's (wcur, guarded by wmu).
	wmu     sync.Mutex
	wcur    context.Context
	wregCtx context.Context
	wreg    func() bool
	wdone   bool // release was called: register nothing more
}

// release drops the write side's AfterFunc, which would otherwise keep
// the link (and its buffers) reachable from a long-lived context after
// the connection is gone.
func (l *link) release() {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wdone = true
	if l.wreg != nil {
		l.wreg()
		l.wreg, l.wregCtx = nil, nil
	}
}

func newLink(conn net.Conn, max uint32, writeTimeout time.Duration) *link {
	return &link{
		conn:     conn,
		br:       bufio.NewReaderSize(conn, bufSize),
		reasm:    chanpdu.Reassembler{MaxLength: max},
		wtimeout: writeTimeout,
		wb:       make([]byte, 0, bufSize+2*(ChunkSize+chanpdu.HeaderSize)),
	}
}

// SetWriteContext (session.Interrupter) makes writes until the next call
// give up once ctx is done. The context is watched only once a write
// reaches the socket, so a message that only fills the buffer costs
// nothing.
func (l *link) SetWriteContext(ctx context.Context) {
	if ctx == nil && l.wctx != nil {
		l.wmu.Lock()
		l.wcur = nil
		if l.wctx.Err() != nil {
			// Its AfterFunc may have set a past deadline (under wmu, so
			// it is over): not for the next writer.
			l.conn.SetWriteDeadline(time.Time{})
		}
		l.wmu.Unlock()
	}
	l.wctx = ctx
}

// connWrite writes p to the socket with Config.WriteTimeout, or until the
// writer's context ends (then the error wraps session.ErrInterrupted).
func (l *link) connWrite(p []byte) (int, error) {
	ctx := l.wctx
	if ctx != nil {
		l.wmu.Lock()
		l.wcur = ctx
		if ctx != l.wregCtx && !l.wdone {
			if l.wreg != nil {
				l.wreg()
			}
			l.wregCtx = ctx
			l.wreg = context.AfterFunc(ctx, func() {
				l.wmu.Lock()
				if l.wcur == ctx {
					l.conn.SetWriteDeadline(longAgo) // wakes a blocked Write
				}
				l.wmu.Unlock()
			})
		}
		l.wmu.Unlock()
	}
	if l.wtimeout > 0 {
		l.wmu.Lock() // not over a past deadline the AfterFunc just set
		var err error
		if ctx == nil || ctx.Err() == nil {
			err = l.conn.SetWriteDeadline(time.Now().Add(l.wtimeout))
		}
		l.wmu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	// Checked after the deadline is set: an AfterFunc that ran before
	// is seen here, one that runs after overrides it.
	if ctx != nil && ctx.Err() != nil {
		return 0, fmt.Errorf("portable: %w", session.ErrInterrupted)
	}
	n, err := l.conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if ctx != nil && ctx.Err() != nil {
			return n, fmt.Errorf("portable: %w", session.ErrInterrupted)
		}
		err = fmt.Errorf("portable: the peer read nothing for %v (Config.WriteTimeout): %w", l.wtimeout, err)
	}
	return n, err
}

// queue appends p to the write buffer, flushing it once full. An
// interrupted flush still counts p as queued.
func (l *link) queue(p ...[]byte) error {
	for _, b := range p {
		l.wb = append(l.wb, b...)
	}
	if len(l.wb) >= bufSize {
		return l.Flush()
	}
	return nil
}

// WritePDUParts writes the virtual channel message head+body. Every PDU
// the session sends fits one chunk, so head and body go straight into the
// write buffer without being joined.
func (l *link) WritePDUParts(head, body []byte) error {
	n := len(head) + len(body)
	if n > ChunkSize {
		return l.WritePDU(append(append([]byte(nil), head...), body...))
	}
	h := chanpdu.Header{Length: uint32(n), Flags: chanpdu.FlagFirst | chanpdu.FlagLast}
	return l.queue(h.Append(l.whdr[:0]), head, body)
}

// WritePDU writes one virtual channel message: one chunk when it fits
// (FIRST|LAST), else chunks of ChunkSize.
func (l *link) WritePDU(pdu []byte) error {
	if len(pdu) <= ChunkSize {
		h := chanpdu.Header{Length: uint32(len(pdu)), Flags: chanpdu.FlagFirst | chanpdu.FlagLast}
		return l.queue(h.Append(l.whdr[:0]), pdu)
	}
	// Queued whole before any flush, so that an interrupted flush has
	// still taken the PDU.
	err := chanpdu.Chunker{ChunkSize: ChunkSize, Flags: chanpdu.FlagShowProtocol}.Chunks(pdu, func(h chanpdu.Header, chunk []byte) error {
		l.wb = append(append(l.wb, h.Append(l.whdr[:0])...), chunk...)
		return nil
	})
	if err != nil || len(l.wb) < bufSize {
		return err
	}
	return l.Flush()
}

// Flush writes what is queued. Interrupted, it keeps the rest queued.
func (l *link) Flush() error {
	for l.woff < len(l.wb) {
		n, err := l.connWrite(l.wb[l.woff:])
		l.woff += n
		if err != nil {
			return err
		}
	}
	l.wb, l.woff = l.wb[:0], 0
	return nil
}

// next returns the next whole virtual channel message. A single-chunk
// message (every one rdpdvc sends) is returned in the read buffer itself,
// valid until the next call; longer ones are reassembled into a fresh
// slice. Bytes are consumed only once their whole chunk is there, so a
// read cut short by a deadline (a Pump's context) loses nothing.
func (l *link) next() ([]byte, error) {
	for {
		hb, err := l.br.Peek(chanpdu.HeaderSize)
		if err != nil {
			if err == io.EOF && len(hb) > 0 {
				return nil, fmt.Errorf("portable: stream ends inside a CHANNEL_PDU_HEADER: %w", io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		h, err := chanpdu.ParseHeader(hb)
		if err != nil {
			return nil, err
		}
		n, err := l.reasm.NextChunkLen(h, ChunkSize)
		if err != nil {
			return nil, fmt.Errorf("portable: %w", err)
		}
		b, err := l.br.Peek(chanpdu.HeaderSize + n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, err
			}
			return nil, fmt.Errorf("portable: stream ends inside a chunk of %d bytes: %w", n, err)
		}
		chunk := b[chanpdu.HeaderSize:]
		l.br.Discard(len(b)) // buffered: the bytes stay where they are until the next read
		if _, _, active := l.reasm.InProgress(); !active && h.First() && h.Last() {
			if h.Flags&chanpdu.FlagPacketCompressed != 0 {
				return nil, fmt.Errorf("portable: %w", &chanpdu.Error{Codec: "chanpdu", Message: "CHANNEL_PDU_HEADER", Field: "flags",
					Err: chanpdu.ErrUnsupported, Detail: "bulk compression is not used on this transport"})
			}
			return chunk, nil
		}
		msg, done, err := l.reasm.Push(h, chunk)
		if err != nil {
			return nil, fmt.Errorf("portable: %w", err)
		}
		if done {
			return msg, nil
		}
	}
}

// manager is what Run drives: a session.Server or session.Client.
type manager interface {
	Receive(pdu []byte) error
	Shutdown(err error)
	// Done is closed when the manager fails on its own (a send failed,
	// a peer flooded its control queue): the connection must go too.
	Done() <-chan struct{}
}

// readLoop feeds the manager until the stream ends or the manager
// refuses a PDU, then closes the connection. It returns why. On a server,
// it lends the reading to a Conn.Read (pump) when one is waiting and
// nothing else is.
func (c *conn) readLoop() error {
	var cause error
	for {
		pdu, err := c.l.next()
		if err != nil {
			cause = c.streamErr(err)
			break
		}
		if err := c.m.Receive(pdu); err != nil {
			cause = c.protocolErr(err)
			break
		}
		if p := c.pump; p != nil {
			if seen, ok := p.tryLend(); ok {
				if cause = p.lend(seen); cause != nil {
					break
				}
			}
		}
	}
	c.nc.Close()
	return cause
}

// streamErr is why the stream ended, logged when it is bad input.
func (c *conn) streamErr(err error) error {
	// A reset is how TCP reports a peer that closed with our data still
	// unread: a hang-up, not bad input.
	if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("portable: peer closed the connection: %w", io.EOF)
	}
	c.cfg.Logger.Error("portable: bad input; dropping the connection", "remote", remote(c.nc), "err", err)
	return err
}

func (c *conn) protocolErr(err error) error {
	c.cfg.Logger.Error("portable: protocol error; dropping the connection", "remote", remote(c.nc), "err", err)
	return err
}

func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return "?"
}

// ErrClosed is the cause channels see when this end's Close ended the
// connection (wrapped, with dvc.ErrConnectionLost), and what Run returns
// when called after Close.
var ErrClosed = errors.New("portable: connection closed")

// ErrRunning is returned by a second call of Run.
var ErrRunning = errors.New("portable: Run called twice")

// conn is what Server and Client share: one connection, its manager, and
// the Run/Close life cycle.
type conn struct {
	nc  net.Conn
	l   *link
	m   manager
	cfg Config

	mu      sync.Mutex
	started bool // Run was called
	closed  bool // Close was called

	shutOnce sync.Once
	shut     chan struct{} // closed when m.Shutdown has returned

	doneOnce sync.Once
	done     chan struct{} // closed when the connection is over (see wait)

	closeOnce sync.Once
	closing   chan struct{} // closed by Close or the end of Run's context
	pump      *pump         // server only
	err       error         // what Run returned; set before done is closed
}

func newConn(nc net.Conn, cfg Config) *conn {
	cfg = cfg.withDefaults()
	return &conn{
		nc:      nc,
		l:       newLink(nc, cfg.MaxMessage, cfg.WriteTimeout),
		cfg:     cfg,
		shut:    make(chan struct{}),
		done:    make(chan struct{}),
		closing: make(chan struct{}),
	}
}

// run serves the connection; start, if set, runs on a goroutine of its
// own once reading has begun.
func (c *conn) run(ctx context.Context, start func()) error {
	c.mu.Lock()
	if c.started {
		c.mu.Unlock()
		return ErrRunning
	}
	c.started = true
	closed := c.closed
	c.mu.Unlock()
	if closed {
		// Close already shut everything down and closed done.
		return ErrClosed
	}
	stop := context.AfterFunc(ctx, func() { c.nc.Close(); c.closeOnce.Do(func() { close(c.closing) }) })
	defer stop()
	// A manager that failed while the peer is silent would leave the read
	// loop waiting for ever: drop the connection with it.
	var failed atomic.Bool
	loopDone := make(chan struct{})
	defer close(loopDone)
	go func() {
		select {
		case <-c.m.Done():
			failed.Store(true)
			c.nc.Close()
		case <-loopDone:
		}
	}()
	if start != nil {
		// Off this goroutine: on a synchronous stream (net.Pipe) a write
		// waits for the peer to read, and the peer may be waiting for us
		// to read first.
		go start()
	}
	err := c.readLoop()
	if e, ok := c.m.(interface{ Err() error }); ok && failed.Load() && e.Err() != nil {
		err = e.Err()
	}
	c.shutdown(err)
	c.waitShut()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	c.finish(err)
	return err
}

// shutdown shuts the manager down once, on a goroutine of its own: it
// waits for the Handlers, which may never return.
func (c *conn) shutdown(cause error) {
	c.shutOnce.Do(func() {
		go func() {
			c.m.Shutdown(cause)
			close(c.shut)
		}()
	})
}

// waitShut waits for shutdown, at most Config.CloseTimeout.
func (c *conn) waitShut() bool {
	if c.cfg.CloseTimeout < 0 {
		return false
	}
	t := time.NewTimer(c.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-c.shut:
		return true
	case <-t.C:
		c.cfg.Logger.Warn("portable: a Handler has not returned within Config.CloseTimeout; not waiting for it",
			"remote", remote(c.nc), "timeout", c.cfg.CloseTimeout)
		return false
	}
}

func (c *conn) finish(err error) {
	c.doneOnce.Do(func() {
		c.l.release()
		if c.pump != nil {
			c.pump.release()
		}
		c.err = err
		close(c.done)
	})
}

// close drops the connection and fails every channel with ErrClosed. It
// waits for Run to finish, bounded as Run's own wait is.
func (c *conn) close() error {
	c.mu.Lock()
	c.closed = true
	started := c.started
	c.mu.Unlock()
	err := c.nc.Close()
	c.closeOnce.Do(func() { close(c.closing) })
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	// Failing the manager, not only the socket, frees a receive blocked
	// on a full inbox.
	c.shutdown(ErrClosed)
	if !started {
		c.waitShut()
		c.finish(ErrClosed)
		return err
	}
	if c.cfg.CloseTimeout < 0 {
		return err
	}
	// Run's read loop ends as soon as the socket is closed unless a
	// Handler called on it is stuck; Run itself then waits CloseTimeout
	// for the Handlers. Waiting CloseTimeout here covers both.
	t := time.NewTimer(c.cfg.CloseTimeout)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.cfg.Logger.Warn("portable: Close: a Handler has not returned within Config.CloseTimeout; not waiting for it",
			"remote", remote(c.nc), "timeout", c.cfg.CloseTimeout)
	}
	return err
}

// wait blocks until Run has returned, or Close has ended a connection
// that never ran, and returns what Run returned.
func (c *conn) wait() error {
	<-c.done
	return c.err
}

// Server is the RDP-server side of one connection: a DVC server manager
// over the chunk stream. It is a dvc.Opener.
type Server struct {
	c    *conn
	sess *session.Server
}

// NewServer prepares the server side on conn. Nothing is sent or read
// until Run. Call Close if Run will never be called, to release it.
func NewServer(conn net.Conn, cfg Config) *Server {
	c := newConn(conn, cfg)
	var carrier session.Carrier = c.l
	// A lent reading is cut short by a read deadline (the reader's
	// context ended, the channel or the connection closed): only a conn
	// that takes read deadlines may lend its reading; on any other, every
	// message goes through Run's goroutine.
	if conn.SetReadDeadline(time.Time{}) == nil {
		c.pump = newPump(c)
		carrier = c.pump
	}
	s := &Server{c: c, sess: session.NewServer(carrier, c.cfg.Session)}
	if c.pump != nil {
		c.pump.srv = s.sess
	}
	c.m = s.sess
	return s
}

// Run sends the capabilities request (the server speaks first,
// MS-RDPEDYC 3.3.3.1) and serves the connection until it ends, ctx is
// done or Close is called. It returns why: an error wrapping io.EOF when
// the client hung up, ctx.Err() when ctx ended it. Open works only while
// Run runs.
func (s *Server) Run(ctx context.Context) error {
	// A failed send fails the manager, and Open reports it.
	return s.c.run(ctx, func() { _ = s.sess.Start() })
}

// Open opens a channel instance named name (MS-RDPEDYC 2.2.2.1) and
// waits for the client's answer, at most Config.Session.OpenTimeout. It
// returns a *dvc.OpenError when the client refuses. Several instances may
// share a name. Call it while Run runs, from any goroutine.
func (s *Server) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	return s.sess.Open(ctx, name, opts...)
}

// Version is the MS-RDPEDYC version the client answered with, 0 before
// it has.
func (s *Server) Version() uint16 { return s.sess.Version() }

// RemoteAddr is the client's address.
func (s *Server) RemoteAddr() net.Addr { return s.c.nc.RemoteAddr() }

// Close drops the connection: every channel fails with an error wrapping
// dvc.ErrConnectionLost and ErrClosed. It waits for Run to return at most
// Config.CloseTimeout, and never for the peer.
func (s *Server) Close() error { return s.c.close() }

// Wait blocks until Run has returned (or Close has ended a Server that
// never ran) and returns what Run returned.
func (s *Server) Wait() error {
	if s.c.pump != nil {
		s.c.pump.Kick() // the end of the stream must be seen
	}
	return s.c.wait()
}

// Client is the RDP-client side of one connection: a DVC client manager
// over the chunk stream. It is a dvc.Registrar. Register listeners, then
// Run.
type Client struct {
	c    *conn
	sess *session.Client
}

// NewClient prepares the client side on conn. Nothing is read until Run.
// Call Close if Run will never be called, to release it.
func NewClient(conn net.Conn, cfg Config) *Client {
	c := newConn(conn, cfg)
	cl := &Client{c: c, sess: session.NewClient(c.l, c.cfg.Session)}
	c.m = cl.sess
	return cl
}

// Listen registers l for channels named name; the server's create
// requests for a name with no listener are refused. name must be one a
// DYNVC_CREATE_REQ can carry (MS-RDPEDYC 2.2.2.1: 1..256 bytes, no NUL).
// It may be called before or while Run runs.
func (c *Client) Listen(name string, l dvc.Listener) error { return c.sess.Listen(name, l) }

// Run serves the connection until it ends, ctx is done or Close is
// called, and returns why (an error wrapping io.EOF when the server hung
// up, ctx.Err() when ctx ended it). Every Handler has had Closed by the
// time it returns, unless one was stuck in a callback for longer than
// Config.CloseTimeout.
func (c *Client) Run(ctx context.Context) error { return c.c.run(ctx, nil) }

// Version is the negotiated MS-RDPEDYC version, 0 before the server
// asked.
func (c *Client) Version() uint16 { return c.sess.Version() }

// RemoteAddr is the server's address.
func (c *Client) RemoteAddr() net.Addr { return c.c.nc.RemoteAddr() }

// Close drops the connection; Run returns. Every Handler gets Closed with
// an error wrapping dvc.ErrConnectionLost. Close waits for Run at most
// Config.CloseTimeout, and never for the peer.
func (c *Client) Close() error { return c.c.close() }

// Wait blocks until Run has returned (or Close has ended a Client that
// never ran) and returns what Run returned.
func (c *Client) Wait() error { return c.c.wait() }

// Dial connects to a portable server at addr (host:port) and returns its
// client side, not yet running: register listeners, then Run.
func Dial(ctx context.Context, addr string, cfg Config) (*Client, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return NewClient(conn, cfg), nil
}

// Listener accepts portable connections, one Server each.
type Listener struct {
	ln  *net.TCPListener
	cfg Config
	// one Accept at a time: cancelling one sets the listener's deadline,
	// which must not cut short another's wait.
	sem chan struct{}
}

// Listen listens on addr. The transport has no authentication or
// encryption, so a non-loopback address is logged as a warning.
func Listen(addr string, cfg Config) (*Listener, error) {
	cfg = cfg.withDefaults()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if !IsLoopback(ln.Addr()) {
		cfg.Logger.Warn("portable: listening on a non-loopback address; this transport has no authentication or encryption",
			"addr", ln.Addr().String())
	}
	return &Listener{ln: ln.(*net.TCPListener), cfg: cfg, sem: make(chan struct{}, 1)}, nil
}

// IsLoopback reports whether a is a loopback TCP address.
func IsLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// longAgo is a deadline already past, to wake a blocked Accept.
var longAgo = time.Unix(1, 0)

// Accept waits for the next connection and returns its server side, not
// yet running: call Run (go s.Run(ctx)) before Open. When ctx ends first
// it returns ctx.Err() and the listener stays open; only Close closes it.
// Concurrent calls take turns.
func (l *Listener) Accept(ctx context.Context) (*Server, error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.sem }()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	woke := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		l.ln.SetDeadline(longAgo)
		close(woke)
	})
	conn, err := l.ln.Accept()
	if !stop() {
		// ctx ended while we waited: undo the deadline for the next call.
		<-woke
		l.ln.SetDeadline(time.Time{})
	}
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return NewServer(conn, l.cfg), nil
}

// Close stops listening; servers already accepted go on.
func (l *Listener) Close() error { return l.ln.Close() }
