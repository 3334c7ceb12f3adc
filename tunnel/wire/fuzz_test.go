package wire

import (
	"bytes"
	"reflect"
	"testing"
)

func seeds(f *testing.F) {
	for _, e := range docExamples {
		b, _ := e.msg.Append(nil)
		f.Add(b)
	}
}

// FuzzParse: Parse never panics, and what it accepts encodes back to a
// message that parses to the same value (the encoding is canonical but for
// IPv4-mapped IPv6, which decodes as an IPv6 literal that re-encodes as
// IPv4, so equality is checked on the values).
func FuzzParse(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		enc, err := m.Append(nil)
		if err != nil {
			t.Fatalf("%#v parsed but does not encode: %v", m, err)
		}
		m2, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-encoded % x does not parse: %v", enc, err)
		}
		enc2, _ := m2.Append(nil)
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("not stable: % x then % x", enc, enc2)
		}
		if d, ok := m.(Data); ok && !reflect.DeepEqual(d.Payload, m2.(Data).Payload) && len(d.Payload) > 0 {
			t.Fatal("DATA payload changed")
		}
	})
}

// FuzzFramer: Framer never panics, never claims more than it was given or
// more than MaxMessage, and a length it returns is one Parse agrees with
// on the header.
func FuzzFramer(f *testing.F) {
	seeds(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := Framer(b)
		if err != nil {
			return
		}
		if n < 0 || n > len(b) || n > MaxMessage || (n > 0 && n < HeaderLen) {
			t.Fatalf("Framer(% x) = %d", b, n)
		}
		if n > 0 {
			if _, err := Parse(b[:n]); err != nil {
				// The body may be bad; the header must not be.
				if e, ok := err.(*Error); ok && e.Message == "message" {
					t.Fatalf("Framer accepted %d bytes whose header Parse refuses: %v", n, err)
				}
			}
		}
	})
}
