package client

import (
	"context"
	"testing"

	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// frames joins messages for the fuzzers: each is a length byte and that
// many bytes.
func frames(msgs ...[]byte) []byte {
	var b []byte
	for _, m := range msgs {
		if len(m) > 255 {
			panic("seed message too long")
		}
		b = append(b, byte(len(m)))
		b = append(b, m...)
	}
	return b
}

// split undoes frames; a short last frame is cut to what is there.
func split(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])
		b = b[1:]
		n = min(n, len(b))
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

// FuzzPNPDR feeds arbitrary messages to a PNPDR instance. It must never
// panic, never touch a device, answer only a Server Version that came
// first, and announce devices only after an Authenticated Client.
func FuzzPNPDR(f *testing.F) {
	f.Add(frames(serverVersion, authenticated))
	f.Add(frames(authenticated, serverVersion))
	f.Add(frames(serverVersion, []byte{1, 2}, serverVersion, authenticated, authenticated))
	f.Add(frames(wire.ClientDeviceRemoval{ClientDeviceID: 1}.Append(nil)))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs := split(data)
		m1, _ := device.NewMemory(8, device.Description{Text: "a"})
		m2, _ := device.NewDemo(device.Description{Text: "b"}, 8)
		s1, s2 := &spy{Device: m1}, &spy{Device: m2}
		c, err := New(Config{Logger: quietLogger()}, s1, s2)
		if err != nil {
			t.Fatal(err)
		}
		ch := &fakeChannel{name: wire.ChannelPNPDR}
		h, err := c.PNPDRListener().Accept(ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			h.Received(m)
		}
		c.Close()
		h.Closed(nil) // as a backend would, after Close; must be harmless
		if s1.touched()+s2.touched() != 0 {
			t.Fatal("a PNPDR message touched a device")
		}
		sent := ch.sent()
		if len(sent) == 0 {
			return
		}
		if len(msgs) == 0 {
			t.Fatal("sent something unasked")
		}
		if _, err := wire.ParseServerVersion(msgs[0]); err != nil {
			t.Fatalf("answered a first message that is not a Server Version: % x", msgs[0])
		}
		if _, err := wire.ParseClientVersion(sent[0]); err != nil {
			t.Fatalf("first message sent is not a Client Version: %v", err)
		}
		authAt := -1
		for i, m := range msgs[1:] {
			if _, err := wire.ParseAuthenticatedClient(m); err == nil {
				authAt = i
				break
			}
		}
		for _, m := range sent[1:] {
			got, err := wire.ParsePNPDR(wire.ClientToServer, m)
			if err != nil {
				t.Fatalf("sent a message that does not decode: %v", err)
			}
			if _, ok := got.(wire.ClientDeviceAddition); ok && authAt < 0 {
				t.Fatal("announced devices without an Authenticated Client")
			}
			if _, ok := got.(wire.ClientVersion); ok {
				t.Fatal("sent a second Client Version")
			}
		}
	})
}

// FuzzFileRedirector feeds arbitrary messages to a FileRedirectorChannel
// instance of a client with two announced devices (1, 2) and a removed
// one (3). It must never panic, never open a device without a CreateFile
// Request for it after a Capabilities Request that came first, never do
// I/O on a device it did not open, and send only messages that decode.
func FuzzFileRedirector(f *testing.F) {
	ok := [][]byte{
		capsReq(0), createReq(1, memID), writeReq(2, 3, "abc"), readReq(3, 8, 0),
		ioctlReq(4, device.IoctlDemoEcho, 4, []byte{1, 2}, nil),
		wire.NewSpecificIoCancelRequest(0xFFFFFF, 3).Append(nil),
	}
	f.Add(frames(ok...))
	f.Add(frames(capsReq(0), createReq(1, emuID), ioctlReq(2, device.IoctlDemoSlow, 0, nil, nil),
		ioctlReq(3, device.IoctlDemoRaise, 4, []byte{9}, nil), wire.NewSpecificIoCancelRequest(0xFFFFFF, 2).Append(nil),
		ioctlReq(4, device.IoctlDemoEcho, 2, []byte{1}, []byte{0})))
	f.Add(frames(capsReq(0), createReq(1, 3), readReq(2, 1, 0)))
	f.Add(frames(capsReq(0), createReq(1, noSuch), readReq(2, 1, 0)))
	f.Add(frames(createReq(1, memID), capsReq(0)))
	f.Add(frames(capsReq(0), createReq(1, memID), readReq(2, 1, 0), readReq(2, 1, 0), header(5, 3)))
	f.Fuzz(func(t *testing.T, data []byte) {
		msgs := split(data)
		m1, _ := device.NewMemory(64, device.Description{Text: "mem"})
		m2, _ := device.NewDemo(device.Description{Text: "emu"}, 64)
		m3, _ := device.NewMemory(64, device.Description{Text: "removed"})
		spies := []*spy{{Device: m1}, {Device: m2}, {Device: m3}}
		c, err := New(Config{Logger: quietLogger(), MaxOutstanding: 4}, spies[0], spies[1], spies[2])
		if err != nil {
			t.Fatal(err)
		}
		ph, _ := c.PNPDRListener().Accept(&fakeChannel{name: wire.ChannelPNPDR})
		ph.Received(serverVersion)
		ph.Received(authenticated)
		if err := c.RemoveDevice(context.Background(), 3); err != nil {
			t.Fatal(err)
		}
		ch := &fakeChannel{name: wire.ChannelFileRedirector}
		h, err := c.FileRedirectorListener().Accept(ch)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			h.Received(m)
		}
		c.Close()
		h.Closed(nil)

		capsFirst := false
		if len(msgs) > 0 {
			if r, err := wire.ParseRequest(msgs[0]); err == nil {
				_, capsFirst = r.(wire.ServerCapabilitiesRequest)
			}
		}
		creates := map[uint32]int32{}
		for _, m := range msgs {
			if r, err := wire.ParseCreateFileRequest(m); err == nil {
				creates[r.DeviceID]++
			}
		}
		for i, s := range spies {
			id := uint32(i + 1)
			opens := s.opens.Load()
			if opens > 0 && (!capsFirst || id == 3 || opens > creates[id]) {
				t.Fatalf("device %d opened %d times (caps first: %v, CreateFiles for it: %d)", id, opens, capsFirst, creates[id])
			}
			if opens == 0 && s.touched() != 0 {
				t.Fatalf("I/O on device %d, which was never opened", id)
			}
		}
		for _, m := range ch.sent() {
			hdr, err := wire.ParseClientIOHeader(m)
			if err != nil {
				t.Fatalf("sent % x: %v", m, err)
			}
			if hdr.PacketType == wire.PacketTypeCustomEvent {
				if _, err := wire.ParseClientDeviceCustomEvent(m); err != nil {
					t.Fatalf("sent a custom event that does not decode: %v", err)
				}
				continue
			}
			if hdr.PacketType != wire.PacketTypeResponse {
				t.Fatalf("sent PacketType %v", hdr.PacketType)
			}
		}
	})
}
