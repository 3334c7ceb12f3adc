package simple

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// DefaultEchoTimeout bounds one echo Write from inside Received.
const DefaultEchoTimeout = 5 * time.Second

// Echoer is the Simple client role (README "Client Plugin Flow"): a
// dvc.Listener whose channels send every message back unchanged. It does
// not require the messages to be frames, so it is also a correct
// MS-RDPEECO client (it echoes any bytes), but it logs sequence numbers
// when they are.
//
// Register it with a dvc.Registrar under ChannelName. The zero value is
// ready to use.
type Echoer struct {
	Logger *slog.Logger // slog.Default() if nil
	// Timeout bounds each echo Write; DefaultEchoTimeout if 0. Received
	// runs on the backend's delivery path, so a peer that stops reading
	// must not hold it forever: on timeout the echo is dropped (the server
	// counts it lost) and the channel is closed.
	Timeout time.Duration

	channels, messages, bytes atomic.Int64
}

// EchoCounts are an Echoer's totals over all its channels.
type EchoCounts struct {
	Channels int64 // instances accepted
	Messages int64 // messages echoed
	Bytes    int64 // bytes echoed
}

// Counts returns the totals so far; safe from any goroutine.
func (e *Echoer) Counts() EchoCounts {
	return EchoCounts{Channels: e.channels.Load(), Messages: e.messages.Load(), Bytes: e.bytes.Load()}
}

// Accept implements dvc.Listener.
func (e *Echoer) Accept(ch dvc.Channel) (dvc.Handler, error) {
	e.channels.Add(1)
	t := e.Timeout
	if t <= 0 {
		t = DefaultEchoTimeout
	}
	return &echoHandler{Replier: NewReplier(ch, e.Logger, t, "echo"), e: e}, nil
}

type echoHandler struct {
	*Replier // and its Closed
	e        *Echoer
}

func (h *echoHandler) Received(msg []byte) {
	if h.Failed() {
		return
	}
	if log := h.Logger(); log.Enabled(context.Background(), slog.LevelInfo) {
		// Log the sequence number when the message starts like a frame
		// (on stream backends a message may be part of one).
		if len(msg) >= HeaderSize {
			log.Info("echo", "seq", binary.LittleEndian.Uint32(msg[4:]), "size", len(msg))
		} else {
			log.Info("echo", "size", len(msg))
		}
	}
	if h.Send(msg) {
		h.e.messages.Add(1)
		h.e.bytes.Add(int64(len(msg)))
	}
}

// Replier answers on a client-side channel from inside Handler.Received,
// for the Echoer here and echo.Responder (MS-RDPEECO). Received runs on
// the backend's delivery path, so each reply's Write is bounded by a
// timeout: a peer that does not read for that long has stalled the
// channel, which is then closed rather than left to block every later
// delivery the same way. After a reply fails, nothing more is sent.
//
// A handler embeds a *Replier for its Closed, which logs the channel's
// end. A Replier is used from the delivery goroutine only.
type Replier struct {
	ch      dvc.Channel
	log     *slog.Logger
	timeout time.Duration
	what    string
	failed  bool
}

// NewReplier starts replying on ch, each Write bounded by timeout, and
// logs "channel opened" on log (slog.Default() if nil) with the channel's
// name and id attached. what names a reply in the warning for a stall
// ("echo" gives "echo failed; closing the channel").
func NewReplier(ch dvc.Channel, log *slog.Logger, timeout time.Duration, what string) *Replier {
	if log == nil {
		log = slog.Default()
	}
	log = log.With("channel", ch.Name(), "id", ch.ID())
	log.Info("channel opened")
	return &Replier{ch: ch, log: log, timeout: timeout, what: what}
}

// Logger is the channel's logger, its name and id attached.
func (r *Replier) Logger() *slog.Logger { return r.log }

// Failed reports whether a reply has failed; Send sends nothing after.
func (r *Replier) Failed() bool { return r.failed }

// Send writes msg and reports whether it was sent. When the channel is
// closed or its connection lost it fails quietly; on any other error (a
// stall past the timeout) it warns and closes the channel.
func (r *Replier) Send(msg []byte) bool {
	if r.failed {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	err := r.ch.Write(ctx, msg)
	cancel()
	if err == nil {
		return true
	}
	r.failed = true
	if !errors.Is(err, dvc.ErrClosed) && !errors.Is(err, dvc.ErrConnectionLost) {
		r.log.Warn(r.what+" failed; closing the channel", "err", err)
		_ = r.ch.Close()
	}
	return false
}

// Closed implements dvc.Handler's Closed for an embedding handler.
//
// The peer closing the channel, this program closing it, or the end of
// the whole connection (dvc.ErrConnectionLost: the program logs why the
// connection ended, once, not once per channel) is logged at Info;
// anything else at Warn.
func (r *Replier) Closed(err error) {
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, dvc.ErrClosed) && !errors.Is(err, dvc.ErrConnectionLost) && !errors.Is(err, context.Canceled) {
		r.log.Warn("channel closed", "err", err)
		return
	}
	if err != nil {
		r.log.Info("channel closed", "why", err)
		return
	}
	r.log.Info("channel closed")
}
