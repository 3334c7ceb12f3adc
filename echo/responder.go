package echo

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// DefaultResponseTimeout bounds one response Write from inside Received.
const DefaultResponseTimeout = 5 * time.Second

// Responder is the MS-RDPEECO client role (3.2.5): a dvc.Listener for
// ChannelName whose channels answer every ECHO_REQUEST_PDU with an
// ECHO_RESPONSE_PDU carrying the same bytes. An empty message is not a
// valid request (3.1.5.1) and gets no response (2.2.2: responses are sent
// only in response to a request); it is logged and ignored.
//
// The zero value is ready to use.
type Responder struct {
	Logger *slog.Logger // slog.Default() if nil
	// Timeout bounds each response Write, so a server that stops reading
	// cannot hold the backend's delivery path; DefaultResponseTimeout if 0.
	// On timeout the channel is closed.
	Timeout time.Duration

	requests atomic.Int64
}

// Requests is how many requests have been answered; safe from any
// goroutine.
func (r *Responder) Requests() int64 { return r.requests.Load() }

// Accept implements dvc.Listener.
func (r *Responder) Accept(ch dvc.Channel) (dvc.Handler, error) {
	log := r.Logger
	if log == nil {
		log = slog.Default()
	}
	t := r.Timeout
	if t <= 0 {
		t = DefaultResponseTimeout
	}
	log = log.With("channel", ch.Name(), "id", ch.ID())
	log.Info("channel opened")
	return &responder{r: r, ch: ch, log: log, timeout: t}, nil
}

type responder struct {
	r       *Responder
	ch      dvc.Channel
	log     *slog.Logger
	timeout time.Duration
	buf     []byte
	failed  bool
}

func (h *responder) Received(msg []byte) {
	if h.failed {
		return
	}
	req, err := ParseRequest(msg)
	if err != nil {
		h.log.Warn("ignoring request", "err", err)
		return
	}
	resp := ResponseTo(req)
	h.buf, _ = resp.Append(h.buf[:0]) // same size as a valid request
	h.log.Debug("echo", "size", len(h.buf))
	ctx, cancel := context.WithTimeout(context.Background(), h.timeout)
	err = h.ch.Write(ctx, h.buf)
	cancel()
	if err != nil {
		h.failed = true
		if !errors.Is(err, dvc.ErrClosed) && !errors.Is(err, dvc.ErrConnectionLost) {
			h.log.Warn("response failed; closing the channel", "err", err)
			_ = h.ch.Close()
		}
		return
	}
	h.r.requests.Add(1)
}

func (h *responder) Closed(err error) {
	if err != nil {
		h.log.Warn("channel closed", "err", err)
		return
	}
	h.log.Info("channel closed")
}
