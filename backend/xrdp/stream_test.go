package xrdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// FuzzReassembler cuts a stream of length-prefixed messages at arbitrary
// points and checks that the reassembler returns exactly the messages,
// whatever the cuts; arbitrary bytes as the stream must give an error or
// messages, never a panic.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{3, 0, 0, 0, 'a', 'b', 'c', 0, 0, 0, 0}, []byte{1, 5})
	f.Add([]byte{0xFF, 0xFF, 0xFF, 0x7F}, []byte{2})
	f.Fuzz(func(t *testing.T, stream, cuts []byte) {
		r := reassembler{framer: lenPrefixed, max: 1 << 16}
		var got [][]byte
		var rerr error
		p := stream
		for i := 0; len(p) > 0 && rerr == nil; i++ {
			n := len(p)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)]))
			}
			copy(r.space(n), p[:n])
			r.added(n)
			p = p[n:]
			for {
				m, err := r.next()
				if err != nil {
					rerr = err
					break
				}
				if m == nil {
					break
				}
				got = append(got, m)
			}
		}
		// Reference: split the whole stream in one go.
		var want [][]byte
		for q := stream; ; {
			if len(q) < 4 {
				break
			}
			n := 4 + int(binary.LittleEndian.Uint32(q))
			if n > 1<<16 || n < 4 || len(q) < n {
				break
			}
			want = append(want, q[:n])
			q = q[n:]
		}
		if len(got) != len(want) {
			t.Fatalf("got %d messages, want %d (err %v)", len(got), len(want), rerr)
		}
		for i := range got {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("message %d differs", i)
			}
		}
	})
}

// BenchmarkEcho is one 5140-byte Simple-sized message out and back
// through the fake chansrv: the cost rdpdvc adds around the socket.
func BenchmarkEcho(b *testing.B) {
	f := startFake(b, 7, echo)
	op, err := New(Options{Display: ":7", SocketDir: f.dir})
	if err != nil {
		b.Fatal(err)
	}
	c, err := op.Open(context.Background(), "ECHO", dvc.WithFramer(lenPrefixed))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	m := msg(1, 5136)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if err := c.Write(ctx, m); err != nil {
			b.Fatal(err)
		}
		if _, err := c.Read(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEchoRaw is BenchmarkEcho without this package: the same
// handshake and message with plain socket calls, for the overhead of
// Conn (the SIOCOUTQ check, framing, context plumbing).
func BenchmarkEchoRaw(b *testing.B) {
	f := startFake(b, 7, echo)
	c, err := net.Dial("unix", filepath.Join(f.dir, "xrdpapi_7"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(appendHandshake(nil, "ECHO", flagDynamic)); err != nil {
		b.Fatal(err)
	}
	var st [4]byte
	if _, err := io.ReadFull(c, st[:]); err != nil {
		b.Fatal(err)
	}
	m := msg(1, 5136)
	got := make([]byte, len(m))
	b.ReportAllocs()
	b.SetBytes(int64(len(m)))
	for b.Loop() {
		if _, err := c.Write(m); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}
