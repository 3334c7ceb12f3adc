package simple

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Defaults of the server role, as the sample runs.
const (
	DefaultInterval = time.Second
	// MinTimeout is the shortest default loss timeout; the default is
	// max(5 × Interval, MinTimeout).
	MinTimeout = 5 * time.Second
)

// Pinger is the Simple server role (README "Server Application Flow"):
// over an open channel it sends a ping every Interval, checks every echo
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

// Outcome is how a ping ended.
type Outcome int

const (
	Received   Outcome = iota // echoed intact
	Lost                      // no echo in time, or the channel died
	Mismatched                // echoed, but not byte for byte
	Unexpected                // an echo that answers no outstanding ping
)

func (o Outcome) String() string {
	switch o {
	case Received:
		return "received"
	case Lost:
		return "lost"
	case Mismatched:
		return "mismatched"
	case Unexpected:
		return "unexpected"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Reply reports one resolved ping.
type Reply struct {
	Seq     uint32
	Payload int           // payload bytes sent (or, for Unexpected, received)
	RTT     time.Duration // for Received and Mismatched
	Outcome Outcome
	Err     error // what was wrong, for Lost, Mismatched and Unexpected
}

// Line is the reply's log line, e.g. "Ping#3 payload=5120 rttMs=0.42".
func (r Reply) Line() string {
	switch r.Outcome {
	case Received:
		return fmt.Sprintf("Ping#%d payload=%d rttMs=%.2f", r.Seq, r.Payload, ms(r.RTT))
	case Lost:
		return fmt.Sprintf("Ping#%d lost", r.Seq)
	case Mismatched:
		return fmt.Sprintf("Ping#%d mismatched", r.Seq)
	}
	return fmt.Sprintf("Ping#%d unexpected echo", r.Seq)
}

// ErrStreamCorrupt wraps the error when the echoes stop parsing as a frame
// stream: on a stream backend nothing after that can be trusted, so Run
// ends.
var ErrStreamCorrupt = errors.New("simple: echo stream corrupt")

type pending struct {
	seq   uint32
	ticks int64
	at    time.Time
}

type arrival struct {
	msg []byte
	at  time.Time
	err error
}

// Run pings over conn until Count pings are resolved, ctx is done or the
// channel fails, and returns the figures. It does not close conn.
//
// It returns nil after Count pings, ctx.Err() when ctx ended the run, and
// otherwise the error that ended it (the channel's, wrapping
// dvc.ErrConnectionLost when the carrier died, or io.EOF when the client
// closed the channel). Pings outstanding when the run ends are counted
// lost.
func (p *Pinger) Run(ctx context.Context, conn dvc.Conn) (Stats, error) {
	interval := p.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	size := p.Payload
	switch {
	case size == 0:
		size = DefaultPayload
	case size < 0:
		size = 0
	case size > MaxPayload:
		return Stats{}, fmt.Errorf("simple: payload %d is over the %d-byte ceiling", size, MaxPayload)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = max(5*interval, MinTimeout)
	}
	grace := p.Grace
	if grace <= 0 {
		grace = min(timeout, interval)
	}
	log := p.Logger
	if log == nil {
		log = slog.Default()
	}
	now := p.Now
	if now == nil {
		now = time.Now
	}
	tick := p.Tick
	if tick == nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}

	r := &run{p: p, log: log, payload: Pattern(size), timeout: timeout}

	// The reader outlives ctx on purpose: after Ctrl+C the echoes still in
	// flight are worth waiting for (Grace).
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	arrivals := make(chan arrival)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			msg, err := conn.Read(readCtx)
			a := arrival{msg: msg, at: now(), err: err}
			select {
			case arrivals <- a:
			case <-readCtx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		stopReading()
		<-readerDone
	}()

	done := ctx.Done()
	var drainUntil time.Time
	var endErr error
	wantMore := func() bool { return p.Count <= 0 || r.stats.Sent < p.Count }

	sendFailed := func(err error) (Stats, error) {
		if ctx.Err() != nil {
			// Ctrl+C interrupted a blocked Write.
			r.loseAll(fmt.Errorf("no echo before the run ended: %w", ctx.Err()))
			return r.stats, ctx.Err()
		}
		if errors.Is(err, dvc.ErrClosed) || errors.Is(err, dvc.ErrConnectionLost) {
			// The channel died under the Write. Echoes that came before
			// the death are still queued for the reader, which then ends
			// with the channel's error; they count. Two ticks bound the
			// wait in case it does not end.
		drain:
			for ticks := 0; ticks < 2; {
				select {
				case a := <-arrivals:
					if a.err != nil || r.receive(a) != nil {
						break drain
					}
				case <-tick:
					ticks++
				case <-ctx.Done():
					break drain
				}
			}
		}
		r.loseAll(err)
		return r.stats, err
	}
	if err := r.send(ctx, conn, now()); err != nil {
		return sendFailed(err)
	}
	drain := func() {
		// Stop sending; wait up to Grace for what is in flight.
		done = nil
		endErr = ctx.Err()
		drainUntil = now().Add(grace)
		r.stopSending = true
	}
	for {
		if done != nil {
			// A cancellation that came before a tick wins over it, so that
			// no ping is sent after Ctrl+C.
			select {
			case <-done:
				drain()
			default:
			}
		}
		if (r.stopSending || !wantMore()) && len(r.out) == 0 {
			return r.stats, endErr
		}
		select {
		case <-done:
			drain()
		case <-tick:
			at := now()
			r.expire(at)
			if r.stopSending {
				if !at.Before(drainUntil) {
					r.loseAll(fmt.Errorf("no echo before the run ended: %w", endErr))
					return r.stats, endErr
				}
				continue
			}
			if wantMore() {
				if err := r.send(ctx, conn, at); err != nil {
					return sendFailed(err)
				}
			}
		case a := <-arrivals:
			if a.err != nil {
				err := a.err
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("simple: client closed the channel: %w", io.EOF)
				}
				r.loseAll(err)
				if endErr != nil {
					return r.stats, endErr
				}
				return r.stats, err
			}
			if err := r.receive(a); err != nil {
				r.loseAll(err)
				return r.stats, err
			}
		}
	}
}

// run is the state of one Run.
type run struct {
	p           *Pinger
	log         *slog.Logger
	payload     []byte
	timeout     time.Duration
	seq         uint32
	out         []pending // outstanding pings, in sequence order
	stats       Stats
	buf         []byte
	reasm       Reassembler
	want        []byte
	stopSending bool
}

func (r *run) send(ctx context.Context, conn dvc.Conn, at time.Time) error {
	r.seq++
	f := Frame{Seq: r.seq, UTCTicks: Ticks(at), Payload: r.payload}
	r.buf, _ = AppendFrame(r.buf[:0], &f) // size was checked in Run
	r.out = append(r.out, pending{seq: f.Seq, ticks: f.UTCTicks, at: at})
	r.stats.Sent++
	if err := conn.Write(ctx, r.buf); err != nil {
		return fmt.Errorf("simple: sending Ping#%d: %w", f.Seq, err)
	}
	return nil
}

func (r *run) resolve(rep Reply) {
	switch rep.Outcome {
	case Received:
		r.stats.Received++
		r.stats.RTTs = append(r.stats.RTTs, rep.RTT)
		if r.log.Enabled(context.Background(), slog.LevelInfo) {
			r.log.Info(rep.Line())
		}
	case Lost:
		r.stats.Lost++
		r.log.Warn(rep.Line(), "payload", rep.Payload, "err", rep.Err)
	case Mismatched:
		r.stats.Mismatched++
		r.log.Warn(rep.Line(), "payload", rep.Payload, "rttMs", fmt.Sprintf("%.2f", ms(rep.RTT)), "err", rep.Err)
	case Unexpected:
		r.stats.Unexpected++
		r.log.Warn(rep.Line(), "size", rep.Payload, "err", rep.Err)
	}
	if r.p.OnReply != nil {
		r.p.OnReply(rep)
	}
}

// take removes and returns the outstanding ping seq.
func (r *run) take(seq uint32) (pending, bool) {
	for i, o := range r.out {
		if o.seq == seq {
			r.out = append(r.out[:i], r.out[i+1:]...)
			return o, true
		}
	}
	return pending{}, false
}

func (r *run) expire(at time.Time) {
	n := 0
	for _, o := range r.out {
		if at.Sub(o.at) >= r.timeout {
			r.resolve(Reply{Seq: o.seq, Payload: len(r.payload), Outcome: Lost, Err: fmt.Errorf("no echo within %v", r.timeout)})
			continue
		}
		r.out[n] = o
		n++
	}
	r.out = r.out[:n]
}

func (r *run) loseAll(err error) {
	for _, o := range r.out {
		r.resolve(Reply{Seq: o.seq, Payload: len(r.payload), Outcome: Lost, Err: err})
	}
	r.out = r.out[:0]
}

// receive checks the frames in one received message. Backends that keep
// boundaries deliver one frame per message; stream backends may split or
// merge them, which the Reassembler undoes either way.
func (r *run) receive(a arrival) error {
	if err := r.reasm.Add(a.msg); err != nil {
		return fmt.Errorf("%w: %w", ErrStreamCorrupt, err)
	}
	for {
		fr, ok, err := r.reasm.Next()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStreamCorrupt, err)
		}
		if !ok {
			return nil
		}
		r.check(fr, a.at)
	}
}

// check resolves the ping that the echo fr answers. The echo must be the
// ping byte for byte; rather than keep every ping sent, the expected
// bytes are rebuilt from what was recorded (sequence number, ticks) and
// the fixed payload.
func (r *run) check(fr []byte, at time.Time) {
	seq := binary.LittleEndian.Uint32(fr[4:]) // FrameLen guaranteed a header
	o, ok := r.take(seq)
	if !ok {
		r.resolve(Reply{Seq: seq, Payload: len(fr) - HeaderSize, Outcome: Unexpected,
			Err: errors.New("answers no outstanding ping (late, duplicated, or a corrupted sequenceNumber)")})
		return
	}
	rep := Reply{Seq: seq, Payload: len(r.payload), RTT: at.Sub(o.at), Outcome: Received}
	r.want, _ = AppendFrame(r.want[:0], &Frame{Seq: o.seq, UTCTicks: o.ticks, Payload: r.payload})
	if !bytes.Equal(fr, r.want) {
		rep.Outcome = Mismatched
		rep.Err = describeMismatch(fr, r.want)
	}
	r.resolve(rep)
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
