package script_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

// syncBuf is an io.Writer safe for the runner's concurrent lines. Each
// write closes and replaces changed, so a test can wait for a line
// (waitFor) instead of polling.
type syncBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// contains reports whether the output holds str, and if not, returns a
// channel closed by the next write.
func (s *syncBuf) contains(str string) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if strings.Contains(s.b.String(), str) {
		return true, nil
	}
	if s.changed == nil {
		s.changed = make(chan struct{})
	}
	return false, s.changed
}
func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type env struct {
	out *syncBuf
	r   *script.Runner
	cl  *client.Client
	mem *device.Memory
}

// ioctlHold is an I/O control code of the test's emulated device: it
// raises a custom event with its input once it is called, then holds
// until cancelled, so that a script knows (wait-event) that the client
// has the request before it cancels it.
const ioctlHold = 0x0022200C

func setup(t *testing.T) *env { t.Helper(); return setupWith(t) }

// setupWith is setup with more devices.
func setupWith(t *testing.T, more ...device.Device) *env {
	t.Helper()
	mem, err := device.NewMemory(64, device.Description{Text: "memory disk", HardwareIDs: []string{"MEM"}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := device.NewDemo(device.Description{Text: "emulated", HardwareIDs: []string{`RDPDVC\EMU`}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	emu.SetIoctl(ioctlHold, func(ctx context.Context, in []byte, _ uint32) ([]byte, error) {
		emu.RaiseEvent(device.Event{GUID: device.DemoEventGUID, Data: in})
		<-ctx.Done()
		return nil, ctx.Err()
	})
	e := serve(t, append([]device.Device{mem, emu}, more...)...)
	e.mem = mem
	return e
}

// serve runs an in-process client with devs and a server with a runner.
func serve(t *testing.T, devs ...device.Device) *env {
	t.Helper()
	hub := loopback.New()
	cl, err := client.New(client.Config{Logger: quiet}, devs...)
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
	return &env{out: out, r: r, cl: cl}
}

// run parses src (which must parse) and runs it.
func (e *env) run(t *testing.T, src string) []int {
	t.Helper()
	s, err := script.Parse(strings.NewReader(src))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	failed, err := e.r.Run(context.Background(), s)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, e.out.String())
	}
	return failed
}

// results returns the command result lines, by line number, and checks
// that each carries elapsed_ms, ok and returned.
func results(t *testing.T, out string) map[int]map[string]any {
	t.Helper()
	m := map[int]map[string]any{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		var v map[string]any
		if err := json.Unmarshal(sc.Bytes(), &v); err != nil {
			t.Fatalf("output line is not JSON: %q", sc.Text())
		}
		n, ok := v["line"].(float64)
		if !ok || v["event"] != nil {
			continue
		}
		if _, dup := m[int(n)]; dup {
			t.Errorf("two results for line %d:\n%s", int(n), out)
		}
		if _, ok := v["elapsed_ms"].(float64); !ok {
			t.Errorf("line %d: no elapsed_ms: %v", int(n), v)
		}
		if _, ok := v["ok"].(bool); !ok || v["returned"] == nil {
			t.Errorf("line %d: no ok or returned: %v", int(n), v)
		}
		m[int(n)] = v
	}
	return m
}

func check(t *testing.T, res map[int]map[string]any, line int, key string, want any) {
	t.Helper()
	if got := res[line][key]; got != want {
		t.Errorf("line %d: %s = %v, want %v\n%v", line, key, got, want, res[line])
	}
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
close m
sleep 1ms
open 1
read h1 4 5
`
	if failed := e.run(t, src); len(failed) != 0 {
		t.Fatalf("lines %v did not hold:\n%s", failed, e.out.String())
	}
	out := e.out.String()
	res := results(t, out)
	check(t, res, 2, "ok", true)
	check(t, res, 2, "returned", "ok")
	check(t, res, 7, "data", "0000000068656c6c6f20776f726c6400")
	check(t, res, 9, "data", "66726f6d20612066696c65")
	check(t, res, 11, "data", "6563686f")
	check(t, res, 12, "cancelled", true)
	check(t, res, 12, "hresult", "0x800703E3")
	check(t, res, 12, "returned", "error")
	check(t, res, 12, "ok", true)
	check(t, res, 14, "data", "01000000")
	check(t, res, 15, "data", "cafe")
	check(t, res, 15, "handle", "e")
	check(t, res, 16, "hresult", "0x80070070") // ERROR_DISK_FULL: the write does not fit
	check(t, res, 16, "hresultName", "HRESULT_FROM_WIN32(ERROR_DISK_FULL) (0x80070070)")
	check(t, res, 16, "n", 4.0) // a partial write reports its count
	check(t, res, 19, "handle", "h1")
	check(t, res, 20, "data", "68656c6c6f")
	if !strings.Contains(out, `"event":"device-arrived"`) || !strings.Contains(out, `"event":"custom-event"`) {
		t.Errorf("events missing:\n%s", out)
	}
	if got := e.mem.Snapshot(4, 11); string(got) != "hello world" {
		t.Errorf("device holds %q", got)
	}
}

// A script that cannot run is refused whole by Parse, each bad line named:
// "!" is no cover for a usage error or an unknown command.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"! frobnicate", `line 1: unknown command "frobnicate"`},
		{"devices\n\nfrobnicate x", `line 3: unknown command "frobnicate"`},
		{"!", "line 1: ! needs a command"},
		{"! devices", "line 1: ! devices: devices cannot fail"},
		{"! read nosuch 0 1", `line 1: no handle "nosuch" opened on an earlier line`},
		{"read m 0 1\nopen m any", `line 1: no handle "m" opened on an earlier line`},
		{"open x hwid:MEM bogus", "line 1: 3 argument(s), want 2"},
		{"write", "line 1: 0 argument(s), want 3"},
		{"open m any\nread m zz 1", `line 2: OFFSET "zz"`},
		{"open m any\nread m 0 99999999999", `line 2: COUNT "99999999999"`},
		{"open m any\nwrite m 0 abc", `line 2: DATA "abc": want hex`},
		{"open m any\nwrite m 0 @/nonexistent/file", "line 2: open /nonexistent/file"},
		{`open m any` + "\n" + `write m 0 text:"unterminated`, `line 2: unterminated text:"..."`},
		{"wait-device any timeout=zz", "line 1: timeout=zz"},
		{"wait-device any hwid:X", "line 1: 2 arguments, want at most 1"},
		{"sleep 5", `line 1: DUR "5"`},
		{"open m any\nread m 0 5 count=5", "line 2: count= is an expectation: write expect before it"},
		{"open m any\nread m 0 5 expect", "line 2: expect with no clause"},
		{"open m any\nwrite m 0 aa expect data=aa", "line 2: expect data= does not apply"},
		{"open m any\nread m 0 5 expect hresult=ERROR_NOPE", `line 2: expect hresult: unknown HRESULT "ERROR_NOPE"`},
		{"open m any\n! read m 0 5 expect hresult=S_OK", "line 2: ! with expect hresult=S_OK: a success"},
		{"open m any\nread m 0 5 as=r1", "line 2: as=r1 names a job: end the line with &"},
		{"open m any\nclose m &", "line 2: & does not apply"},
		{"open m any\nread m 0 5 & as=a\nread m 0 5 & as=a", `line 3: job "a" is already the job of line 2`},
		{"wait r1", `line 1: no job "r1" started on an earlier line (jobs so far: none)`},
		{"open m any\nread m 0 1 &\ncancel j3", `line 3: no job "j3" started on an earlier line (jobs so far: j2)`},
		{"cancel", "line 1: no job named"},
		{"subscribe nope", "line 1:"},
		{"open m any\nread m 0 1 & timeout=1s expect count=1", ""}, // options, clauses and & in any order
	} {
		_, err := script.Parse(strings.NewReader(tc.src))
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.src, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.src, err, tc.want)
		}
	}
	// Every bad line is reported, not just the first.
	_, err := script.Parse(strings.NewReader("frobnicate\ndevices\nsleep x\n"))
	if err == nil || !strings.Contains(err.Error(), "line 1:") || !strings.Contains(err.Error(), "line 3:") {
		t.Errorf("two bad lines: %v", err)
	}
	var se *script.Error
	if !errors.As(err, &se) || se.Line != 1 {
		t.Errorf("errors.As *script.Error: %#v", se)
	}
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	if _, err := script.ParseFile(dir); err == nil || !strings.Contains(err.Error(), dir+": is a directory") {
		t.Errorf("a directory: %v", err)
	}
	if _, err := script.ParseFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v", err)
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("devices\n! frobnicate\n"), 0o644)
	if _, err := script.ParseFile(bad); err == nil || err.Error() != bad+`:2: unknown command "frobnicate"` {
		t.Errorf("a bad line: %v", err)
	}
	good := filepath.Join(dir, "good.txt")
	os.WriteFile(good, []byte("devices # list them\n  # nothing\n\nsleep 1ms\n"), 0o644)
	if s, err := script.ParseFile(good); err != nil || s.Lines() != 2 {
		t.Errorf("a good script: %v", err)
	}
}

// Comments may follow any command; # inside data is kept unless a blank
// comes before it, and a quoted text:"..." keeps everything.
func TestComments(t *testing.T) {
	e := setup(t)
	src := `wait-device hwid:MEM   # the memory disk
! wait-device hwid:rdpdvc\emu#x timeout=1ms # the # of #x is the ID's
open m hwid:MEM # open it
write m 0 text:a#b # a comment
read m 0 3 expect data=text:a#b
write m 0 text:"x #y\t" timeout=1s # quoted
read m 0 5 expect data=text:"x #y\t"
open e hwid:rdpdvc\emu
! ioctl e 0x00222004 - 0 timeout=100ms  # cancelled: one IoCancel, ERROR_OPERATION_ABORTED
`
	failed := e.run(t, src)
	if len(failed) != 0 {
		t.Fatalf("lines %v did not hold:\n%s", failed, e.out.String())
	}
	res := results(t, e.out.String())
	// Line 2's # is inside a word, so it is part of the hardware ID,
	// which no device has.
	check(t, res, 2, "timedOut", true)
	check(t, res, 2, "error", `no device hwid:rdpdvc\emu#x after 1ms`)
	// The documented example really sends the IOCTL: the emulated
	// device's call is cancelled by the IoCancel, and the client answers
	// ERROR_OPERATION_ABORTED.
	check(t, res, 9, "op", "ioctl")
	check(t, res, 9, "cancelled", true)
	check(t, res, 9, "hresult", "0x800703E3")
	check(t, res, 9, "hresultName", "HRESULT_FROM_WIN32(ERROR_OPERATION_ABORTED) (0x800703E3)")
}

// expect clauses make a script a test: each line that did not hold is
// reported with its line number and why.
func TestExpect(t *testing.T) {
	e := setup(t)
	src := `wait-device hwid:rdpdvc\emu
open m hwid:MEM
write m 0 text:hello expect count=5 hresult=S_OK
read m 0 5 expect data=68656c6c6f count=5
read m 0 5 expect data=text:hellp
read m 60 8 expect count=8
! write m 60 0102030405060708 expect count=4 hresult=ERROR_DISK_FULL
write m 60 0102030405060708 expect hresult=0x80070070 count=4
write m 60 0102030405060708 expect hresult=ERROR_WRITE_PROTECT
write m 60 0102030405060708
! read m 0 1
open e hwid:rdpdvc\emu
ioctl e 0x00222000 cafe 2 expect data=cafe count=2
ioctl e 0x00222001 - 0 expect hresult=ERROR_INVALID_FUNCTION
close m
! read m 0 1
! open m hwid:NONE
`
	failed := e.run(t, src)
	if want := []int{5, 6, 9, 10, 11, 16}; !slices.Equal(failed, want) {
		t.Errorf("lines %v did not hold, want %v:\n%s", failed, want, e.out.String())
	}
	res := results(t, e.out.String())
	check(t, res, 4, "ok", true)
	check(t, res, 5, "unmet", "data 68656c6c6f; want 68656c6c70")
	check(t, res, 6, "unmet", "count 4; want 8")
	check(t, res, 7, "ok", true)
	check(t, res, 7, "n", 4.0)
	check(t, res, 8, "ok", true)
	check(t, res, 8, "returned", "error")
	check(t, res, 9, "unmet", "HRESULT HRESULT_FROM_WIN32(ERROR_DISK_FULL) (0x80070070); want HRESULT_FROM_WIN32(ERROR_WRITE_PROTECT) (0x80070013)")
	check(t, res, 10, "unmet", "the command failed")
	check(t, res, 11, "unmet", "the command succeeded; ! wants it to fail")
	check(t, res, 11, "returned", "ok")
	check(t, res, 13, "ok", true)
	check(t, res, 14, "ok", true)
	check(t, res, 14, "hresult", "0x80070001")
	// A handle closed earlier: the command cannot run, and ! does not
	// cover that.
	check(t, res, 16, "returned", "script-error")
	check(t, res, 16, "unmet", `the command did not run: no open handle "m" (closed, or its open failed)`)
	// No such device: the server's answer, which ! accepts.
	check(t, res, 17, "ok", true)
	check(t, res, 17, "error", "no device hwid:NONE")
}

// Waits that time out say what did not happen.
func TestWaitTimeouts(t *testing.T) {
	e := setup(t)
	failed := e.run(t, `wait-device hwid:MEM
wait-device 7 timeout=1ms
wait-removed hwid:MEM timeout=1ms
wait-event {7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60} timeout=1ms
wait-event all timeout=1ms
sleep 20ms
`)
	if !slices.Equal(failed, []int{2, 3, 4, 5}) {
		t.Errorf("failed %v", failed)
	}
	res := results(t, e.out.String())
	check(t, res, 2, "error", "no device 7 after 1ms")
	check(t, res, 2, "timedOut", true)
	check(t, res, 3, "error", "device hwid:MEM still there after 1ms")
	check(t, res, 4, "error", "no custom event {7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60} after 1ms")
	check(t, res, 5, "error", "no custom event after 1ms")
	if ms, _ := res[6]["elapsed_ms"].(float64); ms < 20 {
		t.Errorf("sleep 20ms: elapsed_ms %v", res[6]["elapsed_ms"])
	}
}

// wait-event all takes any custom event, as subscribe all prints any.
func TestWaitEventAll(t *testing.T) {
	e := setup(t)
	src := `wait-device hwid:rdpdvc\emu
open e hwid:rdpdvc\emu
subscribe {7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60}
ioctl e 0x00222008 cafe 4
wait-event all expect data=cafe
! wait-event all timeout=1ms
ioctl e 0x00222008 beef 4
wait-event all timeout=10s expect data=beef
wait-event all timeout=1ms expect data=beef
`
	failed := e.run(t, src)
	if !slices.Equal(failed, []int{9}) {
		t.Errorf("failed %v:\n%s", failed, e.out.String())
	}
	res := results(t, e.out.String())
	check(t, res, 5, "guid", "{7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60}")
	check(t, res, 5, "handle", "e")
	check(t, res, 8, "data", "beef")
	// subscribe GUID, then wait-event all's subscribe all: the event of
	// line 7 comes once, not once per subscription.
	if n := strings.Count(e.out.String(), `"data":"beef","device":2,"event":"custom-event"`); n != 1 {
		t.Errorf("%d custom-event lines for beef, want 1:\n%s", n, e.out.String())
	}
}

// eventOnOpen raises a custom event while a handle is being opened, as a
// client may as soon as it has the CreateFile Request.
type eventOnOpen struct{ *device.Emulated }

func (d eventOnOpen) Open(ctx context.Context, req device.OpenRequest) (device.Handle, error) {
	h, err := d.Emulated.Open(ctx, req)
	if err == nil && req.Events != nil {
		req.Events(device.Event{GUID: device.DemoEventGUID, Data: []byte("hi")})
	}
	return h, err
}

func TestEventDuringOpenNamesHandle(t *testing.T) {
	emu, err := device.NewDemo(device.Description{Text: "eager", HardwareIDs: []string{"EAGER"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	e := setupWith(t, eventOnOpen{emu})
	failed := e.run(t, "subscribe all\nwait-device hwid:EAGER\nopen x hwid:EAGER\nwait-event all timeout=10s expect data=text:hi\n")
	if len(failed) != 0 {
		t.Fatalf("failed %v:\n%s", failed, e.out.String())
	}
	out := e.out.String()
	if !strings.Contains(out, `"event":"custom-event","guid":"{7D3E4C1A-5B2F-4E8D-9A61-0C2B3D4E5F60}","handle":"x"`) || strings.Contains(out, `"handle":""`) {
		t.Errorf("the event does not name its handle:\n%s", out)
	}
	check(t, results(t, out), 4, "handle", "x")
}

// Background jobs run concurrently; cancel ends one of several with a
// Specific IoCancel, wait joins them.
func TestBackground(t *testing.T) {
	e := setup(t)
	src := `wait-device hwid:rdpdvc\emu
open m hwid:MEM
open e hwid:rdpdvc\emu
subscribe all
! ioctl e 0x0022200C 61 0 & as=a
! ioctl e 0x0022200C 62 0 expect hresult=ERROR_OPERATION_ABORTED &
wait-event all
wait-event all
write m 0 text:hello &
wait j9
read m 0 5 expect data=text:hello & as=r
cancel a
wait r
cancel j6
cancel a
ioctl e 0x00222004 05000000 4 expect data=05000000 & as=slow
`
	failed := e.run(t, src)
	if len(failed) != 0 {
		t.Fatalf("failed %v:\n%s", failed, e.out.String())
	}
	out := e.out.String()
	res := results(t, out)
	// Both requests were with the client (their events came) when line
	// 12 cancelled a and line 14 j6: the client cancelled each device call
	// on a Specific IoCancel Request and answered ERROR_OPERATION_ABORTED.
	if a, b := res[7]["data"], res[8]["data"]; !(a == "61" && b == "62" || a == "62" && b == "61") {
		t.Errorf("events %v, %v; want one from each job", a, b)
	}
	check(t, res, 5, "job", "a")
	check(t, res, 5, "cancelled", true)
	check(t, res, 5, "hresult", "0x800703E3")
	check(t, res, 6, "job", "j6")
	check(t, res, 6, "hresult", "0x800703E3")
	check(t, res, 9, "job", "j9")
	check(t, res, 11, "data", "68656c6c6f")
	check(t, res, 16, "data", "05000000") // waited for at the end of the script
	order := func(marks ...string) {
		t.Helper()
		last := -1
		for _, m := range marks {
			i := strings.Index(out, m)
			if i < 0 || i < last {
				t.Errorf("%s is missing or out of order:\n%s", m, out)
				return
			}
			last = i
		}
	}
	// Job a ended when line 12 cancelled it, and not job j6, still
	// pending until line 14; cancelling a again (line 15) finds it ended.
	order(`"event":"job-started","job":"a","line":5`, `"job":"a","line":5,"n":0`, `"line":12,"ok":true,"op":"cancel"`, `"job":"j6","line":6,"n":0`, `"line":14,"ok":true,"op":"cancel"`)
	check(t, res, 15, "ok", true)
	if got, _ := json.Marshal(res[15]["endedBefore"]); string(got) != `["a"]` {
		t.Errorf("line 15 endedBefore = %s", got)
	}
}

// A background job that does not hold fails its own line, and wait says
// which job that was.
func TestBackgroundFailure(t *testing.T) {
	e := setup(t)
	failed := e.run(t, "wait-device hwid:MEM\nopen m hwid:MEM\nread m 0 2 expect data=ffff & as=r\nwait all\n")
	if !slices.Equal(failed, []int{3}) {
		t.Errorf("failed %v:\n%s", failed, e.out.String())
	}
	res := results(t, e.out.String())
	check(t, res, 4, "ok", true)
	if got, _ := json.Marshal(res[4]["unmetJobs"]); string(got) != `["r"]` {
		t.Errorf("unmetJobs = %s", got)
	}
}

// Ctrl+C (the context) cancels the jobs still running and ends the run.
func TestRunCancelled(t *testing.T) {
	e := setup(t)
	s, err := script.Parse(strings.NewReader("wait-device hwid:rdpdvc\\emu\nopen e hwid:rdpdvc\\emu\nioctl e 0x00222004 - 0 & as=p\nwait p\n"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.r.Print(nil) // nothing: just that Print is safe before Run
	done := make(chan error, 1)
	go func() { _, err := e.r.Run(ctx, s); done <- err }()
	waitFor(t, e.out, `"event":"job-started","job":"p"`)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
	res := results(t, e.out.String())
	check(t, res, 3, "cancelled", true)
}

// waitFor waits until the output holds s, woken by each write (the
// deadline only tells stuck from slow).
func waitFor(t *testing.T, out *syncBuf, s string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		ok, changed := out.contains(s)
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("no %s in:\n%s", s, out.String())
		}
	}
}

func TestScriptHotplug(t *testing.T) {
	e := setup(t)
	added := make(chan uint32, 1)
	wait, err := script.Parse(strings.NewReader("wait-device hwid:HOT\n"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		mem, _ := device.NewMemory(8, device.Description{Text: "hot", HardwareIDs: []string{"HOT"}})
		id, err := e.cl.AddDevice(mem)
		if err != nil {
			t.Error(err)
		}
		added <- id
	}()
	if failed, err := e.r.Run(context.Background(), wait); err != nil || len(failed) != 0 {
		t.Fatalf("failed %v, %v:\n%s", failed, err, e.out.String())
	}
	id := <-added
	removed, err := script.Parse(strings.NewReader("wait-removed hwid:HOT\n"))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := e.cl.RemoveDevice(context.Background(), id); err != nil {
			t.Error(err)
		}
	}()
	if failed, err := e.r.Run(context.Background(), removed); err != nil || len(failed) != 0 {
		t.Fatalf("failed %v, %v:\n%s", failed, err, e.out.String())
	}
	if !strings.Contains(e.out.String(), `"event":"device-removed"`) {
		t.Errorf("no removal event:\n%s", e.out.String())
	}
}

// The example of docs/pnp.md runs as it stands there, against the devices
// it names.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/pnp.md")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(doc), "<!-- TestDocExample runs the next block -->\n```\n")
	if !ok {
		t.Fatal("docs/pnp.md has no example marked for TestDocExample")
	}
	block, _, _ = strings.Cut(block, "```")
	var devs []device.Device
	for _, spec := range []string{"mem:64", "emu:demo"} {
		d, err := device.ParseSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
	}
	e := serve(t, devs...)
	if failed := e.run(t, block); len(failed) != 0 {
		t.Fatalf("lines %v did not hold:\n%s", failed, e.out.String())
	}
	res := results(t, e.out.String())
	check(t, res, 9, "cancelled", true)
	check(t, res, 9, "hresult", "0x800703E3")
	check(t, res, 6, "n", 4.0)
}

// A read, write or ioctl line without timeout= is still bounded
// (Runner.IOTimeout, DefaultIO): a client that holds the call gets a
// cancel when it expires, and the line fails as cancelled instead of
// holding the script for ever.
func TestIODefaultTimeout(t *testing.T) {
	e := setup(t)
	e.r.IOTimeout = 20 * time.Millisecond
	failed := e.run(t, "wait-device hwid:rdpdvc\\emu\nopen e hwid:rdpdvc\\emu\nioctl e 0x0022200C 00 0\n")
	if !slices.Equal(failed, []int{3}) {
		t.Fatalf("failed lines %v, want [3]:\n%s", failed, e.out.String())
	}
	check(t, results(t, e.out.String()), 3, "cancelled", true)
}
