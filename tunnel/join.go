package tunnel

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// Join carries conn's bytes to st and st's to conn until both ways are
// done, then closes both. Each way's end is passed on as a half-close
// (st.CloseWrite, conn's CloseWrite where it has one), and an error either
// way resets the stream. TCP_NODELAY is set on conn (a *net.TCPConn),
// since every write through the tunnel is a message already: Nagle's
// delay would only add latency. It returns the first error other than an
// orderly end.
func Join(conn net.Conn, st *Stream) error {
	if t, ok := conn.(interface{ SetNoDelay(bool) error }); ok {
		t.SetNoDelay(true)
	}
	// When the stream ends under them, wake the goroutine reading conn
	// (a read deadline works on every platform). Only an orderly end by
	// the peer (both EOFs, CLOSE 0) leaves conn open, to write out what
	// arrived before it, and then each write has WriteTimeout: a socket
	// whose reader stops cannot hold Join (and so Client.Close) forever.
	// Any other end, Close on this side included, drops conn, so that a
	// write stuck on a peer that reads nothing returns.
	stop := context.AfterFunc(st.ctx, func() {
		conn.SetReadDeadline(time.Now())
		if st.draining() {
			conn.SetWriteDeadline(time.Now().Add(st.writeTimeout))
		} else {
			conn.Close()
		}
	})
	defer stop()
	// The owner's Close ends every Join, draining or not.
	stopOwner := context.AfterFunc(st.owner, func() { conn.Close() })
	defer stopOwner()
	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		firstErr error
	)
	note := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	wg.Add(1)
	go func() { // the peer's bytes to conn
		defer wg.Done()
		_, err := st.WriteTo(drainWriter{conn, st})
		if err != nil {
			note(err)
			st.abort(err, wire.CloseReset)
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	_, err := st.ReadFrom(conn)
	switch {
	case err == nil:
		st.CloseWrite()
	case (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)) && st.ctx.Err() != nil:
		// woken because the stream ended: not this side's failure
	default:
		note(err)
		st.abort(err, wire.CloseReset)
	}
	wg.Wait()
	conn.Close()
	st.Close()
	return firstErr
}

// drainWriter is conn for WriteTo: once the stream has ended in order,
// each write renews conn's write deadline, so the drain goes on while
// the socket takes bytes and fails after WriteTimeout without progress.
type drainWriter struct {
	conn net.Conn
	st   *Stream
}

func (w drainWriter) Write(p []byte) (int, error) {
	if w.st.ctx.Err() != nil {
		w.conn.SetWriteDeadline(time.Now().Add(w.st.writeTimeout))
	}
	return w.conn.Write(p)
}

// draining reports whether the stream ended in order by the peer (not
// by this side's Close), so what arrived is still to be written out.
func (s *Stream) draining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endErr == io.EOF && !s.closedHere
}

// idleBuf is the read buffer a connection waits with: an idle stream
// holds only this, and a busy one borrows a MaxData buffer from bigBufs
// while its reads keep filling what they are given. Both have room for a
// DATA header before the bytes read (Stream.writeFramed: no copy).
const idleBuf = 2 << 10

var bigBufs = sync.Pool{New: func() any { b := make([]byte, wire.MaxMessage); return &b }}

// ReadFrom sends what r yields until its EOF (io.Copy uses it), without
// copying it again: each read lands after room for its DATA header. An
// idle stream waits with a 2 KiB buffer; a busy one borrows a 64 KiB one.
func (s *Stream) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	err := copyToStream(s, r, &total)
	return total, err
}

// copyToStream copies r to st until r's EOF (nil) or an error.
func copyToStream(st *Stream, r io.Reader, total *int64) error {
	small := make([]byte, wire.HeaderLen+idleBuf)
	var big *[]byte
	defer func() {
		if big != nil {
			bigBufs.Put(big)
		}
	}()
	for {
		buf := small
		if big != nil {
			buf = (*big)[:wire.HeaderLen+st.maxData]
		}
		n, err := r.Read(buf[wire.HeaderLen:])
		if n > 0 {
			w, werr := st.writeFramed(buf[:wire.HeaderLen+n])
			*total += int64(w)
			if werr != nil {
				return werr
			}
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		case big == nil && n == len(buf)-wire.HeaderLen:
			big = bigBufs.Get().(*[]byte) // a full read: more is coming
		case big != nil && n < (len(buf)-wire.HeaderLen)/4:
			bigBufs.Put(big) // the flow has slowed: wait small again
			big = nil
		}
	}
}
