package kit

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
)

type stubChan struct {
	name   string
	closes atomic.Int32
}

func (c *stubChan) Name() string                        { return c.name }
func (c *stubChan) ID() uint32                          { return 1 }
func (c *stubChan) Write(context.Context, []byte) error { return nil }
func (c *stubChan) Close() error                        { c.closes.Add(1); return nil }

// rec checks the Handler contract as it goes: no overlapping or nested
// calls, nothing after Closed, Closed once.
type rec struct {
	t        *testing.T
	inside   atomic.Int32
	mu       sync.Mutex
	got      []string
	closes   int
	err      error
	closed   chan struct{}
	onRecv   func(msg []byte)
	goroutes map[bool]int // Received calls by "on the caller's goroutine"
}

func newRec(t *testing.T) *rec { return &rec{t: t, closed: make(chan struct{})} }

func (r *rec) Received(msg []byte) {
	if r.inside.Add(1) != 1 {
		r.t.Error("overlapping or nested handler calls")
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	if r.closes > 0 {
		r.t.Error("Received after Closed")
	}
	r.got = append(r.got, string(msg))
	r.mu.Unlock()
	if r.onRecv != nil {
		r.onRecv(msg)
	}
}

func (r *rec) Closed(err error) {
	if r.inside.Add(1) != 1 {
		r.t.Error("overlapping or nested handler calls")
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closes++
	r.err = err
	if r.closes == 1 {
		close(r.closed)
	}
}

func (r *rec) state() (string, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprint(r.got), r.closes, r.err
}

func TestSerialQueuedOrderAndEnd(t *testing.T) {
	for _, m := range []Mode{Queued, Adaptive, Direct} {
		t.Run(fmt.Sprint(m), func(t *testing.T) {
			var wg sync.WaitGroup
			s := NewSerial(SerialConfig{Mode: m, Group: &wg, Borrowed: true})
			r := newRec(t)
			buf := []byte("a")
			s.Put(context.Background(), buf) // before the Handler: queued
			buf[0] = 'X'                     // borrowed: the Serial copied it
			s.Attach(r)
			for _, msg := range []string{"b", "c", "d"} {
				if err := s.Put(context.Background(), []byte(msg)); err != nil {
					t.Fatal(err)
				}
			}
			s.End(nil)
			s.End(errors.New("ignored"))
			s.Discard(errors.New("ignored"))
			<-s.Done()
			wg.Wait()
			got, closes, err := r.state()
			if got != "[a b c d]" || closes != 1 || err != nil {
				t.Fatalf("handler saw %s, %d closes, %v", got, closes, err)
			}
			if err := s.Put(context.Background(), []byte("late")); !errors.Is(err, dvc.ErrClosed) {
				t.Fatalf("Put after End = %v", err)
			}
		})
	}
}

// Discard drops what is queued; Closed says nil for dvc.ErrClosed and
// passes other errors through.
func TestSerialDiscard(t *testing.T) {
	var wg sync.WaitGroup
	s := NewSerial(SerialConfig{Mode: Queued, Group: &wg})
	s.Put(context.Background(), []byte("dropped"))
	s.Discard(dvc.ErrConnectionLost)
	r := newRec(t)
	s.Attach(r)
	<-s.Done()
	wg.Wait()
	if got, closes, err := r.state(); got != "[]" || closes != 1 || !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("handler saw %s, %d closes, %v", got, closes, err)
	}
}

// goid is the calling goroutine's id, from its stack header.
func goid() string {
	b := make([]byte, 64)
	b = b[:runtime.Stack(b, false)]
	f := strings.Fields(string(b))
	return f[1]
}

// Adaptive: once the Handler has been quick PromoteAfter times, messages
// are delivered on the goroutine that calls Put. Each message waits for
// its delivery, so the inbox is empty when the next comes; a call that
// happened to be slow only restarts the count, hence the bound.
func TestSerialAdaptivePromotes(t *testing.T) {
	var wg sync.WaitGroup
	s := NewSerial(SerialConfig{Mode: Adaptive, Group: &wg})
	r := newRec(t)
	where := make(chan string, 1)
	r.onRecv = func([]byte) { where <- goid() }
	s.Attach(r)
	ctx := context.Background()
	me := goid()
	inline := -1
	for i := 0; i < 1000 && inline < 0; i++ {
		s.Put(ctx, []byte{byte(i)})
		if <-where == me {
			inline = i
		}
	}
	if inline < PromoteAfter {
		t.Fatalf("first inline delivery at message %d, want one at or after %d", inline, PromoteAfter)
	}
	s.End(nil)
	<-s.Done()
	wg.Wait()
	if _, closes, _ := r.state(); closes != 1 {
		t.Fatalf("%d closes", closes)
	}
}

// Direct: calls run on the caller; an End from inside Received (a Close
// in the handler) is delivered after Received returns, not nested in
// it; WhenIdle waits for the call.
func TestSerialDirectReentrant(t *testing.T) {
	s := NewSerial(SerialConfig{Mode: Direct, Borrowed: true})
	r := newRec(t)
	var idleInside atomic.Bool
	r.onRecv = func(msg []byte) {
		if string(msg) != "bye" {
			return
		}
		s.WhenIdle(func() { idleInside.Store(r.inside.Load() != 0) })
		s.Discard(dvc.ErrClosed)
		if _, closes, _ := r.state(); closes != 0 {
			t.Error("Closed ran inside Received")
		}
	}
	s.Attach(r)
	s.Put(context.Background(), []byte("hi"))
	if got, _, _ := r.state(); got != "[hi]" {
		t.Fatalf("Direct Put returned before Received: %s", got)
	}
	s.Put(context.Background(), []byte("bye"))
	got, closes, err := r.state()
	if got != "[hi bye]" || closes != 1 || err != nil {
		t.Fatalf("handler saw %s, %d closes, %v", got, closes, err)
	}
	if idleInside.Load() {
		t.Fatal("WhenIdle ran during a Handler call")
	}
	if s.Busy() {
		t.Fatal("Busy after the calls")
	}
}

// Direct, from two goroutines at once: calls never overlap (rec checks)
// and every message arrives.
func TestSerialDirectConcurrent(t *testing.T) {
	s := NewSerial(SerialConfig{Mode: Direct, Borrowed: true})
	r := newRec(t)
	s.Attach(r)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				s.Put(context.Background(), []byte{byte(g)})
			}
		}()
	}
	wg.Wait()
	s.End(nil)
	<-s.Done()
	r.mu.Lock()
	n := len(r.got)
	r.mu.Unlock()
	if n != 800 {
		t.Fatalf("%d of 800 messages delivered", n)
	}
}

// A full inbox makes Put wait, bounded by its context.
func TestSerialPutBoundedByContext(t *testing.T) {
	var wg sync.WaitGroup
	s := NewSerial(SerialConfig{Mode: Queued, InboxBytes: 4, Group: &wg})
	if err := s.Put(context.Background(), []byte("full")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Put(ctx, []byte("more")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put into a full inbox = %v", err)
	}
	s.Discard(dvc.ErrClosed)
	s.Attach(newRec(t))
	<-s.Done()
	wg.Wait()
}
