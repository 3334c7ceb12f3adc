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
	// (a read deadline works on every platform); a reset also drops conn
	// so that a write stuck on a peer that reads nothing returns.
	stop := context.AfterFunc(st.ctx, func() {
		conn.SetReadDeadline(time.Now())
		st.mu.Lock()
		reset := st.endErr != io.EOF && !st.closedHere
		st.mu.Unlock()
		if reset {
			conn.Close()
		}
	})
	defer stop()
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
		_, err := st.WriteTo(conn)
		if err != nil {
			note(err)
			st.abort(err, wire.CloseReset)
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
	}()
	buf := make([]byte, st.maxData)
	_, err := io.CopyBuffer(onlyWriter{st}, onlyReader{conn}, buf)
	switch {
	case err == nil:
		st.CloseWrite()
	case errors.Is(err, os.ErrDeadlineExceeded) && st.ctx.Err() != nil:
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

// onlyReader and onlyWriter hide ReadFrom/WriteTo so that io.CopyBuffer
// uses the buffer given (a TCPConn's ReadFrom would call Stream.WriteTo).
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
