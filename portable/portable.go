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
// The RDP-server side (Listen/Accept or NewServer) runs the DVC server
// manager and speaks first; the RDP-client side (Dial or NewClient) runs
// the DVC client manager. Neither authenticates nor encrypts: keep it on
// loopback or inside something that does.
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
	"syscall"
	"time"

	"github.com/rdpdvc/rdpdvc/chanpdu"
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

// Config configures either side.
type Config struct {
	Session    session.Config // the DVC manager's limits; Logger is shared
	MaxMessage uint32         // receive ceiling on CHANNEL_PDU_HEADER.length (DefaultMaxMessage)
	// WriteTimeout is the deadline of each write to the connection
	// (DefaultWriteTimeout; negative: none). A write that passes it fails
	// the connection.
	WriteTimeout time.Duration
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
	return c
}

// deadlineWriter gives each write to conn a deadline of d from its start.
type deadlineWriter struct {
	conn net.Conn
	d    time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	if w.d > 0 {
		if err := w.conn.SetWriteDeadline(time.Now().Add(w.d)); err != nil {
			return 0, err
		}
	}
	n, err := w.conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("portable: the peer read nothing for %v (Config.WriteTimeout): %w", w.d, err)
	}
	return n, err
}

// bufSize is each direction's buffer: large enough that bulk transfers
// move in few system calls (256 KiB measured 1.35x faster than 64 KiB for
// 1 MiB messages), at 0.5 MiB per connection.
const bufSize = 256 << 10

// link reads and writes the chunk stream; it is the session.Carrier.
type link struct {
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer            // used only under the session's carrier lock
	rhdr  [chanpdu.HeaderSize]byte // read side only
	whdr  [chanpdu.HeaderSize]byte // write side only
	reasm chanpdu.Reassembler
	buf   []byte // the single-chunk message being returned by next
}

func newLink(conn net.Conn, max uint32, writeTimeout time.Duration) *link {
	return &link{
		conn:  conn,
		br:    bufio.NewReaderSize(conn, bufSize),
		bw:    bufio.NewWriterSize(deadlineWriter{conn, writeTimeout}, bufSize),
		reasm: chanpdu.Reassembler{MaxLength: max},
		buf:   make([]byte, ChunkSize),
	}
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
	if _, err := l.bw.Write(h.Append(l.whdr[:0])); err != nil {
		return err
	}
	if _, err := l.bw.Write(head); err != nil {
		return err
	}
	_, err := l.bw.Write(body)
	return err
}

// WritePDU writes one virtual channel message: one chunk when it fits
// (FIRST|LAST), else chunks of ChunkSize.
func (l *link) WritePDU(pdu []byte) error {
	if len(pdu) <= ChunkSize {
		h := chanpdu.Header{Length: uint32(len(pdu)), Flags: chanpdu.FlagFirst | chanpdu.FlagLast}
		if _, err := l.bw.Write(h.Append(l.whdr[:0])); err != nil {
			return err
		}
		_, err := l.bw.Write(pdu)
		return err
	}
	return chanpdu.Chunker{ChunkSize: ChunkSize, Flags: chanpdu.FlagShowProtocol}.Chunks(pdu, func(h chanpdu.Header, chunk []byte) error {
		if _, err := l.bw.Write(h.Append(l.whdr[:0])); err != nil {
			return err
		}
		_, err := l.bw.Write(chunk)
		return err
	})
}

func (l *link) Flush() error { return l.bw.Flush() }

// next returns the next whole virtual channel message. A single-chunk
// message (every one rdpdvc sends) is returned in a buffer reused by the
// next call; longer ones are reassembled into a fresh slice.
func (l *link) next() ([]byte, error) {
	for {
		if _, err := io.ReadFull(l.br, l.rhdr[:]); err != nil {
			if err == io.ErrUnexpectedEOF {
				return nil, fmt.Errorf("portable: stream ends inside a CHANNEL_PDU_HEADER: %w", err)
			}
			return nil, err
		}
		h, err := chanpdu.ParseHeader(l.rhdr[:])
		if err != nil {
			return nil, err
		}
		n, err := l.reasm.NextChunkLen(h, ChunkSize)
		if err != nil {
			return nil, fmt.Errorf("portable: %w", err)
		}
		chunk := l.buf[:n]
		if _, err := io.ReadFull(l.br, chunk); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, fmt.Errorf("portable: stream ends inside a chunk of %d bytes: %w", n, err)
		}
		if _, _, active := l.reasm.InProgress(); !active && h.First() && h.Last() {
			if h.Flags&chanpdu.FlagPacketCompressed != 0 {
				return nil, errors.New("portable: CHANNEL_PDU_HEADER.flags: bulk compression is not used on this transport")
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

// receiver is what the read loop feeds.
type receiver interface {
	Receive(pdu []byte) error
	Shutdown(err error)
}

// readLoop feeds m until the stream ends or m refuses a PDU, then shuts m
// down and closes the connection. It returns why.
func readLoop(l *link, m receiver, log *slog.Logger) error {
	var cause error
	for {
		pdu, err := l.next()
		if err != nil {
			// A reset is how TCP reports a peer that closed with our data
			// still unread: a hang-up, not bad input.
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNRESET) {
				cause = fmt.Errorf("portable: peer closed the connection: %w", io.EOF)
			} else {
				cause = err
				log.Error("portable: bad input; dropping the connection", "remote", remote(l.conn), "err", err)
			}
			break
		}
		if err := m.Receive(pdu); err != nil {
			cause = err
			log.Error("portable: protocol error; dropping the connection", "remote", remote(l.conn), "err", err)
			break
		}
	}
	l.conn.Close()
	m.Shutdown(cause)
	return cause
}

func remote(c net.Conn) string {
	if a := c.RemoteAddr(); a != nil {
		return a.String()
	}
	return "?"
}

// Server is the RDP-server side of one connection: a DVC server manager
// (and so a dvc.Opener) over the chunk stream.
type Server struct {
	*session.Server
	conn net.Conn
	done chan struct{}
	err  error
	once sync.Once
}

// NewServer starts the server side on conn: it sends the capabilities
// request and reads until the connection ends.
func NewServer(conn net.Conn, cfg Config) *Server {
	cfg = cfg.withDefaults()
	l := newLink(conn, cfg.MaxMessage, cfg.WriteTimeout)
	s := &Server{Server: session.NewServer(l, cfg.Session), conn: conn, done: make(chan struct{})}
	go func() {
		s.err = readLoop(l, s.Server, cfg.Logger)
		close(s.done)
	}()
	// Off this goroutine: on a synchronous stream (net.Pipe) the write
	// waits for the peer to read. A failed send fails the manager, and Open
	// reports it.
	go s.Server.Start()
	return s
}

// RemoteAddr is the client's address.
func (s *Server) RemoteAddr() net.Addr { return s.conn.RemoteAddr() }

// Close drops the connection and waits until every channel has failed.
func (s *Server) Close() error {
	s.conn.Close()
	<-s.done
	return nil
}

// Wait blocks until the connection ends and returns why.
func (s *Server) Wait() error {
	<-s.done
	return s.err
}

// Client is the RDP-client side of one connection: a DVC client manager
// (and so a dvc.Registrar). Register listeners, then Run.
type Client struct {
	*session.Client
	conn net.Conn
	l    *link
	log  *slog.Logger
}

// NewClient prepares the client side on conn. Nothing is read until Run.
func NewClient(conn net.Conn, cfg Config) *Client {
	cfg = cfg.withDefaults()
	l := newLink(conn, cfg.MaxMessage, cfg.WriteTimeout)
	return &Client{Client: session.NewClient(l, cfg.Session), conn: conn, l: l, log: cfg.Logger}
}

// Run serves the connection until it ends or ctx is done, and returns why
// (an error wrapping io.EOF when the server hung up). Every Handler has had
// Closed by the time it returns.
func (c *Client) Run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() { c.conn.Close() })
	defer stop()
	err := readLoop(c.l, c.Client, c.log)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// Close drops the connection; Run returns.
func (c *Client) Close() error { return c.conn.Close() }

// Dial connects to a portable server at addr (host:port).
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
	ln  net.Listener
	cfg Config
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
	return &Listener{ln: ln, cfg: cfg}, nil
}

// IsLoopback reports whether a is a loopback TCP address.
func IsLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// Addr is the address listened on.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Accept waits for the next connection and starts its server side.
func (l *Listener) Accept(ctx context.Context) (*Server, error) {
	stop := context.AfterFunc(ctx, func() { l.ln.Close() })
	defer stop()
	conn, err := l.ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return NewServer(conn, l.cfg), nil
}

// Close stops listening; servers already accepted go on.
func (l *Listener) Close() error { return l.ln.Close() }
