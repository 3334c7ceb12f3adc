package echo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/simple"
)

// DefaultSize is the prober's default echoRequest size: the Simple
// sample's 5120-byte payload, so the two probes' round trips compare.
const DefaultSize = simple.DefaultPayload

// Prober is the MS-RDPEECO server role: it sends an ECHO_REQUEST_PDU every
// Interval over an open ECHO channel, checks that each ECHO_RESPONSE_PDU
// carries the request's bytes back unchanged, and measures round trips.
//
// The exchange is strictly sequential (MS-RDPEECO 1.3): a request is sent
// only when none is outstanding, so a tick that finds one still waiting is
// skipped. Responses carry no length or sequence number, so the prober
// collects received bytes until it has as many as the request had; that is
// also what makes it work over stream-only backends (xrdp), with no Framer.
// A response that never completes is counted lost at Timeout; one that is
// longer than the request, or differs, is counted mismatched.
//
// Each request's bytes depend on its sequence number (see RequestBytes), so
// a late response to an abandoned request does not pass for the current
// one.
//
// Each intact response is logged at Info as
//
//	Echo#<seq> size=<n> rttMs=<ms, 2 decimals>
//
// The zero value probes every second with DefaultSize bytes, forever.
type Prober struct {
	Interval time.Duration // between requests; simple.DefaultInterval if 0
	Size     int           // echoRequest bytes, 1..MaxSize; DefaultSize if 0
	Count    int           // requests to send; 0 = until ctx is done
	// Timeout is how long a response may take: max(5 × Interval,
	// simple.MinTimeout) if 0. It is checked at each tick.
	Timeout time.Duration
	// Grace is how long Run waits for an outstanding response once ctx is
	// done: min(Timeout, Interval) if 0.
	Grace  time.Duration
	Logger *slog.Logger // slog.Default() if nil

	// Now and Tick are the clock and pacing, as for simple.Pinger.
	Now  func() time.Time
	Tick <-chan time.Time
	// OnReply, if set, is called from Run's goroutine for each resolved
	// request and each unexpected response.
	OnReply func(simple.Reply)
}

// RequestBytes is the echoRequest the prober sends as request seq: n bytes
// counting up from byte(seq), wrapping at 256.
func RequestBytes(seq uint32, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seq + uint32(i))
	}
	return b
}

// Line is the log line for r as the prober prints it.
func Line(r simple.Reply) string {
	switch r.Outcome {
	case simple.Received:
		return fmt.Sprintf("Echo#%d size=%d rttMs=%.2f", r.Seq, r.Payload, float64(r.RTT)/float64(time.Millisecond))
	case simple.Lost:
		return fmt.Sprintf("Echo#%d lost", r.Seq)
	case simple.Mismatched:
		return fmt.Sprintf("Echo#%d mismatched", r.Seq)
	}
	return "Echo unexpected response"
}

type arrival struct {
	msg []byte
	at  time.Time
	err error
}

// Run probes over conn until Count requests are resolved, ctx is done or
// the channel fails; it does not close conn. Its results and errors are
// those of simple.Pinger.Run: nil after Count requests, ctx.Err() when ctx
// ended the run, else the error that ended it; an outstanding request at
// the end is counted lost.
func (p *Prober) Run(ctx context.Context, conn dvc.Conn) (simple.Stats, error) {
	interval := p.Interval
	if interval <= 0 {
		interval = simple.DefaultInterval
	}
	size := p.Size
	if size == 0 {
		size = DefaultSize
	}
	if size < 1 || size > MaxSize {
		// MS-RDPEECO 3.1.5.1: at least one byte.
		return simple.Stats{}, fmt.Errorf("echo: request size %d is outside 1..%d", size, MaxSize)
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = max(5*interval, simple.MinTimeout)
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

	var (
		stats       simple.Stats
		seq         uint32
		want        []byte // the outstanding request; nil if none
		sentAt      time.Time
		got         []byte // response bytes so far
		done        = ctx.Done()
		endErr      error
		drainUntil  time.Time
		stopSending bool
	)
	resolve := func(r simple.Reply) {
		switch r.Outcome {
		case simple.Received:
			stats.Received++
			stats.RTTs = append(stats.RTTs, r.RTT)
			log.Info(Line(r))
		case simple.Lost:
			stats.Lost++
			log.Warn(Line(r), "size", r.Payload, "err", r.Err)
		case simple.Mismatched:
			stats.Mismatched++
			log.Warn(Line(r), "size", r.Payload, "err", r.Err)
		case simple.Unexpected:
			stats.Unexpected++
			log.Warn(Line(r), "size", r.Payload, "err", r.Err)
		}
		if p.OnReply != nil {
			p.OnReply(r)
		}
	}
	lose := func(err error) {
		if want != nil {
			resolve(simple.Reply{Seq: seq, Payload: len(want), Outcome: simple.Lost, Err: err})
			want, got = nil, got[:0]
		}
	}
	wantMore := func() bool { return p.Count <= 0 || stats.Sent < p.Count }
	send := func(at time.Time) error {
		seq++
		req := Request{EchoRequest: RequestBytes(seq, size)}
		b, _ := req.Append(nil) // size was checked above
		want, sentAt, got = b, at, got[:0]
		stats.Sent++
		if err := conn.Write(ctx, b); err != nil {
			return fmt.Errorf("echo: sending Echo#%d: %w", seq, err)
		}
		return nil
	}
	fail := func(err error) (simple.Stats, error) {
		if ctx.Err() != nil && endErr == nil {
			endErr = ctx.Err()
		}
		if endErr != nil {
			lose(fmt.Errorf("no response before the run ended: %w", endErr))
			return stats, endErr
		}
		lose(err)
		return stats, err
	}
	drain := func() {
		done = nil
		endErr = ctx.Err()
		drainUntil = now().Add(grace)
		stopSending = true
	}

	if err := send(now()); err != nil {
		return fail(err)
	}
	for {
		if done != nil {
			select {
			case <-done:
				drain()
			default:
			}
		}
		if (stopSending || !wantMore()) && want == nil {
			return stats, endErr
		}
		select {
		case <-done:
			drain()
		case <-tick:
			at := now()
			if want != nil && at.Sub(sentAt) >= timeout {
				lose(fmt.Errorf("no response within %v (%d of %d bytes came)", timeout, len(got), len(want)))
			}
			if stopSending {
				if !at.Before(drainUntil) {
					return fail(nil)
				}
				continue
			}
			if want == nil && wantMore() {
				if err := send(at); err != nil {
					return fail(err)
				}
			}
		case a := <-arrivals:
			if a.err != nil {
				err := a.err
				if errors.Is(err, io.EOF) {
					err = fmt.Errorf("echo: client closed the channel: %w", io.EOF)
				}
				return fail(err)
			}
			if want == nil {
				resolve(simple.Reply{Payload: len(a.msg), Outcome: simple.Unexpected,
					Err: errors.New("response with no request outstanding (late, or unsolicited)")})
				continue
			}
			got = append(got, a.msg...)
			if len(got) < len(want) && bytes.Equal(got, want[:len(got)]) {
				continue // more to come
			}
			r := simple.Reply{Seq: seq, Payload: len(want), RTT: a.at.Sub(sentAt), Outcome: simple.Received}
			if !bytes.Equal(got, want) {
				r.Outcome = simple.Mismatched
				r.Err = describe(got, want)
			}
			want, got = nil, got[:0]
			resolve(r)
		}
	}
}

func describe(got, want []byte) error {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Errorf("echoResponse byte %d is 0x%02x, echoRequest had 0x%02x", i, got[i], want[i])
		}
	}
	return fmt.Errorf("echoResponse has %d bytes, echoRequest had %d", len(got), len(want))
}
