package echo

import (
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/roundtrip"
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
	t := r.Timeout
	if t <= 0 {
		t = DefaultResponseTimeout
	}
	return &responder{Replier: roundtrip.NewReplier(ch, r.Logger, t, "response"), r: r}, nil
}

type responder struct {
	*roundtrip.Replier // and its Closed
	r                  *Responder
	buf                []byte
}

func (h *responder) Received(msg []byte) {
	if h.Failed() {
		return
	}
	req, err := ParseRequest(msg)
	if err != nil {
		h.Logger().Warn("ignoring request", "err", err)
		return
	}
	resp := ResponseTo(req)
	h.buf = resp.Append(h.buf[:0]) // same size as a valid request
	h.Logger().Debug("echo", "size", len(h.buf))
	if h.Send(h.buf) {
		h.r.requests.Add(1)
	}
}
