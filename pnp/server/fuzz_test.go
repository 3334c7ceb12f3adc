package server_test

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// split cuts fuzz input into messages: each is a length byte and that many
// bytes (what is left, if fewer), so that the fuzzer can produce message
// sequences.
func split(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		n := int(data[0])
		data = data[1:]
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	return out
}

func join(msgs ...[]byte) []byte {
	var out []byte
	for _, m := range msgs {
		if len(m) > 255 {
			panic("seed message too long")
		}
		out = append(out, byte(len(m)))
		out = append(out, m...)
	}
	return out
}

// FuzzPNPDRReceive feeds arbitrary messages to the server's PNPDR receive
// path after the handshake. It must never panic, keep the device list
// within MaxDevices, and either go on serving PNPDR or close it.
func FuzzPNPDRReceive(f *testing.F) {
	f.Add(join(addition(1, 2), removal(1), removal(9)))
	f.Add(join(addition(1, 1)))
	f.Add(join(wire.ClientVersion{MajorVersion: 1}.Append(nil), addition(3)))
	f.Add(join(header(12, 0x69), []byte{8, 0, 0, 0}))
	f.Add(join(func() []byte { b := addition(5); return b[:len(b)-4] }()))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, _, p := start(t, server.Config{})
		// Writes fail once the server has closed PNPDR, which is one of
		// the outcomes allowed.
		for _, m := range split(data) {
			p.ch.Write(context.Background(), m)
		}
		// A marker, to know every message before it was handled; it
		// may be refused too (a duplicate of a fuzzed ID).
		const marker = 0xFFFFFFF0
		p.ch.Write(context.Background(), addition(marker))
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		listed := make(chan error, 1)
		go func() {
			_, err := s.WaitDevice(ctx, func(d server.Device) bool { return d.ClientDeviceID == marker })
			listed <- err
		}()
		select {
		case <-p.closed:
			cancel()
			<-listed
		case err := <-listed:
			if err != nil {
				t.Fatalf("PNPDR neither served the marker nor closed: %v", err)
			}
		}
		if n := len(s.Devices()); n > server.MaxDevices {
			t.Fatalf("%d devices", n)
		}
		s.Close()
	})
}

// FuzzFileRedirectorReceive feeds arbitrary client messages to a handle
// with a Read (cbBytesToRead 4, RequestId 0x020202) and an IoControl
// (cbOut 4, RequestId 0x030303) pending. It must never panic, and both
// calls must return once the client closes the channel, with no more data
// than they asked for.
func FuzzFileRedirectorReceive(f *testing.F) {
	const readID, ioctlID = 0x020202, 0x030303
	f.Add(join(wire.ReadReply{RequestID: readID, Data: []byte("abcd")}.Append(nil)))
	f.Add(join(wire.ReadReply{RequestID: readID, Data: []byte("abcde")}.Append(nil)))
	f.Add(join(wire.IOControlReply{RequestID: ioctlID, Data: []byte("ab")}.Append(nil),
		wire.ReadReply{RequestID: readID, Result: hresult.E_FAIL}.Append(nil)))
	f.Add(join(wire.ClientDeviceCustomEvent{CustomEventGUID: wire.MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}"), Data: []byte{1}}.Append(nil)))
	f.Add(join(wire.WriteReply{RequestID: readID}.Append(nil)))
	f.Add(join([]byte{2, 2, 2, 7}, []byte{}))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzFileRedirector(t, data, nil) })
}

// FuzzFileRedirectorStream is FuzzFileRedirectorReceive through the
// stream-backend shim: the bytes go through FileRedirectorFramer, cut into
// pieces of 1 to 8 bytes (the first input byte picks the size).
func FuzzFileRedirectorStream(f *testing.F) {
	const readID, ioctlID = 0x020202, 0x030303
	f.Add(append([]byte{3}, join(wire.ReadReply{RequestID: readID, Data: []byte("abcd")}.Append(nil))...))
	f.Add(append([]byte{0}, join(wire.IOControlReply{RequestID: ioctlID, Data: []byte("abcdef")}.Append(nil))...))
	f.Add(append([]byte{5}, join(wire.ClientDeviceCustomEvent{CustomEventGUID: wire.MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}"), Data: []byte{1}}.Append(nil),
		wire.ReadReply{RequestID: readID, Result: hresult.E_FAIL}.Append(nil))...))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		cut := int(data[0]%8) + 1
		fuzzFileRedirector(t, data[1:], func(o dvc.Opener) dvc.Opener { return streamOpener{o, cut} })
	})
}

// fuzzFileRedirector is the body of both FileRedirectorChannel fuzzers.
func fuzzFileRedirector(t *testing.T, data []byte, wrap func(dvc.Opener) dvc.Opener) {
	const readID, ioctlID = 0x020202, 0x030303
	s, c, p := startWith(t, server.Config{}, wrap)
	addDevices(t, s, p, 1)
	s.Subscribe(wire.MustParseGUID("{11111111-8080-425F-922A-DABF3DE3F69A}"), func(server.CustomEvent) {})
	h, fc := openHandle(t, s, c, 1, 6)
	type res struct {
		b   []byte
		err error
	}
	read, ioctl := make(chan res, 1), make(chan res, 1)
	go func() { b, err := h.Read(context.Background(), 0, 4); read <- res{b, err} }()
	if id := request(t, fc.next(t)).Header().RequestID; id != readID {
		t.Fatalf("Read RequestId 0x%06X", id)
	}
	go func() { b, err := h.IoControl(context.Background(), 1, nil, 4); ioctl <- res{b, err} }()
	if id := request(t, fc.next(t)).Header().RequestID; id != ioctlID {
		t.Fatalf("IoControl RequestId 0x%06X", id)
	}
	for _, m := range split(data) {
		fc.ch.Write(context.Background(), m) // fails once the server closed the channel
	}
	fc.ch.Close()
	for _, ch := range []chan res{read, ioctl} {
		select {
		case r := <-ch:
			if len(r.b) > 4 {
				t.Fatalf("a call returned %d bytes, more than it asked for", len(r.b))
			}
		case <-time.After(patience):
			t.Fatal("a pending call did not return after the channel closed")
		}
	}
	s.Close()
}

// FuzzFileRedirectorFramer: whatever the bytes, the framer never panics,
// never claims more than it has, and every message it delimits decodes as
// the reply to the request it names, within that request's limits: the
// framer and the decoders agree on every layout.
func FuzzFileRedirectorFramer(f *testing.F) {
	out := map[uint32]struct {
		fn  wire.FunctionID
		max uint32
	}{
		0x000000: {wire.FunctionCapabilities, 0},
		0x010101: {wire.FunctionCreateFile, 0},
		0x020202: {wire.FunctionRead, 16},
		0x030303: {wire.FunctionWrite, 16},
		0x040404: {wire.FunctionIOControl, 8},
	}
	framer := server.FileRedirectorFramer(func(id uint32) (wire.FunctionID, uint32, bool) {
		o, ok := out[id]
		return o.fn, o.max, ok
	})
	f.Add(wire.ReadReply{RequestID: 0x020202, Data: []byte("abc")}.Append(nil))
	f.Add(wire.IOControlReply{RequestID: 0x040404, Data: []byte("abcdefgh")}.Append(nil))
	f.Add(wire.ClientCapabilitiesReply{Version: 6}.Append(nil))
	f.Add(wire.CreateFileReply{RequestID: 0x010101}.Append(nil))
	f.Add(wire.WriteReply{RequestID: 0x030303}.Append(nil))
	f.Add(wire.ClientDeviceCustomEvent{Data: []byte("ev")}.Append(nil))
	f.Fuzz(func(t *testing.T, buf []byte) {
		n, err := framer(buf)
		if err != nil || n == 0 {
			return
		}
		if n > len(buf) {
			t.Fatalf("framer claims %d of %d bytes", n, len(buf))
		}
		msg := buf[:n]
		h := binary.LittleEndian.Uint32(msg)
		id, pt := h&wire.MaxRequestID, wire.PacketType(h>>24)
		if pt == wire.PacketTypeCustomEvent {
			if _, err := wire.ParseClientDeviceCustomEvent(msg); err != nil {
				t.Fatalf("framed custom event does not decode: %v", err)
			}
			return
		}
		o := out[id]
		rep, err := wire.ParseReply(msg, o.fn)
		if err != nil {
			t.Fatalf("framed %v reply does not decode: %v", o.fn, err)
		}
		var req wire.Request
		switch o.fn {
		case wire.FunctionRead:
			req = wire.ReadRequest{RequestID: id, BytesToRead: o.max}
		case wire.FunctionIOControl:
			req = wire.IOControlRequest{RequestID: id, OutputBufferSize: o.max}
		case wire.FunctionWrite:
			req = wire.WriteRequest{RequestID: id}
		case wire.FunctionCreateFile:
			req = wire.CreateFileRequest{RequestID: id}
		default:
			req = wire.ServerCapabilitiesRequest{RequestID: id}
		}
		if err := wire.CheckReply(req, rep); err != nil {
			t.Fatalf("framed reply breaks its request's limits: %v", err)
		}
	})
}

func FuzzPNPDRFramer(f *testing.F) {
	f.Add(addition(1))
	f.Add(removal(2))
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0x7F})
	f.Fuzz(func(t *testing.T, buf []byte) {
		n, err := server.PNPDRFramer(buf)
		if err != nil || n == 0 {
			return
		}
		if n > len(buf) || n < wire.PNPInfoHeaderLen || n > server.MaxPNPDRMessage || uint32(n) != binary.LittleEndian.Uint32(buf) {
			t.Fatalf("PNPDRFramer(%d bytes, Size %d) = %d", len(buf), binary.LittleEndian.Uint32(buf), n)
		}
	})
}
