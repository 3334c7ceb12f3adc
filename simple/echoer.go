package simple

import (
	"context"
	"encoding/binary"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// DefaultEchoTimeout bounds one echo Write from inside Received.
const DefaultEchoTimeout = 5 * time.Second

// Echoer is the Simple client role (the Simple sample's README, "Client
// Plugin Flow"): a dvc.Listener whose channels send every message back
// unchanged. It does
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
