package freerdp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeNative behaves as FreeRDP 2.11's IWTSVirtualChannel: it records
// writes, and a zero-length write closes the channel, calling OnClose
// (Gone) before it returns.
type fakeNative struct {
	mu     sync.Mutex
	writes [][]byte
	closed bool
	in     *Instance
	err    error
}

func (n *fakeNative) Write(msg []byte) error {
	if len(msg) == 0 {
		n.mu.Lock()
		n.closed = true
		in := n.in
		n.mu.Unlock()
		in.Gone(nil)
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		panic("write to a freed FreeRDP channel")
	}
	n.writes = append(n.writes, append([]byte(nil), msg...))
	return n.err
}

// recorder is a Handler that checks the dvc.Handler contract: calls never
// overlap, nothing after Closed, Closed exactly once.
type recorder struct {
	t        *testing.T
	ch       dvc.Channel
	inside   atomic.Int32
	mu       sync.Mutex
	got      []string
	closes   int
	closeErr error
	onRecv   func(r *recorder, msg []byte)
}

func (r *recorder) Received(msg []byte) {
	if r.inside.Add(1) != 1 {
		r.t.Error("overlapping handler calls")
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	if r.closes > 0 {
		r.t.Error("Received after Closed")
	}
	r.got = append(r.got, string(msg))
	r.mu.Unlock()
	if r.onRecv != nil {
		r.onRecv(r, msg)
	}
}

func (r *recorder) Closed(err error) {
	if r.inside.Add(1) != 1 {
		r.t.Error("overlapping handler calls")
	}
	defer r.inside.Add(-1)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closes++
	r.closeErr = err
}

func (r *recorder) state() ([]string, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.got...), r.closes, r.closeErr
}

func open(t *testing.T, h *Host, name string, onRecv func(*recorder, []byte)) (*Instance, *recorder, *fakeNative) {
	t.Helper()
	var rec *recorder
	if err := h.Listen(name, dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		rec = &recorder{t: t, ch: ch, onRecv: onRecv}
		return rec, nil
	})); err != nil {
		t.Fatal(err)
	}
	n := &fakeNative{}
	in, err := h.NewChannel(name, 7, n)
	if err != nil {
		t.Fatal(err)
	}
	n.in = in
	return in, rec, n
}

func TestAttachCreatesListeners(t *testing.T) {
	h := NewHost()
	nop := dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, errors.New("no") })
	h.Listen("a", nop)
	h.Listen("b", nop)
	if err := h.Listen("a", nop); err == nil {
		t.Fatal("second Listen(a) succeeded")
	}
	var created []string
	if err := h.Attach(func(name string) error { created = append(created, name); return nil }); err != nil {
		t.Fatal(err)
	}
	h.Listen("c", nop)
	if fmt.Sprint(created) != "[a b c]" {
		t.Fatalf("CreateListener calls %v", created)
	}
	if err := h.Attach(func(string) error { return nil }); err == nil {
		t.Fatal("second Attach succeeded")
	}
	failing := NewHost()
	failing.Listen("x", nop)
	if err := failing.Attach(func(string) error { return errors.New("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Attach = %v", err)
	}
}

func TestNewChannelRefusals(t *testing.T) {
	h := NewHost()
	if _, err := h.NewChannel("nosuch", 1, &fakeNative{}); err == nil {
		t.Fatal("accepted a channel with no listener")
	}
	h.Listen("refuse", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, errors.New("busy") }))
	if _, err := h.NewChannel("refuse", 1, &fakeNative{}); err == nil || err.Error() != "busy" {
		t.Fatalf("NewChannel = %v, want the listener's error", err)
	}
	h.Listen("nil", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil }))
	if _, err := h.NewChannel("nil", 1, &fakeNative{}); err == nil {
		t.Fatal("accepted a nil Handler")
	}
}

func TestEchoAndServerClose(t *testing.T) {
	h := NewHost()
	in, rec, n := open(t, h, "ECHO", func(r *recorder, msg []byte) {
		if err := r.ch.Write(context.Background(), msg); err != nil {
			t.Error(err)
		}
	})
	if in.Name() != "ECHO" || in.ID() != 7 {
		t.Fatalf("Name %q ID %d", in.Name(), in.ID())
	}
	buf := []byte("ping")
	in.Data(buf)
	copy(buf, "XXXX") // the glue's buffer is reused after the call
	in.Data([]byte("two"))
	in.Gone(nil)
	in.Gone(nil) // Terminate after OnClose, say
	got, closes, err := rec.state()
	if fmt.Sprint(got) != "[ping two]" || closes != 1 || err != nil {
		t.Fatalf("handler saw %v, %d closes, %v", got, closes, err)
	}
	if fmt.Sprintf("%q", n.writes) != `["ping" "two"]` {
		t.Fatalf("native writes %q", n.writes)
	}
	if err := in.Write(context.Background(), []byte("late")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after OnClose = %v", err)
	}
}

// Close from inside Received: FreeRDP calls OnClose re-entrantly from the
// zero-length write; the handler must see Closed once, after Received.
func TestCloseInsideReceived(t *testing.T) {
	h := NewHost()
	in, rec, n := open(t, h, "x", func(r *recorder, msg []byte) {
		if err := r.ch.Close(); err != nil {
			t.Error(err)
		}
		if err := r.ch.Close(); err != nil {
			t.Error(err)
		}
	})
	in.Data([]byte("bye"))
	in.Data([]byte("dropped"))
	h.wg.Wait() // the DYNVC_CLOSE goes out after the delivery
	got, closes, err := rec.state()
	if fmt.Sprint(got) != "[bye]" || closes != 1 || err != nil {
		t.Fatalf("handler saw %v, %d closes, %v", got, closes, err)
	}
	if !n.closed {
		t.Fatal("Close did not make the zero-length write")
	}
	if err := in.Write(context.Background(), []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after Close = %v", err)
	}
}

// A Close outside any delivery closes the FreeRDP channel before it
// returns.
func TestCloseOutsideDelivery(t *testing.T) {
	h := NewHost()
	in, rec, n := open(t, h, "x", nil)
	if err := in.Close(); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if !closed {
		t.Fatal("Close returned before the zero-length write")
	}
	if _, closes, err := rec.state(); closes != 1 || err != nil {
		t.Fatalf("%d closes, %v", closes, err)
	}
}

// The server closing while a deferred close waits: FreeRDP must not be
// asked to close a channel it freed.
func TestDeferredCloseAfterGone(t *testing.T) {
	h := NewHost()
	var in *Instance
	in, rec, n := open(t, h, "x", func(r *recorder, msg []byte) {
		r.ch.Close()
		in.Gone(nil) // OnClose arrives before the deferred close runs
	})
	in.Data([]byte("x"))
	h.wg.Wait()
	n.mu.Lock()
	closed := n.closed
	n.mu.Unlock()
	if closed {
		t.Fatal("zero-length write to a channel FreeRDP already freed")
	}
	if _, closes, _ := rec.state(); closes != 1 {
		t.Fatalf("%d closes", closes)
	}
}

func TestEmptyWriteIsDropped(t *testing.T) {
	h := NewHost()
	in, _, n := open(t, h, "x", nil)
	if err := in.Write(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n.closed || len(n.writes) != 0 {
		t.Fatal("an empty message reached FreeRDP (it would close the channel)")
	}
}

func TestTerminate(t *testing.T) {
	h := NewHost()
	_, rec, _ := open(t, h, "x", nil)
	h.Terminate()
	if _, closes, err := rec.state(); closes != 1 || !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("%d closes, %v", closes, err)
	}
	if err := h.Listen("y", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil })); err == nil {
		t.Fatal("Listen after Terminate succeeded")
	}
}

// Data on FreeRDP's thread and Close from another goroutine race; the
// handler contract must hold (checked by recorder) and no write may reach
// a freed channel (checked by fakeNative).
func TestConcurrentDataClose(t *testing.T) {
	for i := 0; i < 50; i++ {
		h := NewHost()
		in, rec, _ := open(t, h, "x", func(r *recorder, msg []byte) {
			r.ch.Write(context.Background(), msg)
		})
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				in.Data([]byte{byte(j)})
			}
		}()
		go func() {
			defer wg.Done()
			in.Close()
		}()
		wg.Wait()
		h.wg.Wait()
		if _, closes, _ := rec.state(); closes != 1 {
			t.Fatalf("%d closes", closes)
		}
	}
}
