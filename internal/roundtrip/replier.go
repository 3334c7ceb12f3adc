package roundtrip

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Replier answers on a client-side channel from inside Handler.Received,
// for simple.Echoer and echo.Responder (MS-RDPEECO). Received runs on
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
