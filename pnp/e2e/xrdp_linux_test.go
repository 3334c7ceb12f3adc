//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/server"
)

// chansrvBridge stands in for xrdp-chansrv between the xrdp backend and a
// client: it accepts xrdpapi opens on a UNIX socket, opens the channel on
// the client side (a loopback hub where pnp/client listens), and then moves
// bytes the way backend/xrdp's documentation says chansrv does: each recv()
// from the program becomes one DVC message to the client, and each message
// from the client reaches the program as a byte stream, here in pieces of
// 1590 bytes (the DVC chunk size) so that no boundary survives. Written from
// that description, not from xrdp's code.
type chansrvBridge struct {
	ln  *net.UnixListener
	hub *loopback.Hub
	wg  sync.WaitGroup
}

func startBridge(t *testing.T, hub *loopback.Hub) (dir string, display string) {
	dir = t.TempDir()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "xrdpapi_77"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	b := &chansrvBridge{ln: ln, hub: hub}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(func() { ln.Close(); b.wg.Wait() })
	return dir, ":77"
}

func (b *chansrvBridge) serve() {
	defer b.wg.Done()
	var conns sync.WaitGroup
	defer conns.Wait()
	for {
		c, err := b.ln.AcceptUnix()
		if err != nil {
			return
		}
		conns.Add(1)
		go func() {
			defer conns.Done()
			defer c.Close()
			b.conn(c)
		}()
	}
}

func (b *chansrvBridge) conn(c *net.UnixConn) {
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return
	}
	total := binary.LittleEndian.Uint32(hdr[0:])
	if total < 16 || total > 1<<10 {
		return
	}
	rest := make([]byte, total-8)
	if _, err := io.ReadFull(c, rest); err != nil {
		return
	}
	nameLen := binary.LittleEndian.Uint32(rest)
	if int(nameLen) != len(rest)-8 {
		return
	}
	name := string(rest[4 : 4+nameLen])
	conn, err := b.hub.Open(context.Background(), name)
	status := uint32(0)
	if err != nil {
		status = 0xC0000001
	}
	if _, err := c.Write(binary.LittleEndian.AppendUint32(nil, status)); err != nil || status != 0 {
		return
	}
	defer conn.Close()
	done := make(chan struct{})
	go func() { // client to program: a stream of 1590-byte pieces
		defer close(done)
		for {
			m, err := conn.Read(context.Background())
			if err != nil {
				c.CloseWrite()
				return
			}
			for len(m) > 0 {
				n := min(len(m), 1590)
				if _, err := c.Write(m[:n]); err != nil {
					return
				}
				m = m[n:]
			}
		}
	}()
	buf := make([]byte, 32768)
	for { // program to client: one recv, one message
		n, err := c.Read(buf)
		if n > 0 {
			if conn.Write(context.Background(), buf[:n]) != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	conn.Close()
	<-done
}

// TestOverXrdpBackend runs the server role on the real xrdp backend
// (backend/xrdp, its fencing, flow control and Framer-driven reads) against
// the client role, through a stand-in for chansrv that keeps no message
// boundaries from client to server: the PNPDR and FileRedirectorChannel
// framers recover every reply.
func TestOverXrdpBackend(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	mem, err := device.NewMemory(1<<20, device.Description{Text: "memory", HardwareIDs: []string{"MEM"}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := device.NewDemo(device.Description{Text: "emulated", HardwareIDs: []string{"EMU"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	started := blockingIoctl(emu)
	cl, err := client.New(client.Config{Logger: quiet}, mem, emu)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Register(hub); err != nil {
		t.Fatal(err)
	}
	dir, display := startBridge(t, hub)
	op, err := xrdp.New(xrdp.Options{Display: display, SocketDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t)
	srv, err := server.Start(ctx, op, server.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	md, err := srv.WaitDevice(ctx, hwid("MEM"))
	if err != nil {
		t.Fatal(err)
	}
	ed, err := srv.WaitDevice(ctx, hwid("EMU"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := srv.Open(ctx, md.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	data := bytes.Repeat([]byte("xrdp stream "), 2000) // 24 KB: under xrdp.MaxWrite with its header
	if n, err := h.Write(ctx, 1000, data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	// Concurrent reads of several sizes: their replies arrive as one
	// stream, cut at 1590 bytes, and must be told apart by the requests.
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 1 + i*1500
			got, err := h.Read(ctx, 1000, n)
			if err != nil || !bytes.Equal(got, data[:n]) {
				t.Errorf("Read %d: %d bytes, %v", n, len(got), err)
			}
		}()
	}
	wg.Wait()
	// A write over xrdp's 32768-byte message limit fails alone.
	if _, err := h.Write(ctx, 0, make([]byte, 40000)); !errors.Is(err, dvc.ErrTooLarge) {
		t.Errorf("oversized Write: %v, want dvc.ErrTooLarge", err)
	}
	eh, err := srv.Open(ctx, ed.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	defer eh.Close()
	if out, err := eh.IoControl(ctx, device.IoctlDemoEcho, []byte("framed"), 6); err != nil || string(out) != "framed" {
		t.Errorf("echo = %q, %v", out, err)
	}
	events := make(chan []byte, 1)
	srv.Subscribe(device.DemoEventGUID, func(e server.CustomEvent) { events <- bytes.Clone(e.Data) })
	if _, err := eh.IoControl(ctx, device.IoctlDemoRaise, []byte("over xrdp"), 4); err != nil {
		t.Fatal(err)
	}
	if e := <-events; string(e) != "over xrdp" {
		t.Errorf("event %q", e)
	}
	slow, cancel := context.WithCancel(ctx)
	errc := make(chan error, 1)
	go func() { _, err := eh.IoControl(slow, ioctlBlock, nil, 0); errc <- err }()
	<-started
	cancel()
	var he *hresult.Error
	if err := <-errc; !errors.Is(err, context.Canceled) || !errors.As(err, &he) || he.Code != device.ErrorOperationAborted {
		t.Errorf("cancelled IOCTL: %v", err)
	}
}
