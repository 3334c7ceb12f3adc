package roundtrip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
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
//
// The timeout is one timer per Replier, armed by the first reply and
// re-armed only when it fires, rather than a context.WithTimeout per
// reply: a new timer becomes the earliest one, and arming it wakes an
// idle thread to re-arm the poller, one futex wake per reply on the hot
// path (perf on rdp-simple-plugin-client echoing back to back).
type Replier struct {
	ch      dvc.Channel
	log     *slog.Logger
	timeout time.Duration
	what    string
	failed  bool

	mu     sync.Mutex
	ctx    context.Context // cancelled when a reply has been stuck for timeout; replaced under mu, read by Send
	cancel context.CancelCauseFunc
	since  time.Time // start of the reply being written; zero between replies
	timer  *time.Timer
	armed  bool // timer will fire
	done   bool // Closed: never arm again
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
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Replier{ch: ch, log: log, timeout: timeout, what: what, ctx: ctx, cancel: cancel}
}

// begin marks a reply as being written, arming the timer if it is not.
func (r *Replier) begin() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.since = time.Now()
	if r.armed || r.done {
		return
	}
	r.armed = true
	if r.timer == nil {
		r.timer = time.AfterFunc(r.timeout, r.check)
	} else {
		r.timer.Reset(r.timeout)
	}
}

// end marks the reply written (ok) or failed. A timer that fired just as
// a write finished in time must not fail the next one: the context is
// renewed.
func (r *Replier) end(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.since = time.Time{}
	if ok && r.ctx.Err() != nil && !r.done {
		r.ctx, r.cancel = context.WithCancelCause(context.Background())
	}
}

// check runs when the timer fires: a reply under way for the whole
// timeout is cancelled; one started later gets the rest of its time; with
// none under way the timer stays off until the next reply.
func (r *Replier) check() {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch left := r.timeout - time.Since(r.since); {
	case r.done || r.since.IsZero():
		r.armed = false
	case left > 0:
		r.timer.Reset(left)
	default:
		r.armed = false
		r.cancel(fmt.Errorf("%w: the write took longer than %v", context.DeadlineExceeded, r.timeout))
	}
}

// stop disarms the timer for good.
func (r *Replier) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.cancel(context.Canceled)
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
	r.begin()
	err := r.ch.Write(r.ctx, msg)
	r.end(err == nil)
	if err == nil {
		return true
	}
	if errors.Is(err, context.Canceled) {
		err = context.Cause(r.ctx)
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
	r.stop()
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
