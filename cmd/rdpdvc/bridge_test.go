package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/bridge"
)

// eventLog is a program's stdout of JSON lines, read while it runs.
type eventLog struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	events []map[string]any
	added  chan struct{}
}

func newEventLog() *eventLog { return &eventLog{added: make(chan struct{}, 1)} }

func (e *eventLog) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.buf.Write(p)
	for {
		line, err := e.buf.ReadBytes('\n')
		if err != nil {
			e.buf.Write(line) // an incomplete line: wait for the rest
			break
		}
		var v map[string]any
		if json.Unmarshal(line, &v) == nil {
			e.events = append(e.events, v)
		}
	}
	select {
	case e.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

// wait returns the first event named name, waiting for it at most 20 s.
func (e *eventLog) wait(t *testing.T, name string) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		e.mu.Lock()
		for _, v := range e.events {
			if v["event"] == name {
				e.mu.Unlock()
				return v
			}
		}
		e.mu.Unlock()
		select {
		case <-e.added:
		case <-timeout:
			t.Fatalf("no %q event", name)
		}
	}
}

// TestBridgeCommands runs docs/bridge.md's example: rdpdvc bridge and
// rdpdvc bridge-client over the portable transport, the example echo
// program (Python) on the client side, and the example clients, in Python
// and in Go, on the server side: each gets its message back whole.
func TestBridgeCommands(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: the Python examples cannot run")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.sock"), filepath.Join(dir, "out.sock")
	echo := exec.Command(py, "../../bridge/testdata/echo.py", out)
	echo.Stderr = os.Stderr
	if err := echo.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { echo.Process.Kill(); echo.Wait() }()
	// echo.py binds in another process, which says nothing: look for the file.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(out); err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			t.Fatal("echo.py never made its socket")
		}
	}
	goClient := filepath.Join(dir, "client")
	if b, err := exec.Command("go", "build", "-o", goClient, "../../bridge/testdata/client.go").CombinedOutput(); err != nil {
		t.Fatalf("building the Go example: %v\n%s", err, b)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvOut, srvErr, cliErr := newEventLog(), &pcSyncBuffer{}, &pcSyncBuffer{}
	var wg sync.WaitGroup
	codes := make(chan string, 2)
	const channel = "rdpdvc::example::bridge"
	wg.Go(func() {
		if c := run(ctx, []string{"bridge", "-listen", "127.0.0.1:0", "-channel", channel, "-socket", "unix:" + in, "-framing", "message"}, srvOut, srvErr); c != 0 {
			codes <- fmt.Sprint("bridge exited ", c)
		}
	})
	addr := srvOut.wait(t, "listening")["addr"].(string)
	if s := srvOut.wait(t, "socket")["socket"]; s != "unix:"+in {
		t.Fatalf("socket event %v, want unix:%s", s, in)
	}
	wg.Go(func() {
		if c := run(ctx, []string{"bridge-client", "-connect", addr, "-channel", channel, "-socket", "unix:" + out, "-framing", "message"}, &pcSyncBuffer{}, cliErr); c != 0 {
			codes <- fmt.Sprint("bridge-client exited ", c)
		}
	})
	srvOut.wait(t, "connected")
	for _, c := range []struct {
		name string
		cmd  *exec.Cmd
	}{
		{"python", exec.Command(py, "../../bridge/testdata/client.py", in, "hello from python")},
		{"go", exec.Command(goClient, in, "hello from go")},
	} {
		b, err := c.cmd.Output()
		if want := "hello from " + c.name + "\n"; err != nil || string(b) != want {
			t.Errorf("%s client: %q, %v; want %q", c.name, b, err, want)
		}
	}
	cancel()
	wg.Wait()
	close(codes)
	for c := range codes {
		t.Error(c)
	}
	if t.Failed() {
		t.Logf("bridge stderr:\n%s\nbridge-client stderr:\n%s", srvErr, cliErr)
	}
}

// TestBridgeDocs: docs/bridge.md shows the example programs as they are
// in bridge/testdata, which TestBridgeCommands runs.
func TestBridgeDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/bridge.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"client.py", "client.go", "echo.py"} {
		src, err := os.ReadFile(filepath.Join("../../bridge/testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, src) {
			t.Errorf("docs/bridge.md does not show bridge/testdata/%s as it is", f)
		}
	}
}

func TestBridgeUsage(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge"}, "want -channel NAME and -socket"},
		{[]string{"bridge", "-channel", "x", "-socket", "pipe:x"}, `network "pipe"`},
		{[]string{"bridge", "-channel", "x", "-socket", "unix:/tmp/x", "-framing", "lines"}, `framing "lines"`},
		{[]string{"bridge", "-channel", "x", "-socket", "unix:/tmp/x", "-xrdp", "-listen", "127.0.0.1:0"}, "exclude"},
		{[]string{"bridge", "-channel", "x", "-socket", "unix:/tmp/x", "extra"}, "unexpected argument"},
		{[]string{"bridge-client", "-channel", "x"}, "want -channel NAME and -socket"},
		{[]string{"bridge-client", "-channel", "x", "-socket", "tcp:nohost"}, "tcp:HOST:PORT"},
	} {
		if code, _, errs := runArgs(t, c.args...); code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, %s; want 2 and %q", c.args, code, errs, c.want)
		}
	}
	if code, _, errs := runArgs(t, "bridge", "-h"); code != 0 || !strings.Contains(errs, "u32 little-endian length") {
		t.Errorf("-h: %d %s", code, errs)
	}
}

// A stream bridge's chunk is what chansrv forwards as one message.
func TestBridgeChunkIsXRDPs(t *testing.T) {
	if bridge.MaxChunk != xrdp.MaxWrite {
		t.Fatalf("bridge.MaxChunk %d, xrdp.MaxWrite %d", bridge.MaxChunk, xrdp.MaxWrite)
	}
}

// TestBridgeWaitsForClient: on the portable transport a local connection
// made before any RDP client waits for one (here with tcp sockets and
// stream framing), and one that finds none within -timeout is closed.
func TestBridgeWaitsForClient(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var tw sync.WaitGroup
	defer tw.Wait()
	defer target.Close()
	tw.Go(func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			tw.Go(func() { io.Copy(c, c); c.Close() })
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	srvOut, srvErr := newEventLog(), &pcSyncBuffer{}
	wg.Go(func() {
		run(ctx, []string{"bridge", "-listen", "127.0.0.1:0", "-channel", "x", "-socket", "tcp:127.0.0.1:0", "-timeout", "20s"}, srvOut, srvErr)
	})
	addr := srvOut.wait(t, "listening")["addr"].(string)
	sock := strings.TrimPrefix(srvOut.wait(t, "socket")["socket"].(string), "tcp:")
	early, err := net.Dial("tcp", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer early.Close()
	early.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := early.Write([]byte("before the client")); err != nil {
		t.Fatal(err)
	}
	wg.Go(func() {
		run(ctx, []string{"bridge-client", "-connect", addr, "-channel", "x", "-socket", "tcp:" + target.Addr().String()}, &pcSyncBuffer{}, &pcSyncBuffer{})
	})
	got := make([]byte, len("before the client"))
	if _, err := io.ReadFull(early, got); err != nil || string(got) != "before the client" {
		t.Fatalf("early connection: %q, %v\n%s", got, err, srvErr)
	}
	cancel()
	wg.Wait()

	// No client at all, and a short -timeout: the connection is closed.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	srvOut, srvErr = newEventLog(), &pcSyncBuffer{}
	wg.Go(func() {
		run(ctx, []string{"bridge", "-listen", "127.0.0.1:0", "-channel", "x", "-socket", "tcp:127.0.0.1:0", "-timeout", "100ms"}, srvOut, srvErr)
	})
	sock = strings.TrimPrefix(srvOut.wait(t, "socket")["socket"].(string), "tcp:")
	lone, err := net.Dial("tcp", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer lone.Close()
	lone.SetDeadline(time.Now().Add(20 * time.Second))
	if n, err := lone.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("with no client: read %d, %v; want EOF", n, err)
	}
	cancel()
	wg.Wait()
	if !strings.Contains(srvErr.String(), "no RDP client connected") {
		t.Errorf("the log does not say why:\n%s", srvErr)
	}
}
