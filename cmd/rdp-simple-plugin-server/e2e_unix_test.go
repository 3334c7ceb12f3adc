//go:build unix

package main

import (
	"bufio"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The end-to-end tests build rdp-simple-plugin-server and
// rdp-simple-plugin-client and run them as processes over loopback TCP,
// as a user would. Waits are bounded generously; nothing is timed.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func binaries(t *testing.T) (server, client string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the programs; skipped with -short")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "rdp-simple-e2e-")
		if buildErr != nil {
			return
		}
		atExit = append(atExit, func() { os.RemoveAll(binDir) })
		goTool, err := exec.LookPath("go")
		if err != nil {
			buildErr = err
			return
		}
		for _, pkg := range []string{"rdp-simple-plugin-server", "rdp-simple-plugin-client"} {
			out, err := exec.Command(goTool, "build", "-o", filepath.Join(binDir, pkg), "github.com/rdpdvc/rdpdvc/cmd/"+pkg).CombinedOutput()
			if err != nil {
				buildErr = errors.New(string(out))
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal("build:", buildErr)
	}
	return filepath.Join(binDir, "rdp-simple-plugin-server"), filepath.Join(binDir, "rdp-simple-plugin-client")
}

// proc is a running program whose output is read line by line.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	lines chan string
	mu    sync.Mutex
	all   strings.Builder
	done  chan struct{}
	err   error
}

func startProc(t *testing.T, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: filepath.Base(bin), cmd: exec.Command(bin, args...), lines: make(chan string, 1000), done: make(chan struct{})}
	r, w := io.Pipe()
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			p.mu.Lock()
			p.all.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody is waiting for lines this far ahead
			}
		}
		close(p.lines)
	}()
	go func() {
		p.err = p.cmd.Wait()
		w.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s output:\n%s", p.name, p.output())
		}
	})
	return p
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.all.String()
}

// waitFor returns the first line from now on that contains s.
func (p *proc) waitFor(s string) string {
	p.t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s ended before printing %q", p.name, s)
			}
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			p.t.Fatalf("%s did not print %q", p.name, s)
		}
	}
}

// exitCode waits for the process to end.
func (p *proc) exitCode() int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not exit", p.name)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

var addrRE = regexp.MustCompile(`addr=(\S+)`)

func listenAddr(t *testing.T, srv *proc) string {
	t.Helper()
	m := addrRE.FindStringSubmatch(srv.waitFor("listening (portable transport)"))
	if m == nil {
		t.Fatal("no addr= in the listening line")
	}
	return m[1]
}

func TestE2ECount(t *testing.T) {
	serverBin, clientBin := binaries(t)
	srv := startProc(t, serverBin, "-listen", "127.0.0.1:0", "-count", "3", "-interval", "50ms")
	addr := listenAddr(t, srv)
	cl := startProc(t, clientBin, "-connect", addr)
	for _, l := range []string{"Ping#1 payload=5120 rttMs=", "Ping#2 payload=5120 rttMs=", "Ping#3 payload=5120 rttMs="} {
		srv.waitFor(l)
	}
	if code := srv.exitCode(); code != 0 {
		t.Fatalf("server exit %d", code)
	}
	if code := cl.exitCode(); code != 0 {
		t.Fatalf("client exit %d", code)
	}
	if out := srv.output(); !strings.Contains(out, "3 sent, 3 received, 0 lost, 0 mismatched, 0.0% loss") {
		t.Fatalf("no summary:\n%s", out)
	}
	if out := cl.output(); !strings.Contains(out, "echoed channel=dvc::sample::simpleplugin channels=1 messages=3 bytes=15420") {
		t.Fatalf("client counts:\n%s", out)
	}
}

func TestE2EKilledClientIsReportedAndServerKeepsListening(t *testing.T) {
	serverBin, clientBin := binaries(t)
	srv := startProc(t, serverBin, "-listen", "127.0.0.1:0", "-interval", "100ms", "-timeout", "500ms")
	addr := listenAddr(t, srv)

	cl1 := startProc(t, clientBin, "-connect", addr)
	srv.waitFor("Ping#3 payload=5120 rttMs=")
	// Freeze the client so that pings go unanswered, then kill it.
	if err := cl1.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	srv.waitFor(" lost")
	cl1.cmd.Process.Kill()
	srv.waitFor("client gone")

	// The next client is served from Ping#1 again.
	startProc(t, clientBin, "-connect", addr)
	srv.waitFor("client connected")
	srv.waitFor("Ping#2 payload=5120 rttMs=")

	srv.cmd.Process.Signal(os.Interrupt)
	if code := srv.exitCode(); code != 1 {
		t.Fatalf("server exit %d after losses, want 1", code)
	}
	out := srv.output()
	m := regexp.MustCompile(`(\d+) sent, (\d+) received, (\d+) lost, 0 mismatched`).FindStringSubmatch(out)
	if m == nil || m[3] == "0" {
		t.Fatalf("summary does not show the losses:\n%s", out)
	}
}
