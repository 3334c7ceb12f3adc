//go:build (freerdp && !freerdp3) || (freerdp3 && !freerdp)

package main

import (
	"bytes"
	"debug/elf"
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

	"github.com/rdpdvc/rdpdvc/freerdp"
)

var (
	buildOnce sync.Once
	soPath    string
	soErr     error
)

// sharedObject builds the plugin as xfreerdp loads it, once per test run.
func sharedObject(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the plugin")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "rdpdvc-plugin-test")
		if err != nil {
			soErr = err
			return
		}
		soPath = filepath.Join(dir, "librdpdvc-client.so")
		gobin := filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		if _, err := os.Stat(gobin); err != nil {
			gobin = "go"
		}
		cmd := exec.Command(gobin, "build", "-tags", freerdp.BuildTag(builtMajor), "-buildmode=c-shared", "-o", soPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			soErr = fmt.Errorf("%v: %v\n%s", cmd.Args, err, out)
		}
	})
	if soErr != nil {
		t.Fatal(soErr)
	}
	return soPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if soPath != "" {
		os.RemoveAll(filepath.Dir(soPath))
	}
	os.Exit(code)
}

// TestSharedObject checks what the wrong-major refusal depends on: the
// library must not need libfreerdp or libwinpr (else FreeRDP of the
// other major fails to load it, or loads a second FreeRDP into the
// process, before DVCPluginEntry can say why), and must export
// DVCPluginEntry.
func TestSharedObject(t *testing.T) {
	so := sharedObject(t)
	f, err := elf.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range libs {
		if strings.HasPrefix(l, "libfreerdp") || strings.HasPrefix(l, "libwinpr") {
			t.Errorf("the plugin needs %s (all it needs: %v)", l, libs)
		}
	}
	syms, err := f.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := false
	for _, s := range syms {
		if s.Name == "DVCPluginEntry" && s.Section != elf.SHN_UNDEF && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
			exported = true
		}
	}
	if !exported {
		t.Error("DVCPluginEntry is not exported")
	}
}

// pkgConfig names the pkg-config packages of a FreeRDP major, as the
// cgo_freerdp*.go files do.
var pkgConfig = map[int][]string{2: {"freerdp2", "winpr2"}, 3: {"freerdp3", "winpr3"}}

// TestHarness loads the plugin into testdata/harness.c, a stand-in for
// FreeRDP's drdynvc compiled against the same FreeRDP headers, so the
// structures on both sides are the ones FreeRDP of this major declares:
// a Simple and an MS-RDPEECO channel echo a message through the plugin's
// callbacks, so does a bridged channel whose socket echoes, and the plugin refuses a process that reports the other
// major, or an unknown feature, from DVCPluginEntry.
func TestHarness(t *testing.T) {
	so := sharedObject(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("no gcc")
	}
	flags, err := exec.Command("pkg-config", append([]string{"--cflags"}, pkgConfig[builtMajor]...)...).Output()
	if err != nil {
		t.Fatalf("pkg-config: %v", err)
	}
	harness := filepath.Join(t.TempDir(), "harness")
	args := append(strings.Fields(string(flags)), "-Wall", "-rdynamic", "-o", harness, filepath.Join("testdata", "harness.c"), "-ldl", "-lpthread")
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}

	// The bridge feature's socket: a TCP echo, so the bridged channel
	// answers "ping" as the others do.
	echoSock, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echoSock.Close()
	go func() {
		for {
			c, err := echoSock.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()

	other := 5 - builtMajor // 2 <-> 3
	for _, c := range []struct {
		name    string
		major   int
		channel string
		args    []string
		exit    int
		stdout  []string
		stderr  string
	}{
		{"echo", builtMajor, "ECHO", []string{"simple", "echo"}, 0,
			[]string{"registered rdpdvc", "listener ECHO", "echoed 4 bytes: ping", "ok"}, ""},
		{"simple", builtMajor, "dvc::sample::simpleplugin", []string{"simple"}, 0,
			[]string{"listener dvc::sample::simpleplugin", "echoed 4 bytes: ping", "ok"}, ""},
		{"bridge", builtMajor, "rdpdvc::test::bridge", []string{"bridge=rdpdvc::test::bridge=tcp:" + echoSock.Addr().String()}, 0,
			[]string{"listener rdpdvc::test::bridge", "echoed 4 bytes: ping", "ok"}, ""},
		{"other major", other, "-", []string{"simple"}, 3,
			[]string{"entry rc=1306"},
			fmt.Sprintf("rdpdvc: this librdpdvc-client.so was built for FreeRDP %d but is loaded by FreeRDP %d.99.1 (%s); rebuild with -tags %s\n",
				builtMajor, other, harness, freerdp.BuildTag(other))},
		{"unknown feature", builtMajor, "-", []string{"simple", "bogus"}, 3,
			[]string{"entry rc=87"}, `rdpdvc: freerdp: unknown feature "bogus"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(harness, append([]string{so, fmt.Sprint(c.major), c.channel}, c.args...)...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			exit := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				exit = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if exit != c.exit {
				t.Errorf("exit status %d, want %d", exit, c.exit)
			}
			for _, want := range c.stdout {
				if !strings.Contains(stdout.String(), want+"\n") {
					t.Errorf("stdout lacks %q", want)
				}
			}
			if c.stderr != "" && !strings.Contains(stderr.String(), c.stderr) {
				t.Errorf("stderr lacks %q", c.stderr)
			}
			if t.Failed() {
				t.Logf("stdout:\n%s\nstderr:\n%s", &stdout, &stderr)
			}
		})
	}
}
