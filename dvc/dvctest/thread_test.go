package dvctest

import (
	"context"
	"errors"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Posted functions run in order on one goroutine; a post into a full
// queue behind a held-up thread gives up with its context; after Stop a
// post fails with dvc.ErrConnectionLost.
func TestThread(t *testing.T) {
	th, err := StartThread(1, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var got []int
	for i := range 5 {
		if err := th.Post(ctx, func() { got = append(got, i) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := th.Call(ctx, func() {}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0] != 0 || got[4] != 4 {
		t.Fatalf("ran %v, want 0..4 in order", got)
	}

	held, release := make(chan struct{}), make(chan struct{})
	th.Post(ctx, func() { close(held); <-release })
	<-held
	th.Post(ctx, func() {}) // fills the queue of one
	short, cancel := context.WithCancel(ctx)
	cancel()
	if err := th.Post(short, func() {}); !errors.Is(err, context.Canceled) {
		t.Fatalf("Post into a full queue with an ended context = %v, want context.Canceled", err)
	}
	close(release)
	th.Stop()
	if err := th.Post(ctx, func() {}); !errors.Is(err, dvc.ErrConnectionLost) {
		t.Fatalf("Post after Stop = %v, want dvc.ErrConnectionLost", err)
	}
	th.Stop()
}

// init's error stops the thread and comes back from StartThread; the
// function init returns runs when the thread stops.
func TestThreadInit(t *testing.T) {
	boom := errors.New("boom")
	if _, err := StartThread(1, func() (func(), error) { return nil, boom }); err != boom {
		t.Fatalf("StartThread = %v, want init's error", err)
	}
	ended := false
	th, err := StartThread(1, func() (func(), error) { return func() { ended = true }, nil })
	if err != nil {
		t.Fatal(err)
	}
	th.Stop()
	if !ended {
		t.Fatal("the function init returned did not run at Stop")
	}
}
