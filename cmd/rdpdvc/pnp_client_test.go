package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
	"github.com/rdpdvc/rdpdvc/portable"
)

// The spec parser is pnp/device's (TestParseSpec there); here, that the
// command uses it and keeps the -device spelling with commas.
func TestPNPClientDeviceSpec(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f.bin")
	os.WriteFile(file, []byte("x"), 0o644)
	code, _, errs := runArgs(t, "pnp-client", "-connect", "127.0.0.1:1", "-retry", "0", "-device", "file:"+file+",ro,desc=Disk\\, 1 byte", "-device", "mem:1,bogus=1")
	if code != 2 || !strings.Contains(errs, `unknown option "bogus=1"`) {
		t.Fatalf("bad option: %d %s", code, errs)
	}
}

func TestPNPClientUsage(t *testing.T) {
	code, _, errs := runArgs(t, "pnp-client", "-h")
	if code != 0 || !strings.Contains(errs, "file:PATH[,ro]") || !strings.Contains(errs, "-device SPEC") {
		t.Fatalf("-h: %d\n%s", code, errs)
	}
	if code, _, _ := runArgs(t, "pnp-client"); code != 2 {
		t.Fatalf("no -device: %d", code)
	}
	if code, _, _ := runArgs(t, "pnp-client", "-device", "mem:x"); code != 2 {
		t.Fatalf("bad -device: %d", code)
	}
}

// TestPNPClientOverTCP runs `rdpdvc pnp-client` against a raw-wire server
// on the portable transport: the devices are announced with their
// descriptions, a write at an offset lands in the file, and the read-only
// device refuses a write with ERROR_WRITE_PROTECT and stays unchanged.
func TestPNPClientOverTCP(t *testing.T) {
	dir := t.TempDir()
	rw, ro := filepath.Join(dir, "rw.bin"), filepath.Join(dir, "ro.bin")
	os.WriteFile(rw, []byte("0123456789"), 0o644)
	os.WriteFile(ro, []byte("keep"), 0o644)

	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	var code int
	var out pcSyncBuffer
	wg.Add(1)
	go func() {
		defer wg.Done()
		code = run(ctx, []string{"pnp-client", "-q", "-connect", ln.Addr().String(),
			"-device", "file:" + rw + ",desc=rw file", "-device", "file:" + ro + ",ro", "-device", "mem:1K"}, &out, &out)
	}()
	srv, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run(context.Background())
	defer func() {
		srv.Close()
		wg.Wait()
		if code != 0 {
			t.Errorf("pnp-client exited %d:\n%s", code, out.String())
		}
	}()

	p, err := srv.Open(ctx, wire.ChannelPNPDR)
	if err != nil {
		t.Fatal(err)
	}
	pcWrite(t, ctx, p, wire.ServerVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil))
	if _, err := wire.ParseClientVersion(pcRead(t, ctx, p)); err != nil {
		t.Fatal(err)
	}
	pcWrite(t, ctx, p, wire.AuthenticatedClient{}.Append(nil))
	a, err := wire.ParseClientDeviceAddition(pcRead(t, ctx, p))
	if err != nil || len(a.Devices) != 3 || a.Devices[0].DeviceDescription != "rw file" || a.Devices[2].HardwareIDs[0] != `RDPDVC\MEM` {
		t.Fatalf("addition %+v, %v", a, err)
	}

	open := func(id uint32) dvc.Conn {
		f, err := srv.Open(ctx, wire.ChannelFileRedirector)
		if err != nil {
			t.Fatal(err)
		}
		pcWrite(t, ctx, f, wire.ServerCapabilitiesRequest{Version: 6}.Append(nil))
		pcRead(t, ctx, f)
		pcWrite(t, ctx, f, wire.CreateFileRequest{RequestID: 1, DeviceID: id, DesiredAccess: 0xC0000000, ShareMode: 3, CreationDisposition: wire.OpenExisting}.Append(nil))
		if r, err := wire.ParseCreateFileReply(pcRead(t, ctx, f)); err != nil || r.Result != 0 {
			t.Fatalf("CreateFile %d: %+v %v", id, r, err)
		}
		return f
	}
	f := open(1)
	pcWrite(t, ctx, f, wire.WriteRequest{RequestID: 2, Offset: 3, Data: []byte("abc")}.Append(nil))
	if r, err := wire.ParseWriteReply(pcRead(t, ctx, f)); err != nil || r.Result != 0 || r.BytesWritten != 3 {
		t.Fatalf("write %+v %v", r, err)
	}
	pcWrite(t, ctx, f, wire.ReadRequest{RequestID: 3, BytesToRead: 100, Offset: 2}.Append(nil))
	if r, err := wire.ParseReadReply(pcRead(t, ctx, f)); err != nil || string(r.Data) != "2abc6789" {
		t.Fatalf("read %+v %v", r, err)
	}
	if got, _ := os.ReadFile(rw); string(got) != "012abc6789" {
		t.Fatalf("file holds %q", got)
	}
	g := open(2)
	pcWrite(t, ctx, g, wire.WriteRequest{RequestID: 2, Data: []byte("XX")}.Append(nil))
	if r, err := wire.ParseWriteReply(pcRead(t, ctx, g)); err != nil || r.Result != device.ErrorWriteProtect {
		t.Fatalf("read-only write %+v %v", r, err)
	}
	if got, _ := os.ReadFile(ro); string(got) != "keep" {
		t.Fatalf("read-only file holds %q", got)
	}
	f.Close()
	g.Close()
	p.Close()
}

func pcWrite(t *testing.T, ctx context.Context, c dvc.Conn, m []byte) {
	t.Helper()
	if err := c.Write(ctx, m); err != nil {
		t.Fatal(err)
	}
}

func pcRead(t *testing.T, ctx context.Context, c dvc.Conn) []byte {
	t.Helper()
	m, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pcSyncBuffer is a bytes.Buffer safe for the goroutines of the programs under test.
type pcSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *pcSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *pcSyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var _ io.Writer = (*pcSyncBuffer)(nil)

// TestPNPClientHotPlug drives -stdin: add and remove reach the server as
// Client Device Addition and Removal messages, and list prints the devices.
func TestPNPClientHotPlug(t *testing.T) {
	pr, pw := io.Pipe()
	old := pnpClientStdin
	pnpClientStdin = pr
	defer func() { pnpClientStdin = old }()

	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var code int
	var out pcSyncBuffer
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		code = run(ctx, []string{"pnp-client", "-q", "-stdin", "-connect", ln.Addr().String(), "-device", "mem:1K"}, &out, &out)
	}()
	srv, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Run(context.Background())
	defer func() {
		// The end of standard input ends the client, with the server
		// still there.
		pw.Close()
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Errorf("pnp-client still running 30 s after its standard input ended")
			srv.Close()
			<-exited
		}
		srv.Close()
		if code != 0 {
			t.Errorf("pnp-client exited %d:\n%s", code, out.String())
		}
	}()
	p, err := srv.Open(ctx, wire.ChannelPNPDR)
	if err != nil {
		t.Fatal(err)
	}
	pcWrite(t, ctx, p, wire.ServerVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: 1}.Append(nil))
	pcRead(t, ctx, p)
	pcWrite(t, ctx, p, wire.AuthenticatedClient{}.Append(nil))
	if a, err := wire.ParseClientDeviceAddition(pcRead(t, ctx, p)); err != nil || len(a.Devices) != 1 {
		t.Fatalf("addition %+v %v", a, err)
	}
	io.WriteString(pw, "add emu:hot,desc=Hot device\n")
	if a, err := wire.ParseClientDeviceAddition(pcRead(t, ctx, p)); err != nil || len(a.Devices) != 1 || a.Devices[0].ClientDeviceID != 2 || a.Devices[0].DeviceDescription != "Hot device" {
		t.Fatalf("hot addition %+v %v", a, err)
	}
	// An event on the hot device, with a handle open on it.
	f, err := srv.Open(ctx, wire.ChannelFileRedirector)
	if err != nil {
		t.Fatal(err)
	}
	pcWrite(t, ctx, f, wire.ServerCapabilitiesRequest{Version: 6}.Append(nil))
	pcRead(t, ctx, f)
	pcWrite(t, ctx, f, wire.CreateFileRequest{RequestID: 1, DeviceID: 2, DesiredAccess: 0xC0000000, ShareMode: 3, CreationDisposition: wire.OpenExisting}.Append(nil))
	pcRead(t, ctx, f)
	io.WriteString(pw, "event 2 cafe\n")
	if ev, err := wire.ParseClientDeviceCustomEvent(pcRead(t, ctx, f)); err != nil || ev.CustomEventGUID != device.DemoEventGUID || string(ev.Data) != "\xca\xfe" {
		t.Fatalf("event %+v %v", ev, err)
	}
	f.Close()
	io.WriteString(pw, "remove 1\nlist\n")
	if r, err := wire.ParseClientDeviceRemoval(pcRead(t, ctx, p)); err != nil || r.ClientDeviceID != 1 {
		t.Fatalf("removal %+v %v", r, err)
	}
	// "list" is answered after "remove": wait for its line.
	listed := regexp.MustCompile(`(?m)^2\t\d+\tHot device$`) // the handle may not be closed yet
	for !listed.MatchString(out.String()) {
		select {
		case <-ctx.Done():
			t.Fatalf("no list output:\n%s", out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if s := out.String(); !strings.Contains(s, "event 2 1\n") || !strings.Contains(s, "added 2\n") || !strings.Contains(s, "removed 1\n") || strings.Contains(s, "1\t0\t") {
		t.Fatalf("output:\n%s", s)
	}
	p.Close()
}
