package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/portable"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runArgs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), args, &o, &e)
	return code, o.String(), e.String()
}

func TestHelpAndUnknown(t *testing.T) {
	code, out, _ := runArgs(t, "help")
	if code != 0 || !strings.Contains(out, "demo") || !strings.Contains(out, "decode") || !strings.Contains(out, "echo") {
		t.Fatalf("help: %d %s", code, out)
	}
	if code, _, errs := runArgs(t, "frobnicate"); code != 2 || !strings.Contains(errs, "unknown command") {
		t.Fatalf("unknown: %d %s", code, errs)
	}
	if code, _, _ := runArgs(t); code != 2 {
		t.Fatalf("no args: %d", code)
	}
}

func TestDemo(t *testing.T) {
	code, out, errs := runArgs(t, "demo", "-count", "3", "-interval", "10ms")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	// The results on stdout, the logs (Ping lines among them) on stderr.
	for _, want := range []string{"--- dvc::sample::simpleplugin ping statistics ---", "3 sent, 3 received, 0 lost, 0 mismatched, 0.0% loss", "rtt min/avg/p50/p99/max = "} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{" INFO Ping#1 payload=5120 rttMs=", "Ping#3 payload=5120 rttMs="} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(out, "Ping#") || strings.Contains(out, " INFO ") {
		t.Errorf("log lines on stdout:\n%s", out)
	}
	if strings.Contains(errs, " ERROR ") || strings.Contains(errs, " WARN ") {
		t.Errorf("demo logged problems:\n%s", errs)
	}
	// The PNP part: every step of it is logged, and it ends complete.
	for _, want := range []string{"PNP: device-arrived id=1", "PNP: read back the same bytes", "PNP: IOCTL echo",
		"PNP: slow IOCTL cancelled", "PNP: custom event", "PNP: device-removed id=1", "PNP: demo complete"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
}

func TestDemoWithoutPNP(t *testing.T) {
	tracePath := filepath.Join(t.TempDir(), "demo.jsonl")
	code, out, errs := runArgs(t, "demo", "-count", "1", "-interval", "10ms", "-pnp=false", "-trace", tracePath)
	if code != 0 || strings.Contains(out+errs, "PNP:") {
		t.Fatalf("exit %d, output:\n%s\n%s", code, out, errs)
	}
	// -trace: the ping and its echo, decoded as Simple frames.
	code, decoded, derrs := runArgs(t, "decode", "-trace", tracePath)
	if code != 0 || strings.Count(decoded, `{"frames":[{"offset":0,"frameLen":5136,"sequenceNumber":1`) != 2 {
		t.Fatalf("decode -trace: exit %d\n%s%s", code, decoded, derrs)
	}
}

func TestDemoJSON(t *testing.T) {
	code, out, errs := runArgs(t, "demo", "-count", "2", "-interval", "10ms", "-payload", "0", "-log-format", "json", "-pnp=false")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	records := func(text string) []map[string]any {
		var rs []map[string]any
		for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
			var rec map[string]any
			if err := json.Unmarshal([]byte(l), &rec); err != nil {
				t.Fatalf("not JSON: %q", l)
			}
			rs = append(rs, rec)
		}
		return rs
	}
	// stdout: the result, one summary record.
	res := records(out)
	st, _ := res[len(res)-1]["stats"].(map[string]any)
	if len(res) != 1 || res[0]["msg"] != "summary" || st["received"] != 2.0 {
		t.Fatalf("stdout %v", res)
	}
	// stderr: the logs, each ping's figures as fields.
	var ping map[string]any
	for _, rec := range records(errs) {
		if p, ok := rec["ping"].(map[string]any); ok && p["seq"] == 2.0 {
			ping = p
		}
	}
	if ping == nil || ping["payload"] != 0.0 || ping["outcome"] != "received" {
		t.Fatalf("no Ping#2 record with fields in:\n%s", errs)
	}
	if rtt, ok := ping["rtt_ms"].(float64); !ok || rtt <= 0 {
		t.Fatalf("Ping#2 rtt_ms = %v", ping["rtt_ms"])
	}
}

func TestDemoBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-count", "-1"}, {"-interval", "0"}, {"x"}} {
		if code, _, _ := runArgs(t, append([]string{"demo"}, args...)...); code != 2 {
			t.Errorf("%q: exit %d", args, code)
		}
	}
}

// TestEchoConnect probes a portable client that listens (the probe dials
// it and plays the RDP server), answering ECHO with echo.Responder.
func TestEchoConnect(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		cl := portable.NewClient(c, portable.Config{Logger: slog.New(slog.DiscardHandler)})
		if err := cl.Listen(echo.ChannelName, &echo.Responder{Logger: slog.New(slog.DiscardHandler)}); err != nil {
			served <- err
			return
		}
		served <- cl.Run(context.Background())
	}()
	tracePath := filepath.Join(t.TempDir(), "echo.jsonl")
	code, out, errs := runArgs(t, "echo", "-connect", ln.Addr().String(), "-count", "3", "-interval", "10ms", "-size", "100", "-trace", tracePath)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	// -trace: the open, 3 requests, 3 responses and the close, decoded.
	code, decoded, derrs := runArgs(t, "decode", "-trace", tracePath)
	if code != 0 || strings.Count(decoded, "server→client ECHO#") != 5 || strings.Count(decoded, `"message":"ECHO_RESPONSE"`) != 3 ||
		!strings.Contains(decoded, " open") || !strings.Contains(decoded, " close") {
		t.Fatalf("decode -trace: exit %d\n%s%s", code, decoded, derrs)
	}
	for _, want := range []string{"Echo#1 size=100 rttMs=", "Echo#3 size=100", "--- ECHO ping statistics ---", "3 sent, 3 received, 0 lost"} {
		if !strings.Contains(out+errs, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	<-served
}

func TestEchoHelpSaysWhoDialsWhom(t *testing.T) {
	// A user read "rdpdvc echo -listen" and did not know what to start
	// against it: -h must name the client and its -connect.
	code, _, errs := runArgs(t, "echo", "-h")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"rdpdvc echo -listen 127.0.0.1:3390", "rdp-simple-plugin-client -connect 127.0.0.1:3390", "-connect host:port"} {
		if !strings.Contains(errs, want) {
			t.Errorf("echo -h lacks %q:\n%s", want, errs)
		}
	}
}

func TestEchoBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-size", "0"}, {"-count", "-1"}, {"-interval", "0"}} {
		if code, _, _ := runArgs(t, append([]string{"echo"}, args...)...); code != 2 {
			t.Errorf("%q: exit %d", args, code)
		}
	}
}

func TestDecodeSimpleGolden(t *testing.T) {
	code, out, errs := runArgs(t, "decode", "-as", "simple",
		"18000000 01000000 87969c76453cda01 08000000 0001020304050607")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var v struct {
		Frames []struct {
			FrameLen       uint32 `json:"frameLen"`
			SequenceNumber uint32 `json:"sequenceNumber"`
			UTCTicks       int64  `json:"utcTicks"`
			UTCTime        string `json:"utcTime"`
			PayloadLen     int    `json:"payloadLen"`
			Pattern        bool   `json:"payloadIsPattern"`
			Payload        string `json:"payload"`
		} `json:"frames"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || len(v.Frames) != 1 {
		t.Fatalf("%v\n%s", err, out)
	}
	f := v.Frames[0]
	if f.FrameLen != 24 || f.SequenceNumber != 1 || f.UTCTicks != 133485408001234567 || f.UTCTime != "2024-01-01T00:00:00.1234567Z" ||
		f.PayloadLen != 8 || !f.Pattern || f.Payload != "0001020304050607" {
		t.Fatalf("%+v", f)
	}
}

func TestDecodeDRDYNVC(t *testing.T) {
	// DYNVC_CAPS_VERSION2 from the server, as rdpdvc's server sends it.
	code, out, errs := runArgs(t, "decode", "-as", "drdynvc", "-from", "server", "50 00 02 00 a8 03 cc 0c a2 24 55 55")
	if code != 0 || !strings.Contains(out, `"pdu": "DYNVC_CAPS_VERSION2"`) || !strings.Contains(out, `"Version": 2`) {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	// Cmd 0x01 from the client is DYNVC_CREATE_RSP: ChannelId 3, S_OK.
	code, out, _ = runArgs(t, "decode", "-as", "drdynvc", "-from", "client", "10 03 00 00 00 00")
	if code != 0 || !strings.Contains(out, "DYNVC_CREATE_RSP") {
		t.Fatalf("exit %d\n%s", code, out)
	}
	// Without -from: where both readings agree, one answer; where Cmd
	// 0x01 means a request from the server and a response from the
	// client, both; bad input is said before anything about -from.
	if code, out, errs := runArgs(t, "decode", "30 03 68 69"); code != 0 || !strings.Contains(out, `"from": "server or client"`) || !strings.Contains(out, "DYNVC_DATA") {
		t.Fatalf("DATA without -from: %d %s%s", code, out, errs)
	}
	if code, out, errs := runArgs(t, "decode", "10 03 00 00 00 00"); code != 0 || !strings.Contains(out, "DYNVC_CREATE_RSP") || !strings.Contains(out, `"from": "client"`) || !strings.Contains(out, "DYNVC_CREATE_REQ") {
		t.Fatalf("Cmd 0x01 without -from: %d %s%s", code, out, errs)
	}
	if code, _, errs := runArgs(t, "decode", "zz"); code != 2 || !strings.Contains(errs, "not hex") || strings.Contains(errs, "-from") {
		t.Fatalf("bad hex without -from: %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "decode", "-as", "drdynvc", "50"); code != 1 || !strings.Contains(errs, "as the server's") || !strings.Contains(errs, "as the client's") {
		t.Fatalf("truncated without -from: %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "decode", "-as", "drdynvc", "-from", "server", "50 00"); code != 1 || errs == "" {
		t.Fatalf("truncated: %d %s", code, errs)
	}
}

func TestDecodeChanPDUStream(t *testing.T) {
	// Two single-chunk messages as the portable transport carries them: a
	// DYNVC_CAPS_VERSION1 request, then a 3-byte DYNVC_DATA (ChannelId 3,
	// data "hi").
	stream := "04000000 03000000 50000100" + "04000000 03000000 30036869"
	code, out, errs := runArgs(t, "decode", "-as", "chanpdu", "-from", "server", stream)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	var v struct {
		Chunks []struct {
			Offset    int      `json:"offset"`
			FlagNames []string `json:"flagNames"`
			ChunkLen  int      `json:"chunkLen"`
		} `json:"chunks"`
		Messages []struct {
			Length  int    `json:"length"`
			Data    string `json:"data"`
			DRDYNVC struct {
				PDU string `json:"pdu"`
			} `json:"drdynvc"`
		} `json:"messages"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Chunks) != 2 || v.Chunks[1].Offset != 12 || v.Chunks[0].ChunkLen != 4 || strings.Join(v.Chunks[0].FlagNames, ",") != "CHANNEL_FLAG_FIRST,CHANNEL_FLAG_LAST" {
		t.Fatalf("chunks %+v", v.Chunks)
	}
	if len(v.Messages) != 2 || v.Messages[0].DRDYNVC.PDU != "DYNVC_CAPS_VERSION1" || v.Messages[1].DRDYNVC.PDU != "DYNVC_DATA" || v.Messages[1].Data != "30036869" {
		t.Fatalf("messages %+v", v.Messages)
	}
}

func TestDecodeChanPDUMultiChunkFromFile(t *testing.T) {
	// A 2000-byte message: a 1600-byte FIRST chunk and a 400-byte LAST
	// one, read as binary from a file.
	var b []byte
	hdr := func(flags byte) []byte { return []byte{0xd0, 0x07, 0, 0, flags, 0, 0, 0} }
	b = append(b, hdr(0x11)...)
	b = append(b, bytes.Repeat([]byte{0xAB}, 1600)...)
	b = append(b, hdr(0x12)...)
	b = append(b, bytes.Repeat([]byte{0xCD}, 400)...)
	path := filepath.Join(t.TempDir(), "cap.bin")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runArgs(t, "decode", "-as", "chanpdu", "-in", path, "-input", "bin")
	if code != 0 || strings.Count(out, `"offset"`) != 2 || !strings.Contains(out, `"length": 2000`) || !strings.Contains(out, "CHANNEL_FLAG_SHOW_PROTOCOL") {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
	// Cut in the second chunk: what was decoded is printed, exit 1.
	if err := os.WriteFile(path, b[:len(b)-1], 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runArgs(t, "decode", "-as", "chanpdu", "-in", path)
	if code != 1 || !strings.Contains(errs, "cut") || strings.Count(out, `"offset"`) != 1 {
		t.Fatalf("exit %d %s\n%s", code, errs, out)
	}
}

func TestDecodeGarbage(t *testing.T) {
	// An HTTP request read as a chunk stream: an absurd length, refused.
	code, _, errs := runArgs(t, "decode", "-as", "chanpdu", "-input", "bin", "-in", writeTemp(t, "GET / HTTP/1.1\r\n\r\n"))
	if code != 1 || !strings.Contains(errs, "CHANNEL_PDU_HEADER.length") {
		t.Fatalf("exit %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "decode", "-as", "simple", "-input", "hex", "zz"); code != 2 || !strings.Contains(errs, "not hex") {
		t.Fatalf("exit %d %s", code, errs)
	}
	if code, _, errs := runArgs(t, "decode", "-as", "simple", "ff ff ff ff"); code != 1 || !strings.Contains(errs, "frameLen") {
		t.Fatalf("exit %d %s", code, errs)
	}
	if code, _, _ := runArgs(t, "decode", "-as", "pnp", "00"); code != 2 {
		t.Fatal("unknown -as accepted")
	}
}

func writeTemp(t *testing.T, s string) string {
	p := filepath.Join(t.TempDir(), "in")
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInputBytes(t *testing.T) {
	for _, c := range []struct{ in, format, want string }{
		{"0x50 0x00", "auto", "\x50\x00"},
		{"50:00\n", "auto", "\x50\x00"},
		{"GET /", "auto", "GET /"},
		{"abc", "auto", "abc"}, // odd length: not hex
		{"ab", "bin", "ab"},
	} {
		got, err := inputBytes([]byte(c.in), c.format)
		if err != nil || string(got) != c.want {
			t.Errorf("%q %s: %q %v", c.in, c.format, got, err)
		}
	}
}
