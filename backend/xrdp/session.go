package xrdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// ErrNoSessionEvents is returned by WatchSession when the session's
// chansrv predates xrdp 0.10.5, which added the session-information
// channel ("xrdpapi: monitor connect/disconnect" in xrdp's NEWS). Such a
// chansrv says nothing when the client disconnects; see OpenWhenConnected
// for what a program can do instead.
var ErrNoSessionEvents = errors.New("xrdp: this chansrv does not report client connects and disconnects (it predates xrdp 0.10.5)")

// SessionWatch follows chansrv's reports of whether an RDP client is
// connected to the session, on xrdp 0.10.5's private session-information
// channel (CHAN_ID_XRDP_SESSION_INFO). chansrv sends the state, a u32
// is_connected (struct xrdp_chan_session_state), when the channel opens
// and again whenever the client connects or disconnects. A SessionWatch
// runs one goroutine, which Close ends.
type SessionWatch struct {
	uc   *net.UnixConn
	done chan struct{} // closed when the reader has returned

	mu        sync.Mutex
	connected bool
	err       error         // why the watch ended; nil while it runs
	changed   chan struct{} // closed and replaced at each report and at the end
	closed    bool
}

// WatchSession opens the session-information channel. It fails with
// ErrNoSessionEvents on a chansrv older than xrdp 0.10.5, and with an
// error wrapping ErrSessionEnded when the session's chansrv is gone. The
// open is answered by chansrv alone, so it is bounded by
// DefaultProbeTimeout as well as ctx.
func (op *Opener) WatchSession(ctx context.Context) (*SessionWatch, error) {
	proto, err := op.Protocol(ctx)
	if err != nil {
		return nil, err
	}
	if proto != ProtocolV1 {
		return nil, ErrNoSessionEvents
	}
	ctx, cancel := context.WithTimeout(ctx, DefaultProbeTimeout)
	defer cancel()
	uc, err := dial(ctx, op.path)
	if err != nil {
		op.sessionGone(err)
		return nil, fmt.Errorf("xrdp: session-information channel: %w", err)
	}
	connected, err := openSessionInfo(ctx, uc)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("xrdp: session-information channel on %s: %w", op.path, err)
	}
	w := &SessionWatch{uc: uc, done: make(chan struct{}), connected: connected, changed: make(chan struct{})}
	go w.read()
	return w, nil
}

// openSessionInfo sends the version-1 request for the private channel
// and reads chansrv's answer: the u32 status (0), then the current
// state.
func openSessionInfo(ctx context.Context, uc *net.UnixConn) (bool, error) {
	// As in handshake: ctx may interrupt the open, never the watch.
	var mu sync.Mutex
	over := false
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		if !over {
			uc.SetDeadline(time.Unix(1, 0))
		}
		mu.Unlock()
	})
	defer func() {
		stop()
		mu.Lock()
		over = true
		uc.SetDeadline(time.Time{})
		mu.Unlock()
	}()
	if _, err := uc.Write(appendConnectV1(nil, chanIDSessionInfo, 0, "")); err != nil {
		return false, probeErr(ctx, "sending the request", err)
	}
	var ans [8]byte
	if _, err := io.ReadFull(uc, ans[:4]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, fmt.Errorf("chansrv closed the socket without a status: %w", dvc.ErrConnectionLost)
		}
		return false, probeErr(ctx, "waiting for the status", err)
	}
	if st := binary.LittleEndian.Uint32(ans[:4]); st != 0 {
		return false, fmt.Errorf("chansrv refused it with status 0x%08X", st)
	}
	if _, err := io.ReadFull(uc, ans[4:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return false, fmt.Errorf("chansrv closed the socket before the session state: %w", dvc.ErrConnectionLost)
		}
		return false, probeErr(ctx, "waiting for the session state", err)
	}
	return parseSessionState(ans[4:])
}

// parseSessionState decodes struct xrdp_chan_session_state.
func parseSessionState(b []byte) (bool, error) {
	switch v := binary.LittleEndian.Uint32(b); v {
	case 0:
		return false, nil
	case 1:
		return true, nil
	default:
		return false, fmt.Errorf("session state report: is_connected is %d, want 0 or 1", v)
	}
}

func (w *SessionWatch) read() {
	defer close(w.done)
	var b [4]byte
	for {
		_, err := io.ReadFull(w.uc, b[:])
		var on bool
		if err == nil {
			on, err = parseSessionState(b[:])
		}
		w.mu.Lock()
		if err != nil {
			closed := w.closed
			switch {
			case closed:
				w.err = dvc.ErrClosed
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
				// chansrv keeps this channel for its whole life.
				w.err = fmt.Errorf("xrdp: chansrv closed the session-information channel: %w: %w", ErrSessionEnded, dvc.ErrConnectionLost)
			default:
				w.err = fmt.Errorf("xrdp: session-information channel: %w", err)
			}
			close(w.changed)
			w.mu.Unlock()
			if !closed {
				w.uc.Close() // bad input: the stream cannot be trusted
			}
			return
		}
		w.connected = on
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
	}
}

// Connected returns the last state chansrv reported, and, once the watch
// has ended, why (dvc.ErrClosed after Close).
func (w *SessionWatch) Connected() (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.connected, w.err
}

// Changed returns a channel that is closed at chansrv's next report (which
// may repeat the state) or when the watch ends.
func (w *SessionWatch) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.changed
}

// Wait returns nil once chansrv reports the state connected (at once if
// that is the last state reported), ctx's error when it is done first,
// and the watch's error when the watch ends first.
func (w *SessionWatch) Wait(ctx context.Context, connected bool) error {
	for {
		w.mu.Lock()
		on, err, ch := w.connected, w.err, w.changed
		w.mu.Unlock()
		if err != nil {
			return err
		}
		if on == connected {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close closes the channel and waits for the watch's goroutine.
func (w *SessionWatch) Close() error {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.uc.Close()
	<-w.done
	return nil
}

// Retry delays of OpenWhenConnected on a chansrv without session events.
const (
	reopenFirstDelay = 250 * time.Millisecond
	reopenMaxDelay   = 2 * time.Second
)

// OpenWhenConnected opens name once the session has a client that can
// answer, for programs that carry on across a client's disconnect and
// reconnect. On xrdp 0.10.5+ it waits for chansrv to report a connected
// client (WatchSession), then opens. On older xrdp, which reports nothing,
// it opens, and while the open fails with dvc.ErrConnectionLost (chansrv
// 0.9 to 0.10.4 drop an open request when no client is connected, see
// the package doc) it tries again after a delay growing from 250 ms to
// 2 s. It gives up when ctx is done, when the client refuses the channel
// (*dvc.OpenError), or when the session ends (an error wrapping
// ErrSessionEnded): the caller bounds the wait with ctx.
func (op *Opener) OpenWhenConnected(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	delay := reopenFirstDelay
	var t *time.Timer
	for {
		w, err := op.WatchSession(ctx)
		switch {
		case err == nil:
			err = w.Wait(ctx, true)
			w.Close()
			if err != nil {
				return nil, fmt.Errorf("xrdp: open %q: waiting for a client: %w", name, err)
			}
		case errors.Is(err, ErrNoSessionEvents):
		default:
			return nil, err
		}
		c, err := op.Open(ctx, name, opts...)
		if err == nil || !errors.Is(err, dvc.ErrConnectionLost) || errors.Is(err, ErrSessionEnded) || ctx.Err() != nil {
			return c, err
		}
		// No client yet, or it left again between the report and the open.
		if t == nil {
			t = time.NewTimer(delay)
			defer t.Stop()
		} else {
			t.Reset(delay)
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return nil, fmt.Errorf("xrdp: open %q: waiting for a client: %w (last attempt: %w)", name, ctx.Err(), err)
		}
		delay = min(2*delay, reopenMaxDelay)
	}
}

// WhenConnected returns an Opener whose Open is OpenWhenConnected: for a
// program that hands an Opener to a channel protocol (pnp/server.Start,
// say) and starts it again after the client came back.
func (op *Opener) WhenConnected() dvc.Opener { return whenConnected{op} }

type whenConnected struct{ op *Opener }

func (w whenConnected) Open(ctx context.Context, name string, opts ...dvc.OpenOption) (dvc.Conn, error) {
	return w.op.OpenWhenConnected(ctx, name, opts...)
}
