package client

import (
	"context"
	"errors"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

var (
	serverVersion = wire.ServerVersion{MajorVersion: 1, MinorVersion: 5, Capabilities: wire.CapDynamicDeviceAddition}.Append(nil)
	authenticated = wire.AuthenticatedClient{}.Append(nil)
)

// TestPNPDRServerVersionFirst: anything but a Server Version first closes
// PNPDR without a word (3.2.5.1.1.1).
func TestPNPDRServerVersionFirst(t *testing.T) {
	cases := map[string][]byte{
		"Authenticated Client":                 authenticated,
		"empty":                                {},
		"garbage":                              {1, 2, 3},
		"Server Version with a payload":        append(append([]byte(nil), serverVersion...), 0),
		"Server Version with a wrong Size":     append([]byte{0x13}, serverVersion[1:]...),
		"a client's Device Removal":            wire.ClientDeviceRemoval{ClientDeviceID: 1}.Append(nil),
		"Authenticated Client with a payload":  append(wire.PNPInfoHeader{Size: 9, PacketID: wire.PacketServerLogon}.Append(nil), 0),
		"unknown PacketId":                     wire.PNPInfoHeader{Size: 8, PacketID: 0x99}.Append(nil),
		"header too short for PNP_INFO_HEADER": {8, 0, 0, 0, 0x65},
	}
	for name, first := range cases {
		t.Run(name, func(t *testing.T) {
			d := newTestDevices(t)
			s := newServer(t, Config{}, d.list()...)
			conn := s.open(wire.ChannelPNPDR)
			send(t, conn, first)
			wantClosed(t, conn)
			for _, di := range s.c.Devices() {
				if di.Announced {
					t.Fatalf("device %d announced", di.ID)
				}
			}
		})
	}
}

// TestPNPDRNoDevicesBeforeAuthentication: the Client Version answers the
// Server Version, and nothing else goes out until Authenticated Client
// (3.2.5.1.1.3), even when devices are added meanwhile; then one addition
// carries every device.
func TestPNPDRNoDevicesBeforeAuthentication(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{MajorVersion: 1, MinorVersion: 6}, d.list()...)
	conn := s.open(wire.ChannelPNPDR)
	send(t, conn, serverVersion)
	v, err := wire.ParseClientVersion(recv(t, conn))
	if err != nil || v != (wire.ClientVersion{MajorVersion: 1, MinorVersion: 6, Capabilities: wire.CapDynamicDeviceAddition}) {
		t.Fatalf("Client Version %+v, %v", v, err)
	}
	mem, _ := device.NewMemory(1, device.Description{Text: "hot"})
	id, err := s.c.AddDevice(mem)
	if err != nil || id != 4 {
		t.Fatalf("AddDevice = %d, %v", id, err)
	}
	if err := s.c.RemoveDevice(context.Background(), memID); err != nil {
		t.Fatal(err)
	}
	// Noise the client must ignore, then a second Server Version.
	send(t, conn, []byte{1, 2, 3}, serverVersion, wire.PNPInfoHeader{Size: 8, PacketID: 0x99}.Append(nil))
	// A FileRedirectorChannel cannot open a device not yet announced.
	fconn := s.fileChannel(wire.IOVersionCustomEvents)
	if r := createFile(t, fconn, 1, emuID); r != device.ErrorFileNotFound {
		t.Fatalf("CreateFile before the announcement: %v", r)
	}
	send(t, conn, authenticated)
	a, err := wire.ParseClientDeviceAddition(recv(t, conn))
	if err != nil {
		t.Fatalf("want the addition next: %v", err)
	}
	var ids []uint32
	for _, dd := range a.Devices {
		ids = append(ids, dd.ClientDeviceID)
	}
	if len(ids) != 3 || ids[0] != emuID || ids[1] != roID || ids[2] != 4 {
		t.Fatalf("announced %v; want [2 3 4] in one message (1 was removed before)", ids)
	}
	if a.Devices[2].DeviceDescription != "hot" || a.Devices[0].DeviceDescription != "emulated" {
		t.Fatalf("descriptions %+v", a.Devices)
	}
	// A repeated Authenticated Client announces nothing again: the next
	// message is the removal below.
	send(t, conn, authenticated)
	if err := s.c.RemoveDevice(context.Background(), 4); err != nil {
		t.Fatal(err)
	}
	if r, err := wire.ParseClientDeviceRemoval(recv(t, conn)); err != nil || r.ClientDeviceID != 4 {
		t.Fatalf("removal %+v, %v", r, err)
	}
}

func TestPNPDRBatching(t *testing.T) {
	var devs []device.Device
	for range 5 {
		m, _ := device.NewMemory(1, device.Description{Text: "m"})
		devs = append(devs, m)
	}
	s := newServer(t, Config{DevicesPerAddition: 2}, devs...)
	conn := s.open(wire.ChannelPNPDR)
	send(t, conn, serverVersion)
	recv(t, conn)
	send(t, conn, authenticated)
	var counts []int
	for total := 0; total < 5; {
		a, err := wire.ParseClientDeviceAddition(recv(t, conn))
		if err != nil {
			t.Fatal(err)
		}
		counts = append(counts, len(a.Devices))
		total += len(a.Devices)
	}
	if len(counts) != 3 || counts[0] != 2 || counts[2] != 1 {
		t.Fatalf("messages carried %v devices", counts)
	}
}

// TestHotPlug: devices added after authentication are announced at once;
// removal with a handle open cancels its operation (whose reply still
// comes), fails later requests with ERROR_DEV_NOT_EXIST, closes the
// backend handle before RemoveDevice returns, and refuses new CreateFiles.
func TestHotPlug(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	pconn, _ := s.pnpdrReady()

	hot, _ := device.NewDemo(device.Description{Text: "hot"}, 64)
	id, err := s.c.AddDevice(hot)
	if err != nil {
		t.Fatal(err)
	}
	a, err := wire.ParseClientDeviceAddition(recv(t, pconn))
	if err != nil || len(a.Devices) != 1 || a.Devices[0].ClientDeviceID != id {
		t.Fatalf("hot-plug addition %+v, %v", a, err)
	}
	conn := s.openDevice(id)
	if hot.OpenHandles() != 1 {
		t.Fatal("no backend handle")
	}
	send(t, conn, ioctlReq(5, device.IoctlDemoSlow, 0, nil, nil))
	// The IOCTL is outstanding once the next request has been answered.
	send(t, conn, readReq(6, 2, 0))
	if r := reply(t, conn, wire.FunctionRead); r.Header().RequestID != 6 {
		t.Fatalf("reply %+v", r)
	}
	if err := s.c.RemoveDevice(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if hot.OpenHandles() != 0 {
		t.Fatal("RemoveDevice returned with the backend handle open")
	}
	if r, err := wire.ParseClientDeviceRemoval(recv(t, pconn)); err != nil || r.ClientDeviceID != id {
		t.Fatalf("removal %+v, %v", r, err)
	}
	if r := reply(t, conn, wire.FunctionIOControl); r.Header().RequestID != 5 || result(r) != device.ErrorOperationAborted {
		t.Fatalf("the outstanding IOCTL: %+v", r)
	}
	send(t, conn, writeReq(7, 0, "x"))
	if r := reply(t, conn, wire.FunctionWrite); result(r) != device.ErrorDevNotExist {
		t.Fatalf("write after removal: %+v", r)
	}
	fconn := s.fileChannel(wire.IOVersionCustomEvents)
	if r := createFile(t, fconn, 1, id); r != device.ErrorDevNotExist {
		t.Fatalf("CreateFile after removal: %v", r)
	}
	if err := s.c.RemoveDevice(context.Background(), id); err == nil {
		t.Fatal("removing twice succeeded")
	}
	if len(s.c.Devices()) != 3 {
		t.Fatalf("devices %+v", s.c.Devices())
	}
}

// TestFileRedirectorOutlivesPNPDR: when the server closes PNPDR (as it
// does for a duplicate ClientDeviceID, 3.3.5.1.2.1), devices announced
// keep working over FileRedirectorChannel.
func TestFileRedirectorOutlivesPNPDR(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	pconn, _ := s.pnpdrReady()
	pconn.Close()
	conn := s.openDevice(memID)
	send(t, conn, writeReq(2, 0, "ok"))
	if r := reply(t, conn, wire.FunctionWrite); result(r) != hresult.S_OK {
		t.Fatal(r)
	}
	// A new PNPDR instance hears of every device again, after its own
	// Authenticated Client. (Only one is active at a time, 2.1: wait for
	// the client to see the first closed.)
	eventually(t, "the client sees PNPDR closed", func() bool {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		return len(s.c.pnpdrs) == 0
	})
	if _, devs := s.pnpdrReady(); len(devs) != 3 || devs[0].ClientDeviceID != memID {
		t.Fatalf("second PNPDR: %+v", devs)
	}
}

func TestClose(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(emuID)
	send(t, conn, ioctlReq(5, ioctlBlock, 0, []byte{5}, nil))
	<-d.started
	s.c.Close()
	if d.emulated.OpenHandles() != 0 {
		t.Fatal("Close returned with a backend handle open")
	}
	if _, err := s.c.AddDevice(d.mem); err != ErrClosed {
		t.Fatalf("AddDevice after Close: %v", err)
	}
	ctx := context.Background()
	if _, err := s.hub.Open(ctx, wire.ChannelFileRedirector); err == nil {
		t.Fatal("a FileRedirectorChannel opened after Close")
	}
}

func TestMaxHandles(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{MaxHandles: 2}, d.list()...)
	s.pnpdrReady()
	s.openDevice(memID)
	s.openDevice(memID)
	if _, err := s.hub.Open(context.Background(), wire.ChannelFileRedirector); err == nil {
		t.Fatal("a third instance opened")
	}
}

func TestMaxDevices(t *testing.T) {
	m, _ := device.NewMemory(1, device.Description{})
	if _, err := New(Config{MaxDevices: 2}, m, m, m); err == nil {
		t.Fatal("a third device was accepted")
	}
}

func TestNewRefusesBadDescription(t *testing.T) {
	m, _ := device.NewMemory(1, device.Description{})
	bad := &described{Device: m, d: device.Description{HardwareIDs: []string{"a\x00b"}}}
	if _, err := New(Config{}, bad); err == nil {
		t.Fatal("accepted")
	}
}

type described struct {
	device.Device
	d device.Description
}

func (d *described) Describe() device.Description { return d.d }

// TestSecondPNPDRRefused: MS-RDPEPNP 2.1 has one active PNPDR instance
// as the control channel; a server that opens another while one is open
// is refused (ERROR_ALREADY_EXISTS), and the first keeps working. Once the
// first has closed, a new one is accepted. Before the fix every open was
// accepted (8,191 on one connection in the review).
func TestSecondPNPDRRefused(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	first, _ := s.pnpdrReady()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for range 3 {
		conn, err := s.hub.Open(ctx, wire.ChannelPNPDR)
		if err == nil {
			conn.Close()
			t.Fatal("a second PNPDR instance was accepted while the first is open")
		}
		var oe *dvc.OpenError
		if !errors.As(err, &oe) || oe.Status != hresult.HRESULT(0x800700B7) {
			t.Fatalf("second PNPDR: %v; want the open refused with ERROR_ALREADY_EXISTS", err)
		}
	}
	// The first still works: a hot-plugged device is announced on it.
	extra, _ := device.NewMemory(16, device.Description{Text: "extra"})
	if _, err := s.c.AddDevice(extra); err != nil {
		t.Fatal(err)
	}
	if a, err := wire.ParseClientDeviceAddition(recv(t, first)); err != nil || len(a.Devices) != 1 {
		t.Fatalf("addition on the first PNPDR: %+v, %v", a, err)
	}
	first.Close()
	eventually(t, "the client sees PNPDR closed", func() bool {
		s.c.mu.Lock()
		defer s.c.mu.Unlock()
		return len(s.c.pnpdrs) == 0
	})
	if _, devs := s.pnpdrReady(); len(devs) != 4 {
		t.Fatalf("PNPDR after the first closed: %+v", devs)
	}
}
