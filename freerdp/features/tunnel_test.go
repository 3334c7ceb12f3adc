package features

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/freerdp"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

func TestTunnelFeatureArguments(t *testing.T) {
	feats := []Feature{Tunnel(nil)}
	for _, good := range [][]string{
		{"tunnel=allow:127.0.0.1:8080"},
		{"tunnel=allow:*.example.com", "tunnel=allow:10.0.0.0/8:1-1024", "tunnel=listen:127.0.0.1:9000"},
		{"tunnel=allow:*"},
	} {
		if err := Configure(freerdp.NewHost(), feats, good); err != nil {
			t.Errorf("Configure(%q): %v", good, err)
		}
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"tunnel"}, "want allow:RULE"},
		{[]string{"tunnel=10.0.0.1"}, "want allow:RULE"},
		{[]string{"tunnel=allow:10.0.0.0/99"}, "allow:"},
		{[]string{"tunnel=listen:nowhere"}, "listen:"},
	} {
		if err := Configure(freerdp.NewHost(), feats, c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Configure(%q): %v; want an error with %q", c.args, err, c.want)
		}
	}
}

// next is the next tunnel message the plugin wrote natively.
func next(t *testing.T, writes nativeWrites) wire.Message {
	t.Helper()
	select {
	case b := <-writes:
		m, err := wire.Parse(b)
		if err != nil {
			t.Fatalf("native write % x: %v", b, err)
		}
		return m
	case <-time.After(20 * time.Second):
		t.Fatal("no native write")
	}
	return nil
}

// TestTunnelFeatureThroughHost: the feature as the plugin hosts it,
// driven as FreeRDP drives the Host, with the server's messages arriving
// in pieces (as behind xrdp): an OPEN to an allowed target connects and
// carries bytes both ways; an OPEN the rules do not allow is answered
// with reply 2 (connection not allowed by ruleset), and nothing else.
func TestTunnelFeatureThroughHost(t *testing.T) {
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	port := uint16(target.Addr().(*net.TCPAddr).Port)
	h := freerdp.NewHost()
	defer h.Terminate()
	if err := Configure(h, []Feature{Tunnel(nil)}, []string{"tunnel=allow:127.0.0.1:" + strconv.Itoa(int(port))}); err != nil {
		t.Fatal(err)
	}
	open := func(id uint32, p uint16) (*freerdp.Instance, nativeWrites) {
		writes := nativeWrites(make(chan []byte, 16))
		in, err := h.NewChannel(wire.ChannelName, id, writes)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := wire.Open{Window: 1 << 16, Target: wire.Addr{Host: "127.0.0.1", Port: p}}.Append(nil)
		in.Data(b[:3]) // in pieces: the feature reframes
		in.Data(b[3:])
		return in, writes
	}

	in, writes := open(7, port)
	conn, err := target.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if r, ok := next(t, writes).(wire.Reply); !ok || r.Code != 0 {
		t.Fatalf("answer to an allowed OPEN: %+v, want REPLY 0", r)
	}
	d, _ := wire.Data{Payload: []byte("ping")}.Append(nil)
	in.Data(d)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	got := make([]byte, 4)
	if _, err := io.ReadFull(conn, got); err != nil || string(got) != "ping" {
		t.Fatalf("the target read %q, %v", got, err)
	}
	conn.Write([]byte("pong"))
	if m, ok := next(t, writes).(wire.Data); !ok || !bytes.Equal(m.Payload, []byte("pong")) {
		t.Fatalf("the target's answer came back as %+v", m)
	}

	_, refused := open(8, port+1)
	if r, ok := next(t, refused).(wire.Reply); !ok || r.Code != 2 {
		t.Fatalf("answer to an OPEN no rule allows: %+v, want REPLY 2", r)
	}
}
