package wtstest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/backend/wts/internal/overlapped"
	"github.com/rdpdvc/rdpdvc/chanpdu"
)

// EnvPipe is the environment variable the test wtsapi32.dll reads the
// pipe's name from.
const EnvPipe = "RDPDVC_WTS_PIPE"

// Handler answers one whole message the server wrote; reply sends a
// message back to the server, cut into CHANNEL_PDU chunks.
type Handler func(msg []byte, reply func([]byte) error) error

// Echo sends every message back unchanged, as the Simple client does.
func Echo(msg []byte, reply func([]byte) error) error { return reply(msg) }

// Peer is one channel's far end: it accepts the test DLL's connection,
// answers its OPEN with Status (0 opens the channel; anything else is the
// last error WTSVirtualChannelOpenEx fails with), then hands each message
// to its Handler. Replies go out as one pipe message per chunk of
// ChunkSize bytes (CHANNEL_CHUNK_LENGTH, 1600), each with its
// CHANNEL_PDU_HEADER, as WTSVirtualChannelRead and ReadFile return them.
type Peer struct {
	Path string

	status  uint32
	handle  Handler
	l       *pipeListener
	open    chan string
	hangup  chan struct{}
	hangup1 sync.Once
	done    chan struct{}
	err     error

	mu     sync.Mutex
	got    [][]byte
	chunks [][]int
}

var seq atomic.Int32

// Listen creates the pipe, points RDPDVC_WTS_PIPE at it and serves one
// connection in the background. A nil handle echoes.
func Listen(status uint32, handle Handler) (*Peer, error) {
	if handle == nil {
		handle = Echo
	}
	path := fmt.Sprintf(`\\.\pipe\rdpdvc-wts-test-%d-%d`, os.Getpid(), seq.Add(1))
	l, err := listenPipe(path, true)
	if err != nil {
		return nil, fmt.Errorf("wtstest: listening on %s: %w", path, err)
	}
	if err := os.Setenv(EnvPipe, path); err != nil {
		l.Close()
		return nil, err
	}
	p := &Peer{Path: path, status: status, handle: handle, l: l,
		open: make(chan string, 1), hangup: make(chan struct{}), done: make(chan struct{})}
	go func() {
		p.err = p.serve()
		close(p.done)
	}()
	return p, nil
}

// Opened returns the OPEN line the DLL sent: "OPEN <session> <flags> <name>".
func (p *Peer) Opened() <-chan string { return p.open }

// Received returns the messages the server wrote so far (each one whole
// pipe message) and, for each, the sizes of the chunks it was answered in.
func (p *Peer) Received() (msgs [][]byte, chunks [][]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([][]byte(nil), p.got...), append([][]int(nil), p.chunks...)
}

// Hangup closes the client's end, as when the client closes the channel.
func (p *Peer) Hangup() { p.hangup1.Do(func() { close(p.hangup) }) }

// Done is closed when the peer has stopped; Err then says why: io.EOF
// when the server closed its end.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Err is why the peer stopped; valid once Done is closed.
func (p *Peer) Err() error { return p.err }

// Close hangs up, stops listening, waits for the peer to stop and
// unsets RDPDVC_WTS_PIPE.
func (p *Peer) Close() error {
	p.Hangup()
	p.l.Close()
	<-p.done
	return os.Unsetenv(EnvPipe)
}

func (p *Peer) serve() error {
	defer windows.CloseHandle(p.l.ev)
	c, err := p.l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		<-p.hangup
		c.Close()
	}()
	buf := make([]byte, 1<<20)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("wtstest: reading OPEN: %w", err)
	}
	p.open <- string(buf[:n])
	st := []byte{byte(p.status), byte(p.status >> 8), byte(p.status >> 16), byte(p.status >> 24)}
	if _, err := c.Write(st); err != nil {
		return err
	}
	if p.status != 0 {
		return nil
	}
	ch := chanpdu.Chunker{Flags: chanpdu.FlagShowProtocol}
	for {
		n, err := c.Read(buf)
		if err != nil || n == 0 {
			if err == nil || errors.Is(err, windows.ERROR_BROKEN_PIPE) || errors.Is(err, windows.ERROR_PIPE_NOT_CONNECTED) {
				return io.EOF // the server closed its handle(s)
			}
			if errors.Is(err, overlapped.ErrClosed) {
				return net.ErrClosed // Hangup
			}
			return err
		}
		msg := append([]byte(nil), buf[:n]...)
		var sizes []int
		reply := func(m []byte) error {
			return ch.Chunks(m, func(h chanpdu.Header, chunk []byte) error {
				sizes = append(sizes, len(chunk))
				_, err := c.Write(append(h.Append(nil), chunk...))
				return err
			})
		}
		err = p.handle(msg, reply)
		p.mu.Lock()
		p.got = append(p.got, msg)
		p.chunks = append(p.chunks, sizes)
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

// pipeListener is one message-mode pipe instance, created and connected
// with plain Win32 calls, then driven by overlapped I/O. (With
// go-winio's ListenPipe, which creates pipes through
// NtCreateNamedPipeFile, the test DLL's connection never reached Accept
// under Wine 8.0: WTSVirtualChannelOpenEx hung.)
type pipeListener struct {
	h      windows.Handle
	ev     windows.Handle
	closed atomic.Bool
}

// listenPipe creates one instance of the message-mode pipe path, with
// room for more (NewClient's); first says it must be the first: nobody
// else serves the name.
func listenPipe(path string, first bool) (*pipeListener, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	mode := uint32(windows.PIPE_ACCESS_DUPLEX | windows.FILE_FLAG_OVERLAPPED)
	if first {
		mode |= windows.FILE_FLAG_FIRST_PIPE_INSTANCE
	}
	h, err := windows.CreateNamedPipe(p, mode, windows.PIPE_TYPE_MESSAGE|windows.PIPE_READMODE_MESSAGE|windows.PIPE_WAIT,
		windows.PIPE_UNLIMITED_INSTANCES, 1<<16, 1<<16, 0, nil)
	if err != nil {
		return nil, err
	}
	ev, err := windows.CreateEvent(nil, 1, 0, nil)
	if err != nil {
		windows.CloseHandle(h)
		return nil, err
	}
	return &pipeListener{h: h, ev: ev}, nil
}

// Accept waits for the one client and returns the connection.
func (l *pipeListener) Accept() (*overlapped.File, error) {
	ov := windows.Overlapped{HEvent: l.ev}
	err := windows.ConnectNamedPipe(l.h, &ov)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
	case errors.Is(err, windows.ERROR_IO_PENDING):
		// ConnectNamedPipe reset the event: a Close that set it before
		// is seen through closed.
		if !l.closed.Load() {
			if _, err := windows.WaitForSingleObject(l.ev, windows.INFINITE); err != nil {
				return nil, err
			}
		}
		if l.closed.Load() {
			windows.CancelIoEx(l.h, &ov)
			var n uint32
			windows.GetOverlappedResult(l.h, &ov, &n, true)
			windows.CloseHandle(l.h)
			return nil, net.ErrClosed
		}
		var n uint32
		if err := windows.GetOverlappedResult(l.h, &ov, &n, false); err != nil {
			return nil, fmt.Errorf("ConnectNamedPipe: %w", err)
		}
	default:
		return nil, fmt.Errorf("ConnectNamedPipe: %w", err)
	}
	if l.closed.Load() {
		windows.CloseHandle(l.h)
		return nil, net.ErrClosed
	}
	f, err := overlapped.New(l.h)
	if err != nil {
		return nil, err
	}
	l.h = 0 // f owns it now
	return f, nil
}

// Close makes a waiting Accept return.
func (l *pipeListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	return windows.SetEvent(l.ev)
}
