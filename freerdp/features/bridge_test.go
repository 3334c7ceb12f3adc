package features

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/freerdp"
)

// nativeWrites is a FreeRDP IWTSVirtualChannel that hands each write to
// the test.
type nativeWrites chan []byte

func (n nativeWrites) Write(msg []byte) error { n <- append([]byte(nil), msg...); return nil }

func TestBridgeFeatureArguments(t *testing.T) {
	feats := []Feature{Bridge(nil)}
	for _, good := range [][]string{
		{"bridge=a=unix:/tmp/a.sock"},
		{"bridge=a=message:unix:/tmp/a:b.sock", "bridge=b=stream:tcp:127.0.0.1:9000"},
	} {
		if err := Configure(freerdp.NewHost(), feats, good); err != nil {
			t.Errorf("Configure(%q): %v", good, err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bridge"}, "want NAME="},
		{[]string{"bridge=a=pipe:x"}, `network "pipe"`},
		{[]string{"bridge=a=unix:/x", "bridge=a=tcp:127.0.0.1:1"}, "bridged twice"},
		{[]string{"bridge=a=message:"}, "want unix:PATH or tcp:HOST:PORT"},
	} {
		if err := Configure(freerdp.NewHost(), feats, c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Configure(%q): %v; want an error with %q", c.args, err, c.want)
		}
	}
}

// TestBridgeFeatureThroughHost: the feature as the plugin hosts it, driven
// as FreeRDP drives the Host: a channel instance connects to the socket,
// the program's messages become native writes, the server's messages
// arrive in pieces and reach the program whole, and the server's close
// ends the socket after the data. An instance whose socket is absent is
// refused.
func TestBridgeFeatureThroughHost(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "prog.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	h := freerdp.NewHost()
	defer h.Terminate()
	const name = "rdpdvc::test::bridge"
	if err := Configure(h, []Feature{Bridge(nil)}, []string{"bridge=" + name + "=message:unix:" + path, "bridge=absent=unix:" + filepath.Join(dir, "none.sock")}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.NewChannel("absent", 8, nativeWrites(make(chan []byte, 1))); err == nil {
		t.Fatal("an instance whose socket is absent was accepted")
	}
	writes := nativeWrites(make(chan []byte, 16))
	in, err := h.NewChannel(name, 7, writes)
	if err != nil {
		t.Fatal(err)
	}
	prog, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	prog.SetDeadline(time.Now().Add(20 * time.Second))
	frame := func(s string) []byte { return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...) }

	// The program to the server: one native write per message, framed.
	prog.Write(append(frame("one"), frame("two")...))
	for _, want := range []string{"one", "two"} {
		select {
		case got := <-writes:
			if !bytes.Equal(got, frame(want)) {
				t.Fatalf("native write % x, want % x", got, frame(want))
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("no native write for %q", want)
		}
	}
	// The server to the program: pieces (chansrv's merges and splits).
	wire := append(frame("three"), frame(strings.Repeat("4", 40000))...)
	in.Data(wire[:2])
	in.Data(wire[2:15])
	in.Data(wire[15:])
	in.Gone(nil)
	got, err := io.ReadAll(prog)
	if err != nil || !bytes.Equal(got, wire) {
		t.Fatalf("the program read %d bytes, %v; want the %d sent, then the end", len(got), err, len(wire))
	}
}
