package simple

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/internal/roundtrip"
	"github.com/rdpdvc/rdpdvc/loopback"
)

// fakeClock is the Pinger's clock in tests: time moves only when a test
// (or a test echoer) says so, so RTTs and timeouts are exact.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testEchoer echoes through fn, which may change, drop or split a message.
// It reports every sequence number it sees on seen.
type testEchoer struct {
	clk  *fakeClock
	rtt  time.Duration // clock advance before each echo
	seen chan uint32
	// fn returns the messages to send back for msg (nil: drop).
	fn func(ch dvc.Channel, seq uint32, msg []byte) [][]byte
}

func (e *testEchoer) Accept(ch dvc.Channel) (dvc.Handler, error) {
	return handlerFunc(func(msg []byte) {
		seq := binary.LittleEndian.Uint32(msg[4:])
		e.clk.Advance(e.rtt)
		out := [][]byte{msg}
		if e.fn != nil {
			out = e.fn(ch, seq, bytes.Clone(msg))
		}
		for _, m := range out {
			_ = ch.Write(context.Background(), m)
		}
		e.seen <- seq
	}), nil
}

type handlerFunc func([]byte)

func (f handlerFunc) Received(msg []byte) { f(msg) }
func (f handlerFunc) Closed(error)        {}

// harness runs a Pinger over a loopback hub against a test echoer, with
// the clock and ticks in the test's hands.
type harness struct {
	t       *testing.T
	clk     *fakeClock
	tick    chan time.Time
	replies chan Reply
	seen    chan uint32
	hub     *loopback.Hub
	logs    *bytes.Buffer
	done    chan struct{}
	stats   Stats
	err     error
	p       *Pinger
	cancel  context.CancelFunc
}

func start(t *testing.T, p *Pinger, fn func(ch dvc.Channel, seq uint32, msg []byte) [][]byte) *harness {
	t.Helper()
	h := &harness{t: t, clk: newClock(), tick: make(chan time.Time), replies: make(chan Reply, 100),
		seen: make(chan uint32, 100), hub: loopback.New(), logs: new(bytes.Buffer), done: make(chan struct{}), p: p}
	if err := h.hub.Listen(ChannelName, &testEchoer{clk: h.clk, rtt: 3 * time.Millisecond, seen: h.seen, fn: fn}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	conn, err := h.hub.Open(ctx, ChannelName)
	if err != nil {
		t.Fatal(err)
	}
	if p.Interval == 0 {
		p.Interval = time.Second
	}
	p.Now, p.Tick = h.clk.Now, h.tick
	p.OnReply = func(r Reply) { h.replies <- r }
	p.Logger = slog.New(slog.NewTextHandler(h.logs, nil))
	go func() {
		defer close(h.done)
		h.stats, h.err = p.Run(ctx, conn)
	}()
	t.Cleanup(func() {
		cancel()
		h.hub.Close()
		select {
		case <-h.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
		conn.Close()
	})
	return h
}

// advance moves the clock one interval and delivers a tick.
func (h *harness) advance() {
	h.clk.Advance(h.p.Interval)
	select {
	case h.tick <- h.clk.Now():
	case <-h.done:
	}
}

func (h *harness) reply() Reply {
	h.t.Helper()
	select {
	case r := <-h.replies:
		return r
	case <-time.After(10 * time.Second):
		h.t.Fatal("no reply")
	}
	return Reply{}
}

func (h *harness) saw(want uint32) {
	h.t.Helper()
	select {
	case s := <-h.seen:
		if s != want {
			h.t.Fatalf("echoer saw Ping#%d, want #%d", s, want)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatalf("echoer never saw Ping#%d", want)
	}
}

// finish ticks until Run returns.
func (h *harness) finish() {
	h.t.Helper()
	for i := 0; ; i++ {
		select {
		case <-h.done:
			return
		case h.tick <- func() time.Time { h.clk.Advance(h.p.Interval); return h.clk.Now() }():
		case <-time.After(10 * time.Second):
			h.t.Fatal("Run did not finish")
		}
	}
}

func TestPingerEchoed(t *testing.T) {
	h := start(t, &Pinger{Count: 3}, nil)
	for seq := uint32(1); seq <= 3; seq++ {
		r := h.reply()
		if r.Seq != seq || r.Outcome != Received || r.RTT != 3*time.Millisecond || r.Payload != DefaultPayload {
			t.Fatalf("reply %+v", r)
		}
		if seq < 3 {
			h.advance()
		}
	}
	<-h.done
	s := h.stats
	if h.err != nil || s.Sent != 3 || s.Received != 3 || !s.OK() || s.Min() != 3*time.Millisecond || s.Percentile(99) != 3*time.Millisecond {
		t.Fatalf("stats %+v err %v", s, h.err)
	}
	for _, line := range []string{"Ping#1 payload=5120 rttMs=3.00", "Ping#2 payload=5120 rttMs=3.00", "Ping#3 payload=5120 rttMs=3.00"} {
		if !strings.Contains(h.logs.String(), line) {
			t.Errorf("log lacks %q:\n%s", line, h.logs)
		}
	}
}

func TestPingerPayloadSizes(t *testing.T) {
	for _, c := range []struct{ set, want int }{{-1, 0}, {1, 1}, {70000, 70000}} {
		h := start(t, &Pinger{Count: 1, Payload: c.set}, nil)
		if r := h.reply(); r.Outcome != Received || r.Payload != c.want {
			t.Fatalf("payload %d: %+v", c.set, r)
		}
		<-h.done
	}
	if _, err := (&Pinger{Payload: MaxPayload + 1}).Run(context.Background(), nil); err == nil {
		t.Fatal("payload over the ceiling accepted")
	}
}

func TestPingerLoss(t *testing.T) {
	h := start(t, &Pinger{Count: 4, Timeout: 5 * time.Second}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 2 {
			return nil
		}
		return [][]byte{msg}
	})
	h.reply() // 1
	h.advance()
	h.saw(1)
	h.saw(2)
	h.advance()
	if r := h.reply(); r.Seq != 3 || r.Outcome != Received {
		t.Fatalf("%+v", r)
	}
	h.advance()
	if r := h.reply(); r.Seq != 4 {
		t.Fatalf("%+v", r)
	}
	// Ping 2 went out at t=1s; ticks at 4s and 5s leave it pending, the
	// tick at 6s (5s later) counts it lost.
	h.advance()
	h.advance()
	select {
	case r := <-h.replies:
		t.Fatalf("resolved early: %+v", r)
	default:
	}
	h.advance()
	if r := h.reply(); r.Seq != 2 || r.Outcome != Lost {
		t.Fatalf("%+v", r)
	}
	<-h.done
	s := h.stats
	if h.err != nil || s.Sent != 4 || s.Received != 3 || s.Lost != 1 || s.OK() {
		t.Fatalf("stats %+v err %v", s, h.err)
	}
	if !strings.Contains(h.logs.String(), "Ping#2 lost") {
		t.Fatalf("log:\n%s", h.logs)
	}
}

func TestPingerDefaultTimeout(t *testing.T) {
	// Interval 2s: the default timeout is max(10s, 5s) = 10s.
	h := start(t, &Pinger{Count: 1, Interval: 2 * time.Second}, func(dvc.Channel, uint32, []byte) [][]byte { return nil })
	h.saw(1)
	for i := 0; i < 4; i++ {
		h.advance() // 2s .. 8s
	}
	select {
	case r := <-h.replies:
		t.Fatalf("lost before 10s: %+v", r)
	default:
	}
	h.advance() // 10s
	if r := h.reply(); r.Outcome != Lost {
		t.Fatalf("%+v", r)
	}
	<-h.done
}

func TestPingerMismatch(t *testing.T) {
	h := start(t, &Pinger{Count: 4, Payload: 300}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		switch seq {
		case 2:
			msg[HeaderSize+100] ^= 0xff // payload byte 100
		case 3:
			msg[4] = 99 // sequenceNumber
		case 4:
			msg[9] ^= 1 // utcTicks
		}
		return [][]byte{msg}
	})
	h.reply()
	h.advance()
	r := h.reply()
	if r.Seq != 2 || r.Outcome != Mismatched || !strings.Contains(r.Err.Error(), "byte 120 (payload)") || r.RTT != 3*time.Millisecond {
		t.Fatalf("%+v", r)
	}
	h.advance()
	if r := h.reply(); r.Seq != 99 || r.Outcome != Unexpected {
		t.Fatalf("%+v", r)
	}
	h.advance()
	if r := h.reply(); r.Seq != 4 || r.Outcome != Mismatched || !strings.Contains(r.Err.Error(), "utcTicks") {
		t.Fatalf("%+v", r)
	}
	h.finish()
	s := h.stats
	if s.Sent != 4 || s.Received != 1 || s.Mismatched != 2 || s.Lost != 1 || s.Unexpected != 1 || s.OK() {
		t.Fatalf("stats %+v", s)
	}
	if sum := s.Received + s.Lost + s.Mismatched; sum != s.Sent {
		t.Fatalf("received+lost+mismatched = %d, sent %d", sum, s.Sent)
	}
}

func TestPingerShortEchoIsMismatch(t *testing.T) {
	// A well-formed frame with the right seq but a shorter payload.
	h := start(t, &Pinger{Count: 1, Payload: 10}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		f, _, _ := ParseFrame(msg)
		f.Payload = f.Payload[:5]
		b := f.Append(nil)
		return [][]byte{b}
	})
	if r := h.reply(); r.Outcome != Mismatched || !strings.Contains(r.Err.Error(), "25 bytes, ping was 30") {
		t.Fatalf("%+v", r)
	}
	<-h.done
}

func TestPingerReassemblesSplitAndMergedEchoes(t *testing.T) {
	var held []byte
	h := start(t, &Pinger{Count: 4}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		switch seq {
		case 1: // split in three uneven pieces
			return [][]byte{msg[:3], msg[3:1700], msg[1700:]}
		case 2: // hold, then send merged with 3
			held = msg
			return nil
		case 3:
			return [][]byte{append(held, msg...)}
		}
		// 4: merged with nothing but split across the header
		return [][]byte{msg[:10], msg[10:]}
	})
	h.reply()
	h.advance()
	h.saw(1)
	h.saw(2)
	h.advance()
	if a, b := h.reply(), h.reply(); a.Seq != 2 || b.Seq != 3 || a.Outcome != Received || b.Outcome != Received {
		t.Fatalf("%+v %+v", a, b)
	}
	h.advance()
	if r := h.reply(); r.Seq != 4 || r.Outcome != Received {
		t.Fatalf("%+v", r)
	}
	<-h.done
	if !h.stats.OK() || h.stats.Received != 4 {
		t.Fatalf("%+v", h.stats)
	}
}

func TestPingerCorruptStreamEnds(t *testing.T) {
	h := start(t, &Pinger{Count: 0}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 2 {
			binary.LittleEndian.PutUint32(msg, 3) // frameLen below the header
		}
		return [][]byte{msg}
	})
	h.reply()
	h.advance()
	if r := h.reply(); r.Seq != 2 || r.Outcome != Lost {
		t.Fatalf("%+v", r)
	}
	<-h.done
	if !errors.Is(h.err, ErrStreamCorrupt) || h.stats.Lost != 1 {
		t.Fatalf("err %v stats %+v", h.err, h.stats)
	}
}

func TestPingerChannelDiesMidPing(t *testing.T) {
	var hub *loopback.Hub
	h := start(t, &Pinger{}, func(ch dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 3 {
			go hub.Close() // the carrier dies with Ping#3 in flight
			return nil
		}
		return [][]byte{msg}
	})
	hub = h.hub
	h.reply()
	h.advance()
	h.reply()
	h.advance()
	if r := h.reply(); r.Seq != 3 || r.Outcome != Lost || !errors.Is(r.Err, dvc.ErrConnectionLost) {
		t.Fatalf("%+v", r)
	}
	<-h.done
	if !errors.Is(h.err, dvc.ErrConnectionLost) || h.stats.Sent != 3 || h.stats.Received != 2 || h.stats.Lost != 1 {
		t.Fatalf("err %v stats %+v", h.err, h.stats)
	}
}

func TestPingerClientClosesChannel(t *testing.T) {
	h := start(t, &Pinger{}, func(ch dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 2 {
			ch.Close()
			return nil
		}
		return [][]byte{msg}
	})
	h.reply()
	h.advance()
	if r := h.reply(); r.Seq != 2 || r.Outcome != Lost {
		t.Fatalf("%+v", r)
	}
	<-h.done
	if !errors.Is(h.err, io.EOF) || h.stats.Lost != 1 {
		t.Fatalf("err %v stats %+v", h.err, h.stats)
	}
}

func TestPingerCancelWaitsGraceForInFlight(t *testing.T) {
	release := make(chan struct{})
	h := start(t, &Pinger{Interval: time.Second, Grace: 2 * time.Second}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 2 {
			<-release // the echo is in flight when Ctrl+C comes
		}
		return [][]byte{msg}
	})
	h.reply()
	h.advance()
	h.cancel()
	h.advance() // 1s into the grace: no new ping is sent
	close(release)
	if r := h.reply(); r.Seq != 2 || r.Outcome != Received {
		t.Fatalf("%+v", r)
	}
	<-h.done
	if !errors.Is(h.err, context.Canceled) || h.stats.Sent != 2 || !h.stats.OK() {
		t.Fatalf("err %v stats %+v", h.err, h.stats)
	}
}

func TestPingerCancelCountsUnansweredLostAfterGrace(t *testing.T) {
	h := start(t, &Pinger{Interval: time.Second, Grace: 2 * time.Second}, func(_ dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 2 {
			return nil
		}
		return [][]byte{msg}
	})
	h.reply()
	h.advance()
	h.saw(1)
	h.saw(2)
	h.cancel()
	// Until the context's cancellation is seen, ticks may still send; the
	// loop below just drives time until Run gives up on what is out.
	h.finish()
	if !errors.Is(h.err, context.Canceled) || h.stats.Lost < 1 || h.stats.Lost+h.stats.Received != h.stats.Sent {
		t.Fatalf("err %v stats %+v", h.err, h.stats)
	}
}

func TestPingerRealClockOverLoopback(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	echoer := &Echoer{Logger: slog.New(slog.DiscardHandler)}
	if err := hub.Listen(ChannelName, echoer); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := hub.Open(ctx, ChannelName)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var logs bytes.Buffer
	p := &Pinger{Interval: time.Millisecond, Count: 20, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s, err := p.Run(ctx, conn)
	if err != nil || s.Sent != 20 || s.Received != 20 || !s.OK() || len(s.RTTs) != 20 {
		t.Fatalf("stats %+v err %v", s, err)
	}
	hub.Close() // waits for the handler to be done counting
	if c := echoer.Counts(); c.Channels != 1 || c.Messages != 20 || c.Bytes != 20*(HeaderSize+DefaultPayload) {
		t.Fatalf("echoer counts %+v", c)
	}
	if !strings.Contains(logs.String(), `msg="Ping#20 payload=5120 rttMs=`) {
		t.Fatalf("log:\n%s", logs.String())
	}
}

// FuzzPingerReceive feeds arbitrary echo bytes, cut anywhere, to the
// server role's receive path with three pings outstanding: it must never
// panic, resolve each ping at most once, and keep the counts consistent.
func FuzzPingerReceive(f *testing.F) {
	// The pings as sent at at: utcTicks is rebuilt from the time sent.
	at := time.Unix(0, 0)
	var pings []byte
	for seq := uint32(1); seq <= 3; seq++ {
		pings = Frame{Seq: seq, UTCTicks: Ticks(at), Payload: Pattern(16)}.Append(pings)
	}
	f.Add(pings, uint8(7))
	f.Add(pings[:30], uint8(1))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff}, uint8(4))
	f.Fuzz(func(t *testing.T, echoes []byte, step uint8) {
		x := &pingsExchange{payload: Pattern(16)}
		tr := roundtrip.NewTracker(slog.New(slog.DiscardHandler), Reply.Line)
		for seq := uint32(1); seq <= 3; seq++ {
			tr.Sent(seq, at)
		}
		n := max(int(step), 1)
		for len(echoes) > 0 {
			c := min(n, len(echoes))
			if err := x.Receive(tr, echoes[:c], at.Add(time.Millisecond)); err != nil {
				if !errors.Is(err, ErrStreamCorrupt) {
					t.Fatalf("error %v does not wrap ErrStreamCorrupt", err)
				}
				break
			}
			echoes = echoes[c:]
		}
		s := tr.Stats()
		out := 0
		for seq := uint32(1); seq <= 3; seq++ {
			if _, ok := tr.Take(seq); ok {
				out++
			}
		}
		if s.Received+s.Mismatched+out != 3 || len(s.RTTs) != s.Received {
			t.Fatalf("counts %+v with %d outstanding", s, out)
		}
	})
}

func TestPingerCountsEchoesQueuedBeforeTheChannelDied(t *testing.T) {
	h := start(t, &Pinger{}, func(ch dvc.Channel, seq uint32, msg []byte) [][]byte {
		if seq == 2 {
			_ = ch.Write(context.Background(), msg) // echoed, then the client closes
			ch.Close()
			return nil
		}
		return [][]byte{msg}
	})
	h.reply()
	h.advance()
	h.saw(1)
	h.saw(2)
	// Whether the next tick's Write or the reader sees the close first,
	// Ping#2's echo, queued before it, counts.
	h.advance()
	<-h.done
	if h.stats.Received != 2 || h.stats.Sent != h.stats.Received+h.stats.Lost {
		t.Fatalf("err %v stats %+v", h.err, h.stats)
	}
}
