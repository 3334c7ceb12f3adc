package wine

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/internal/testnet"
	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// The DLL's Bridge and Tunnel values (docs/windows.md), exercised through
// dvchost's chat scenario: the host plays mstsc, opening the channel and
// delivering the server's messages; the plugin's writes come back as
// "recv HEX" lines. The targets are TCP echo servers in this process.

// echoServer echoes each connection until the test ends.
func echoServer(t *testing.T) uint16 {
	t.Helper()
	ln := testnet.Serve(t, func(c net.Conn) { io.Copy(c, c); c.Close() })
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// chat runs dvchost chat and returns the plugin's writes, in order.
func chat(t *testing.T, host, dll, channel string, msgs ...[]byte) [][]byte {
	t.Helper()
	args := []string{"chat", dll, channel}
	for _, m := range msgs {
		args = append(args, hex.EncodeToString(m))
	}
	out := runHost(t, host, args...)
	if !strings.Contains(out, "chat: 0 failure(s)") {
		t.Errorf("dvchost chat did not finish cleanly:\n%s", out)
	}
	var got [][]byte
	for _, line := range strings.Split(out, "\n") {
		if h, ok := strings.CutPrefix(strings.TrimSpace(line), "recv "); ok {
			b, err := hex.DecodeString(h)
			if err != nil {
				t.Fatalf("dvchost printed %q", line)
			}
			got = append(got, b)
		}
	}
	return got
}

func frame(s string) []byte {
	return append(binary.LittleEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// Bridge: the instance connects to the configured TCP socket, and a
// framed message comes back from the echo server byte for byte.
func TestPluginDLLBridge(t *testing.T) {
	dll, host := pluginFiles(t)
	port := echoServer(t)
	logFile := filepath.Join(tempDir(t), "plugin.log")
	configure(t, map[string]string{"LogFile": logFile, "Channels": "simple",
		"Bridge": "rdpdvc::test::bridge=message:tcp:127.0.0.1:" + strconv.Itoa(int(port))})
	msg := frame("hello through the DLL")
	got := chat(t, host, dll, "rdpdvc::test::bridge", msg)
	if len(got) != 1 || !bytes.Equal(got[0], msg) {
		t.Errorf("the plugin wrote %x, want the echo %x\n%s", got, msg, readLog(t, logFile))
	}
}

// Tunnel: an OPEN to the allowed echo server is answered REPLY 0 and
// carries DATA both ways; an OPEN to a port no rule allows is answered
// REPLY 2, and the refusal is logged with the rules.
func TestPluginDLLTunnel(t *testing.T) {
	dll, host := pluginFiles(t)
	port := echoServer(t)
	logFile := filepath.Join(tempDir(t), "plugin.log")
	configure(t, map[string]string{"LogFile": logFile, "Channels": "simple",
		"Tunnel": "allow:127.0.0.1:" + strconv.Itoa(int(port))})
	msg := func(m wire.Message) []byte {
		b, err := m.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	parse := func(b []byte) wire.Message {
		m, err := wire.Parse(b)
		if err != nil {
			t.Fatalf("the plugin wrote %x: %v", b, err)
		}
		return m
	}
	got := chat(t, host, dll, wire.ChannelName,
		msg(wire.Open{Window: 1 << 16, Target: wire.Addr{Host: "127.0.0.1", Port: port}}),
		msg(wire.Data{Payload: []byte("ping")}))
	if len(got) < 2 {
		t.Fatalf("the plugin wrote %d messages, want REPLY and DATA\n%s", len(got), readLog(t, logFile))
	}
	if r, ok := parse(got[0]).(wire.Reply); !ok || r.Code != 0 {
		t.Errorf("answer to an allowed OPEN: %+v, want REPLY 0", parse(got[0]))
	}
	if d, ok := parse(got[1]).(wire.Data); !ok || string(d.Payload) != "ping" {
		t.Errorf("the echo came back as %+v, want DATA ping", parse(got[1]))
	}

	got = chat(t, host, dll, wire.ChannelName, msg(wire.Open{Window: 1 << 16, Target: wire.Addr{Host: "127.0.0.1", Port: port + 1}}))
	if len(got) < 1 {
		t.Fatal("no answer to an OPEN no rule allows")
	}
	if r, ok := parse(got[0]).(wire.Reply); !ok || r.Code != 2 {
		t.Errorf("answer to an OPEN no rule allows: %+v, want REPLY 2", parse(got[0]))
	}
	if log := readLog(t, logFile); !strings.Contains(log, "matches no rule") {
		t.Errorf("the plugin's log lacks the refusal:\n%s", log)
	}
}
