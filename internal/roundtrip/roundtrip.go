package roundtrip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// RoundTrips is the request/response loop under simple.Pinger and
// echo.Prober (MS-RDPEECO): it sends a request every Interval, reads what comes back
// on a goroutine of its own, counts a request lost once Timeout has
// passed, waits up to Grace for what is in flight once ctx is done, and
// keeps the Stats and the log lines. What a request looks like and which
// request a message answers is the Exchange's; the loop knows no wire
// format.
//
// The fields mean what Pinger's do, with the same defaults; a
// RoundTrips's fields must not change while Run runs.
type RoundTrips struct {
	Interval time.Duration // between requests; DefaultInterval if 0
	Count    int           // requests to send; 0 = until ctx is done
	Timeout  time.Duration // max(5 × Interval, MinTimeout) if 0
	Grace    time.Duration // min(Timeout, Interval) if 0
	Logger   *slog.Logger  // slog.Default() if nil
	Now      func() time.Time
	Tick     <-chan time.Time
	OnReply  func(Reply)

	// Size is each request's payload size, reported in the Reply of a
	// request that is lost.
	Size int
	// Sequential sends a request only when none is outstanding, so a tick
	// that finds one waiting is skipped (MS-RDPEECO 1.3). Otherwise
	// requests are pipelined, one per tick, as the Simple sample does.
	Sequential bool

	// Line is the log line of a resolved request: Reply.Line (Ping#...)
	// if nil, echo.Line (Echo#...) for the prober.
	Line func(Reply) string
	// The words of the errors and log attributes, so each protocol keeps
	// its own: Package prefixes errors ("simple"), Request names a request
	// before its "#seq" ("Ping"), Response is what answers one ("echo"),
	// and SizeKey is the attribute that gives a request's size on a Warn
	// line ("payload").
	Package, Request, Response, SizeKey string
}

// An Exchange is the protocol half of a RoundTrips loop. Its methods are
// called from Run's goroutine only.
type Exchange interface {
	// Request returns the bytes of request seq (1, 2, ...), sent at at.
	// Run writes them before it calls the Exchange again and keeps
	// nothing, so they may live in a reused buffer.
	Request(seq uint32, at time.Time) []byte
	// Receive takes one message from the channel, which arrived at at,
	// and resolves through t the requests it answers. An error ends the
	// run, with every request still outstanding counted lost.
	Receive(t *Tracker, msg []byte, at time.Time) error
	// Overdue is added, when not empty, to the error of request seq as it
	// is counted lost at the timeout (what the Exchange knows of it).
	Overdue(seq uint32) string
}

// Tracker is the outstanding requests and the figures of one run of a
// RoundTrips loop, as its Exchange sees them.
type Tracker struct {
	out     []sent // outstanding, in sequence order
	stats   Stats
	log     *slog.Logger
	line    func(Reply) string
	sizeKey string
	onReply func(Reply)
}

type sent struct {
	seq uint32
	at  time.Time
}

// NewTracker returns the Tracker of a run whose resolved requests are
// logged on log with line: what Run makes, for driving an Exchange
// without a channel (its tests and fuzz targets).
func NewTracker(log *slog.Logger, line func(Reply) string) *Tracker {
	return &Tracker{log: log, line: line}
}

// Sent records request seq as sent at at, as Run does before writing it.
func (t *Tracker) Sent(seq uint32, at time.Time) {
	t.out = append(t.out, sent{seq: seq, at: at})
	t.stats.Sent++
}

// Stats returns the figures so far.
func (t *Tracker) Stats() Stats { return t.stats }

// Oldest returns the oldest outstanding request, which for a Sequential
// loop is the only one.
func (t *Tracker) Oldest() (seq uint32, at time.Time, ok bool) {
	if len(t.out) == 0 {
		return 0, time.Time{}, false
	}
	return t.out[0].seq, t.out[0].at, true
}

// Take removes request seq from the outstanding ones and returns when it
// was sent; ok is false when it is not outstanding (never sent, already
// resolved, or lost).
func (t *Tracker) Take(seq uint32) (at time.Time, ok bool) {
	for i, o := range t.out {
		if o.seq == seq {
			t.out = append(t.out[:i], t.out[i+1:]...)
			return o.at, true
		}
	}
	return time.Time{}, false
}

// Resolve counts r, logs it and passes it to OnReply. A Received,
// Mismatched or Lost reply must be for a request Take has removed, so
// that each request is counted once.
func (t *Tracker) Resolve(r Reply) {
	switch r.Outcome {
	case Received:
		t.stats.Received++
		t.stats.RTTs = append(t.stats.RTTs, r.RTT)
		if t.log.Enabled(context.Background(), slog.LevelInfo) {
			t.log.Info(t.line(r), r.figures())
		}
	case Lost:
		t.stats.Lost++
		t.log.Warn(t.line(r), t.sizeKey, r.Payload, "err", r.Err, r.figures())
	case Mismatched:
		t.stats.Mismatched++
		t.log.Warn(t.line(r), t.sizeKey, r.Payload, "rttMs", fmt.Sprintf("%.2f", ms(r.RTT)), "err", r.Err, r.figures())
	case Unexpected:
		t.stats.Unexpected++
		t.log.Warn(t.line(r), "size", r.Payload, "err", r.Err, r.figures())
	}
	if t.onReply != nil {
		t.onReply(r)
	}
}

// loseAll counts every outstanding request of size bytes lost for err.
func (t *Tracker) loseAll(size int, err error) {
	for _, o := range t.out {
		t.Resolve(Reply{Seq: o.seq, Payload: size, Outcome: Lost, Err: err})
	}
	t.out = t.out[:0]
}

type arrival struct {
	msg []byte
	at  time.Time
	err error
}

// Run sends requests over conn until Count are resolved, ctx is done or
// the channel fails, and returns the figures. It does not close conn.
//
// It returns nil after Count requests, ctx.Err() when ctx ended the run,
// and otherwise the error that ended it (the channel's, wrapping
// dvc.ErrConnectionLost when the carrier died, or io.EOF when the client
// closed the channel; or the Exchange's). Requests outstanding when the
// run ends are counted lost.
func (rt *RoundTrips) Run(ctx context.Context, conn dvc.Conn, ex Exchange) (Stats, error) {
	interval := rt.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	timeout := rt.Timeout
	if timeout <= 0 {
		timeout = max(5*interval, MinTimeout)
	}
	grace := rt.Grace
	if grace <= 0 {
		grace = min(timeout, interval)
	}
	log := rt.Logger
	if log == nil {
		log = slog.Default()
	}
	now := rt.Now
	if now == nil {
		now = time.Now
	}
	tick := rt.Tick
	if tick == nil {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	line := rt.Line
	if line == nil {
		line = Reply.Line
	}
	t := &Tracker{log: log, line: line, sizeKey: rt.SizeKey, onReply: rt.OnReply}
	lostAtEnd := func(err error) error {
		return fmt.Errorf("no %s before the run ended: %w", rt.Response, err)
	}

	// The reader outlives ctx on purpose: after Ctrl+C the responses
	// still in flight are worth waiting for (Grace).
	readCtx, stopReading := context.WithCancel(context.WithoutCancel(ctx))
	arrivals := make(chan arrival)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			msg, err := conn.Read(readCtx)
			select {
			case arrivals <- arrival{msg: msg, at: now(), err: err}:
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

	var seq uint32
	send := func(at time.Time) error {
		seq++
		b := ex.Request(seq, at)
		t.out = append(t.out, sent{seq: seq, at: at})
		t.stats.Sent++
		if err := conn.Write(ctx, b); err != nil {
			return fmt.Errorf("%s: sending %s#%d: %w", rt.Package, rt.Request, seq, err)
		}
		return nil
	}
	sendFailed := func(err error) (Stats, error) {
		if ctx.Err() != nil {
			// Ctrl+C interrupted a blocked Write.
			t.loseAll(rt.Size, lostAtEnd(ctx.Err()))
			return t.stats, ctx.Err()
		}
		if errors.Is(err, dvc.ErrClosed) || errors.Is(err, dvc.ErrConnectionLost) {
			// The channel died under the Write. Responses that came
			// before the death are still queued for the reader, which
			// then ends with the channel's error; they count. Two ticks
			// bound the wait in case it does not end.
		drain:
			for ticks := 0; ticks < 2; {
				select {
				case a := <-arrivals:
					if a.err != nil || ex.Receive(t, a.msg, a.at) != nil {
						break drain
					}
				case <-tick:
					ticks++
				case <-ctx.Done():
					break drain
				}
			}
		}
		t.loseAll(rt.Size, err)
		return t.stats, err
	}
	expire := func(at time.Time) {
		n := 0
		for _, o := range t.out {
			if at.Sub(o.at) < timeout {
				t.out[n] = o
				n++
				continue
			}
			err := fmt.Errorf("no %s within %v", rt.Response, timeout)
			if more := ex.Overdue(o.seq); more != "" {
				err = fmt.Errorf("%w (%s)", err, more)
			}
			t.Resolve(Reply{Seq: o.seq, Payload: rt.Size, Outcome: Lost, Err: err})
		}
		t.out = t.out[:n]
	}

	done := ctx.Done()
	var drainUntil time.Time
	var endErr error
	stopSending := false
	wantMore := func() bool { return rt.Count <= 0 || t.stats.Sent < rt.Count }
	startDrain := func() {
		// Stop sending; wait up to Grace for what is in flight.
		done = nil
		endErr = ctx.Err()
		drainUntil = now().Add(grace)
		stopSending = true
	}

	if err := send(now()); err != nil {
		return sendFailed(err)
	}
	for {
		if done != nil {
			// A cancellation that came before a tick wins over it, so that
			// no request is sent after Ctrl+C.
			select {
			case <-done:
				startDrain()
			default:
			}
		}
		if (stopSending || !wantMore()) && len(t.out) == 0 {
			return t.stats, endErr
		}
		select {
		case <-done:
			startDrain()
		case <-tick:
			at := now()
			expire(at)
			if stopSending {
				if !at.Before(drainUntil) {
					t.loseAll(rt.Size, lostAtEnd(endErr))
					return t.stats, endErr
				}
				continue
			}
			if wantMore() && !(rt.Sequential && len(t.out) > 0) {
				if err := send(at); err != nil {
					return sendFailed(err)
				}
			}
		case a := <-arrivals:
			if a.err != nil {
				err := a.err
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("%s: client closed the channel: %w", rt.Package, io.EOF)
				}
				t.loseAll(rt.Size, err)
				if endErr != nil {
					return t.stats, endErr
				}
				return t.stats, err
			}
			if err := ex.Receive(t, a.msg, a.at); err != nil {
				t.loseAll(rt.Size, err)
				return t.stats, err
			}
		}
	}
}

// figures are r's numbers as log fields, in the group "ping" (the
// message says them for people; a JSON log keeps them as fields).
func (r Reply) figures() slog.Attr {
	as := []any{"seq", r.Seq, "payload", r.Payload, "outcome", r.Outcome.String()}
	if r.Outcome == Received || r.Outcome == Mismatched {
		as = append(as, "rtt_ms", ms(r.RTT))
	}
	return slog.Group("ping", as...)
}
