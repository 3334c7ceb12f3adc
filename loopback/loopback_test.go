package loopback

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoHandler echoes every message and records how it was closed.
type echoHandler struct {
	ch     dvc.Channel
	mu     sync.Mutex
	closes int
	err    error
	done   chan struct{}
}

func (e *echoHandler) Received(msg []byte) { _ = e.ch.Write(context.Background(), msg) }
func (e *echoHandler) Closed(err error) {
	e.mu.Lock()
	e.closes++
	e.err = err
	e.mu.Unlock()
	close(e.done)
}

func TestEchoManyInstancesSameName(t *testing.T) {
	h := New()
	var handlers []*echoHandler
	var mu sync.Mutex
	if err := h.Listen("x", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		e := &echoHandler{ch: ch, done: make(chan struct{})}
		mu.Lock()
		handlers = append(handlers, e)
		mu.Unlock()
		return e, nil
	})); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var conns []dvc.Conn
	for i := 0; i < 10; i++ {
		c, err := h.Open(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for i, c := range conns {
		msg := []byte{byte(i), 1, 2, 3}
		if err := c.Write(ctx, msg); err != nil {
			t.Fatal(err)
		}
		got, err := c.Read(ctx)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("instance %d: got %v, %v", i, got, err)
		}
	}
	for _, c := range conns {
		c.Close()
		if _, err := c.Read(ctx); !errors.Is(err, dvc.ErrClosed) {
			t.Fatalf("Read after Close = %v, want ErrClosed", err)
		}
	}
	for _, e := range handlers {
		<-e.done
		if e.closes != 1 || e.err != nil {
			t.Fatalf("Closed called %d times with %v", e.closes, e.err)
		}
	}
	h.Close()
}

func TestRefusalCarriesHRESULT(t *testing.T) {
	h := New()
	defer h.Close()
	h.Listen("no", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) {
		return nil, hresult.New("test", hresult.E_ACCESSDENIED)
	}))
	_, err := h.Open(context.Background(), "no")
	var oe *dvc.OpenError
	if !errors.As(err, &oe) || oe.Status != hresult.E_ACCESSDENIED {
		t.Fatalf("err = %v", err)
	}
	_, err = h.Open(context.Background(), "missing")
	if !errors.As(err, &oe) || oe.Status != hresult.StatusUnsuccessful {
		t.Fatalf("err = %v", err)
	}
}

func TestClientCloseGivesServerEOF(t *testing.T) {
	h := New()
	defer h.Close()
	received := make(chan int, 10)
	h.Listen("c", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return handlerFunc(func(m []byte) {
			received <- len(m)
			ch.Write(context.Background(), []byte("bye"))
			ch.Close() // from inside Received
		}), nil
	}))
	c, err := h.Open(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		c.Write(context.Background(), []byte("hi"))
	}
	if m, err := c.Read(context.Background()); err != nil || string(m) != "bye" {
		t.Fatalf("%q %v", m, err)
	}
	if _, err := c.Read(context.Background()); err != io.EOF {
		t.Fatalf("want EOF, got %v", err)
	}
	h.Close()
	if n := len(received); n != 1 {
		t.Fatalf("handler received %d messages after closing in the first; want 1", n)
	}
}

func TestCloseDuringAcceptRefuses(t *testing.T) {
	h := New()
	defer h.Close()
	h.Listen("c", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		ch.Close()
		return handlerFunc(func([]byte) {}), nil
	}))
	var oe *dvc.OpenError
	if _, err := h.Open(context.Background(), "c"); !errors.As(err, &oe) {
		t.Fatalf("Open = %v, want an *OpenError", err)
	}
}

type handlerFunc func([]byte)

func (f handlerFunc) Received(m []byte) { f(m) }
func (f handlerFunc) Closed(error)      {}

func TestHubCloseLosesConnection(t *testing.T) {
	h := New()
	e := &echoHandler{done: make(chan struct{})}
	h.Listen("c", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) { e.ch = ch; return e, nil }))
	c, _ := h.Open(context.Background(), "c")
	h.Close()
	if _, err := c.Read(context.Background()); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("want ErrConnectionLost, got %v", err)
	}
	<-e.done
	if !errors.Is(e.err, dvc.ErrConnectionLost) {
		t.Fatalf("handler saw %v", e.err)
	}
}
