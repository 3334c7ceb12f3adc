package wts

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/wts/wtstest"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
)

// The Opener runs the channel contract under Wine, in both I/O modes, as
// the server side. Remote Desktop Services cannot run here: it is the one
// part that is a test double, the test wtsapi32.dll (scripts/wine/dll)
// with wtstest.Client behind it, which plays the RDP client as a
// dvc.Registrar (see its doc for what it does on each event). What runs
// is backend/wts itself: LoadLibrary from System32, the six wtsapi32
// calls, GetLastError, and in file-handle mode the duplicated handle on
// an I/O completion port. Wine has no remote session, so
// GetSystemMetrics(SM_REMOTESESSION) is made to say there is one (as
// TestNoListener does), for a refusal to reach Open as *dvc.OpenError.
//
// The exceptions are the platform's, each checked in
// TestContractExceptions:
var wtsExceptions = []dvctest.Option{
	dvctest.Except(dvctest.NoNameRules, "WTSVirtualChannelOpenEx takes DVC names up to MAX_PATH (260) characters, beyond MS-RDPEDYC's 256: the platform decides"),
	dvctest.Except(dvctest.NoConnectionLost, "the server sees only the channel's handle, which a dropped session ends as the client's close does; backend/wts reads both as io.EOF"),
}

// WTS API mode cannot abandon a call in progress.
var apiModeExceptions = []dvctest.Option{
	dvctest.Except(dvctest.NoWriteDeadline, "WTSVirtualChannelWrite cannot be abandoned once called, and calls on one handle must not overlap (the API is not thread-safe): "+
		"behind a client that does not read, a Write waits in the call past its context, and Close waits for it"),
}

func TestContract(t *testing.T) {
	needFakeWTS(t)
	inSession(t)
	t.Run("FileHandle", func(t *testing.T) {
		dvctest.TestContract(t, makePair(true), wtsExceptions...)
	})
	t.Run("API", func(t *testing.T) {
		dvctest.TestContract(t, makePair(false), append(wtsExceptions, apiModeExceptions...)...)
	})
}

// inSession makes GetSystemMetrics(SM_REMOTESESSION) say "remote" for
// the test.
func inSession(t *testing.T) {
	old := inRemoteSession
	inRemoteSession = func() bool { return true }
	t.Cleanup(func() { inRemoteSession = old })
}

func makePair(fileHandle bool) dvctest.MakePair {
	return func(t *testing.T) dvctest.Pair {
		c, err := wtstest.NewClient()
		if err != nil {
			t.Fatal(err)
		}
		op := &closing{op: &Opener{FileHandle: fileHandle}}
		return dvctest.Pair{Registrar: c, Opener: op, Kill: c.Kill, Cleanup: func() {
			op.closeAll()
			c.Close()
		}}
	}
}

// closing is the Opener under test, remembering what it opened so that
// the pair's end closes every handle (a rule may leave a Conn open).
type closing struct {
	op    *Opener
	mu    sync.Mutex
	conns []dvc.Conn
}

func (o *closing) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	c, err := o.op.Open(ctx, name, opts...)
	if err == nil {
		o.mu.Lock()
		o.conns = append(o.conns, c)
		o.mu.Unlock()
	}
	return c, err
}

func (o *closing) closeAll() {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, c := range o.conns {
		c.Close()
	}
}

// The exceptions are what the platform does, not a way to hide a bug:
// each is checked here.
func TestContractExceptions(t *testing.T) {
	needFakeWTS(t)
	inSession(t)
	ctx := context.Background()
	client := func(t *testing.T) *wtstest.Client {
		c, err := wtstest.NewClient()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	echo := dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) { return echoer{ch}, nil })

	// NoNameRules: a 257-byte name is not refused locally; it goes to
	// WTSVirtualChannelOpenEx, and the client's answer comes back.
	t.Run("NoNameRules", func(t *testing.T) {
		client(t)
		var oe *dvc.OpenError
		if _, err := (&Opener{}).Open(ctx, strings.Repeat("n", 257)); !errors.As(err, &oe) {
			t.Fatalf("Open of a 257-byte name = %v, want the client's refusal (no listener for it)", err)
		}
	})

	// NoConnectionLost: after the session drops, Read says io.EOF, as
	// for the client's close, and a Write fails with dvc.ErrClosed.
	for _, fileHandle := range []bool{true, false} {
		t.Run(map[bool]string{true: "NoConnectionLost/FileHandle", false: "NoConnectionLost/API"}[fileHandle], func(t *testing.T) {
			c := client(t)
			if err := c.Listen("x", echo); err != nil {
				t.Fatal(err)
			}
			conn, err := (&Opener{FileHandle: fileHandle}).Open(ctx, "x")
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := conn.Write(ctx, []byte("ping")); err != nil {
				t.Fatal(err)
			}
			if m, err := conn.Read(ctx); err != nil || string(m) != "ping" {
				t.Fatalf("echo: %q, %v", m, err)
			}
			c.Kill()
			if _, err := conn.Read(ctx); err != io.EOF {
				t.Fatalf("Read after the session dropped = %v, want io.EOF (what the handle says)", err)
			}
			if err := conn.Write(ctx, []byte("x")); !errors.Is(err, dvc.ErrClosed) {
				t.Fatalf("Write after the session dropped = %v, want dvc.ErrClosed", err)
			}
		})
	}

	// NoWriteDeadline (API mode): a Write that entered
	// WTSVirtualChannelWrite behind a stalled client is still in it when
	// its context has ended, and completes, without error, once the
	// client reads again.
	t.Run("NoWriteDeadline", func(t *testing.T) {
		c := client(t)
		entered := make(chan struct{})
		release := make(chan struct{})
		var once sync.Once
		if err := c.Listen("stall", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
			return stall{func() {
				once.Do(func() { close(entered) })
				<-release
			}}, nil
		})); err != nil {
			t.Fatal(err)
		}
		conn, err := (&Opener{}).Open(ctx, "stall")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.Write(ctx, []byte("hold")); err != nil {
			t.Fatal(err)
		}
		<-entered
		// Far more than the pipe holds: the call waits for the client.
		short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- conn.Write(short, make([]byte, 1<<20)) }()
		<-short.Done()
		select {
		case err := <-done:
			t.Fatalf("the Write returned (%v) though the client never read: it did not wait in the call", err)
		default:
		}
		close(release)
		if err := <-done; err != nil || short.Err() == nil {
			t.Fatalf("the Write returned %v (context: %v); want nil, after its context ended", err, short.Err())
		}
	})
}

type echoer struct{ ch dvc.Channel }

func (e echoer) Received(m []byte) { _ = e.ch.Write(context.Background(), m) }
func (echoer) Closed(error)        {}

type stall struct{ f func() }

func (s stall) Received([]byte) { s.f() }
func (stall) Closed(error)      {}
