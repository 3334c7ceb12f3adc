package wire

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// seed adds every section 4 capture plus a few edge shapes.
func seed(f *testing.F) {
	for _, g := range golden {
		f.Add(g.wire)
	}
	f.Add([]byte{})
	f.Add(NewSpecificIoCancelRequest(1, 0x020202).Append(nil))
	f.Add(IOControlRequest{RequestID: 3, OutputBufferSize: 2, DataIn: []byte{1}, DataOut: []byte{5, 6}}.Append(nil))
	c := GUID{Data1: 9}
	f.Add(ClientDeviceAddition{Devices: []PNPDeviceDescription{
		{ClientDeviceID: 1, HardwareIDs: []string{"a", "b"}, CompatibilityIDs: []string{"c"}, ContainerID: &c, DeviceCaps: ptr(uint32(3))},
		{ClientDeviceID: 4, DeviceCaps: ptr(uint32(1))},
	}}.Append(nil))
}

// checkDecoded holds every decoder to the same contract: failures are
// *Error values with no message; successes re-encode to Len() bytes,
// decode again to the same value, and re-encode stably. exact also
// requires the re-encoding to equal the input byte for byte, which holds
// for every message but the Client Device Addition (strings are
// normalised there, and DataSize is written one way but read two).
func checkDecoded[T Message](t *testing.T, in []byte, v T, err error, parse func([]byte) (T, error), exact bool) {
	t.Helper()
	if err != nil {
		var e *Error
		if !errors.As(err, &e) || e.Message == "" || e.Err == nil {
			t.Fatalf("error %v is not a *Error naming message and kind", err)
		}
		return
	}
	enc := v.Append(nil)
	if len(enc) != v.Len() {
		t.Fatalf("Len() = %d, Append wrote %d", v.Len(), len(enc))
	}
	if exact && !bytes.Equal(enc, in) {
		t.Fatalf("re-encoding differs:\n in %x\nout %x", in, enc)
	}
	v2, err := parse(enc)
	if err != nil {
		t.Fatalf("re-encoding does not decode: %v\n%x", err, enc)
	}
	if !reflect.DeepEqual(v, v2) {
		t.Fatalf("round trip changed the value:\n %#v\n %#v", v, v2)
	}
	if enc2 := v2.Append(nil); !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding not stable:\n %x\n %x", enc, enc2)
	}
}

func fuzzParse[T Message](f *testing.F, parse func([]byte) (T, error), exact bool) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parse(b)
		checkDecoded(t, b, v, err, parse, exact)
	})
}

func FuzzParseServerVersion(f *testing.F)       { fuzzParse(f, ParseServerVersion, true) }
func FuzzParseClientVersion(f *testing.F)       { fuzzParse(f, ParseClientVersion, true) }
func FuzzParseAuthenticatedClient(f *testing.F) { fuzzParse(f, ParseAuthenticatedClient, true) }
func FuzzParseClientDeviceAddition(f *testing.F) {
	fuzzParse(f, ParseClientDeviceAddition, false)
}
func FuzzParseClientDeviceRemoval(f *testing.F) { fuzzParse(f, ParseClientDeviceRemoval, true) }
func FuzzParseServerCapabilitiesRequest(f *testing.F) {
	fuzzParse(f, ParseServerCapabilitiesRequest, true)
}
func FuzzParseClientCapabilitiesReply(f *testing.F) {
	fuzzParse(f, ParseClientCapabilitiesReply, true)
}
func FuzzParseCreateFileRequest(f *testing.F) { fuzzParse(f, ParseCreateFileRequest, true) }
func FuzzParseCreateFileReply(f *testing.F)   { fuzzParse(f, ParseCreateFileReply, true) }
func FuzzParseReadRequest(f *testing.F)       { fuzzParse(f, ParseReadRequest, true) }
func FuzzParseReadReply(f *testing.F)         { fuzzParse(f, ParseReadReply, true) }
func FuzzParseWriteRequest(f *testing.F)      { fuzzParse(f, ParseWriteRequest, true) }
func FuzzParseWriteReply(f *testing.F)        { fuzzParse(f, ParseWriteReply, true) }
func FuzzParseIOControlRequest(f *testing.F)  { fuzzParse(f, ParseIOControlRequest, true) }
func FuzzParseIOControlReply(f *testing.F)    { fuzzParse(f, ParseIOControlReply, true) }
func FuzzParseSpecificIoCancelRequest(f *testing.F) {
	fuzzParse(f, ParseSpecificIoCancelRequest, true)
}
func FuzzParseClientDeviceCustomEvent(f *testing.F) {
	fuzzParse(f, ParseClientDeviceCustomEvent, true)
}

func FuzzParseHeaders(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		if h, err := ParsePNPInfoHeader(b); err == nil && !bytes.Equal(h.Append(nil), b[:8]) {
			t.Fatal("PNPInfoHeader")
		}
		if h, err := ParseServerIOHeader(b); err == nil && !bytes.Equal(h.Append(nil), b[:8]) {
			t.Fatal("ServerIOHeader")
		}
		if h, err := ParseClientIOHeader(b); err == nil && !bytes.Equal(h.Append(nil), b[:4]) {
			t.Fatal("ClientIOHeader")
		}
	})
}

// exactFor: the dispatchers' results re-encode exactly unless they are
// a Client Device Addition.
func exactFor(m Message) bool {
	_, ok := m.(ClientDeviceAddition)
	return !ok
}

func FuzzParsePNPDR(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, dir := range []Direction{ServerToClient, ClientToServer} {
			parse := func(b []byte) (Message, error) { return ParsePNPDR(dir, b) }
			m, err := parse(b)
			checkDecoded(t, b, m, err, parse, err == nil && exactFor(m))
		}
	})
}

func FuzzParseRequest(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseRequest(b)
		checkDecoded(t, b, m, err, ParseRequest, true)
		if err == nil {
			if h, _ := ParseServerIOHeader(b); h != m.Header() {
				t.Fatalf("Header() %+v, wire %+v", m.Header(), h)
			}
		}
	})
}

func FuzzParseFileRedirector(f *testing.F) {
	seed(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, fn := range []FunctionID{FunctionRead, FunctionWrite, FunctionIOControl, FunctionCreateFile,
			FunctionCapabilities, FunctionSpecificIoCancel, 3} {
			parse := func(b []byte) (Message, error) { return ParseFileRedirector(ClientToServer, b, fn) }
			m, err := parse(b)
			checkDecoded(t, b, m, err, parse, true)
			if rep, ok := m.(Reply); ok && rep.Function() != fn {
				t.Fatalf("reply to %v decoded as %T", fn, m)
			}
			if r, err := ParseReply(b, fn); err == nil && r.Header().PacketType != PacketTypeResponse {
				t.Fatal("ParseReply accepted a non-response")
			}
		}
		parse := func(b []byte) (Message, error) { return ParseFileRedirector(ServerToClient, b, 0) }
		m, err := parse(b)
		checkDecoded(t, b, m, err, parse, true)
	})
}

func FuzzParseGUID(f *testing.F) {
	f.Add("{2B4A9C46-658D-4AF2-A91D-1E691861706C}")
	f.Add("2b4a9c46-658d-4af2-a91d-1e691861706c")
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGUID(s)
		if err != nil {
			return
		}
		if g2, err := ParseGUID(g.String()); err != nil || g2 != g {
			t.Fatalf("%q -> %v -> %v, %v", s, g, g2, err)
		}
		if guidFromWire(g.AppendWire(nil)) != g {
			t.Fatal("wire round trip")
		}
	})
}
