package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestNormalizeArgs(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Int("count", 0, "")
	fs.Bool("filehandle", false, "")
	fs.Bool("register", false, "")
	fs.String("in", "", "")
	got := NormalizeArgs(fs, []string{"/count", "5", "/filehandle", "/Register", "/count=7", "-in", "/tmp/x.bin", "/nope", "--", "/count"})
	want := []string{"-count", "5", "-filehandle", "-register", "-count=7", "-in", "/tmp/x.bin", "/nope", "--", "/count"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	var count int
	fs2 := flag.NewFlagSet("y", flag.ContinueOnError)
	fs2.IntVar(&count, "count", 0, "")
	for _, args := range [][]string{{"/count", "3"}, {"--count", "3"}, {"-count=3"}, {"/count=3"}} {
		count = 0
		if err := Parse(fs2, args); err != nil || count != 3 {
			t.Errorf("%q: count %d err %v", args, count, err)
		}
	}
}

func TestPlainHandler(t *testing.T) {
	var buf bytes.Buffer
	h := NewPlainHandler(&buf, slog.LevelInfo)
	h.now = func() time.Time { return time.Date(2024, 1, 1, 13, 4, 5, 6e6, time.UTC) }
	log := slog.New(h).With("client", "127.0.0.1:5")
	log.Info("Ping#3 payload=5120 rttMs=0.42")
	log.WithGroup("g").Warn("Ping#4 lost", "err", "no echo within 5s", "d", 5*time.Second, "n", 3)
	log.Debug("hidden")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 2 {
		t.Fatalf("%q", buf.String())
	}
	// The record's own time is used; only its clock part is printed.
	if !strings.HasSuffix(lines[0], " INFO Ping#3 payload=5120 rttMs=0.42 client=127.0.0.1:5") {
		t.Errorf("line 1: %q", lines[0])
	}
	if !strings.HasSuffix(lines[1], ` WARN Ping#4 lost client=127.0.0.1:5 g.err="no echo within 5s" g.d=5s g.n=3`) {
		t.Errorf("line 2: %q", lines[1])
	}
}

func TestLoggerFormats(t *testing.T) {
	var buf bytes.Buffer
	l := &LogFlags{Format: "json"}
	log, err := l.Logger(&buf)
	if err != nil {
		t.Fatal(err)
	}
	log.Info("Ping#1 payload=5120 rttMs=0.10")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "Ping#1 payload=5120 rttMs=0.10" {
		t.Fatalf("%s %v", buf.Bytes(), err)
	}
	if _, err := (&LogFlags{Format: "xml"}).Logger(&buf); err == nil {
		t.Fatal("xml accepted")
	}
	buf.Reset()
	log, _ = (&LogFlags{Quiet: true}).Logger(&buf)
	log.Info("x")
	if buf.Len() != 0 {
		t.Fatal("-q logged info")
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:3390": true, "[::1]:1": true, "localhost:1": true, "127.1.2.3:4": true,
		":3390": false, "0.0.0.0:1": false, "10.0.0.1:1": false, "example.com:1": false, "garbage": false,
	} {
		if got := IsLoopbackAddr(addr); got != want {
			t.Errorf("%s: %v", addr, got)
		}
	}
	var buf bytes.Buffer
	WarnExposed(&buf, "127.0.0.1:1")
	if buf.Len() != 0 {
		t.Fatal("warned for loopback")
	}
	WarnExposed(&buf, "0.0.0.0:1")
	if !strings.Contains(buf.String(), "no authentication or encryption") {
		t.Fatal(buf.String())
	}
}

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSignalContext(t *testing.T) {
	parent, cancelParent := context.WithCancel(context.Background())
	ctx, stop := SignalContext(parent)
	defer stop()
	cancelParent()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("not cancelled with its parent")
	}
	// Its watcher goroutine ends with it (goleak checks at exit).
}

func TestSignalContextOnSIGINT(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no SIGINT to self on Windows")
	}
	ctx, stop := SignalContext(context.Background())
	defer stop()
	p, _ := os.FindProcess(os.Getpid())
	if err := p.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Ctrl+C did not cancel")
	}
}

func TestParseBadFlagIsShort(t *testing.T) {
	var out bytes.Buffer
	fs := flag.NewFlagSet("prog", flag.ContinueOnError)
	fs.SetOutput(&out)
	fs.Int("count", 0, "pings")
	full := false
	fs.Usage = func() { full = true; fmt.Fprintln(fs.Output(), "FULL USAGE") }
	if code, ok := ParseArgs(fs, []string{"-frobnicate"}); ok || code != 2 {
		t.Fatalf("ParseArgs = %d, %v; want 2, false", code, ok)
	}
	if full || strings.Count(out.String(), "\n") != 2 || !strings.Contains(out.String(), "-frobnicate") || !strings.Contains(out.String(), "Run 'prog -h'") {
		t.Fatalf("bad flag printed:\n%s", out.String())
	}
}

func TestParseHelpSpellings(t *testing.T) {
	for _, h := range []string{"-h", "-help", "--help", "/?", "/h", "/help", "/HELP", "-?"} {
		var out bytes.Buffer
		fs := flag.NewFlagSet("prog", flag.ContinueOnError)
		fs.SetOutput(&out)
		fs.Usage = func() { fmt.Fprintln(fs.Output(), "FULL USAGE") }
		if code, ok := ParseArgs(fs, []string{h}); ok || code != 0 || !strings.Contains(out.String(), "FULL USAGE") {
			t.Errorf("%s: ParseArgs = %d, %v, printed %q; want the usage and 0", h, code, ok, out.String())
		}
	}
}

func TestWantsVersion(t *testing.T) {
	for args, want := range map[string]bool{
		"-version": true, "--version": true, "/version": true, "-count 2 -version": true,
		"-count 2": false, "-- -version": false, "": false,
	} {
		if got := WantsVersion(strings.Fields(args)); got != want {
			t.Errorf("WantsVersion(%q) = %v", args, got)
		}
	}
	// A test binary has build information: the line names the module's
	// version (or "(devel)") and the Go version.
	if v := Version("prog"); !strings.HasPrefix(v, "prog ") || !strings.Contains(v, "go1.") {
		t.Errorf("Version = %q", v)
	}
}
