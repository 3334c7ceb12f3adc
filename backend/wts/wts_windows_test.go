package wts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Microsoft/go-winio"
	"golang.org/x/sys/windows"

	"github.com/rdpdvc/rdpdvc/chanpdu"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/simple"
)

// These tests need the test wtsapi32.dll of scripts/wine/dll (Wine's own
// is stubs, and real Windows' needs a real RDP session):
// scripts/wine/test-windows.sh installs it and sets RDPDVC_WINE=1.
func needFakeWTS(t *testing.T) {
	t.Helper()
	if os.Getenv("RDPDVC_WINE") != "1" {
		t.Skip("needs the test wtsapi32.dll: run scripts/wine/test-windows.sh")
	}
}

var pipeSeq atomic.Int32

// rdsPeer plays Remote Desktop Services and the RDP client behind it, on
// the named pipe the test wtsapi32.dll connects to: it answers the OPEN
// with status, then echoes every message back cut into CHANNEL_PDU chunks
// of 1600 bytes, one pipe message per chunk.
type rdsPeer struct {
	t      *testing.T
	l      *pipeListener
	status uint32

	open     chan string // the OPEN line
	mu       sync.Mutex
	got      [][]byte // messages received, each one pipe message
	chunks   [][]int  // per echoed message, its chunk sizes
	closeNow chan struct{}
	done     chan error // the peer's end: nil or an error
}

func startPeer(t *testing.T, status uint32) *rdsPeer {
	t.Helper()
	path := fmt.Sprintf(`\\.\pipe\rdpdvc-wts-test-%d-%d`, os.Getpid(), pipeSeq.Add(1))
	l, err := listenPipe(path)
	if err != nil {
		t.Fatalf("listening on %s: %v", path, err)
	}
	t.Setenv("RDPDVC_WTS_PIPE", path)
	p := &rdsPeer{t: t, l: l, status: status, open: make(chan string, 1), closeNow: make(chan struct{}), done: make(chan error, 1)}
	go func() { p.done <- p.serve() }()
	t.Cleanup(func() {
		l.Close()
		select {
		case <-p.closeNow:
		default:
			close(p.closeNow)
		}
		<-p.done
	})
	return p
}

// pipeListener is one message-mode pipe instance, created and connected
// with plain Win32 calls, then driven by go-winio's overlapped I/O.
// (With go-winio's ListenPipe, which creates pipes through
// NtCreateNamedPipeFile, the test DLL's connection never reached Accept
// under Wine 8.0: WTSVirtualChannelOpenEx hung.)
type pipeListener struct {
	h      windows.Handle
	ev     windows.Handle
	closed atomic.Bool
}

func listenPipe(path string) (*pipeListener, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	h, err := windows.CreateNamedPipe(p, windows.PIPE_ACCESS_DUPLEX|windows.FILE_FLAG_OVERLAPPED|windows.FILE_FLAG_FIRST_PIPE_INSTANCE,
		windows.PIPE_TYPE_MESSAGE|windows.PIPE_READMODE_MESSAGE|windows.PIPE_WAIT, 1, 1<<16, 1<<16, 0, nil)
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
func (l *pipeListener) Accept() (io.ReadWriteCloser, error) {
	ov := windows.Overlapped{HEvent: l.ev}
	err := windows.ConnectNamedPipe(l.h, &ov)
	switch {
	case err == nil, errors.Is(err, windows.ERROR_PIPE_CONNECTED):
	case errors.Is(err, windows.ERROR_IO_PENDING):
		if _, err := windows.WaitForSingleObject(l.ev, windows.INFINITE); err != nil {
			return nil, err
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
	f, err := winio.NewOpenFile(l.h)
	if err != nil {
		return nil, err
	}
	l.h = 0 // f owns it now
	return f, nil
}

// Close makes a waiting Accept return; a handle not yet accepted is
// closed.
func (l *pipeListener) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	windows.SetEvent(l.ev)
	return nil
}

func (p *rdsPeer) serve() error {
	defer windows.CloseHandle(p.l.ev)
	c, err := p.l.Accept()
	if err != nil {
		return err
	}
	defer c.Close()
	go func() {
		<-p.closeNow
		c.Close()
	}()
	buf := make([]byte, 1<<16)
	n, err := c.Read(buf)
	if err != nil {
		return fmt.Errorf("reading OPEN: %w", err)
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
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF // the server closed its handle(s)
			}
			return err
		}
		msg := append([]byte(nil), buf[:n]...)
		var sizes []int
		err = ch.Chunks(msg, func(h chanpdu.Header, chunk []byte) error {
			sizes = append(sizes, len(chunk))
			_, err := c.Write(append(h.Append(nil), chunk...))
			return err
		})
		p.mu.Lock()
		p.got = append(p.got, msg)
		p.chunks = append(p.chunks, sizes)
		p.mu.Unlock()
		if err != nil {
			return err
		}
	}
}

func testPings(t *testing.T, fileHandle bool) {
	needFakeWTS(t)
	p := startPeer(t, 0)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	c, err := (&Opener{FileHandle: fileHandle}).Open(ctx, simple.ChannelName, dvc.WithPriority(2))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	// WTS_CURRENT_SESSION, WTS_CHANNEL_OPTION_DYNAMIC | WTS_CHANNEL_OPTION_DYNAMIC_PRI_HIGH (4).
	if got, want := <-p.open, "OPEN 4294967295 5 "+simple.ChannelName; got != want {
		t.Errorf("WTSVirtualChannelOpenEx saw %q, want %q", got, want)
	}

	// The next ping goes when the previous echo is in: no wall clock.
	tick := make(chan time.Time, 1)
	pinger := simple.Pinger{
		Count:   5,
		Tick:    tick,
		Logger:  slog.New(slog.DiscardHandler),
		Timeout: time.Minute,
		OnReply: func(simple.Reply) {
			select {
			case tick <- time.Now():
			default:
			}
		},
	}
	st, err := pinger.Run(ctx, c)
	if err != nil {
		t.Fatalf("Pinger.Run: %v (stats %+v)", err, st)
	}
	if st.Sent != 5 || st.Received != 5 || !st.OK() {
		t.Fatalf("stats %+v, want 5 sent, 5 echoed intact", st)
	}
	t.Logf("5 pings echoed; RTTs %v", st.RTTs)
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// The peer sees the pipe end: every handle to it (in file-handle mode
	// the duplicate too) is closed.
	if err := <-p.done; err != io.EOF {
		t.Fatalf("peer ended with %v, want EOF once the channel was closed", err)
	}
	p.done <- nil // for Cleanup

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.got) != 5 {
		t.Fatalf("peer got %d messages, want 5", len(p.got))
	}
	for i, m := range p.got {
		if len(m) != 5140 {
			t.Errorf("message %d: %d bytes in one write, want the whole 5140-byte frame", i, len(m))
		}
		if fmt.Sprint(p.chunks[i]) != "[1600 1600 1600 340]" {
			t.Errorf("message %d came back in chunks %v", i, p.chunks[i])
		}
	}
}

func TestPingsAPIMode(t *testing.T)        { testPings(t, false) }
func TestPingsFileHandleMode(t *testing.T) { testPings(t, true) }

func testClientCloses(t *testing.T, fileHandle bool) {
	needFakeWTS(t)
	p := startPeer(t, 0)
	c, err := (&Opener{FileHandle: fileHandle}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-p.open
	close(p.closeNow)
	if _, err := c.Read(context.Background()); err != io.EOF {
		t.Fatalf("Read after the client closed: %v, want io.EOF", err)
	}
}

func TestClientClosesAPIMode(t *testing.T)        { testClientCloses(t, false) }
func TestClientClosesFileHandleMode(t *testing.T) { testClientCloses(t, true) }

func testCloseUnblocksRead(t *testing.T, fileHandle bool) {
	needFakeWTS(t)
	p := startPeer(t, 0)
	c, err := (&Opener{FileHandle: fileHandle}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	<-p.open
	errc := make(chan error, 1)
	go func() {
		_, err := c.Read(context.Background())
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Read pending at Close: %v", err)
	}
	if err := <-p.done; err != io.EOF {
		t.Fatalf("peer: %v", err)
	}
	p.done <- nil
}

func TestCloseUnblocksReadAPIMode(t *testing.T)        { testCloseUnblocksRead(t, false) }
func TestCloseUnblocksReadFileHandleMode(t *testing.T) { testCloseUnblocksRead(t, true) }

func TestNoListener(t *testing.T) {
	needFakeWTS(t)
	startPeer(t, uint32(hresult.StatusUnsuccessful))
	old := inRemoteSession
	inRemoteSession = func() bool { return true }
	defer func() { inRemoteSession = old }()

	_, err := (&Opener{}).Open(context.Background(), simple.ChannelName)
	var oe *dvc.OpenError
	if !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
		t.Fatalf("Open = %v, want a dvc.OpenError with STATUS_UNSUCCESSFUL", err)
	}
	if !strings.Contains(err.Error(), "/register") {
		t.Errorf("error gives no hint: %v", err)
	}
}

func TestNotInSession(t *testing.T) {
	needFakeWTS(t)
	// No pipe named: the test DLL fails like a console session does, and
	// Wine's GetSystemMetrics(SM_REMOTESESSION) is 0, as on the console.
	t.Setenv("RDPDVC_WTS_PIPE", "")
	os.Unsetenv("RDPDVC_WTS_PIPE")
	_, err := (&Opener{FileHandle: true}).Open(context.Background(), simple.ChannelName)
	var oe *OpenError
	if !errors.Is(err, ErrNotInSession) || !errors.As(err, &oe) || oe.Errno != 1 {
		t.Fatalf("Open = %v, want ErrNotInSession with ERROR_INVALID_FUNCTION", err)
	}
}

func TestOpenRejectsBadName(t *testing.T) {
	for _, n := range []string{"", "a\x00b"} {
		if _, err := (&Opener{}).Open(context.Background(), n); err == nil {
			t.Errorf("Open(%q) succeeded", n)
		}
	}
}
