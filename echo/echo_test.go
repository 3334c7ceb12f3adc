package echo

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/simple"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// MS-RDPEECO 4.1 and 4.2: "Hello world!" both ways.
var (
	goldenRequest  = []byte{0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x21}
	goldenResponse = []byte{0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x77, 0x6f, 0x72, 0x6c, 0x64, 0x21}
)

func TestGoldenSection4(t *testing.T) {
	req, err := ParseRequest(goldenRequest)
	if err != nil || string(req.EchoRequest) != "Hello world!" {
		t.Fatalf("ParseRequest = %q, %v", req.EchoRequest, err)
	}
	if b := req.Append(nil); req.Validate() != nil || !bytes.Equal(b, goldenRequest) {
		t.Fatalf("Request.Append = % x, %v", b, req.Validate())
	}
	resp := ResponseTo(req)
	if b := resp.Append(nil); resp.Validate() != nil || !bytes.Equal(b, goldenResponse) {
		t.Fatalf("Response.Append = % x, %v", b, resp.Validate())
	}
	resp, err = ParseResponse(goldenResponse)
	if err != nil || string(resp.EchoResponse) != "Hello world!" {
		t.Fatalf("ParseResponse = %q, %v", resp.EchoResponse, err)
	}
}

func TestEmptyAndHuge(t *testing.T) {
	var pe *Error
	if _, err := ParseRequest(nil); !errors.As(err, &pe) || pe.Message != "ECHO_REQUEST_PDU" || pe.Field != "echoRequest" || !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty request: %v", err)
	}
	if _, err := ParseResponse([]byte{}); !errors.As(err, &pe) || pe.Message != "ECHO_RESPONSE_PDU" || !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty response: %v", err)
	}
	if err := (Request{}).Validate(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("validating an empty request: %v", err)
	}
	if err := (Response{}).Validate(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("validating an empty response: %v", err)
	}
	huge := make([]byte, MaxSize+1)
	if _, err := ParseRequest(huge); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge request: %v", err)
	}
	if _, err := ParseRequest(huge[:MaxSize]); err != nil {
		t.Fatalf("request at the ceiling: %v", err)
	}
	if _, err := (&Prober{Size: -1}).Run(context.Background(), nil); err == nil {
		t.Fatal("negative size accepted")
	}
}

func FuzzParseRequest(f *testing.F) {
	f.Add(goldenRequest)
	f.Add([]byte{0})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParseRequest(b)
		if err != nil {
			if len(b) != 0 {
				t.Fatalf("%d bytes refused: %v", len(b), err)
			}
			return
		}
		resp := ResponseTo(req)
		out := resp.Append(nil)
		if resp.Validate() != nil || !bytes.Equal(out, b) {
			t.Fatal("response does not echo the request")
		}
		back, err := ParseResponse(out)
		if err != nil || !bytes.Equal(back.EchoResponse, b) {
			t.Fatal("response does not round-trip")
		}
		re := req.Append(nil)
		if !bytes.Equal(re, b) {
			t.Fatal("request does not round-trip")
		}
	})
}

func TestRequestBytes(t *testing.T) {
	if got := RequestBytes(250, 8); !bytes.Equal(got, []byte{250, 251, 252, 253, 254, 255, 0, 1}) {
		t.Fatalf("% x", got)
	}
	if bytes.Equal(RequestBytes(1, 16), RequestBytes(2, 16)) {
		t.Fatal("consecutive requests are equal")
	}
}

// openPair opens ECHO over a loopback hub with l as the client listener.
func openPair(t *testing.T, l dvc.Listener) (*loopback.Hub, dvc.Conn) {
	t.Helper()
	hub := loopback.New()
	if err := hub.Listen(ChannelName, l); err != nil {
		t.Fatal(err)
	}
	conn, err := hub.Open(context.Background(), ChannelName)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(); hub.Close() })
	return hub, conn
}

func TestProberWithResponder(t *testing.T) {
	resp := &Responder{Logger: slog.New(slog.DiscardHandler)}
	_, conn := openPair(t, resp)
	var logs bytes.Buffer
	p := &Prober{Interval: time.Millisecond, Count: 10, Size: 100, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	s, err := p.Run(context.Background(), conn)
	if err != nil || s.Sent != 10 || s.Received != 10 || !s.OK() || len(s.RTTs) != 10 {
		t.Fatalf("stats %+v err %v", s, err)
	}
	if !strings.Contains(logs.String(), "Echo#10 size=100 rttMs=") {
		t.Fatalf("log:\n%s", logs.String())
	}
}

func TestProberAgainstSimpleEchoer(t *testing.T) {
	// FreeRDP's /echo and the Simple echoer both echo any bytes.
	_, conn := openPair(t, &simple.Echoer{Logger: slog.New(slog.DiscardHandler)})
	s, err := (&Prober{Interval: time.Millisecond, Count: 3, Logger: slog.New(slog.DiscardHandler)}).Run(context.Background(), conn)
	if err != nil || s.Received != 3 {
		t.Fatalf("stats %+v err %v", s, err)
	}
}

func TestResponderIgnoresEmpty(t *testing.T) {
	r := &Responder{Logger: slog.New(slog.DiscardHandler)}
	_, conn := openPair(t, r)
	ctx := context.Background()
	if err := conn.Write(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := conn.Write(ctx, goldenRequest); err != nil {
		t.Fatal(err)
	}
	got, err := conn.Read(ctx)
	if err != nil || !bytes.Equal(got, goldenResponse) {
		t.Fatalf("first response %q, %v (the empty request must get none)", got, err)
	}
}

// fakeClock and the scripted client below drive the prober exactly.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type scripted struct {
	clk  *fakeClock
	n    int
	seen chan int
	fn   func(n int, msg []byte) [][]byte // nth request (1-based) → what to send
}

func (s *scripted) Accept(ch dvc.Channel) (dvc.Handler, error) {
	return handlerFunc(func(msg []byte) {
		s.n++
		s.clk.Advance(2 * time.Millisecond)
		for _, m := range s.fn(s.n, bytes.Clone(msg)) {
			_ = ch.Write(context.Background(), m)
		}
		s.seen <- s.n
	}), nil
}

type handlerFunc func([]byte)

func (f handlerFunc) Received(m []byte) { f(m) }
func (f handlerFunc) Closed(error)      {}

type run struct {
	clk     *fakeClock
	tick    chan time.Time
	replies chan simple.Reply
	seen    chan int
	done    chan struct{}
	stats   simple.Stats
	err     error
	cancel  context.CancelFunc
}

func startProbe(t *testing.T, p *Prober, fn func(n int, msg []byte) [][]byte) (*run, *loopback.Hub) {
	r := &run{clk: &fakeClock{t: time.Unix(1e9, 0)}, tick: make(chan time.Time), replies: make(chan simple.Reply, 50),
		seen: make(chan int, 50), done: make(chan struct{})}
	hub, conn := openPair(t, &scripted{clk: r.clk, seen: r.seen, fn: fn})
	p.Interval, p.Now, p.Tick = time.Second, r.clk.Now, r.tick
	p.Logger = slog.New(slog.DiscardHandler)
	p.OnReply = func(rep simple.Reply) { r.replies <- rep }
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() {
		defer close(r.done)
		r.stats, r.err = p.Run(ctx, conn)
	}()
	t.Cleanup(func() {
		cancel()
		hub.Close()
		<-r.done
	})
	return r, hub
}

func (r *run) advance() {
	r.clk.Advance(time.Second)
	select {
	case r.tick <- r.clk.Now():
	case <-r.done:
	}
}

func (r *run) reply(t *testing.T) simple.Reply {
	t.Helper()
	select {
	case rep := <-r.replies:
		return rep
	case <-time.After(10 * time.Second):
		t.Fatal("no reply")
	}
	return simple.Reply{}
}

func TestProberStreamSplitResponse(t *testing.T) {
	r, _ := startProbe(t, &Prober{Count: 2, Size: 5000}, func(n int, msg []byte) [][]byte {
		return [][]byte{msg[:1], msg[1:1600], msg[1600:]}
	})
	if rep := r.reply(t); rep.Outcome != simple.Received || rep.RTT != 2*time.Millisecond || rep.Payload != 5000 {
		t.Fatalf("%+v", rep)
	}
	r.advance()
	if rep := r.reply(t); rep.Seq != 2 || rep.Outcome != simple.Received {
		t.Fatalf("%+v", rep)
	}
	<-r.done
	if r.err != nil || !r.stats.OK() {
		t.Fatal(r.err, r.stats)
	}
}

func TestProberSequentialLossAndLateResponse(t *testing.T) {
	var held []byte
	r, _ := startProbe(t, &Prober{Count: 3, Size: 64, Timeout: 3 * time.Second}, func(n int, msg []byte) [][]byte {
		switch n {
		case 1:
			held = msg // answered late, together with request 2
			return nil
		case 2:
			return [][]byte{held, msg}
		}
		return [][]byte{msg}
	})
	<-r.seen
	// Ticks at 1s and 2s find request 1 outstanding: nothing is sent
	// (strictly sequential); at 3s it is lost and request 2 goes out.
	r.advance()
	r.advance()
	select {
	case n := <-r.seen:
		t.Fatalf("request %d sent while 1 was outstanding", n)
	default:
	}
	r.advance()
	if rep := r.reply(t); rep.Seq != 1 || rep.Outcome != simple.Lost {
		t.Fatalf("%+v", rep)
	}
	// The late response to 1 arrives first and does not match 2's bytes.
	if rep := r.reply(t); rep.Seq != 2 || rep.Outcome != simple.Mismatched || !strings.Contains(rep.Err.Error(), "byte 0") {
		t.Fatalf("%+v", rep)
	}
	// 2's own response then answers nothing outstanding.
	if rep := r.reply(t); rep.Outcome != simple.Unexpected {
		t.Fatalf("%+v", rep)
	}
	r.advance()
	if rep := r.reply(t); rep.Seq != 3 || rep.Outcome != simple.Received {
		t.Fatalf("%+v", rep)
	}
	<-r.done
	s := r.stats
	if s.Sent != 3 || s.Lost != 1 || s.Mismatched != 1 || s.Received != 1 || s.Unexpected != 1 {
		t.Fatalf("%+v", s)
	}
}

func TestProberLongerResponseIsMismatch(t *testing.T) {
	r, _ := startProbe(t, &Prober{Count: 1, Size: 8}, func(n int, msg []byte) [][]byte {
		return [][]byte{append(msg, 0)}
	})
	if rep := r.reply(t); rep.Outcome != simple.Mismatched || !strings.Contains(rep.Err.Error(), "9 bytes") {
		t.Fatalf("%+v", rep)
	}
	<-r.done
}

func TestProberChannelDies(t *testing.T) {
	var hub *loopback.Hub
	r, h := startProbe(t, &Prober{}, func(n int, msg []byte) [][]byte {
		if n == 2 {
			go hub.Close()
			return nil
		}
		return [][]byte{msg}
	})
	hub = h
	r.reply(t)
	r.advance()
	if rep := r.reply(t); rep.Seq != 2 || rep.Outcome != simple.Lost || !errors.Is(rep.Err, dvc.ErrConnectionLost) {
		t.Fatalf("%+v", rep)
	}
	<-r.done
	if !errors.Is(r.err, dvc.ErrConnectionLost) || r.stats.Lost != 1 || r.stats.Received != 1 {
		t.Fatal(r.err, r.stats)
	}
}

func TestProberEndsCleanlyAfterCount(t *testing.T) {
	r, _ := startProbe(t, &Prober{Count: 1}, func(n int, msg []byte) [][]byte { return [][]byte{msg} })
	r.reply(t)
	<-r.done
	if r.err != nil {
		t.Fatal(r.err)
	}
}

func TestProberCancelCountsOutstandingLostAfterGrace(t *testing.T) {
	r, _ := startProbe(t, &Prober{}, func(n int, msg []byte) [][]byte {
		if n == 2 {
			return nil // never answered
		}
		return [][]byte{msg}
	})
	r.reply(t)
	r.advance()
	<-r.seen
	<-r.seen
	// Nothing more will answer request 2; cancel, and let time run past
	// the grace (Interval).
	r.cancel()
	for i := 0; i < 3; i++ {
		r.advance()
	}
	if rep := r.reply(t); rep.Seq != 2 || rep.Outcome != simple.Lost {
		t.Fatalf("%+v", rep)
	}
	<-r.done
	if !errors.Is(r.err, context.Canceled) || r.stats.Sent != 2 || r.stats.Lost != 1 {
		t.Fatal(r.err, r.stats)
	}
}

func TestProberEOF(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	if err := hub.Listen(ChannelName, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return handlerFunc(func([]byte) { ch.Close() }), nil
	})); err != nil {
		t.Fatal(err)
	}
	conn, err := hub.Open(context.Background(), ChannelName)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s, err := (&Prober{Logger: slog.New(slog.DiscardHandler)}).Run(context.Background(), conn)
	if !errors.Is(err, io.EOF) || s.Sent != 1 || s.Lost != 1 {
		t.Fatal(err, s)
	}
}
