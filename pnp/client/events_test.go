package client

import (
	"context"
	"errors"
	"testing"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// eventDev is a memory device whose Open hands the test its Events
// function, may raise events while it opens, and may fail.
type eventDev struct {
	device.Device
	events    chan func(device.Event) // each Open's OpenRequest.Events
	duringOpn []device.Event          // raised inside Open, before it returns
	fail      error                   // Open's error, after raising them
}

func newEventDev(t *testing.T) *eventDev {
	t.Helper()
	mem, err := device.NewMemory(16, device.Description{Text: "events"})
	if err != nil {
		t.Fatal(err)
	}
	return &eventDev{Device: mem, events: make(chan func(device.Event), 4)}
}

func (d *eventDev) Open(ctx context.Context, req device.OpenRequest) (device.Handle, error) {
	if req.Events != nil {
		for _, ev := range d.duringOpn {
			req.Events(ev)
		}
		d.events <- req.Events
	}
	if d.fail != nil {
		return nil, d.fail
	}
	return d.Device.Open(ctx, req)
}

// TestCustomEventsInOrder: events a device raises one after another reach
// the server in that order.
func TestCustomEventsInOrder(t *testing.T) {
	d := newEventDev(t)
	s := newServer(t, Config{}, d)
	s.pnpdrReady()
	conn := s.openDevice(1)
	raise := <-d.events
	const n = MaxPendingEvents - 4
	for i := range n {
		raise(device.Event{GUID: device.DemoEventGUID, Data: []byte{byte(i)}})
	}
	for i := range n {
		ev, err := wire.ParseClientDeviceCustomEvent(recv(t, conn))
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Data) != 1 || int(ev.Data[0]) != i {
			t.Fatalf("event %d carries % x; want events in the order raised", i, ev.Data)
		}
	}
}

// TestEventsWaitForCreateFileReply: an event raised while the device
// opens goes out after the CreateFile Reply (3.2.5.2.2.10 events belong
// to an open handle), and not at all if the open fails.
func TestEventsWaitForCreateFileReply(t *testing.T) {
	t.Run("open succeeds", func(t *testing.T) {
		d := newEventDev(t)
		d.duringOpn = []device.Event{{GUID: device.DemoEventGUID, Data: []byte("early")}}
		s := newServer(t, Config{}, d)
		s.pnpdrReady()
		conn := s.openDevice(1) // fails unless the CreateFile Reply comes first
		ev, err := wire.ParseClientDeviceCustomEvent(recv(t, conn))
		if err != nil || string(ev.Data) != "early" {
			t.Fatalf("event %+v, %v", ev, err)
		}
	})
	t.Run("open fails", func(t *testing.T) {
		d := newEventDev(t)
		d.duringOpn = []device.Event{{GUID: device.DemoEventGUID, Data: []byte("early")}}
		d.fail = errors.New("no")
		s := newServer(t, Config{}, d)
		s.pnpdrReady()
		conn := s.fileChannel(wire.IOVersionCustomEvents)
		if r := createFile(t, conn, 1, 1); r == hresult.S_OK {
			t.Fatal("CreateFile succeeded; want the device's failure")
		}
		// The next message is the reply to this read, not an event.
		send(t, conn, readReq(2, 1, 0))
		if h, err := wire.ParseClientIOHeader(recv(t, conn)); err != nil || h.PacketType != wire.PacketTypeResponse || h.RequestID != 2 {
			t.Fatalf("got %+v, %v; want the Read Reply", h, err)
		}
	})
}

// TestIoCancelPrefersSection44WhenByte8Set: a cancel whose byte 8 is not
// zero and byte 11 is zero comes from a server writing the section 4.4
// layout (a diagram-layout server puts 0 in byte 8, its UnusedBits); when
// both readings name outstanding requests, the section 4.4 one is
// cancelled.
func TestIoCancelPrefersSection44WhenByte8Set(t *testing.T) {
	d := newTestDevices(t)
	s := newServer(t, Config{}, d.list()...)
	s.pnpdrReady()
	conn := s.openDevice(emuID)
	// Bytes 8-11 02 01 00 00: the diagram reads 0x000001, section 4.4
	// reads 0x000102. Both are outstanding.
	send(t, conn, ioctlReq(0x000001, ioctlBlock, 0, []byte{1}, nil), ioctlReq(0x000102, ioctlBlock, 0, []byte{2}, nil))
	<-d.started
	<-d.started
	send(t, conn, append(header(0xFFFFFF, wire.FunctionSpecificIoCancel), 0x02, 0x01, 0x00, 0x00))
	r := reply(t, conn, wire.FunctionIOControl).(wire.IOControlReply)
	if r.RequestID != 0x000102 || r.Result != device.ErrorOperationAborted {
		t.Fatalf("reply %+v; want 0x000102 cancelled", r)
	}
	ctx, _ := d.ctxs.Load(uint32(1))
	if err := ctx.(context.Context).Err(); err != nil {
		t.Fatal("the diagram reading, 0x000001, was cancelled too")
	}
}
