package dvc

import (
	"context"
	"errors"
	"io"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rdpdvc/rdpdvc/hresult"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestInboxOrderAndEOF(t *testing.T) {
	in := NewInbox(0)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		if err := in.Put(ctx, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	in.CloseWithError(nil)
	for i := 0; i < 3; i++ {
		m, err := in.Read(ctx)
		if err != nil || m[0] != byte(i) {
			t.Fatalf("read %d: %v %v", i, m, err)
		}
	}
	if _, err := in.Read(ctx); err != io.EOF {
		t.Fatalf("after drain: %v, want EOF", err)
	}
	if err := in.Put(ctx, []byte{9}); err != ErrClosed {
		t.Fatalf("Put after close: %v", err)
	}
}

func TestInboxLimitBlocksPutUntilRead(t *testing.T) {
	in := NewInbox(10)
	ctx := context.Background()
	in.Put(ctx, make([]byte, 8))
	// A second message would pass the limit: Put must wait.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := in.Put(short, make([]byte, 8)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Put over the limit returned %v, want it to block until ctx ends", err)
	}
	done := make(chan error, 1)
	go func() { done <- in.Put(ctx, make([]byte, 8)) }()
	waitBlocked(t, done)
	in.Read(ctx) // makes room
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// One message larger than the limit is accepted into an empty inbox.
	in.Read(ctx)
	if err := in.Put(ctx, make([]byte, 100)); err != nil {
		t.Fatalf("oversized message into empty inbox: %v", err)
	}
}

func TestInboxCloseUnblocksPutAndDiscardWins(t *testing.T) {
	in := NewInbox(1)
	ctx := context.Background()
	in.Put(ctx, []byte{1, 2})
	done := make(chan error, 1)
	go func() { done <- in.Put(ctx, []byte{3}) }()
	waitBlocked(t, done)
	in.CloseWithError(ErrConnectionLost)
	if err := <-done; err != ErrClosed {
		t.Fatalf("blocked Put: %v", err)
	}
	in.Discard(ErrClosed)
	if _, err := in.Read(ctx); err != ErrClosed {
		t.Fatalf("Read after Discard: %v, want ErrClosed (queued data dropped)", err)
	}
}

func TestInboxReadHonoursContext(t *testing.T) {
	in := NewInbox(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := in.Read(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
}

func TestStatusOf(t *testing.T) {
	if s := StatusOf(errors.New("plain")); s != hresult.StatusUnsuccessful {
		t.Fatalf("plain error: %v", s)
	}
	wrapped := errors.Join(errors.New("x"), hresult.New("open", hresult.E_ACCESSDENIED))
	if s := StatusOf(wrapped); s != hresult.E_ACCESSDENIED {
		t.Fatalf("wrapped HRESULT: %v", s)
	}
}

// Under steady back-pressure (never empty, one in, one out) the queue's
// backing array stays bounded.
func TestInboxDoesNotGrowUnderSteadyLoad(t *testing.T) {
	in := NewInbox(0)
	ctx := context.Background()
	in.Put(ctx, []byte{0})
	in.Put(ctx, []byte{1})
	for i := 0; i < 100000; i++ {
		in.Put(ctx, []byte{byte(i)})
		if _, err := in.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if c := cap(in.q); c > 1024 {
		t.Fatalf("backing array grew to %d slots for 2-3 queued messages", c)
	}
}

// waitBlocked gives a goroutine calling Put time to block, and fails if
// the Put returned instead: the test is about a blocked Put.
func waitBlocked(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("Put over the limit returned %v without blocking", err)
	case <-time.After(20 * time.Millisecond):
	}
}

// Inboxes sharing a pool are bounded together: with each one under its own
// limit, a Put waits once the pool is full, and a Read from any of them
// lets it through. Before the pool, 48 channels of 15 MiB unread each were
// all held (issue: 858 MiB RSS).
func TestInboxPoolBoundsInboxesTogether(t *testing.T) {
	ctx := context.Background()
	pool := NewPool(10)
	a, b := NewInboxPool(8, pool), NewInboxPool(8, pool)
	if err := a.Put(ctx, make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	// b is empty and under its own limit, but the pool has only 4 left.
	done := make(chan error, 1)
	go func() { done <- b.Put(ctx, make([]byte, 6)) }()
	waitPoolWaiter(t, pool, done)
	if got := pool.Used(); got != 6 {
		t.Fatalf("pool used %d, want 6", got)
	}
	if _, err := a.Read(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Discard gives back what it drops; a message larger than the pool
	// goes in only when the pool is empty.
	b.Discard(ErrClosed)
	if got := pool.Used(); got != 0 {
		t.Fatalf("pool used %d after Discard, want 0", got)
	}
	if err := a.Put(ctx, make([]byte, 100)); err != nil {
		t.Fatalf("oversized message into an empty pool: %v", err)
	}
	c := NewInboxPool(8, pool)
	cctx, cancel := context.WithCancel(ctx)
	go func() { done <- c.Put(cctx, []byte{1}) }()
	waitPoolWaiter(t, pool, done)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Put into a full pool returned %v, want it to wait until cancelled", err)
	}
	if pool.Waiters() != 0 {
		t.Fatalf("%d waiters left after the Put gave up", pool.Waiters())
	}
}

// waitPoolWaiter waits until a Put is waiting on pool, failing if the Put
// returned instead.
func waitPoolWaiter(t *testing.T, pool *Pool, done chan error) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for pool.Waiters() == 0 {
		select {
		case err := <-done:
			t.Fatalf("Put returned %v instead of waiting for the pool", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no Put waiting for the pool")
		}
		runtime.Gosched()
	}
}
