package xrdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lenPrefixed is a test Framer: a u32 length of what follows, then that
// many bytes (Simple's frameLen rule without Simple's header checks).
func lenPrefixed(buf []byte) (int, error) {
	if len(buf) < 4 {
		return 0, nil
	}
	n := binary.LittleEndian.Uint32(buf)
	if n == 0xFFFFFFFF {
		return 0, errors.New("frameLen 0xFFFFFFFF is reserved by this test")
	}
	return 4 + int(n), nil
}

func msg(seq, size int) []byte {
	b := binary.LittleEndian.AppendUint32(nil, uint32(size))
	for i := 0; i < size; i++ {
		b = append(b, byte(seq+i))
	}
	return b
}

func TestHandshakeGolden(t *testing.T) {
	got := appendHandshake(nil, "ECHO", flagDynamic)
	want := []byte{
		0x14, 0x00, 0x00, 0x00, // total = 16 + 4
		0x00, 0x00, 0x00, 0x00, // version 0
		0x04, 0x00, 0x00, 0x00, // nameLen 4
		'E', 'C', 'H', 'O',
		0x01, 0x00, 0x00, 0x00, // WTS_CHANNEL_OPTION_DYNAMIC
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("handshake\n got % x\nwant % x", got, want)
	}

	f := startFake(t, 7, nil)
	op := f.opener(t, Options{})
	c, err := op.Open(context.Background(), "ECHO")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	o := f.lastOpen()
	if !bytes.Equal(o.raw, want) || o.name != "ECHO" || o.version != 0 || o.flags != 1 {
		t.Fatalf("fake chansrv saw %+v", o)
	}
}

func TestParseDisplay(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		ok   bool
	}{
		{":10", 10, true}, {":10.0", 10, true}, {"unix:3", 3, true}, {"12", 12, true},
		{"host:10", 0, false}, {":", 0, false}, {":x", 0, false}, {"", 0, false}, {":-1", 0, false},
	} {
		n, err := ParseDisplay(tc.in)
		if (err == nil) != tc.ok || n != tc.want {
			t.Errorf("ParseDisplay(%q) = %d, %v; want %d, ok=%v", tc.in, n, err, tc.want, tc.ok)
		}
	}
}

func TestNewNotInSession(t *testing.T) {
	t.Setenv("DISPLAY", "")
	if _, err := New(Options{SocketDir: t.TempDir()}); !errors.Is(err, ErrNotInSession) || !strings.Contains(err.Error(), "DISPLAY") {
		t.Fatalf("no display: %v", err)
	}
	dir := t.TempDir()
	_, err := New(Options{Display: ":42", SocketDir: dir})
	if !errors.Is(err, ErrNotInSession) || !strings.Contains(err.Error(), filepath.Join("xrdpapi_42")) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("no socket: %v", err)
	}
	// A regular file with the socket's name is not a socket.
	os.WriteFile(filepath.Join(dir, "xrdpapi_42"), nil, 0o600)
	if _, err := New(Options{Display: ":42", SocketDir: dir}); !errors.Is(err, ErrNotInSession) {
		t.Fatalf("plain file: %v", err)
	}
}

func TestNewFromEnvironment(t *testing.T) {
	f := startFake(t, 9, nil)
	t.Setenv("DISPLAY", ":9.0")
	t.Setenv("XRDP_SOCKET_PATH", f.dir)
	op, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(f.dir, "xrdpapi_9"); op.SocketPath() != want {
		t.Fatalf("socket %q, want %q", op.SocketPath(), want)
	}
	if !Detect() {
		t.Fatal("Detect() = false with a socket for $DISPLAY")
	}
}

func TestOpenRefused(t *testing.T) {
	f := startFake(t, 7, nil)
	f.status["nosuch"] = uint32(hresult.StatusUnsuccessful)
	_, err := f.opener(t, Options{}).Open(context.Background(), "nosuch")
	var oe *dvc.OpenError
	if !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful || oe.Name != "nosuch" {
		t.Fatalf("Open = %v, want *dvc.OpenError 0xC0000001", err)
	}
}

func TestOpenDropped(t *testing.T) {
	f := startFake(t, 7, nil)
	f.drop = true
	_, err := f.opener(t, Options{}).Open(context.Background(), "x")
	if !errors.Is(err, dvc.ErrConnectionLost) || !strings.Contains(err.Error(), "without a creation status") {
		t.Fatalf("Open = %v", err)
	}
}

func TestOpenSocketGone(t *testing.T) {
	f := startFake(t, 7, nil)
	op := f.opener(t, Options{})
	f.stop()
	os.Remove(op.SocketPath())
	if _, err := op.Open(context.Background(), "x"); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("Open = %v", err)
	}
}

func TestOpenBadNames(t *testing.T) {
	f := startFake(t, 7, nil)
	op := f.opener(t, Options{})
	for _, name := range []string{"", "a\x00b", strings.Repeat("n", MaxNameLen+1)} {
		if _, err := op.Open(context.Background(), name); err == nil {
			t.Errorf("Open(%q) succeeded", name)
		}
	}
	c, err := op.Open(context.Background(), strings.Repeat("n", MaxNameLen))
	if err != nil {
		t.Fatalf("longest name: %v", err)
	}
	c.Close()
}

// The client never answers: Open gives up when ctx is done.
func TestOpenContext(t *testing.T) {
	block := make(chan struct{})
	dir := t.TempDir()
	sl, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "xrdpapi_3"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := sl.Accept()
		if err != nil {
			return
		}
		<-block
		c.Close()
	}()
	defer func() { close(block); sl.Close(); wg.Wait() }()
	op, err := New(Options{Display: ":3", SocketDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go cancel()
	if _, err := op.Open(ctx, "slow"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Open = %v, want context.Canceled", err)
	}
}

func TestEchoFramed(t *testing.T) {
	f := startFake(t, 7, echo)
	c, err := f.opener(t, Options{}).Open(context.Background(), "ECHO", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for i, size := range []int{0, 1, 5136, 32764} {
		m := msg(i, size)
		if err := c.Write(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, m) {
			t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(m))
		}
	}
	if c.Name() != "ECHO" || c.ID() == 0 {
		t.Fatalf("Name %q ID %d", c.Name(), c.ID())
	}
}

// chansrv writes what the client sent in pieces of its own choosing: the
// Framer must put messages back together across and within reads.
func TestReadReassembles(t *testing.T) {
	var stream []byte
	var want [][]byte
	for i, size := range []int{10, 5136, 0, 3, 40000} {
		m := msg(i, size)
		want = append(want, m)
		stream = append(stream, m...)
	}
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		for p := stream; len(p) > 0; {
			n := min(len(p), 1597) // an odd size that never lines up
			if _, err := c.Write(p[:n]); err != nil {
				return
			}
			p = p[n:]
		}
		io.Copy(io.Discard, c)
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, w := range want {
		got, err := c.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, w) {
			t.Fatalf("message %d: got %d bytes, want %d", i, len(got), len(w))
		}
	}
}

func TestReadWithoutFramer(t *testing.T) {
	sent := make(chan struct{})
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		c.Write([]byte("abc"))
		<-sent
		io.Copy(io.Discard, c)
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := c.Read(context.Background())
	close(sent)
	if err != nil || string(got) != "abc" {
		t.Fatalf("Read = %q, %v", got, err)
	}
}

// The guarantee of the package doc: however fast messages are written,
// each recv() chansrv makes returns exactly one of them. The fake reads
// slowly so that, without the SIOCOUTQ wait, writes would pile up and be
// read together.
func TestWriteOneMessagePerRecv(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the send-queue wait needs SIOCOUTQ (Linux)")
	}
	const n = 20
	sizes := make(chan int, 2*n)
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		buf := make([]byte, MaxWrite) // chansrv's recv size
		for {
			k, err := c.Read(buf)
			if k > 0 {
				sizes <- k
			}
			if err != nil {
				close(sizes)
				return
			}
			// Simulates a busy chansrv, nothing more: it orders no
			// goroutines, and the sizes asserted do not depend on it.
			time.Sleep(200 * time.Microsecond)
		}
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	lens := []int{5140, MaxWrite, 1, 1590, 1591}
	var want []int
	for i := 0; i < n; i++ {
		l := lens[i%len(lens)]
		want = append(want, l)
		if err := c.Write(context.Background(), bytes.Repeat([]byte{byte(i)}, l)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	var got []int
	for k := range sizes {
		got = append(got, k)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("chansrv recv() sizes\n got %v\nwant %v", got, want)
	}
}

func TestWriteTooLarge(t *testing.T) {
	f := startFake(t, 7, echo)
	c, err := f.opener(t, Options{}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Write(context.Background(), make([]byte, MaxWrite+1)); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("Write = %v, want ErrTooLarge", err)
	}
}

func TestWriteSplitLarge(t *testing.T) {
	sizes := make(chan int, 8)
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		buf := make([]byte, MaxWrite)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				sizes <- k
			}
			if err != nil {
				close(sizes)
				return
			}
		}
	})
	c, err := f.opener(t, Options{SplitLarge: true}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Write(context.Background(), make([]byte, 2*MaxWrite+5)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	total := 0
	for k := range sizes {
		if runtime.GOOS == "linux" && k > MaxWrite {
			t.Errorf("a recv() returned %d bytes", k)
		}
		total += k
	}
	if total != 2*MaxWrite+5 {
		t.Fatalf("fake received %d bytes", total)
	}
}

func TestFramerError(t *testing.T) {
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		c.Write(msg(1, 3))
		c.Write([]byte{0xFF, 0xFF, 0xFF, 0xFF})
		io.Copy(io.Discard, c)
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.Read(context.Background()); err != nil || len(m) != 7 {
		t.Fatalf("first Read = %d bytes, %v", len(m), err)
	}
	if _, err := c.Read(context.Background()); err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("Read = %v, want the framer's error", err)
	}
	if err := c.Write(context.Background(), []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after a framing error = %v, want ErrClosed", err)
	}
}

func TestMaxMessage(t *testing.T) {
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		c.Write(msg(1, 100))
		io.Copy(io.Discard, c)
	})
	c, err := f.opener(t, Options{MaxMessage: 64}).Open(context.Background(), "x", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Read(context.Background()); !errors.Is(err, dvc.ErrTooLarge) {
		t.Fatalf("Read = %v, want ErrTooLarge", err)
	}
}

// chansrv going away is a lost connection, after every whole message
// that arrived before it has been read.
func TestReadEOF(t *testing.T) {
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		c.Write(msg(1, 5))
		c.Write(msg(2, 9)[:6]) // half a message, then chansrv dies
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m, err := c.Read(context.Background()); err != nil || !bytes.Equal(m, msg(1, 5)) {
		t.Fatalf("first Read = %x, %v", m, err)
	}
	for i := 0; i < 2; i++ {
		if _, err := c.Read(context.Background()); !errors.Is(err, dvc.ErrConnectionLost) {
			t.Fatalf("Read at EOF = %v, want ErrConnectionLost", err)
		}
	}
}

// A cancelled Read loses nothing: the bytes of a message that was half
// received stay buffered for the next Read.
func TestReadCancelKeepsData(t *testing.T) {
	second := make(chan struct{})
	m := msg(3, 5000)
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		c.Write(m[:100])
		<-second
		c.Write(m[100:])
		io.Copy(io.Discard, c)
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(10*time.Millisecond, cancel)
	if _, err := c.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read = %v, want context.Canceled", err)
	}
	close(second)
	got, err := c.Read(context.Background())
	if err != nil || !bytes.Equal(got, m) {
		t.Fatalf("Read after cancel = %d bytes, %v", len(got), err)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	f := startFake(t, 7, func(_ string, c *net.UnixConn) { io.Copy(io.Discard, c) })
	c, err := f.opener(t, Options{}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error)
	go func() {
		_, err := c.Read(context.Background())
		errc <- err
	}()
	// Wait until the Read is under way: it holds rmu until it returns,
	// so once TryLock fails it is in (or at the door of) its blocking
	// socket read. The deadline only tells stuck from slow.
	rc := c.(*conn)
	deadline := time.Now().Add(10 * time.Second)
	for rc.rmu.TryLock() {
		rc.rmu.Unlock()
		if time.Now().After(deadline) {
			t.Fatal("Read never started")
		}
		runtime.Gosched()
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Read = %v, want ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close = %v", err)
	}
	if err := c.Write(context.Background(), []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

// Instances opened concurrently get distinct IDs and their own streams.
func TestConcurrentOpens(t *testing.T) {
	f := startFake(t, 7, echo)
	op := f.opener(t, Options{})
	var wg sync.WaitGroup
	ids := make(chan uint32, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := op.Open(context.Background(), "ECHO", dvc.WithFramer(lenPrefixed))
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			ids <- c.ID()
			m := msg(i, 100*i)
			if err := c.Write(context.Background(), m); err != nil {
				t.Error(err)
				return
			}
			if got, err := c.Read(context.Background()); err != nil || !bytes.Equal(got, m) {
				t.Errorf("instance %d: %d bytes, %v", i, len(got), err)
			}
		}()
	}
	wg.Wait()
	close(ids)
	seen := map[uint32]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("duplicate ID %d", id)
		}
		seen[id] = true
	}
}

// Reads whose contexts are cancelled at every moment must never leave a
// deadline behind that fails a later Read made with another context.
func TestCancelledReadsLeaveNoDeadline(t *testing.T) {
	next := make(chan struct{})
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		for range next {
			if _, err := c.Write(msg(1, 10)); err != nil {
				return
			}
		}
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x", dvc.WithFramer(lenPrefixed))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { close(next); c.Close() }()
	for i := 0; i < 300; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		go cancel()
		if _, err := c.Read(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("round %d: Read = %v", i, err)
		}
		next <- struct{}{}
		got, err := c.Read(context.Background())
		if err != nil || !bytes.Equal(got, msg(1, 10)) {
			t.Fatalf("round %d: Read after a cancelled one = %x, %v", i, got, err)
		}
	}
}
