package overlapped

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/sys/windows"
)

// Every File's collector must be gone after Close.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var n atomic.Int32

// pipePair returns both ends of a message-mode named pipe, each opened
// for overlapped I/O and wrapped in a File.
func pipePair(t *testing.T) (server, client *File) {
	t.Helper()
	name, _ := windows.UTF16PtrFromString(fmt.Sprintf(`\\.\pipe\rdpdvc-overlapped-%d-%d`, os.Getpid(), n.Add(1)))
	sh, err := windows.CreateNamedPipe(name, windows.PIPE_ACCESS_DUPLEX|windows.FILE_FLAG_OVERLAPPED,
		windows.PIPE_TYPE_MESSAGE|windows.PIPE_READMODE_MESSAGE|windows.PIPE_WAIT, 1, 4096, 4096, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := windows.CreateFile(name, windows.GENERIC_READ|windows.GENERIC_WRITE, 0, nil, windows.OPEN_EXISTING, windows.FILE_FLAG_OVERLAPPED, 0)
	if err != nil {
		t.Fatal(err)
	}
	mode := uint32(windows.PIPE_READMODE_MESSAGE)
	if err := windows.SetNamedPipeHandleState(ch, &mode, nil, nil); err != nil {
		t.Fatal(err)
	}
	if server, err = New(sh); err != nil {
		t.Fatal(err)
	}
	if client, err = New(ch); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func TestMessagesBothWays(t *testing.T) {
	s, c := pipePair(t)
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
	// A message longer than the buffer: ERROR_MORE_DATA with the first
	// part, then the rest, and no packet left behind.
	if _, err := s.Write([]byte("0123456789")); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Read(buf[:4]); !errors.Is(err, windows.ERROR_MORE_DATA) || string(buf[:n]) != "0123" {
		t.Fatalf("short Read = %q, %v", buf[:n], err)
	}
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "456789" {
		t.Fatalf("rest = %q, %v", buf[:n], err)
	}
}

// readAtClose closes s while a Read on it starts, and returns the Read's
// error.
func readAtClose(t *testing.T, s *File) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		_, err := s.Read(make([]byte, 16))
		errc <- err
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return <-errc
}

func TestCloseCancelsPendingRead(t *testing.T) {
	s, _ := pipePair(t)
	if err := readAtClose(t, s); !errors.Is(err, ErrClosed) {
		t.Fatalf("pending Read at Close: %v", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A Read being issued while Close runs: Close's CancelIoEx may come
// before the ReadFile it was meant to cancel, and Close then waited for
// that read forever (the Wine stage's rare hang in backend/wts). Many
// rounds, so that some land in that window.
func TestCloseRacingRead(t *testing.T) {
	for i := range 300 {
		s, _ := pipePair(t)
		if err := readAtClose(t, s); !errors.Is(err, ErrClosed) {
			t.Fatalf("round %d: Read racing Close: %v", i, err)
		}
	}
}

func TestContextCancelsRead(t *testing.T) {
	s, c := pipePair(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.ReadContext(ctx, make([]byte, 16))
		errc <- err
	}()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
	// The File still works.
	if _, err := c.Write([]byte("after")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 16)
	if n, err := s.Read(buf); err != nil || string(buf[:n]) != "after" {
		t.Fatalf("Read = %q, %v", buf[:n], err)
	}
}

func TestPeerCloseIsBrokenPipe(t *testing.T) {
	s, c := pipePair(t)
	c.Close()
	if _, err := s.Read(make([]byte, 16)); !errors.Is(err, windows.ERROR_BROKEN_PIPE) && !errors.Is(err, windows.ERROR_PIPE_NOT_CONNECTED) {
		t.Fatalf("Read after the other end closed: %v", err)
	}
}
