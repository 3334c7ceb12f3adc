package xrdp

import (
	"context"
	"io"
	"net"
	"path/filepath"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
)

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
