package simple

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/roundtrip"
)

// Defaults of the server role, as the sample runs (the request/reply
// loop's, shared with echo.Prober).
const (
	DefaultInterval = roundtrip.DefaultInterval
	// MinTimeout is the shortest default loss timeout; the default is
	// max(5 × Interval, MinTimeout).
	MinTimeout = roundtrip.MinTimeout
)

// Pinger is the Simple server role (the Simple sample's README, "Server
// Application Flow"): over an open channel it sends a ping every Interval, checks every echo
// byte for byte and by sequence number, logs one line per ping and keeps
// Stats.
//
// Each intact echo is logged at Info with the message
//
//	Ping#<seq> payload=<n> rttMs=<ms, 2 decimals>
//
// exactly as the other Simple servers print it, so the same grep works on
// all of them; lost and mismatched pings are logged at Warn as
// "Ping#<seq> lost" and "Ping#<seq> mismatched".
//
// The zero value pings like the sample: every second, 5120-byte payload,
// forever. A Pinger's fields must not change while Run runs.
type Pinger struct {
	Interval time.Duration // between pings; DefaultInterval if 0
	// Payload is the payload size of each ping: DefaultPayload if 0,
	// none if negative, at most MaxPayload.
	Payload int
	Count   int // pings to send; 0 = until ctx is done
	// Timeout is how long an echo may take before its ping is counted
	// lost; max(5 × Interval, MinTimeout) if 0. It is checked at each
	// tick, so a loss is reported up to one Interval after it is due.
	Timeout time.Duration
	// Grace is how long Run still waits for outstanding echoes once ctx
	// is done (Ctrl+C): min(Timeout, Interval) if 0. Those still missing
	// are counted lost.
	Grace  time.Duration
	Logger *slog.Logger // slog.Default() if nil

	// Now is the monotonic clock RTTs are measured with (and utcTicks
	// taken from); time.Now if nil. Tick paces the pings; a time.Ticker
	// of Interval if nil. Tests set both to run without wall-clock time.
	Now  func() time.Time
	Tick <-chan time.Time

	// OnReply, if set, is called from Run's goroutine once per ping as it
	// is resolved, and for each unexpected echo.
	OnReply func(Reply)
}

// ErrStreamCorrupt wraps the error when the echoes stop parsing as a frame
// stream: on a stream backend nothing after that can be trusted, so Run
// ends.
var ErrStreamCorrupt = errors.New("simple: echo stream corrupt")

// Run pings over conn until Count pings are resolved, ctx is done or the
// channel fails, and returns the figures. It does not close conn.
//
// It returns nil after Count pings, ctx.Err() when ctx ended the run, and
// otherwise the error that ended it (the channel's, wrapping
// dvc.ErrConnectionLost when the carrier died, or io.EOF when the client
// closed the channel). Pings outstanding when the run ends are counted
// lost.
func (p *Pinger) Run(ctx context.Context, conn dvc.Conn) (Stats, error) {
	size := p.Payload
	switch {
	case size == 0:
		size = DefaultPayload
	case size < 0:
		size = 0
	case size > MaxPayload:
		return Stats{}, fmt.Errorf("simple: payload %d is over the %d-byte ceiling", size, MaxPayload)
	}
	return p.loop(size).Run(ctx, conn, &pingsExchange{payload: Pattern(size)})
}

// loop is the round-trip loop a Pinger runs, with payloads of size bytes.
func (p *Pinger) loop(size int) *RoundTrips {
	return &RoundTrips{
		Interval: p.Interval, Count: p.Count, Timeout: p.Timeout, Grace: p.Grace,
		Logger: p.Logger, Now: p.Now, Tick: p.Tick, OnReply: p.OnReply,
		Size: size, Line: Reply.Line,
		Package: "simple", Request: "Ping", Response: "echo", SizeKey: "payload",
	}
}

// pingsExchange is the Simple protocol as a RoundTrips Exchange: pipelined frames,
// echoes matched by sequence number and checked byte for byte.
type pingsExchange struct {
	payload []byte
	buf     []byte
	reasm   Reassembler
	want    []byte
}

func (x *pingsExchange) Request(seq uint32, at time.Time) []byte {
	x.buf = Frame{Seq: seq, UTCTicks: Ticks(at), Payload: x.payload}.Append(x.buf[:0]) // size was checked in Run
	return x.buf
}

func (x *pingsExchange) Overdue(uint32) string { return "" }

// Receive checks the frames in one received message. Backends that keep
// boundaries deliver one frame per message; stream backends may split or
// merge them, which the Reassembler undoes either way.
func (x *pingsExchange) Receive(t *Tracker, msg []byte, at time.Time) error {
	if err := x.reasm.Add(msg); err != nil {
		return fmt.Errorf("%w: %w", ErrStreamCorrupt, err)
	}
	for {
		fr, ok, err := x.reasm.Next()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStreamCorrupt, err)
		}
		if !ok {
			return nil
		}
		x.check(t, fr, at)
	}
}

// check resolves the ping that the echo fr answers. The echo must be the
// ping byte for byte; rather than keep every ping sent, the expected
// bytes are rebuilt from what was recorded (sequence number, and the time
// sent, which gave utcTicks) and the fixed payload.
func (x *pingsExchange) check(t *Tracker, fr []byte, at time.Time) {
	seq := binary.LittleEndian.Uint32(fr[4:]) // FrameLen guaranteed a header
	sentAt, ok := t.Take(seq)
	if !ok {
		t.Resolve(Reply{Seq: seq, Payload: len(fr) - HeaderSize, Outcome: Unexpected,
			Err: errors.New("answers no outstanding ping (late, duplicated, or a corrupted sequenceNumber)")})
		return
	}
	rep := Reply{Seq: seq, Payload: len(x.payload), RTT: at.Sub(sentAt), Outcome: Received}
	x.want = Frame{Seq: seq, UTCTicks: Ticks(sentAt), Payload: x.payload}.Append(x.want[:0])
	if !bytes.Equal(fr, x.want) {
		rep.Outcome = Mismatched
		rep.Err = describeMismatch(fr, x.want)
	}
	t.Resolve(rep)
}

func describeMismatch(got, want []byte) error {
	if len(got) != len(want) {
		return fmt.Errorf("echo is %d bytes, ping was %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			field := "payload"
			switch {
			case i < 4:
				field = "frameLen"
			case i < 8:
				field = "sequenceNumber"
			case i < 16:
				field = "utcTicks"
			case i < HeaderSize:
				field = "payloadLen"
			}
			return fmt.Errorf("byte %d (%s) is 0x%02x, sent 0x%02x", i, field, got[i], want[i])
		}
	}
	return nil
}
