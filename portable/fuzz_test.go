package portable

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/chanpdu"
)

// readConn is a net.Conn whose read side is a fixed byte string, handed
// out in reads of at most step bytes so that headers and chunks straddle
// reads; its write side discards.
type readConn struct {
	r    *bytes.Reader
	step int
}

func (c *readConn) Read(p []byte) (int, error) {
	if len(p) > c.step {
		p = p[:c.step]
	}
	return c.r.Read(p)
}
func (c *readConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *readConn) Close() error                     { return nil }
func (c *readConn) LocalAddr() net.Addr              { return nil }
func (c *readConn) RemoteAddr() net.Addr             { return nil }
func (c *readConn) SetDeadline(time.Time) error      { return nil }
func (c *readConn) SetReadDeadline(time.Time) error  { return nil }
func (c *readConn) SetWriteDeadline(time.Time) error { return nil }

// chunk builds one chunk of the stream: a CHANNEL_PDU_HEADER, then data.
func chunk(length, flags uint32, data []byte) []byte {
	b := chanpdu.Header{Length: length, Flags: flags}.Append(nil)
	return append(b, data...)
}

// streamSeeds are chunk streams from docs/portable-transport.md, a
// message of three chunks as the link writes it, and the garbage
// TestGarbageEndsOnlyThatConnection sends.
func streamSeeds() [][]byte {
	const fl = chanpdu.FlagFirst | chanpdu.FlagLast
	capsReq := chunk(12, fl, []byte{0x50, 0x00, 0x02, 0x00, 0xa8, 0x03, 0xcc, 0x0c, 0x92, 0x24, 0x55, 0x55})
	capsRsp := chunk(4, fl, []byte{0x50, 0x00, 0x02, 0x00})
	create := chunk(28, fl, append([]byte{0x10, 0x01}, "dvc::sample::simpleplugin\x00"...))
	var three []byte
	chanpdu.Chunker{Flags: chanpdu.FlagShowProtocol}.Chunks(bytes.Repeat([]byte{0x71}, 3600), func(h chanpdu.Header, c []byte) error {
		three = append(h.Append(three), c...)
		return nil
	})
	return [][]byte{
		capsReq,
		capsRsp,
		append(append(capsRsp, create...), chunk(0, fl, nil)...),
		three,
		append(three[:1608:1608], capsRsp...), // FIRST, then a new FIRST mid-message
		three[:1608+1608+8+100],               // ends inside the last chunk
		[]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		{0xff, 0xff, 0xff, 0xff, 0x03, 0x00, 0x00, 0x00},
		{0x04, 0x00, 0x00},
		chunk(4, 0, []byte("abcd")), // a middle chunk first
		chunk(4, fl|chanpdu.FlagPacketCompressed, []byte("abcd")),
		chunk(1601, fl, bytes.Repeat([]byte{1}, 1601)), // LAST longer than a chunk
		chunk(3000, chanpdu.FlagFirst, bytes.Repeat([]byte{1}, 1600)),
		{},
	}
}

// fuzzMax is the link's ceiling in FuzzLinkNext: above three chunks, small
// enough for the fuzzer to cross.
const fuzzMax = 5000

// FuzzLinkNext puts arbitrary bytes on the stream under a link's read side
// and reads messages until it fails. It checks that next never panics or
// loops, returns no message over the ceiling, allocates no more than the
// messages the input could start (one ceiling each, checked before any
// allocation) and ends either with io.EOF at a chunk boundary or with an
// error that names the field or the place in the stream.
func FuzzLinkNext(f *testing.F) {
	for _, s := range streamSeeds() {
		f.Add(s, uint16(977))
	}
	f.Add(streamSeeds()[3], uint16(1))
	f.Fuzz(func(t *testing.T, in []byte, step uint16) {
		l := newLink(&readConn{r: bytes.NewReader(in), step: max(1, int(step))}, fuzzMax, 0)

		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc

		var err error
		total := 0
		for calls := 0; ; calls++ {
			// Every successful call consumes a header, so there are at
			// most len/8 of them.
			if calls > len(in)/chanpdu.HeaderSize+1 {
				t.Fatalf("%d messages out of %d bytes", calls, len(in))
			}
			var msg []byte
			msg, err = l.next()
			if err != nil {
				break
			}
			if len(msg) > fuzzMax {
				t.Fatalf("a %d-byte message, over the ceiling %d", len(msg), fuzzMax)
			}
			total += len(msg)
		}

		runtime.ReadMemStats(&ms)
		// A multi-chunk message allocates its length (at most the ceiling)
		// when its FIRST chunk arrives, and each takes a full chunk of
		// input. The slack covers error values.
		budget := uint64(len(in)/ChunkSize+1)*fuzzMax + 64<<10
		if got := ms.TotalAlloc - before; got > budget {
			t.Fatalf("allocated %d bytes reading %d bytes of input (budget %d)", got, len(in), budget)
		}
		if total > len(in) {
			t.Fatalf("%d bytes of messages out of %d bytes of input", total, len(in))
		}

		if err == io.EOF {
			return
		}
		msg := err.Error()
		var ce *chanpdu.Error
		switch {
		case errors.As(err, &ce):
			if !strings.Contains(msg, "CHANNEL_PDU_HEADER") && !strings.Contains(msg, "virtualChannelData") {
				t.Fatalf("error %q names no field", msg)
			}
		case errors.Is(err, io.ErrUnexpectedEOF):
			if !strings.Contains(msg, "CHANNEL_PDU_HEADER") && !strings.Contains(msg, "chunk") {
				t.Fatalf("error %q does not say where the stream ended", msg)
			}
		case strings.Contains(msg, "CHANNEL_PDU_HEADER.flags"):
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if !strings.HasPrefix(msg, "portable: ") {
			t.Fatalf("error %q does not say which layer refused", msg)
		}
	})
}

// FuzzServerStream sends arbitrary bytes to a portable Server, as a broken
// or hostile client would, then hangs up. The server must end the
// connection (Wait returns) and leave no goroutine behind, whatever it
// read.
func FuzzServerStream(f *testing.F) {
	for _, s := range streamSeeds() {
		f.Add(s)
	}
	fl := uint32(chanpdu.FlagFirst | chanpdu.FlagLast)
	caps := chunk(4, fl, []byte{0x50, 0x00, 0x02, 0x00})
	f.Add(append(append(caps, chunk(6, fl, []byte{0x10, 0x01, 0, 0, 0, 0})...), chunk(2, fl, []byte{0x40, 0x01})...))
	f.Add(append(append(caps, chunk(3, fl, []byte{0x30, 0x01, 0x00})...), caps...))
	f.Fuzz(func(t *testing.T, in []byte) {
		before := goleak.IgnoreCurrent()
		a, b := net.Pipe()
		s := NewServer(a, quietCfg())
		go s.Run(context.Background())
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, b); close(drained) }()
		b.Write(in) // fails once the server has dropped the connection
		b.Close()
		s.Wait()
		<-drained
		select {
		case <-s.sess.Done():
		default:
			t.Fatal("the manager outlived its connection")
		}
		goleak.VerifyNone(t, before)
	})
}
