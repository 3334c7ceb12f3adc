package wire_test

import (
	"errors"
	"fmt"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// A server role receiving on FileRedirectorChannel: the header names the
// request, the request names the reply's layout, CheckReply applies the
// size rules.
func ExampleParseReply() {
	outstanding := map[uint32]wire.Request{
		0x010101: wire.ReadRequest{RequestID: 0x010101, BytesToRead: 8},
	}
	msg := wire.ReadReply{RequestID: 0x010101, Data: []byte("8 bytes!")}.Append(nil)

	h, err := wire.ParseClientIOHeader(msg)
	if err != nil {
		return // close the channel
	}
	if h.PacketType == wire.PacketTypeCustomEvent {
		ev, err := wire.ParseClientDeviceCustomEvent(msg)
		fmt.Println(ev.CustomEventGUID, err)
		return
	}
	req, ok := outstanding[h.RequestID]
	if !ok {
		return // 3.3.5.2.2: ignore replies to nothing
	}
	rep, err := wire.ParseReply(msg, req.Header().FunctionID)
	if err == nil {
		err = wire.CheckReply(req, rep)
	}
	if err != nil {
		return // close the channel
	}
	fmt.Printf("%s: %q\n", wire.SpecName(rep), rep.(wire.ReadReply).Data)
	// Output: Read Reply Message (2.2.2.3.4): "8 bytes!"
}

// A client role receiving a cancel matches either reading of idToCancel.
func ExampleSpecificIoCancelRequest_CandidateIDs() {
	pending := map[uint32]bool{0x000500: true}
	// A server that lays idToCancel out like SERVER_IO_HEADER.
	msg := []byte{0xff, 0xff, 0xff, 0x00, 0x06, 0, 0, 0, 0x00, 0x05, 0x00, 0x00}
	req, err := wire.ParseRequest(msg)
	if err != nil {
		return
	}
	c := req.(wire.SpecificIoCancelRequest)
	for _, id := range c.CandidateIDs() {
		if pending[id] {
			fmt.Printf("cancel 0x%06X\n", id)
			break
		}
	}
	// Output: cancel 0x000500
}

func ExampleParseRequest_unknownFunction() {
	_, err := wire.ParseRequest([]byte{1, 0, 0, 0, 3, 0, 0, 0})
	fmt.Println(errors.Is(err, wire.ErrUnknownFunction), err)
	// Output: true pnp/wire: ServerIOHeader.FunctionId: unknown FunctionId: 0x00000003
}

func ExampleClientDeviceAddition() {
	container := wire.MustParseGUID("{6AB3A3B0-9D1F-4E8A-8C5B-1F2E3D4C5B6A}")
	caps := wire.DevCapsRemovable | wire.DevCapsSurpriseRemovalOK
	m := wire.ClientDeviceAddition{Devices: []wire.PNPDeviceDescription{{
		ClientDeviceID:    1,
		HardwareIDs:       []string{`USB\VID_1234&PID_5678`, `USB\VID_1234`},
		DeviceDescription: "Memory device",
		ContainerID:       &container,
		DeviceCaps:        &caps,
	}}}
	if err := m.Validate(); err != nil {
		return
	}
	b := m.Append(nil)
	back, err := wire.ParsePNPDR(wire.ClientToServer, b)
	fmt.Println(len(b), err, back.(wire.ClientDeviceAddition).Devices[0].HardwareIDs)
	// Output: 170 <nil> [USB\VID_1234&PID_5678 USB\VID_1234]
}
