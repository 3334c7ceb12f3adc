package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/portable"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.DiscardHandler)

// patience bounds waits; only a hang reaches it.
const patience = 30 * time.Second

// pair is one portable connection with the client role on one end and the
// server role on the other.
type pair struct {
	srv *server.Server
	cl  *client.Client
	// hangup ends the client's side of the connection, as a client that
	// disconnects does, and waits until it has.
	hangup func()
}

// connect starts a client redirecting devs and a server, joined by the
// portable transport over loopback TCP. Everything stops at test cleanup.
func connect(tb testing.TB, cfg server.Config, devs ...device.Device) *pair {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	cl, err := client.New(client.Config{Logger: quiet}, devs...)
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	clientCtx, stopClient := context.WithCancel(ctx)
	clientDone := make(chan error, 1)
	go func() {
		pc, err := portable.Dial(clientCtx, ln.Addr().String(), portable.Config{Logger: quiet})
		if err != nil {
			clientDone <- err
			return
		}
		if err := cl.Register(pc); err != nil {
			pc.Close()
			clientDone <- err
			return
		}
		clientDone <- pc.Run(clientCtx)
	}()
	conn, err := ln.Accept(ctx)
	ln.Close()
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	go conn.Run(context.Background())
	srv, err := server.Start(ctx, conn, cfg)
	if err != nil {
		stop()
		conn.Close()
		tb.Fatal(err)
	}
	var hungUp sync.Once
	hangup := func() { hungUp.Do(func() { stopClient(); <-clientDone }) }
	tb.Cleanup(func() {
		srv.Close()
		stop()
		hangup()
		conn.Close()
		cl.Close()
	})
	return &pair{srv: srv, cl: cl, hangup: hangup}
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	tb.Cleanup(cancel)
	return ctx
}

func hwid(id string) func(server.Device) bool {
	return func(d server.Device) bool { return len(d.HardwareIDs) > 0 && d.HardwareIDs[0] == id }
}

func TestEndToEnd(t *testing.T) {
	mem, err := device.NewMemory(1<<20, device.Description{Text: "memory", HardwareIDs: []string{"MEM"}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := device.NewDemo(device.Description{Text: "emulated", HardwareIDs: []string{"EMU"}}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var (
		evMu   sync.Mutex
		events []server.DeviceEvent
	)
	p := connect(t, server.Config{OnDevice: func(e server.DeviceEvent) { evMu.Lock(); events = append(events, e); evMu.Unlock() }}, mem, emu)
	ctx := ctxT(t)
	md, err := p.srv.WaitDevice(ctx, hwid("MEM"))
	if err != nil {
		t.Fatal(err)
	}
	ed, err := p.srv.WaitDevice(ctx, hwid("EMU"))
	if err != nil {
		t.Fatal(err)
	}
	if md.DeviceDescription != "memory" || ed.DeviceDescription != "emulated" {
		t.Errorf("descriptions %q, %q", md.DeviceDescription, ed.DeviceDescription)
	}

	// Open, write at an offset, read back; the client's device holds it.
	h, err := p.srv.Open(ctx, md.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{0xA5, 0x5A, 1, 2, 3}, 2000) // 10,000 bytes: several DVC PDUs each way
	if n, err := h.Write(ctx, 0x12345, data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	got, err := h.Read(ctx, 0x12345, len(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Read back %d bytes, %v", len(got), err)
	}
	if !bytes.Equal(mem.Snapshot(0x12345, len(data)), data) {
		t.Error("the client's memory device does not hold the written bytes")
	}
	// Reading past the end is short, not an error (ReadFile semantics).
	if got, err := h.Read(ctx, 1<<20-3, 10); err != nil || len(got) != 3 {
		t.Errorf("Read at the end = %d bytes, %v", len(got), err)
	}

	// IOCTL, cancel of a slow IOCTL, custom event on the emulated device.
	eh, err := p.srv.Open(ctx, ed.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := eh.IoControl(ctx, device.IoctlDemoEcho, []byte("0123456789"), 4); err != nil || string(out) != "0123" {
		t.Errorf("echo IOCTL = %q, %v", out, err)
	}
	slowCtx, cancel := context.WithCancel(ctx)
	slowErr := make(chan error, 1)
	go func() { _, err := eh.IoControl(slowCtx, device.IoctlDemoSlow, nil, 0); slowErr <- err }()
	// Pipelined: other calls complete while the slow one is pending.
	for i := range 5 {
		if out, err := eh.IoControl(ctx, device.IoctlDemoEcho, []byte{byte(i)}, 1); err != nil || out[0] != byte(i) {
			t.Errorf("echo while slow pending = %v, %v", out, err)
		}
	}
	cancel()
	err = <-slowErr
	var he *hresult.Error
	if !errors.Is(err, context.Canceled) || !errors.As(err, &he) || he.Code != device.ErrorOperationAborted {
		t.Errorf("cancelled slow IOCTL: %v, want context.Canceled and ERROR_OPERATION_ABORTED", err)
	}
	evs := make(chan server.CustomEvent, 4)
	p.srv.Subscribe(device.DemoEventGUID, func(e server.CustomEvent) {
		evs <- server.CustomEvent{DeviceID: e.DeviceID, Handle: e.Handle, GUID: e.GUID, Data: bytes.Clone(e.Data)}
	})
	out, err := eh.IoControl(ctx, device.IoctlDemoRaise, []byte("event data"), 4)
	if err != nil || binary.LittleEndian.Uint32(out) != 1 {
		t.Fatalf("raise = %x, %v", out, err)
	}
	select {
	case e := <-evs:
		if e.DeviceID != ed.ClientDeviceID || e.Handle != eh || string(e.Data) != "event data" {
			t.Errorf("event %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no custom event")
	}

	// Hot-plug: a device added at run time arrives; a removal ends the
	// handles open on it.
	mem2, _ := device.NewMemory(4096, device.Description{Text: "hot", HardwareIDs: []string{"HOT"}})
	id2, err := p.cl.AddDevice(mem2)
	if err != nil {
		t.Fatal(err)
	}
	hd, err := p.srv.WaitDevice(ctx, hwid("HOT"))
	if err != nil || hd.ClientDeviceID != id2 {
		t.Fatalf("hot-plugged device: %+v, %v", hd, err)
	}
	if err := p.cl.RemoveDevice(ctx, md.ClientDeviceID); err != nil {
		t.Fatal(err)
	}
	if err := p.srv.WaitRemoved(ctx, md.ClientDeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Read(ctx, 0, 1); !errors.Is(err, server.ErrDeviceRemoved) {
		t.Errorf("Read on the removed device: %v, want ErrDeviceRemoved", err)
	}
	if _, err := p.srv.Open(ctx, md.ClientDeviceID); !errors.Is(err, server.ErrNoDevice) {
		t.Errorf("Open of the removed device: %v, want ErrNoDevice", err)
	}
	// The other devices go on working.
	if out, err := eh.IoControl(ctx, device.IoctlDemoEcho, []byte("x"), 1); err != nil || string(out) != "x" {
		t.Errorf("echo after another device's removal = %q, %v", out, err)
	}
	eh.Close()
	evMu.Lock()
	var kinds []string
	for _, e := range events {
		kinds = append(kinds, fmt.Sprintf("%v:%d", e.Kind, e.Device.ClientDeviceID))
	}
	evMu.Unlock()
	want := fmt.Sprintf("[device-arrived:%d device-arrived:%d device-arrived:%d device-removed:%d]", md.ClientDeviceID, ed.ClientDeviceID, id2, md.ClientDeviceID)
	if fmt.Sprint(kinds) != want {
		t.Errorf("device events %v, want %s", kinds, want)
	}
}

// TestReadOnlyFile: a read-only file device opens (a Windows server asks
// for read and write, Appendix A <9>) but refuses writes with
// ERROR_WRITE_PROTECT and the file is unchanged.
func TestReadOnlyFile(t *testing.T) {
	path := t.TempDir() + "/ro.img"
	orig := []byte("read-only contents")
	if err := writeFile(path, orig); err != nil {
		t.Fatal(err)
	}
	f, err := device.NewFile(path, true, device.Description{Text: "ro", HardwareIDs: []string{"RO"}})
	if err != nil {
		t.Fatal(err)
	}
	p := connect(t, server.Config{}, f)
	ctx := ctxT(t)
	d, err := p.srv.WaitDevice(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.srv.Open(ctx, d.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	_, err = h.Write(ctx, 0, []byte("XX"))
	var he *hresult.Error
	if !errors.As(err, &he) || he.Code != device.ErrorWriteProtect {
		t.Errorf("Write: %v, want ERROR_WRITE_PROTECT", err)
	}
	if got, err := h.Read(ctx, 0, 100); err != nil || !bytes.Equal(got, orig) {
		t.Errorf("Read = %q, %v", got, err)
	}
	if got, _ := readFile(path); !bytes.Equal(got, orig) {
		t.Errorf("file changed to %q", got)
	}
}

// TestThousandHandles opens 1,000 handles at once on one connection, each
// its own FileRedirectorChannel instance, and uses every one.
func TestThousandHandles(t *testing.T) {
	const n = 1000
	mem, err := device.NewMemory(n*8, device.Description{Text: "memory", HardwareIDs: []string{"MEM"}})
	if err != nil {
		t.Fatal(err)
	}
	p := connect(t, server.Config{}, mem)
	ctx := ctxT(t)
	d, err := p.srv.WaitDevice(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	handles := make([]*server.Handle, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 50) // opens in flight
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			h, err := p.srv.Open(ctx, d.ClientDeviceID)
			if err != nil {
				errs <- fmt.Errorf("open %d: %w", i, err)
				return
			}
			handles[i] = h
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := mem.OpenHandles(); got != n {
		t.Fatalf("the device has %d handles open, want %d", got, n)
	}
	ids := map[uint32]bool{}
	for _, h := range handles {
		if ids[h.ChannelID()] {
			t.Fatalf("two handles share ChannelId %d", h.ChannelID())
		}
		ids[h.ChannelID()] = true
	}
	// Every handle writes its own slot, then reads it back.
	for i, h := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], uint64(i)*0x0101010101)
			if _, err := h.Write(ctx, uint64(i)*8, b[:]); err != nil {
				t.Errorf("handle %d: Write: %v", i, err)
				return
			}
			if got, err := h.Read(ctx, uint64(i)*8, 8); err != nil || !bytes.Equal(got, b[:]) {
				t.Errorf("handle %d: Read = %x, %v", i, got, err)
			}
		}()
	}
	wg.Wait()
	for _, h := range handles {
		h.Close()
	}
	// The client closes its backend handle when it sees the channel
	// close; wait for all of them.
	for deadline := time.Now().Add(patience); mem.OpenHandles() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d device handles still open after closing every server handle", mem.OpenHandles())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConcurrentCancels: several calls cancelled at once on one handle,
// each with its own IoCancel (all sent with RequestId 0xFFFFFF): each is
// answered, and the handle goes on working.
func TestConcurrentCancels(t *testing.T) {
	emu, err := device.NewDemo(device.Description{Text: "emulated", HardwareIDs: []string{"EMU"}}, 0)
	if err != nil {
		t.Fatal(err)
	}
	started := blockingIoctl(emu)
	p := connect(t, server.Config{}, emu)
	ctx := ctxT(t)
	d, err := p.srv.WaitDevice(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.srv.Open(ctx, d.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	const n = 20
	cctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, n)
	for range n {
		go func() { _, err := h.IoControl(cctx, ioctlBlock, nil, 0); errs <- err }()
	}
	for range n {
		<-started // all n are in progress at the device
	}
	cancel()
	for range n {
		err := <-errs
		var he *hresult.Error
		if !errors.Is(err, context.Canceled) || !errors.As(err, &he) || he.Code != device.ErrorOperationAborted {
			t.Errorf("cancelled IOCTL: %v", err)
		}
	}
	if out, err := h.IoControl(ctx, device.IoctlDemoEcho, []byte("y"), 1); err != nil || string(out) != "y" {
		t.Errorf("echo after the cancels = %q, %v", out, err)
	}
}

// TestConnectionLost: when the client goes away, every pending call
// fails promptly with dvc.ErrConnectionLost and every device is removed.
func TestConnectionLost(t *testing.T) {
	emu, err := device.NewDemo(device.Description{Text: "emulated", HardwareIDs: []string{"EMU"}}, 4096)
	if err != nil {
		t.Fatal(err)
	}
	started := blockingIoctl(emu)
	removed := make(chan server.DeviceEvent, 1)
	p := connect(t, server.Config{OnDevice: func(e server.DeviceEvent) {
		if e.Kind == server.DeviceRemoved {
			removed <- e
		}
	}}, emu)
	ctx := ctxT(t)
	d, err := p.srv.WaitDevice(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.srv.Open(ctx, d.ClientDeviceID)
	if err != nil {
		t.Fatal(err)
	}
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() { _, err := h.IoControl(context.Background(), ioctlBlock, nil, 0); errs <- err }()
	}
	for range n {
		<-started
	}
	p.hangup()
	for range n {
		if err := <-errs; !errors.Is(err, dvc.ErrConnectionLost) || !errors.Is(err, server.ErrChannelLost) {
			t.Errorf("pending call: %v, want ErrChannelLost and dvc.ErrConnectionLost", err)
		}
	}
	select {
	case e := <-removed:
		if e.Device.ClientDeviceID != d.ClientDeviceID || !errors.Is(e.Err, dvc.ErrConnectionLost) {
			t.Errorf("removal %+v", e)
		}
	case <-ctx.Done():
		t.Fatal("no removal event after the connection ended")
	}
	<-p.srv.Done()
	if _, err := p.srv.Open(ctx, d.ClientDeviceID); err == nil {
		t.Error("Open after the connection ended succeeded")
	}
}

// ioctlBlock is an I/O control code that blockingIoctl makes wait until
// cancelled.
const ioctlBlock = 0x0022200C

// blockingIoctl makes ioctlBlock on e tell the returned channel when it
// starts, then wait until cancelled: so a test knows its requests are in
// progress at the device.
func blockingIoctl(e *device.Emulated) <-chan struct{} {
	started := make(chan struct{}, 1000)
	e.SetIoctl(ioctlBlock, func(ctx context.Context, in []byte, outMax uint32) ([]byte, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	return started
}
