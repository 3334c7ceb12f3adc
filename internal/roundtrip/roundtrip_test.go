package roundtrip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/loopback"
)

// silentExchange sends its sequence number as text and matches nothing.
type silentExchange struct{}

func (silentExchange) Request(seq uint32, _ time.Time) []byte    { return fmt.Appendf(nil, "req %d", seq) }
func (silentExchange) Receive(*Tracker, []byte, time.Time) error { return nil }
func (silentExchange) Overdue(seq uint32) string                 { return fmt.Sprintf("detail %d", seq) }

// A Sequential loop sends nothing while a request is outstanding, counts
// it lost at the timeout with the Exchange's detail, and only then sends
// the next one.
func TestRoundTripsSequentialWaitsAndAddsOverdue(t *testing.T) {
	hub := loopback.New()
	defer hub.Close()
	seen := make(chan string, 10)
	if err := hub.Listen("X", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
		return handlerFunc(func(msg []byte) { seen <- string(msg) }), nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conn, err := hub.Open(ctx, "X")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	clk, tick := newClock(), make(chan time.Time)
	replies := make(chan Reply, 10)
	rt := &RoundTrips{Interval: time.Second, Timeout: 3 * time.Second, Size: 7, Sequential: true,
		Now: clk.Now, Tick: tick, OnReply: func(r Reply) { replies <- r }, Logger: slog.New(slog.DiscardHandler),
		Package: "x", Request: "Req", Response: "reply", SizeKey: "size"}
	done := make(chan struct{})
	var st Stats
	go func() {
		defer close(done)
		st, err = rt.Run(ctx, conn, silentExchange{})
	}()
	// advance ticks once; it reports false once Run has returned.
	advance := func() bool {
		clk.Advance(time.Second)
		select {
		case tick <- clk.Now():
			return true
		case <-done:
			return false
		}
	}

	if m := <-seen; m != "req 1" {
		t.Fatalf("first request %q", m)
	}
	var r Reply
	for i := 0; ; i++ {
		if i == 10 || !advance() {
			t.Fatal("request 1 never counted lost")
		}
		select {
		case r = <-replies:
		default:
			continue
		}
		break
	}
	if r.Seq != 1 || r.Outcome != Lost || r.Payload != 7 || r.Err.Error() != "no reply within 3s (detail 1)" {
		t.Fatalf("%+v", r)
	}
	if m := <-seen; m != "req 2" {
		t.Fatalf("second request %q", m)
	}
	cancel()
	for i := 0; advance(); i++ {
		if i == 10 {
			t.Fatal("Run did not end after the grace")
		}
	}
	// Pipelined, the ticks before the timeout would each have sent one.
	if !errors.Is(err, context.Canceled) || st.Sent != 2 || st.Lost != 2 {
		t.Fatalf("%+v %v", st, err)
	}
	// Whether at the timeout or at the end of the grace, depending on how
	// the ticks fell.
	if r := <-replies; r.Seq != 2 || r.Outcome != Lost || !strings.HasPrefix(r.Err.Error(), "no reply ") {
		t.Fatalf("%+v", r)
	}
}

// fakeClock is a clock the test advances.
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

type handlerFunc func([]byte)

func (f handlerFunc) Received(msg []byte) { f(msg) }
func (f handlerFunc) Closed(error)        {}
