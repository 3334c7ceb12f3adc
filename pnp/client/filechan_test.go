package client

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// IDs of the devices testDevices returns, in order.
const (
	memID  = 1 // 4 KiB memory device
	emuID  = 2 // demo emulated device plus ioctlTooBig and ioctlBlock
	roID   = 3 // read-only file holding roContent
	noSuch = 99
)

const (
	ioctlTooBig = 0x00222100 // returns cbOut+1 bytes
	ioctlBlock  = 0x00222104 // waits for cancellation; reports it on blocked
	roContent   = "read-only content"
)

type testDevices struct {
	mem, emu, ro *spy
	emulated     *device.Emulated
	memory       *device.Memory
	roPath       string
	started      chan uint32 // ioctlBlock: the first byte of DataIn, when it starts
	ctxs         sync.Map    // ioctlBlock: first byte of DataIn → its context
	cancelled    chan uint32 // ioctlBlock: the same, when its ctx is done
}

func newTestDevices(t *testing.T) *testDevices {
	t.Helper()
	d := &testDevices{started: make(chan uint32, 64), cancelled: make(chan uint32, 64)}
	mem, err := device.NewMemory(4096, device.Description{Text: "memory", HardwareIDs: []string{`RDPDVC\MEM`}})
	if err != nil {
		t.Fatal(err)
	}
	emu, err := device.NewDemo(device.Description{Text: "emulated"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	emu.SetIoctl(ioctlTooBig, func(_ context.Context, _ []byte, outMax uint32) ([]byte, error) {
		return make([]byte, outMax+1), nil
	})
	emu.SetIoctl(ioctlBlock, func(ctx context.Context, in []byte, _ uint32) ([]byte, error) {
		tag := uint32(0)
		if len(in) > 0 {
			tag = uint32(in[0])
		}
		d.ctxs.Store(tag, ctx)
		d.started <- tag
		<-ctx.Done()
		d.cancelled <- tag
		return nil, ctx.Err()
	})
	d.roPath = filepath.Join(tempDir(t), "ro.bin")
	if err := os.WriteFile(d.roPath, []byte(roContent), 0o644); err != nil {
		t.Fatal(err)
	}
	ro, err := device.NewFile(d.roPath, true, device.Description{Text: "read-only file"})
	if err != nil {
		t.Fatal(err)
	}
	d.memory, d.emulated = mem, emu
	d.mem, d.emu, d.ro = &spy{Device: mem}, &spy{Device: emu}, &spy{Device: ro}
	return d
}

func (d *testDevices) list() []device.Device { return []device.Device{d.mem, d.emu, d.ro} }

func (d *testDevices) touched() int32 { return d.mem.touched() + d.emu.touched() + d.ro.touched() }

func readReq(id uint32, n uint32, off uint64) []byte {
	return wire.ReadRequest{RequestID: id, BytesToRead: n, Offset: off}.Append(nil)
}

func writeReq(id uint32, off uint64, data string) []byte {
	return wire.WriteRequest{RequestID: id, Offset: off, Data: []byte(data)}.Append(nil)
}

func ioctlReq(id, code, cbOut uint32, in, out []byte) []byte {
	return wire.IOControlRequest{RequestID: id, IoCode: code, OutputBufferSize: cbOut, DataIn: in, DataOut: out}.Append(nil)
}

func capsReq(id uint32) []byte {
	return wire.ServerCapabilitiesRequest{RequestID: id, Version: wire.IOVersionCustomEvents}.Append(nil)
}

func createReq(id, dev uint32) []byte {
	return wire.CreateFileRequest{
		RequestID: id, DeviceID: dev, DesiredAccess: wire.GenericRead | wire.GenericWrite,
		ShareMode: wire.FileShareRead | wire.FileShareWrite, CreationDisposition: wire.OpenExisting,
	}.Append(nil)
}

func header(id uint32, fn wire.FunctionID) []byte {
	return wire.ServerIOHeader{RequestID: id, FunctionID: fn}.Append(nil)
}

// TestFileRedirectorBadInput holds the client to each rule of doc.go for
// input a server should not send: the instance is closed, or the request
// is answered with the HRESULT named, and the device is not touched unless
// the case says so.
func TestFileRedirectorBadInput(t *testing.T) {
	const (
		none    = iota // nothing sent yet
		caps           // capabilities exchanged
		open           // and a handle open on dev
		failed         // and a CreateFile for an unknown device failed
		removed        // capabilities exchanged, and memID removed
	)
	cases := []struct {
		name   string
		setup  int
		dev    uint32 // device for setup open (memID if 0)
		msgs   [][]byte
		closed bool
		fn     wire.FunctionID // else the function of the one reply expected
		result hresult.HRESULT
		id     uint32 // and its RequestId
		touch  bool   // the device may be touched
	}{
		{name: "capabilities not first: Read", setup: none, msgs: [][]byte{readReq(1, 4, 0)}, closed: true},
		{name: "capabilities not first: CreateFile", setup: none, msgs: [][]byte{createReq(1, memID)}, closed: true},
		{name: "capabilities not first: IoCancel", setup: none, msgs: [][]byte{wire.NewSpecificIoCancelRequest(1, 2).Append(nil)}, closed: true},
		{name: "too short for SERVER_IO_HEADER", setup: none, msgs: [][]byte{{5, 0, 0}}, closed: true},
		{name: "too short for SERVER_IO_HEADER after CreateFile", setup: open, msgs: [][]byte{{}}, closed: true},
		{name: "unknown FunctionId first", setup: none, msgs: [][]byte{header(1, 3)}, closed: true},
		{name: "unknown FunctionId 3", setup: caps, msgs: [][]byte{header(1, 3)}, closed: true},
		{name: "unknown FunctionId 7 with a handle open", setup: open, msgs: [][]byte{header(1, 7)}, closed: true},
		{name: "unknown FunctionId 0xFFFFFFFF", setup: open, msgs: [][]byte{header(1, 0xFFFFFFFF)}, closed: true},
		{name: "capabilities request that does not decode", setup: none, msgs: [][]byte{header(1, wire.FunctionCapabilities)}, closed: true},
		{name: "second capabilities request", setup: caps, msgs: [][]byte{capsReq(2)}, closed: true},
		{name: "Read before CreateFile", setup: caps, msgs: [][]byte{readReq(2, 4, 0)}, closed: true},
		{name: "Write before CreateFile", setup: caps, msgs: [][]byte{writeReq(2, 0, "x")}, closed: true},
		{name: "IOControl before CreateFile", setup: caps, msgs: [][]byte{ioctlReq(2, device.IoctlDemoEcho, 4, nil, nil)}, closed: true},
		{name: "second CreateFile", setup: open, msgs: [][]byte{createReq(2, memID)}, closed: true},
		{name: "CreateFile after a failed one", setup: failed, msgs: [][]byte{createReq(2, memID)}, closed: true},

		{name: "CreateFile for a device never announced", setup: caps, msgs: [][]byte{createReq(7, noSuch)}, fn: wire.FunctionCreateFile, result: device.ErrorFileNotFound, id: 7},
		{name: "CreateFile for a removed device", setup: removed, msgs: [][]byte{createReq(7, memID)}, fn: wire.FunctionCreateFile, result: device.ErrorDevNotExist, id: 7},
		{name: "CreateFile that does not decode", setup: caps, msgs: [][]byte{header(7, wire.FunctionCreateFile)}, fn: wire.FunctionCreateFile, result: device.ErrorInvalidParameter, id: 7},
		{name: "Read after a failed CreateFile", setup: failed, msgs: [][]byte{readReq(8, 4, 0)}, fn: wire.FunctionRead, result: device.ErrorInvalidHandle, id: 8},
		{name: "IoCancel before CreateFile is ignored", setup: caps, msgs: [][]byte{wire.NewSpecificIoCancelRequest(1, 2).Append(nil), createReq(3, memID)}, fn: wire.FunctionCreateFile, result: hresult.S_OK, id: 3, touch: true},
		{name: "IoCancel of nothing is ignored", setup: open, msgs: [][]byte{wire.NewSpecificIoCancelRequest(9, 5).Append(nil), readReq(6, 4, 0)}, fn: wire.FunctionRead, result: hresult.S_OK, id: 6, touch: true},
		{name: "IoCancel that does not decode is ignored", setup: open, msgs: [][]byte{header(9, wire.FunctionSpecificIoCancel), readReq(6, 4, 0)}, fn: wire.FunctionRead, result: hresult.S_OK, id: 6, touch: true},
		{name: "Read that does not decode", setup: open, msgs: [][]byte{readReq(4, 4, 0)[:12]}, fn: wire.FunctionRead, result: device.ErrorInvalidParameter, id: 4},
		{name: "Read over the ceiling", setup: open, msgs: [][]byte{readReq(4, wire.MaxReadBytes+1, 0)}, fn: wire.FunctionRead, result: device.ErrorInvalidParameter, id: 4},
		{name: "Write that does not decode", setup: open, msgs: [][]byte{writeReq(4, 0, "abc")[:15]}, fn: wire.FunctionWrite, result: device.ErrorInvalidParameter, id: 4},
		{name: "IOControl DataOut shorter than cbOut", setup: open, dev: emuID, msgs: [][]byte{ioctlReq(5, device.IoctlDemoEcho, 4, []byte{1}, []byte{0, 0})}, fn: wire.FunctionIOControl, result: device.ErrorInsufficientBuffer, id: 5},
		{name: "IOControl DataOut longer than cbOut", setup: open, dev: emuID, msgs: [][]byte{ioctlReq(5, device.IoctlDemoEcho, 1, []byte{1}, []byte{0, 0})}, fn: wire.FunctionIOControl, result: device.ErrorInsufficientBuffer, id: 5},
		{name: "IOControl DataOut exactly cbOut", setup: open, dev: emuID, msgs: [][]byte{ioctlReq(5, device.IoctlDemoEcho, 2, []byte{1}, []byte{0, 0})}, fn: wire.FunctionIOControl, result: hresult.S_OK, id: 5, touch: true},
		{name: "IOControl DataOut absent", setup: open, dev: emuID, msgs: [][]byte{ioctlReq(5, device.IoctlDemoEcho, 2, []byte{1}, nil)}, fn: wire.FunctionIOControl, result: hresult.S_OK, id: 5, touch: true},
		{name: "IOControl output over cbOut", setup: open, dev: emuID, msgs: [][]byte{ioctlReq(5, ioctlTooBig, 3, nil, nil)}, fn: wire.FunctionIOControl, result: device.ErrorInsufficientBuffer, id: 5, touch: true},
		{name: "IOControl the device does not know", setup: open, dev: emuID, msgs: [][]byte{ioctlReq(5, 0x1234, 3, nil, nil)}, fn: wire.FunctionIOControl, result: device.ErrorInvalidFunction, id: 5, touch: true},
		{name: "Write to a read-only device", setup: open, dev: roID, msgs: [][]byte{writeReq(5, 0, "XXXX")}, fn: wire.FunctionWrite, result: device.ErrorWriteProtect, id: 5, touch: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := newTestDevices(t)
			s := newServer(t, Config{}, d.list()...)
			s.pnpdrReady()
			var conn dvc.Conn
			switch c.setup {
			case none:
				conn = s.open(wire.ChannelFileRedirector)
			case caps:
				conn = s.fileChannel(wire.IOVersionCustomEvents)
			case open:
				dev := c.dev
				if dev == 0 {
					dev = memID
				}
				conn = s.openDevice(dev)
			case removed:
				conn = s.fileChannel(wire.IOVersionCustomEvents)
				if err := s.c.RemoveDevice(context.Background(), memID); err != nil {
					t.Fatal(err)
				}
			case failed:
				conn = s.fileChannel(wire.IOVersionCustomEvents)
				if r := createFile(t, conn, 1, noSuch); r != device.ErrorFileNotFound {
					t.Fatalf("setup CreateFile: %v", r)
				}
			}
			before := d.touched()
			send(t, conn, c.msgs...)
			if c.closed {
				wantClosed(t, conn)
			} else {
				r := reply(t, conn, c.fn)
				if got := result(r); got != c.result || r.Header().RequestID != c.id {
					t.Fatalf("reply %+v: result %v for RequestId %d; want %v for %d", r, got, r.Header().RequestID, c.result, c.id)
				}
				if io, ok := r.(wire.IOControlReply); ok && c.result != hresult.S_OK && len(io.Data) != 0 {
					t.Fatalf("a failed IOControl returned %d bytes", len(io.Data))
				}
			}
			if !c.touch {
				if after := d.touched(); after != before {
					t.Fatalf("the devices saw %d calls; want none", after-before)
				}
			}
			if got, _ := os.ReadFile(d.roPath); string(got) != roContent {
				t.Fatalf("the read-only file now holds %q", got)
			}
		})
	}
}

func TestReadWriteAtOffsets(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(memID)
	send(t, conn, writeReq(2, 4090, "abcdefgh"))
	w := reply(t, conn, wire.FunctionWrite).(wire.WriteReply)
	if w.Result != device.ErrorDiskFull || w.BytesWritten != 6 {
		t.Fatalf("write across the end: %+v", w)
	}
	send(t, conn, writeReq(3, 100, "hello"), readReq(4, 8, 98))
	got := map[uint32]wire.Reply{}
	for range 2 {
		// The two replies may come in either order.
		m := recv(t, conn)
		h, _ := wire.ParseClientIOHeader(m)
		fn := wire.FunctionWrite
		if h.RequestID == 4 {
			fn = wire.FunctionRead
		}
		r, err := wire.ParseReply(m, fn)
		if err != nil {
			t.Fatal(err)
		}
		got[h.RequestID] = r
	}
	if w := got[3].(wire.WriteReply); w.Result != 0 || w.BytesWritten != 5 {
		t.Fatalf("write: %+v", w)
	}
	// The read may have run before the write: check the device instead.
	if snap := d.memory.Snapshot(98, 8); !bytes.Equal(snap, []byte("\x00\x00hello\x00")) {
		t.Fatalf("device holds % x", snap)
	}
	send(t, conn, readReq(5, 8, 98))
	r := reply(t, conn, wire.FunctionRead).(wire.ReadReply)
	if r.Result != 0 || string(r.Data) != "\x00\x00hello\x00" {
		t.Fatalf("read: %+v", r)
	}
	send(t, conn, readReq(6, 16, 4090))
	if r := reply(t, conn, wire.FunctionRead).(wire.ReadReply); r.Result != 0 || string(r.Data) != "abcdef" {
		t.Fatalf("short read at the end: %+v", r)
	}
}

func TestReadOnlyFile(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(roID)
	send(t, conn, readReq(2, 64, 5))
	if r := reply(t, conn, wire.FunctionRead).(wire.ReadReply); r.Result != 0 || string(r.Data) != roContent[5:] {
		t.Fatalf("read: %+v", r)
	}
	send(t, conn, writeReq(3, 0, "XX"))
	if r := reply(t, conn, wire.FunctionWrite).(wire.WriteReply); r.Result != device.ErrorWriteProtect || r.BytesWritten != 0 {
		t.Fatalf("write: %+v", r)
	}
	// Dispositions that would create or truncate are refused on open.
	for i, disp := range []uint32{wire.CreateNew, wire.CreateAlways, wire.TruncateExisting} {
		conn := s.fileChannel(wire.IOVersionCustomEvents)
		send(t, conn, wire.CreateFileRequest{RequestID: 1, DeviceID: roID, DesiredAccess: wire.GenericRead | wire.GenericWrite, CreationDisposition: disp}.Append(nil))
		if r := reply(t, conn, wire.FunctionCreateFile); result(r) != device.ErrorWriteProtect {
			t.Fatalf("disposition %d (%d): %v", disp, i, result(r))
		}
	}
	if got, _ := os.ReadFile(d.roPath); string(got) != roContent {
		t.Fatalf("the file now holds %q", got)
	}
}

// TestDuplicateRequestID: a RequestId equal to an outstanding one closes
// the instance (3.1.1), and the outstanding operation is cancelled.
func TestDuplicateRequestID(t *testing.T) {
	for _, dup := range [][]byte{readReq(5, 4, 0), writeReq(5, 0, "x"), ioctlReq(5, device.IoctlDemoEcho, 1, nil, nil)} {
		d := newTestDevices(t)
		s := newServer(t, Config{}, d.list()...)
		s.pnpdrReady()
		conn := s.openDevice(emuID)
		send(t, conn, ioctlReq(5, ioctlBlock, 0, []byte{5}, nil))
		<-d.started
		send(t, conn, dup)
		wantClosed(t, conn)
		if tag := <-d.cancelled; tag != 5 {
			t.Fatalf("cancelled %d", tag)
		}
	}
}

func TestMaxOutstanding(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{MaxOutstanding: 2}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(emuID)
	send(t, conn, ioctlReq(10, ioctlBlock, 0, []byte{10}, nil), ioctlReq(11, ioctlBlock, 0, []byte{11}, nil))
	<-d.started
	<-d.started
	before := d.touched()
	send(t, conn, readReq(12, 4, 0))
	r := reply(t, conn, wire.FunctionRead)
	if result(r) != device.ErrorNoSystemResources || r.Header().RequestID != 12 {
		t.Fatalf("over the ceiling: %+v", r)
	}
	if d.touched() != before {
		t.Fatal("the refused request reached the device")
	}
	// Cancelling one makes room again.
	send(t, conn, wire.NewSpecificIoCancelRequest(0xFFFFFF, 10).Append(nil))
	if r := reply(t, conn, wire.FunctionIOControl); result(r) != device.ErrorOperationAborted || r.Header().RequestID != 10 {
		t.Fatalf("cancelled: %+v", r)
	}
	send(t, conn, ioctlReq(12, device.IoctlDemoEcho, 1, []byte{7}, nil))
	if r := reply(t, conn, wire.FunctionIOControl); result(r) != 0 || r.Header().RequestID != 12 {
		t.Fatalf("after a slot freed: %+v", r)
	}
}

// TestPipelinedAndCancelled: requests run concurrently and are answered
// as they complete; an IoCancel in either layout cancels the request,
// whose reply still comes.
func TestPipelinedAndCancelled(t *testing.T) {
	const id = 0x000102 // its two readings differ
	diagram := wire.NewSpecificIoCancelRequest(0xFFFFFF, id).Append(nil)
	alt := append(header(0xFFFFFF, wire.FunctionSpecificIoCancel), 0x02, 0x01, 0x00, 0x00) // section 4.4 reading: bytes 8-10
	for name, cancel := range map[string][]byte{"diagram": diagram, "section 4.4": alt} {
		t.Run(name, func(t *testing.T) {
			d := newTestDevices(t)
			s := newServer(t, Config{}, d.list()...)
			s.pnpdrReady()
			conn := s.openDevice(emuID)
			send(t, conn, ioctlReq(id, ioctlBlock, 8, []byte{1}, nil), ioctlReq(7, device.IoctlDemoEcho, 8, []byte("later"), nil))
			// The echo, sent second, is answered first: the first blocks.
			r := reply(t, conn, wire.FunctionIOControl).(wire.IOControlReply)
			if r.RequestID != 7 || string(r.Data) != "later" {
				t.Fatalf("first reply %+v", r)
			}
			<-d.started
			send(t, conn, cancel)
			r = reply(t, conn, wire.FunctionIOControl).(wire.IOControlReply)
			if r.RequestID != id || r.Result != device.ErrorOperationAborted {
				t.Fatalf("cancelled reply %+v", r)
			}
			// A second cancel, now of nothing, is ignored.
			send(t, conn, cancel, readReq(8, 1, 0))
			if r := reply(t, conn, wire.FunctionRead); r.Header().RequestID != 8 || result(r) != device.ErrorInvalidFunction {
				t.Fatalf("after the late cancel: %+v", r)
			}
		})
	}
}

// TestLateCancelSparesOthers: a cancel for a request that has completed
// must not be read the other way and cancel an unrelated one.
func TestLateCancelSparesOthers(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(emuID)
	const done = 0x000100
	send(t, conn, ioctlReq(done, device.IoctlDemoEcho, 0, nil, nil))
	reply(t, conn, wire.FunctionIOControl)
	// The diagram layout of a cancel of 0x000100 reads, the other way,
	// as a cancel of 0x010000.
	late := wire.NewSpecificIoCancelRequest(0xFFFFFF, done)
	if late.AltIDToCancel() != 0x010000 {
		t.Fatalf("alt reading %06X", late.AltIDToCancel())
	}
	send(t, conn, ioctlReq(0x010000, ioctlBlock, 0, []byte{9}, nil))
	<-d.started
	send(t, conn, late.Append(nil), ioctlReq(3, device.IoctlDemoEcho, 1, []byte{3}, nil))
	if r := reply(t, conn, wire.FunctionIOControl); r.Header().RequestID != 3 {
		t.Fatalf("got the reply to %06X first: the late cancel hit it", r.Header().RequestID)
	}
	// The cancel was handled before the echo was even read, so had it hit
	// 0x010000, that request's context would be done by now.
	ctx, _ := d.ctxs.Load(uint32(9))
	if err := ctx.(context.Context).Err(); err != nil {
		t.Fatalf("the late cancel of %06X cancelled 0x010000", done)
	}
}

// TestRequestsWaitForOpen: requests pipelined behind the CreateFile are
// answered after it, in a device whose Open is slow.
func TestRequestsWaitForOpen(t *testing.T) {
	mem, _ := device.NewMemory(16, device.Description{Text: "slow"})
	gate := make(chan struct{})
	slow := &slowOpen{Device: mem, gate: gate}
	s := newServer(t, Config{}, slow)
	s.pnpdrReady()
	conn := s.fileChannel(wire.IOVersionCustomEvents)
	send(t, conn, createReq(1, 1), writeReq(2, 0, "ab"), readReq(3, 2, 0))
	close(gate)
	if r := reply(t, conn, wire.FunctionCreateFile); result(r) != 0 || r.Header().RequestID != 1 {
		t.Fatalf("first reply %+v, want the CreateFile's", r)
	}
	seen := map[uint32]bool{}
	for range 2 {
		h, _ := wire.ParseClientIOHeader(recv(t, conn))
		seen[h.RequestID] = true
	}
	if !seen[2] || !seen[3] {
		t.Fatalf("replies for %v", seen)
	}
}

type slowOpen struct {
	device.Device
	gate chan struct{}
}

func (s *slowOpen) Open(ctx context.Context, req device.OpenRequest) (device.Handle, error) {
	select {
	case <-s.gate:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Device.Open(ctx, req)
}

// TestCustomEvents: events reach the instances that opened the device and
// negotiated version 6, and only those.
func TestCustomEvents(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	s.pnpdrReady()
	v6 := s.openDevice(emuID)
	v4 := s.fileChannel(wire.IOVersionNoCustomEvents)
	if r := createFile(t, v4, 1, emuID); r != 0 {
		t.Fatal(r)
	}
	other := s.openDevice(memID)
	send(t, v4, ioctlReq(2, device.IoctlDemoRaise, 4, []byte("evt"), nil))
	r := reply(t, v4, wire.FunctionIOControl).(wire.IOControlReply)
	if r.Result != 0 || !bytes.Equal(r.Data, []byte{1, 0, 0, 0}) {
		t.Fatalf("raise: %+v; want one handle told", r)
	}
	ev, err := wire.ParseClientDeviceCustomEvent(recv(t, v6))
	if err != nil || ev.CustomEventGUID != device.DemoEventGUID || string(ev.Data) != "evt" {
		t.Fatalf("event %+v, %v", ev, err)
	}
	// Neither the version 4 instance nor one on another device got one:
	// the next thing each sends is the reply to a request.
	for _, conn := range []dvc.Conn{v4, other} {
		send(t, conn, readReq(9, 1, 0))
		if h, err := wire.ParseClientIOHeader(recv(t, conn)); err != nil || h.PacketType != wire.PacketTypeResponse || h.RequestID != 9 {
			t.Fatalf("got %+v, %v; want the Read Reply", h, err)
		}
	}
	// Client configured for version 4: no events at all.
	d2 := newTestDevices(t)
	s2 := newServer(t, Config{IOVersion: wire.IOVersionNoCustomEvents}, d2.list()...)
	s2.pnpdrReady()
	conn := s2.open(wire.ChannelFileRedirector)
	send(t, conn, capsReq(0))
	if r, _ := wire.ParseClientCapabilitiesReply(recv(t, conn)); r.Version != wire.IOVersionNoCustomEvents {
		t.Fatalf("capabilities reply version %d", r.Version)
	}
	createFile(t, conn, 1, emuID)
	if n := d2.emulated.RaiseEvent(device.Event{GUID: device.DemoEventGUID}); n != 0 {
		t.Fatalf("%d handles would get events", n)
	}
}

// TestThousandHandles opens 1,000 handles on one device at once, does I/O
// on each, and closes them.
func TestThousandHandles(t *testing.T) {
	mem, _ := device.NewMemory(1<<16, device.Description{Text: "many"})
	s := newServer(t, Config{}, mem)
	s.pnpdrReady()
	var conns []dvc.Conn
	for i := range 1000 {
		conn := s.openDevice(1)
		send(t, conn, writeReq(2, uint64(i)*8, "x"))
		if r := reply(t, conn, wire.FunctionWrite); result(r) != 0 {
			t.Fatalf("handle %d: %+v", i, r)
		}
		conns = append(conns, conn)
	}
	if mem.OpenHandles() != 1000 || s.c.Devices()[0].Handles != 1000 {
		t.Fatalf("%d backend handles, %d instances", mem.OpenHandles(), s.c.Devices()[0].Handles)
	}
	for _, conn := range conns {
		conn.Close()
	}
	s.hub.Close()
	s.c.Close()
	if mem.OpenHandles() != 0 {
		t.Fatalf("%d backend handles left open", mem.OpenHandles())
	}
}

// TestMaxBufferedBytes: requests whose buffers would exceed the client's
// budget are refused without touching the device, and the budget comes
// back as requests complete, and when the instance is closed.
func TestMaxBufferedBytes(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{MaxBufferedBytes: 10000}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(emuID)
	send(t, conn, ioctlReq(10, ioctlBlock, 8000, []byte{10}, nil))
	<-d.started
	before := d.touched()
	send(t, conn, readReq(11, 4096, 0))
	if r := reply(t, conn, wire.FunctionRead); result(r) != device.ErrorNoSystemResources || r.Header().RequestID != 11 {
		t.Fatalf("over the budget: %+v", r)
	}
	if d.touched() != before {
		t.Fatal("the refused request reached the device")
	}
	if got := s.c.buffered.Load(); got != 8001 {
		t.Fatalf("%d bytes reserved, want 8001", got)
	}
	send(t, conn, wire.NewSpecificIoCancelRequest(0xFFFFFF, 10).Append(nil))
	reply(t, conn, wire.FunctionIOControl)
	waitUnreserved(t, s.c)
	send(t, conn, ioctlReq(12, device.IoctlDemoEcho, 9000, []byte{1}, nil))
	if r := reply(t, conn, wire.FunctionIOControl); result(r) != 0 {
		t.Fatalf("within the budget again: %+v", r)
	}
	waitUnreserved(t, s.c)
	send(t, conn, ioctlReq(13, ioctlBlock, 5000, []byte{13}, nil))
	<-d.started
	s.hub.Close()
	s.c.Close()
	if got := s.c.buffered.Load(); got != 0 {
		t.Fatalf("%d bytes still reserved after Close", got)
	}
}

// waitUnreserved waits until c holds no request bytes. A reply's bytes are
// given back once its Write has returned, which can be just after the
// reply has reached the test.
func waitUnreserved(t *testing.T, c *Client) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); c.buffered.Load() != 0; runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatalf("%d bytes still reserved after the reply", c.buffered.Load())
		}
	}
}

// stuckChannel is a dvc.Channel whose server has stopped reading: every
// Write waits for its context.
type stuckChannel struct {
	fakeChannel
	closed chan struct{}
	once   sync.Once
}

func (s *stuckChannel) Write(ctx context.Context, _ []byte) error {
	<-ctx.Done()
	return ctx.Err()
}

func (s *stuckChannel) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// TestStuckServer: a server that stops reading has the instance closed
// after Config.WriteTimeout, and the client does not hang.
func TestStuckServer(t *testing.T) {
	mem, _ := device.NewMemory(16, device.Description{})
	c, err := New(Config{Logger: quietLogger(), WriteTimeout: time.Millisecond}, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, name := range []string{wire.ChannelFileRedirector, wire.ChannelPNPDR} {
		ch := &stuckChannel{fakeChannel: fakeChannel{name: name}, closed: make(chan struct{})}
		l := c.FileRedirectorListener()
		first := capsReq(0)
		if name == wire.ChannelPNPDR {
			l, first = c.PNPDRListener(), serverVersion
		}
		h, err := l.Accept(ch)
		if err != nil {
			t.Fatal(err)
		}
		h.Received(first)
		<-ch.closed
		h.Closed(nil)
	}
}

// smallChannel refuses messages over max bytes, as a backend with a
// small ceiling does.
type smallChannel struct {
	fakeChannel
	max int
}

func (s *smallChannel) Write(ctx context.Context, m []byte) error {
	if len(m) > s.max {
		return dvc.ErrTooLarge
	}
	return s.fakeChannel.Write(ctx, m)
}

// TestReplyTooLargeForTransport: a read whose reply the transport cannot
// carry fails with ERROR_NO_SYSTEM_RESOURCES; the instance stays open.
func TestReplyTooLargeForTransport(t *testing.T) {
	mem, _ := device.NewMemory(4096, device.Description{})
	c, err := New(Config{Logger: quietLogger()}, mem)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ph, _ := c.PNPDRListener().Accept(&fakeChannel{name: wire.ChannelPNPDR})
	ph.Received(serverVersion)
	ph.Received(authenticated)
	ch := &smallChannel{fakeChannel: fakeChannel{name: wire.ChannelFileRedirector}, max: 100}
	h, _ := c.FileRedirectorListener().Accept(ch)
	h.Received(capsReq(0))
	h.Received(createReq(1, 1))
	for len(ch.sent()) < 2 {
		runtime.Gosched() // the CreateFile reply comes from another goroutine
	}
	h.Received(readReq(2, 1000, 0))
	h.Received(readReq(3, 10, 0))
	for len(ch.sent()) < 4 {
		runtime.Gosched()
	}
	got := map[uint32]wire.ReadReply{}
	for _, m := range ch.sent()[2:] {
		r, err := wire.ParseReadReply(m)
		if err != nil {
			t.Fatal(err)
		}
		got[r.RequestID] = r
	}
	if r := got[2]; r.Result != device.ErrorNoSystemResources || len(r.Data) != 0 {
		t.Fatalf("too large: %+v", r)
	}
	if r := got[3]; r.Result != 0 || len(r.Data) != 10 {
		t.Fatalf("small read after it: %+v", r)
	}
}

// TestRefusalWarningsRateLimited: a server can have any number of
// requests refused; their warnings are logged a few per window and then
// counted (before, each refusal was a log line).
func TestRefusalWarningsRateLimited(t *testing.T) {
	var logs syncBuffer
	d := newTestDevices(t)
	s := newServer(t, Config{MaxOutstanding: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(emuID)
	send(t, conn, ioctlReq(10, ioctlBlock, 0, []byte{10}, nil), ioctlReq(11, ioctlBlock, 0, []byte{11}, nil))
	<-d.started
	<-d.started
	for id := uint32(100); id < 300; id++ {
		send(t, conn, readReq(id, 4, 0))
		if r := reply(t, conn, wire.FunctionRead); result(r) != device.ErrorNoSystemResources {
			t.Fatalf("request %d: %+v", id, r)
		}
	}
	if n := strings.Count(logs.String(), "too many outstanding requests"); n == 0 || n > 20 {
		t.Fatalf("%d warnings for 200 refusals:\n%s", n, logs.String())
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
