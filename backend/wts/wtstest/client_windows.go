package wtstest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/backend/wts/internal/overlapped"
	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// MaxMessage is the largest message a Client takes from the server.
const MaxMessage = 4 << 20

// Client is the RDP client behind Remote Desktop Services as a
// dvc.Registrar, for running the channel contract against backend/wts:
// every WTSVirtualChannelOpenEx of the test DLL is one pipe connection,
// which the Client answers by asking the listener registered for the
// name (the answer's status is dvc.StatusOf of a refusal, which the DLL
// hands to the server as WTSVirtualChannelOpenEx's last error). Then:
//
//   - each pipe message from the server is one whole message, handed to
//     the channel's Handler on the goroutine reading the pipe
//     (kit.Direct, as a plugin's OnDataReceived runs on mstsc's thread);
//     a Handler that does not return stops the reads, and the server's
//     writes then wait, as behind a client that does not read;
//   - a Write from the Handler goes back in ChunkLength (1600-byte)
//     chunks, each one pipe message with its CHANNEL_PDU_HEADER, as
//     WTSVirtualChannelRead and ReadFile return them;
//   - the client's Close hangs up once what it wrote is in the pipe: the
//     server reads it, then the end of the channel;
//   - the server's close (the pipe breaks) ends the Handler with
//     Closed(nil);
//   - Kill drops the session: every pipe hangs up and the Handlers end
//     with dvc.ErrConnectionLost; the pipe is gone, so a later
//     WTSVirtualChannelOpenEx fails.
type Client struct {
	// Path is the pipe's name, which NewClient puts in RDPDVC_WTS_PIPE.
	Path string

	reg kit.Registry
	wg  sync.WaitGroup

	mu     sync.Mutex
	l      *pipeListener // the instance waiting for the next open
	chans  map[*clientChan]bool
	nextID uint32
	killed bool
}

var _ dvc.Registrar = (*Client)(nil)

// NewClient creates the pipe, points RDPDVC_WTS_PIPE at it and serves
// opens until Close.
func NewClient() (*Client, error) {
	path := fmt.Sprintf(`\\.\pipe\rdpdvc-wts-client-%d-%d`, os.Getpid(), seq.Add(1))
	l, err := listenPipe(path, true)
	if err != nil {
		return nil, fmt.Errorf("wtstest: listening on %s: %w", path, err)
	}
	if err := os.Setenv(EnvPipe, path); err != nil {
		l.Close()
		windows.CloseHandle(l.ev)
		windows.CloseHandle(l.h)
		return nil, err
	}
	c := &Client{Path: path, l: l, chans: map[*clientChan]bool{}}
	c.reg.Prefix = "wtstest"
	c.wg.Go(func() { c.accept(l) })
	return c, nil
}

// Listen implements dvc.Registrar (MS-RDPEDYC 2.2.2.1's name rule).
func (c *Client) Listen(name string, l dvc.Listener) error { return c.reg.Listen(name, l) }

// accept serves pipe instances one after the other: each connection is
// one channel, and the next instance is created as soon as one connects.
func (c *Client) accept(l *pipeListener) {
	// The event of an instance is closed only once it is no longer c.l:
	// Kill sets c.l's event under mu.
	for {
		conn, err := l.Accept()
		var next *pipeListener
		if err == nil {
			next, err = listenPipe(c.Path, false)
			if err != nil {
				conn.Close()
			}
		}
		c.mu.Lock()
		killed := c.killed
		c.l = next
		c.mu.Unlock()
		windows.CloseHandle(l.ev)
		if err != nil {
			return
		}
		if killed {
			conn.Close()
			windows.CloseHandle(next.ev)
			windows.CloseHandle(next.h)
			return
		}
		c.wg.Go(func() { c.serve(conn) })
		l = next
	}
}

// Kill drops the session under every channel.
func (c *Client) Kill() {
	c.mu.Lock()
	if c.killed {
		c.mu.Unlock()
		return
	}
	c.killed = true
	if c.l != nil {
		c.l.Close()
	}
	chans := c.chans
	c.chans = map[*clientChan]bool{}
	c.mu.Unlock()
	lost := fmt.Errorf("wtstest: session dropped: %w", dvc.ErrConnectionLost)
	for ch := range chans {
		ch.drop(lost)
	}
}

// Close drops the session, waits for every goroutine of the Client (every
// Handler has had Closed by then) and unsets RDPDVC_WTS_PIPE.
func (c *Client) Close() error {
	c.Kill()
	c.wg.Wait()
	return os.Unsetenv(EnvPipe)
}

// serve is one channel, from the DLL's OPEN to the end of the pipe.
func (c *Client) serve(conn *overlapped.File) {
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		conn.Close()
		return
	}
	// "OPEN <session> <flags> <name>"
	f := strings.SplitN(string(buf[:n]), " ", 4)
	if len(f) != 4 || f[0] != "OPEN" {
		conn.Close()
		return
	}
	name := f[3]
	status := func(s uint32) bool {
		_, err := conn.Write(binary.LittleEndian.AppendUint32(nil, s))
		return err == nil
	}
	l := c.reg.Lookup(name)
	if l == nil {
		status(uint32(hresult.StatusUnsuccessful))
		conn.Close()
		return
	}
	c.mu.Lock()
	c.nextID++
	ch := &clientChan{name: name, id: c.nextID, conn: conn,
		s:   kit.NewSerial(kit.SerialConfig{Mode: kit.Direct}),
		out: dvc.NewInbox(64 << 20)}
	c.mu.Unlock()
	h, err := kit.Accept(l, ch)
	ch.mu.Lock()
	if err == nil && ch.closed {
		err = errors.New("closed inside Accept")
	}
	if err == nil {
		ch.open = true
	}
	ch.mu.Unlock()
	if err != nil {
		status(uint32(dvc.StatusOf(err)))
		conn.Close()
		return
	}
	c.mu.Lock()
	killed := c.killed
	if !killed {
		c.chans[ch] = true
	}
	c.mu.Unlock()
	if killed || !status(0) {
		ch.s.Attach(h)
		ch.drop(fmt.Errorf("wtstest: session dropped: %w", dvc.ErrConnectionLost))
		return
	}
	ch.s.Attach(h)
	c.wg.Go(ch.forward)
	ch.read()
	c.mu.Lock()
	delete(c.chans, ch)
	c.mu.Unlock()
}

// clientChan is one channel's client end.
type clientChan struct {
	name string
	id   uint32
	conn *overlapped.File
	s    *kit.Serial
	out  *dvc.Inbox // what the client wrote, on its way into the pipe

	mu     sync.Mutex
	open   bool
	closed bool
}

func (ch *clientChan) Name() string { return ch.name }
func (ch *clientChan) ID() uint32   { return ch.id }

func (ch *clientChan) Write(ctx context.Context, msg []byte) error {
	ch.mu.Lock()
	open, closed := ch.open, ch.closed
	ch.mu.Unlock()
	switch {
	case closed:
		return dvc.ErrClosed
	case !open:
		return errors.New("wtstest: channel not open yet: write after Accept returns")
	}
	if err := ch.out.Put(ctx, append([]byte(nil), msg...)); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, dvc.ErrClosed) {
			return dvc.ErrClosed
		}
		return err
	}
	return nil
}

// Close is the client closing the channel: what it wrote goes first, then
// the pipe hangs up.
func (ch *clientChan) Close() error {
	ch.mu.Lock()
	already := ch.closed
	ch.closed = true
	ch.mu.Unlock()
	if already {
		return nil
	}
	ch.out.CloseWithError(nil)
	ch.s.Discard(dvc.ErrClosed)
	return nil
}

// drop ends the channel with err, the pipe hung up at once.
func (ch *clientChan) drop(err error) {
	ch.mu.Lock()
	ch.closed = true
	ch.mu.Unlock()
	ch.out.Discard(err)
	ch.conn.Close()
	ch.s.End(err)
}

// forward writes what the client wrote into the pipe, chunked, and hangs
// up once the client closed and all of it is in.
func (ch *clientChan) forward() {
	chunker := chanpdu.Chunker{Flags: chanpdu.FlagShowProtocol}
	for {
		m, err := ch.out.Read(context.Background())
		if err != nil {
			ch.conn.Close()
			return
		}
		if err := chunker.Chunks(m, func(h chanpdu.Header, chunk []byte) error {
			_, err := ch.conn.Write(append(h.Append(nil), chunk...))
			return err
		}); err != nil {
			ch.out.Discard(err)
			ch.conn.Close()
			return
		}
	}
}

// read hands each whole message from the server to the Handler, until
// the pipe ends: the server closed (Closed(nil)) or the client hung up.
func (ch *clientChan) read() {
	buf := make([]byte, 64<<10)
	var msg []byte
	for {
		n, err := ch.conn.Read(buf)
		if errors.Is(err, windows.ERROR_MORE_DATA) {
			if len(msg)+n > MaxMessage {
				ch.drop(fmt.Errorf("wtstest: a message over %d bytes from the server", MaxMessage))
				return
			}
			msg = append(msg, buf[:n]...)
			continue
		}
		if err != nil {
			// Closed before Closed is reported: a Write from the handler's
			// owner once it has seen Closed must find the channel closed.
			ch.mu.Lock()
			ch.closed = true
			ch.mu.Unlock()
			ch.out.Discard(dvc.ErrClosed)
			ch.conn.Close()
			ch.s.End(nil) // the server closed, or the client hung up
			return
		}
		m := append(msg, buf[:n]...)
		msg = nil
		if m == nil {
			m = []byte{} // a zero-length pipe message: an empty message
		}
		ch.s.Put(context.Background(), m)
	}
}
