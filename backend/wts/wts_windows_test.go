package wts

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/wts/wtstest"
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

// startPeer starts a wtstest.Peer (Remote Desktop Services and the RDP
// client behind it, echoing) and stops it at the end of the test.
func startPeer(t *testing.T, status uint32) *wtstest.Peer {
	t.Helper()
	p, err := wtstest.Listen(status, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
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
	if got, want := <-p.Opened(), "OPEN 4294967295 5 "+simple.ChannelName; got != want {
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
	<-p.Done()
	if err := p.Err(); err != io.EOF {
		t.Fatalf("peer ended with %v, want EOF once the channel was closed", err)
	}
	got, chunks := p.Received()
	if len(got) != 5 {
		t.Fatalf("peer got %d messages, want 5", len(got))
	}
	for i, m := range got {
		if len(m) != 5140 {
			t.Errorf("message %d: %d bytes in one write, want the whole 5140-byte frame", i, len(m))
		}
		if fmt.Sprint(chunks[i]) != "[1600 1600 1600 340]" {
			t.Errorf("message %d came back in chunks %v", i, chunks[i])
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
	<-p.Opened()
	p.Hangup()
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
	<-p.Opened()
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
	<-p.Done()
	if err := p.Err(); err != io.EOF {
		t.Fatalf("peer: %v", err)
	}
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
	os.Unsetenv(wtstest.EnvPipe)
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
