package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDocExamples checks every example line of docs/tunnel.md: the hex
// decodes to the value it names and that value encodes to the same bytes.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../../docs/tunnel.md")
	if err != nil {
		t.Fatal(err)
	}
	line := regexp.MustCompile(`(?m)^    ([A-Z0-9]+) +((?:[0-9a-f]{2} ?)+)$`)
	found := map[string][]byte{}
	for _, m := range line.FindAllStringSubmatch(string(doc), -1) {
		b, err := hex.DecodeString(strings.ReplaceAll(strings.TrimSpace(m[2]), " ", ""))
		if err != nil {
			t.Fatalf("%s: %v", m[1], err)
		}
		found[m[1]] = b
	}
	if len(found) != len(docExamples) {
		t.Errorf("the doc has %d example lines, the test %d", len(found), len(docExamples))
	}
	for _, e := range docExamples {
		b, ok := found[e.name]
		if !ok {
			t.Errorf("%s: not in docs/tunnel.md", e.name)
			continue
		}
		m, err := Parse(b)
		if err != nil {
			t.Errorf("%s: %v", e.name, err)
			continue
		}
		if !reflect.DeepEqual(m, e.msg) {
			t.Errorf("%s: decodes to %#v, want %#v", e.name, m, e.msg)
		}
		enc, err := e.msg.Append(nil)
		if err != nil || !bytes.Equal(enc, b) {
			t.Errorf("%s: encodes to % x (%v), the doc has % x", e.name, enc, err, b)
		}
		if n, err := Framer(append(b, 0xff)); err != nil || n != len(b) {
			t.Errorf("%s: Framer says %d, %v; want %d", e.name, n, err, len(b))
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct {
		name, hex, want string
	}{
		{"short header", "01 00 00", "message.Length"},
		{"length mismatch", "02 00 00 00 05", "message.Length"},
		{"unknown type", "01 00 00 00 0a", "message.Type"},
		{"OPEN window 0", "0c 00 00 00 01 00 00 00 00 01 c0 00 02 0a bb 01", "OPEN.Window"},
		{"OPEN bad ATYP", "0c 00 00 00 01 00 00 04 00 02 c0 00 02 0a bb 01", "OPEN.Target.Type"},
		{"OPEN domain length 0", "09 00 00 00 01 00 00 04 00 03 00 50 00", "OPEN.Target.Length"},
		{"OPEN domain truncated", "0a 00 00 00 01 00 00 04 00 03 05 61 50 00", "OPEN.Target.Address"},
		{"OPEN trailing", "0d 00 00 00 01 00 00 04 00 01 c0 00 02 0a bb 01 00", "OPEN.body"},
		{"REPLY success window 0", "0d 00 00 00 02 00 00 00 00 00 01 00 00 00 00 00 00", "REPLY.Window"},
		{"CREDIT 0", "05 00 00 00 04 00 00 00 00", "CREDIT.Increment"},
		{"CREDIT short", "04 00 00 00 04 00 00 01", "CREDIT.Increment"},
		{"EOF with a body", "02 00 00 00 05 00", "EOF.body"},
		{"CLOSE without reason", "01 00 00 00 06", "CLOSE.Reason"},
		{"ATTACH window 0", "09 00 00 00 09 01 00 00 00 00 00 00 00", "ATTACH.Window"},
	} {
		b, _ := hex.DecodeString(strings.ReplaceAll(c.hex, " ", ""))
		_, err := Parse(b)
		var we *Error
		if !errors.As(err, &we) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.want)
		}
	}
}

func TestFramer(t *testing.T) {
	for _, c := range []struct {
		in   []byte
		n    int
		fail bool
	}{
		{nil, 0, false},
		{[]byte{1, 0, 0}, 0, false},
		{[]byte{1, 0, 0, 0}, 0, false},
		{[]byte{1, 0, 0, 0, 5}, 5, false},
		{[]byte{6, 0, 0, 0, 3, 'h'}, 0, false},
		{[]byte{0, 0, 0, 0}, 0, true},
		{[]byte{0xfd, 0xff, 0, 0}, 0, true}, // 65,533 + 4 > MaxMessage
		{[]byte{0xfc, 0xff, 0, 0, 3}, 0, false},
		{[]byte{1, 0, 0, 0, 0x7f}, 0, true},
	} {
		n, err := Framer(c.in)
		if n != c.n || (err != nil) != c.fail {
			t.Errorf("Framer(% x) = %d, %v; want %d, fail %v", c.in, n, err, c.n, c.fail)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	long := strings.Repeat("a", MaxDomain+1)
	for name, m := range map[string]Message{
		"domain too long": Open{Window: 1, Target: Addr{Host: long}},
		"zone":            Listen{Addr: Addr{Host: "fe80::1%eth0"}},
		"open window 0":   Open{Target: Addr{Host: "a"}},
		"data too large":  Data{Payload: make([]byte, MaxData+1)},
		"credit 0":        Credit{},
		"attach window 0": Attach{ID: 1},
	} {
		if _, err := m.Append(nil); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	b, err := Data{Payload: make([]byte, MaxData)}.Append(nil)
	if err != nil || len(b) != MaxMessage {
		t.Fatalf("largest DATA: %d bytes, %v", len(b), err)
	}
	if _, err := Parse(b); err != nil {
		t.Fatal(err)
	}
	// An IPv4-mapped address goes as IPv4.
	b, _ = Listen{Addr: Addr{Host: "::ffff:127.0.0.1", Port: 1}}.Append(nil)
	if m, _ := Parse(b); m != (Listen{Addr: Addr{Host: "127.0.0.1", Port: 1}}) {
		t.Fatalf("mapped address: %#v", m)
	}
}
