// Package wts is the Windows server backend of the channel API: a
// [dvc.Opener] over the Remote Desktop Services virtual channel API
// (wtsapi32), for programs that run inside an RDP session on an RD Session
// Host.
//
// Two I/O modes, as in the Simple sample:
//
//   - WTS API mode (the default): WTSVirtualChannelOpenEx with
//     WTS_CHANNEL_OPTION_DYNAMIC, then WTSVirtualChannelRead and
//     WTSVirtualChannelWrite. Those two are documented as not thread-safe,
//     so every call on a channel handle is made under one lock, and reads
//     wait in short slices ([APIPollInterval]) so that a Write never waits
//     long behind an idle Read.
//   - File-handle mode (Opener.FileHandle): WTSVirtualChannelQuery
//     (WTSVirtualFileHandle) gives a file handle opened for overlapped I/O;
//     it is duplicated and driven with ReadFile/WriteFile on an I/O
//     completion port of its own (internal/overlapped), so reads and
//     writes run concurrently and Close cancels a pending read at once.
//
// In both modes each read returns one chunk of a message preceded by its
// CHANNEL_PDU_HEADER (MS-RDPBCGR 2.2.6.1.1; the WTSVirtualChannelRead
// documentation says so for dynamic channels), and messages are rebuilt
// with [chanpdu.Reassembler]. Writes take a whole message: Remote Desktop
// Services chunks it itself.
//
// The OS-independent part (the reader loop, reassembly, close and error
// rules, the classification of open failures) is in files without build
// tags and is tested on every OS; the wtsapi32 calls are in
// wts_windows.go.
package wts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// ReadBufferSize is the buffer each read is given. The documentation asks
// for at least CHANNEL_PDU_LENGTH (CHANNEL_CHUNK_LENGTH + 8 = 1608 bytes)
// and one read never returns more than one chunk; the margin covers a
// server that negotiated a larger VCChunkSize (MS-RDPBCGR 2.2.7.1.10,
// at most 16256).
const ReadBufferSize = 16384 + chanpdu.HeaderSize

// APIPollInterval is how long one WTSVirtualChannelRead waits in WTS API
// mode before the handle is free again for a Write or Close. It bounds the
// extra latency of a Write that arrives while the reader waits, and how
// long Close takes.
const APIPollInterval = 20 * time.Millisecond

// DefaultMaxMessage is the largest message a channel accepts in either
// direction when Opener.MaxMessage is 0 (chanpdu.DefaultMaxLength).
const DefaultMaxMessage = chanpdu.DefaultMaxLength

// ErrNotInSession is wrapped by Open's error when the program does not run
// inside a remote (RDP) session: on the local console there is no client
// to open a channel to.
var ErrNotInSession = errors.New("wts: not inside an RDP session")

// errTransportClosed is what a transport's read returns once close was
// called.
var errTransportClosed = errors.New("wts: transport closed")

// transport is one open channel as the OS gives it. readPDU returns one
// CHANNEL_PDU_HEADER and its chunk; it returns io.EOF when the client
// closed the channel, errTransportClosed after close, and other errors
// when the session or handle failed. write sends one whole message.
// close makes a blocked readPDU return; it is called once, after which
// nothing else is called.
type transport interface {
	readPDU(buf []byte) (int, error)
	write(ctx context.Context, msg []byte) error
	close() error
}

// conn is the dvc.Conn over a transport: one reader goroutine rebuilds
// messages and hands them to Read one at a time (so a program that stops
// reading stops the reads, which is the channel's flow control).
type conn struct {
	name string
	id   uint32
	max  int
	t    transport

	msgs   chan []byte
	done   chan struct{} // closed when the reader has ended; rerr is set then
	rerr   error
	closed chan struct{}
	once   sync.Once
	// wsem is held by the Write in progress (a semaphore, not a mutex,
	// so that a Write waiting behind another waits no longer than its
	// context allows).
	wsem chan struct{}
}

var lastID atomic.Uint32

func newConn(name string, t transport, maxMessage int) *conn {
	if maxMessage <= 0 {
		maxMessage = DefaultMaxMessage
	}
	c := &conn{
		name:   name,
		id:     lastID.Add(1),
		max:    maxMessage,
		t:      t,
		msgs:   make(chan []byte),
		done:   make(chan struct{}),
		closed: make(chan struct{}),
		wsem:   make(chan struct{}, 1),
	}
	go c.reader()
	return c
}

func (c *conn) reader() {
	defer close(c.done)
	r := chanpdu.Reassembler{MaxLength: uint32(c.max)}
	buf := make([]byte, ReadBufferSize)
	for {
		n, err := c.t.readPDU(buf)
		if err != nil {
			c.rerr = c.readError(err)
			return
		}
		msg, done, err := r.PushPDU(buf[:n])
		if err != nil {
			// Out of step with the chunk stream: nothing later can be
			// trusted, so the channel is over (MS-RDPEDYC 3.1.5.2.4 drops
			// the connection in the same case).
			if errors.Is(err, chanpdu.ErrTooLarge) {
				err = fmt.Errorf("%w: %w", dvc.ErrTooLarge, err)
			}
			c.rerr = fmt.Errorf("wts: channel %q: %w", c.name, err)
			return
		}
		if !done {
			continue
		}
		select {
		case c.msgs <- msg:
		case <-c.closed:
			return
		}
	}
}

func (c *conn) readError(err error) error {
	switch {
	case errors.Is(err, errTransportClosed):
		return dvc.ErrClosed
	case errors.Is(err, io.EOF):
		return io.EOF
	}
	return fmt.Errorf("wts: channel %q: %w: %w", c.name, dvc.ErrConnectionLost, err)
}

func (c *conn) Name() string { return c.name }
func (c *conn) ID() uint32   { return c.id }

// Read implements dvc.Conn.
func (c *conn) Read(ctx context.Context) ([]byte, error) {
	select {
	case <-c.closed:
		return nil, dvc.ErrClosed
	default:
	}
	select {
	case m := <-c.msgs:
		return m, nil
	case <-c.done:
		select {
		case <-c.closed:
			return nil, dvc.ErrClosed
		default:
		}
		return nil, c.rerr
	case <-c.closed:
		return nil, dvc.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Write implements dvc.Conn. Waiting behind another Write is bounded by
// ctx. The OS call itself cannot be abandoned half way: ctx is checked
// before it, and in file-handle mode its deadline bounds the pending
// WriteFile. After the client closed the channel, Write returns
// dvc.ErrClosed.
func (c *conn) Write(ctx context.Context, msg []byte) error {
	if len(msg) > c.max {
		return fmt.Errorf("wts: channel %q: write of %d bytes: %w (ceiling %d)", c.name, len(msg), dvc.ErrTooLarge, c.max)
	}
	select {
	case c.wsem <- struct{}{}:
	case <-c.closed:
		return dvc.ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-c.wsem }()
	select {
	case <-c.closed:
		return dvc.ErrClosed
	default:
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := c.t.write(ctx, msg); err != nil {
		select {
		case <-c.closed:
			return dvc.ErrClosed
		default:
		}
		switch {
		case errors.Is(err, errTransportClosed):
			return dvc.ErrClosed
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, io.EOF):
			return fmt.Errorf("wts: channel %q: write: the client closed the channel: %w", c.name, dvc.ErrClosed)
		}
		return fmt.Errorf("wts: channel %q: write: %w: %w", c.name, dvc.ErrConnectionLost, err)
	}
	return nil
}

// Close implements dvc.Conn: it closes the channel handle and waits for
// the reader to stop.
func (c *conn) Close() error {
	var err error
	c.once.Do(func() {
		close(c.closed)
		// The transport's close is safe against a Write in progress: it
		// cancels it (file-handle mode) or waits for it (WTS API mode).
		err = c.t.close()
		<-c.done
	})
	return err
}

// OpenError is Open's error when WTSVirtualChannelOpenEx fails. It wraps
// ErrNotInSession outside a remote session, and a *dvc.OpenError when the
// session is remote but the client did not create the channel, which is
// what happens when the RDP client has no listener for the name (the
// plugin is not registered, or the client did not load it).
type OpenError struct {
	Name      string
	Errno     uint32 // GetLastError() after WTSVirtualChannelOpenEx
	InSession bool   // GetSystemMetrics(SM_REMOTESESSION) != 0
}

func (e *OpenError) Error() string {
	if !e.InSession {
		return fmt.Sprintf("wts: open %q: not inside an RDP session: virtual channels exist only in remote sessions, "+
			"so run the server from inside the RDP session, not on the console (WTSVirtualChannelOpenEx: %s)", e.Name, errnoString(e.Errno))
	}
	return fmt.Sprintf("wts: open %q: WTSVirtualChannelOpenEx: %s: the RDP client did not open the channel; "+
		"is the client plugin registered (rdp-simple-plugin-client /register) and loaded by this mstsc?",
		e.Name, errnoString(e.Errno))
}

// Unwrap lets errors.Is(err, ErrNotInSession) and errors.As(err,
// **dvc.OpenError) see what happened.
func (e *OpenError) Unwrap() []error {
	if !e.InSession {
		return []error{ErrNotInSession}
	}
	return []error{&dvc.OpenError{Name: e.Name, Status: e.Status()}}
}

// Status is the failure as an HRESULT: GetLastError() is sometimes the
// client's NTSTATUS from DYNVC_CREATE_RSP as is (0xC0000001
// STATUS_UNSUCCESSFUL, 0xC0000002 STATUS_NOT_IMPLEMENTED have been seen),
// and otherwise a Win32 code.
func (e *OpenError) Status() hresult.HRESULT {
	if e.Errno&0x80000000 != 0 {
		return hresult.HRESULT(e.Errno)
	}
	return hresult.FromWin32(e.Errno)
}

func errnoString(n uint32) string {
	if n&0x80000000 != 0 {
		return hresult.HRESULT(n).String()
	}
	if name, ok := win32Names[n]; ok {
		return fmt.Sprintf("%s (%d)", name, n)
	}
	return fmt.Sprintf("Win32 error %d", n)
}

// Names of the codes WTSVirtualChannelOpenEx is known to fail with. Seen
// in the field: ERROR_INVALID_FUNCTION on the console; ERROR_GEN_FAILURE
// and NTSTATUS values when the client has no listener.
var win32Names = map[uint32]string{
	1:  "ERROR_INVALID_FUNCTION",
	2:  "ERROR_FILE_NOT_FOUND",
	5:  "ERROR_ACCESS_DENIED",
	6:  "ERROR_INVALID_HANDLE",
	31: "ERROR_GEN_FAILURE",
	50: "ERROR_NOT_SUPPORTED",
	87: "ERROR_INVALID_PARAMETER",
}
