package bridge

import (
	"io"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkThroughput: bytes from the server side's program to the client
// side's, one connection, through the bridge over the portable transport
// on loopback, next to the same copy over one raw unix socket.
func BenchmarkThroughput(b *testing.B) {
	const size = 64 << 20
	pump := func(b *testing.B, w, r net.Conn, buf []byte) {
		b.SetBytes(size)
		for b.Loop() {
			errc := make(chan error, 1)
			go func() {
				for sent := 0; sent < size; sent += len(buf) {
					if _, err := w.Write(buf); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			if _, err := io.CopyN(io.Discard, r, size); err != nil {
				b.Fatal(err)
			}
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("raw-unix", func(b *testing.B) {
		ln, err := net.Listen("unix", filepath.Join(b.TempDir(), "raw.sock"))
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		w, err := net.Dial("unix", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		defer w.Close()
		r, err := ln.Accept()
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close()
		pump(b, w, r, make([]byte, 1<<20))
	})
	for _, f := range []Framing{Stream, Message} {
		b.Run("bridge-"+f.String(), func(b *testing.B) {
			r := newRig(b, rigOptions{framing: f})
			w := r.dial()
			buf := make([]byte, 1<<20)
			if f == Message {
				// One 64 KiB message per write, header included.
				buf = frame(make([]byte, 64<<10-HeaderLen))
			}
			pump(b, w, r.accept(), buf)
		})
	}
}
