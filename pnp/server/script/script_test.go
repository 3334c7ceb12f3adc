package script_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/server/script"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// syncBuf is an io.Writer safe for the runner's concurrent lines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type env struct {
	out *syncBuf
	r   *script.Runner
	cl  *client.Client
	mem *device.Memory
}

func setup(t *testing.T) *env {
	t.Helper()
	mem, err := device.NewMemory(64, device.Description{Text: "memory disk", HardwareIDs: []string{"MEM"}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := device.NewDemo(device.Description{Text: "emulated", HardwareIDs: []string{`RDPDVC\EMU`}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	hub := loopback.New()
	cl, err := client.New(client.Config{Logger: quiet}, mem, emu)
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Register(hub); err != nil {
		t.Fatal(err)
	}
	out := &syncBuf{}
	r := script.New(out)
	srv, err := server.Start(context.Background(), hub, server.Config{Logger: quiet, OnDevice: r.DeviceEvent})
	if err != nil {
		t.Fatal(err)
	}
	r.Attach(srv)
	t.Cleanup(func() {
		r.Close()
		srv.Close()
		cl.Close()
		hub.Close()
	})
	return &env{out: out, r: r, cl: cl, mem: mem}
}

// results returns the command result lines, by line number.
func results(t *testing.T, out string) map[int]map[string]any {
	t.Helper()
	m := map[int]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("output line is not JSON: %q", sc.Text())
		}
		if n, ok := v["line"].(float64); ok {
			m[int(n)] = v
		}
	}
	return m
}

func TestScript(t *testing.T) {
	e := setup(t)
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, []byte("from a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	src := `# comment
wait-device hwid:MEM timeout=10s
wait-device desc:emulated
devices
open m hwid:MEM share=3 disposition=OPEN_EXISTING
write m 4 text:hello world
read m 0 16
write m 0x20 @` + file + `
read m 32 11
open e hwid:rdpdvc\emu
ioctl e 0x00222000 text:echo text 4
! ioctl e 0x00222004 - 0 timeout=20ms
subscribe {7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60}
ioctl e 0x00222008 cafe 4
wait-event {7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60} timeout=10s
! write m 60 0102030405060708
! open m hwid:MEM
! read nosuch 0 1
! frobnicate
close m
! close m
sleep 1ms
open 1
read h1 4 5
`
	failed, err := e.r.Run(context.Background(), strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	out := e.out.String()
	if failed != 0 {
		t.Fatalf("%d commands failed:\n%s", failed, out)
	}
	res := results(t, out)
	check := func(line int, key string, want any) {
		t.Helper()
		if got := res[line][key]; got != want {
			t.Errorf("line %d: %s = %v, want %v\n%v", line, key, got, want, res[line])
		}
	}
	check(2, "ok", true)
	check(7, "data", "0000000068656c6c6f20776f726c6400")
	check(9, "data", "66726f6d20612066696c65")
	check(11, "data", "6563686f")
	check(12, "cancelled", true)
	check(12, "hresult", "0x800703E3")
	check(14, "data", "01000000")
	check(15, "data", "cafe")
	check(16, "hresult", "0x80070070") // ERROR_DISK_FULL: the write does not fit
	check(17, "ok", false)
	check(19, "error", `unknown command "frobnicate"`)
	check(23, "handle", "h1")
	check(24, "data", "68656c6c6f")
	if !strings.Contains(out, `"event":"device-arrived"`) || !strings.Contains(out, `"event":"custom-event"`) {
		t.Errorf("events missing:\n%s", out)
	}
	if got := e.mem.Snapshot(4, 11); string(got) != "hello world" {
		t.Errorf("device holds %q", got)
	}
}

func TestScriptFailures(t *testing.T) {
	e := setup(t)
	src := `wait-device hwid:MEM
! wait-device hwid:NONE timeout=1ms
read nosuch 0 1
! sleep 1ms
open x hwid:MEM bogus
write
`
	failed, err := e.r.Run(context.Background(), strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	// Lines 3, 4, 5 and 6 did not do what was expected.
	if failed != 4 {
		t.Errorf("failed = %d, want 4:\n%s", failed, e.out.String())
	}
	res := results(t, e.out.String())
	if res[4]["ok"] != true || res[4]["expectFail"] != true {
		t.Errorf("line 4: %v", res[4])
	}
}

func TestScriptHotplug(t *testing.T) {
	e := setup(t)
	added := make(chan uint32, 1)
	go func() {
		time.Sleep(10 * time.Millisecond) // let wait-device start waiting first
		mem, _ := device.NewMemory(8, device.Description{Text: "hot", HardwareIDs: []string{"HOT"}})
		id, err := e.cl.AddDevice(mem)
		if err != nil {
			t.Error(err)
		}
		added <- id
	}()
	failed, err := e.r.Run(context.Background(), strings.NewReader("wait-device hwid:HOT\n"))
	if err != nil || failed != 0 {
		t.Fatalf("failed %d, %v:\n%s", failed, err, e.out.String())
	}
	id := <-added
	go func() {
		time.Sleep(10 * time.Millisecond)
		if err := e.cl.RemoveDevice(context.Background(), id); err != nil {
			t.Error(err)
		}
	}()
	failed, err = e.r.Run(context.Background(), strings.NewReader("wait-removed hwid:HOT\n"))
	if err != nil || failed != 0 {
		t.Fatalf("failed %d, %v:\n%s", failed, err, e.out.String())
	}
	if !strings.Contains(e.out.String(), `"event":"device-removed"`) {
		t.Errorf("no removal event:\n%s", e.out.String())
	}
}
