package wts

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeTransport hands out PDUs from a channel, as WTSVirtualChannelRead
// or ReadFile would, and records writes.
type fakeTransport struct {
	pdus    chan []byte // closed = the client closed the channel (EOF)
	readErr error       // returned once pdus is drained and closed, instead of EOF
	stop    chan struct{}
	once    sync.Once

	mu     sync.Mutex
	writes [][]byte
}

func newFake() *fakeTransport {
	return &fakeTransport{pdus: make(chan []byte, 16), stop: make(chan struct{})}
}

func (f *fakeTransport) readPDU(buf []byte) (int, error) {
	select {
	case p, ok := <-f.pdus:
		if !ok {
			if f.readErr != nil {
				return 0, f.readErr
			}
			return 0, io.EOF
		}
		return copy(buf, p), nil
	case <-f.stop:
		return 0, errTransportClosed
	}
}

func (f *fakeTransport) write(ctx context.Context, msg []byte) error {
	select {
	case <-f.stop:
		return errTransportClosed
	default:
	}
	f.mu.Lock()
	f.writes = append(f.writes, bytes.Clone(msg))
	f.mu.Unlock()
	return nil
}

func (f *fakeTransport) close() error {
	f.once.Do(func() { close(f.stop) })
	return nil
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}

// The Simple sample's ping: a 5140-byte frame (20-byte header, 5120-byte
// payload) arrives as four chunks of at most CHANNEL_CHUNK_LENGTH, each
// read returning its CHANNEL_PDU_HEADER first.
func TestReassemblesChunkedMessage(t *testing.T) {
	msg := pattern(5140)
	f := newFake()
	// CHANNEL_PDU_HEADER: length = 5140 (0x1414) in every chunk; flags
	// FIRST (1), none (0), none, LAST (2).
	hdrs := [][]byte{
		{0x14, 0x14, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00},
		{0x14, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
		{0x14, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
		{0x14, 0x14, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00},
	}
	for i, h := range hdrs {
		end := min((i+1)*1600, len(msg))
		f.pdus <- append(bytes.Clone(h), msg[i*1600:end]...)
	}
	f.pdus <- []byte{0x03, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 'a', 'b', 'c'} // FLAG_ONLY
	close(f.pdus)

	c := newConn("dvc::sample::simpleplugin", f, 0)
	defer c.Close()
	ctx := context.Background()
	got, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, msg) {
		t.Fatalf("message of %d bytes differs from the 5140 sent", len(got))
	}
	if got, err := c.Read(ctx); err != nil || string(got) != "abc" {
		t.Fatalf("second message = %q, %v", got, err)
	}
	if _, err := c.Read(ctx); err != io.EOF {
		t.Fatalf("after the client closed: %v, want io.EOF", err)
	}
}

func TestCloseUnblocksReadAndIsIdempotent(t *testing.T) {
	f := newFake()
	c := newConn("x", f, 0)
	errc := make(chan error)
	go func() {
		_, err := c.Read(context.Background())
		errc <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("pending Read after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := c.Write(context.Background(), []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if _, err := c.Read(context.Background()); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Read after Close: %v", err)
	}
}

func TestReadHonoursContext(t *testing.T) {
	c := newConn("x", newFake(), 0)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled context: %v", err)
	}
}

func TestTransportFailureIsConnectionLost(t *testing.T) {
	f := newFake()
	f.readErr = errors.New("session disconnected")
	close(f.pdus)
	c := newConn("x", f, 0)
	defer c.Close()
	_, err := c.Read(context.Background())
	if !errors.Is(err, dvc.ErrConnectionLost) || !strings.Contains(err.Error(), "session disconnected") {
		t.Fatalf("Read = %v, want ErrConnectionLost with the cause", err)
	}
}

func TestBadChunkSequenceEndsChannel(t *testing.T) {
	f := newFake()
	// A chunk without CHANNEL_FLAG_FIRST and no message in progress.
	f.pdus <- []byte{0x05, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5}
	c := newConn("x", f, 0)
	defer c.Close()
	_, err := c.Read(context.Background())
	if err == nil || errors.Is(err, dvc.ErrConnectionLost) || !strings.Contains(err.Error(), "CHANNEL_PDU_HEADER.flags") {
		t.Fatalf("Read = %v, want a reassembly error naming the field", err)
	}
}

func TestShortPDUEndsChannel(t *testing.T) {
	f := newFake()
	f.pdus <- []byte{0x05, 0x00, 0x00}
	c := newConn("x", f, 0)
	defer c.Close()
	if _, err := c.Read(context.Background()); err == nil {
		t.Fatal("a 3-byte read was taken as a PDU")
	}
}

func TestMaxMessage(t *testing.T) {
	f := newFake()
	// First chunk announces 101 bytes against a ceiling of 100: refused
	// before anything is allocated.
	f.pdus <- []byte{101, 0, 0, 0, 0x01, 0, 0, 0, 1}
	c := newConn("x", f, 100)
	defer c.Close()
	if _, err := c.Read(context.Background()); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("Read of an over-ceiling message: %v", err)
	}
	if err := c.Write(context.Background(), make([]byte, 101)); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("Write over the ceiling: %v", err)
	}
	if err := c.Write(context.Background(), make([]byte, 100)); err != nil {
		t.Fatalf("Write at the ceiling: %v", err)
	}
}

func TestWritesWholeMessages(t *testing.T) {
	f := newFake()
	c := newConn("x", f, 0)
	defer c.Close()
	msg := pattern(5140)
	if err := c.Write(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if len(f.writes) != 1 || !bytes.Equal(f.writes[0], msg) {
		t.Fatalf("transport saw %d writes; want the one message whole (Remote Desktop Services chunks it)", len(f.writes))
	}
}

func TestOpenError(t *testing.T) {
	console := &OpenError{Name: "n", Errno: 1}
	if !errors.Is(console, ErrNotInSession) || !strings.Contains(console.Error(), "ERROR_INVALID_FUNCTION") {
		t.Errorf("outside a session: %v", console)
	}
	var oe *dvc.OpenError
	if errors.As(console, &oe) {
		t.Errorf("outside a session should not claim the client refused")
	}

	refused := &OpenError{Name: "n", Errno: 0xC0000001, InSession: true}
	if !errors.As(refused, &oe) || oe.Status != hresult.StatusUnsuccessful || oe.Name != "n" {
		t.Errorf("client refused: %v", refused)
	}
	if errors.Is(refused, ErrNotInSession) {
		t.Errorf("in a session, but says not")
	}
	if !strings.Contains(refused.Error(), "/register") {
		t.Errorf("no hint to register the plugin: %v", refused)
	}

	gen := &OpenError{Name: "n", Errno: 31, InSession: true}
	if !errors.As(gen, &oe) || oe.Status != hresult.FromWin32(31) || !strings.Contains(gen.Error(), "ERROR_GEN_FAILURE (31)") {
		t.Errorf("Win32 failure: %v (%v)", gen, oe.Status)
	}
}

// BenchmarkReadChunked measures the OS-independent receive path: four
// CHANNEL_PDUs (the 5140-byte Simple ping in 1600-byte chunks) read,
// reassembled and handed to Read.
func BenchmarkReadChunked(b *testing.B) {
	msg := pattern(5140)
	var pdus [][]byte
	for i := 0; i < len(msg); i += 1600 {
		end := min(i+1600, len(msg))
		flags := byte(0)
		if i == 0 {
			flags |= 1
		}
		if end == len(msg) {
			flags |= 2
		}
		pdus = append(pdus, append([]byte{0x14, 0x14, 0, 0, flags, 0, 0, 0}, msg[i:end]...))
	}
	f := newFake()
	f.pdus = make(chan []byte, 64)
	c := newConn("bench", f, 0)
	defer c.Close()
	go func() {
		for i := 0; i < b.N; i++ {
			for _, p := range pdus {
				f.pdus <- p
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		if _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
