package echo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/roundtrip"
)

// DefaultSize is the prober's default echoRequest size: the Simple
// sample's 5120-byte payload (simple.DefaultPayload), so the two probes'
// round trips compare.
const DefaultSize = 5120

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
	Interval time.Duration // between requests; roundtrip.DefaultInterval if 0
	Size     int           // echoRequest bytes, 1..MaxSize; DefaultSize if 0
	Count    int           // requests to send; 0 = until ctx is done
	// Timeout is how long a response may take: max(5 × Interval,
	// roundtrip.MinTimeout) if 0. It is checked at each tick.
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
	OnReply func(Reply)
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
func Line(r Reply) string {
	switch r.Outcome {
	case Received:
		return fmt.Sprintf("Echo#%d size=%d rttMs=%.2f", r.Seq, r.Payload, float64(r.RTT)/float64(time.Millisecond))
	case Lost:
		return fmt.Sprintf("Echo#%d lost", r.Seq)
	case Mismatched:
		return fmt.Sprintf("Echo#%d mismatched", r.Seq)
	}
	return "Echo unexpected response"
}

// Run probes over conn until Count requests are resolved, ctx is done or
// the channel fails; it does not close conn. Its results and errors are
// those of simple.Pinger.Run: nil after Count requests, ctx.Err() when ctx
// ended the run, else the error that ended it; an outstanding request at
// the end is counted lost.
func (p *Prober) Run(ctx context.Context, conn dvc.Conn) (Stats, error) {
	size := p.Size
	if size == 0 {
		size = DefaultSize
	}
	if size < 1 || size > MaxSize {
		// MS-RDPEECO 3.1.5.1: at least one byte.
		return Stats{}, fmt.Errorf("echo: request size %d is outside 1..%d", size, MaxSize)
	}
	loop := &roundtrip.RoundTrips{
		Interval: p.Interval, Count: p.Count, Timeout: p.Timeout, Grace: p.Grace,
		Logger: p.Logger, Now: p.Now, Tick: p.Tick, OnReply: p.OnReply,
		Size: size, Sequential: true, Line: Line,
		Package: "echo", Request: "Echo", Response: "response", SizeKey: "size",
	}
	return loop.Run(ctx, conn, &exchange{size: size})
}

// exchange is MS-RDPEECO as a roundtrip.RoundTrips Exchange. Responses carry
// no length or sequence number, so the bytes received are collected until
// there are as many as the outstanding request had.
type exchange struct {
	size int
	want []byte // the last request sent
	got  []byte // response bytes so far
}

func (x *exchange) Request(seq uint32, _ time.Time) []byte {
	req := Request{EchoRequest: RequestBytes(seq, x.size)}
	x.want = req.Append(x.want[:0]) // size was checked in Run
	x.got = x.got[:0]
	return x.want
}

func (x *exchange) Overdue(uint32) string {
	return fmt.Sprintf("%d of %d bytes came", len(x.got), len(x.want))
}

func (x *exchange) Receive(t *roundtrip.Tracker, msg []byte, at time.Time) error {
	// Sequential: the oldest outstanding request is the only one, and the
	// last sent.
	seq, sentAt, ok := t.Oldest()
	if !ok {
		t.Resolve(Reply{Payload: len(msg), Outcome: Unexpected,
			Err: errors.New("response with no request outstanding (late, or unsolicited)")})
		return nil
	}
	x.got = append(x.got, msg...)
	if len(x.got) < len(x.want) && bytes.Equal(x.got, x.want[:len(x.got)]) {
		return nil // more to come
	}
	t.Take(seq)
	r := Reply{Seq: seq, Payload: len(x.want), RTT: at.Sub(sentAt), Outcome: Received}
	if !bytes.Equal(x.got, x.want) {
		r.Outcome = Mismatched
		r.Err = describe(x.got, x.want)
	}
	x.got = x.got[:0]
	t.Resolve(r)
	return nil
}

func describe(got, want []byte) error {
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			return fmt.Errorf("echoResponse byte %d is 0x%02x, echoRequest had 0x%02x", i, got[i], want[i])
		}
	}
	return fmt.Errorf("echoResponse has %d bytes, echoRequest had %d", len(got), len(want))
}
