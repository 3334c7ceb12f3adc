package dvctest

import (
	"context"
	"fmt"
	"runtime"
	"sync"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Thread stands in for a platform's channel thread in the stand-ins a
// MakePair builds (FreeRDP's drdynvc thread, mstsc's DVC manager): one
// goroutine, locked to its OS thread, runs the functions posted to it in
// order, from a bounded queue, so that a post waits, no longer than its
// context allows, while the thread is held up in a Handler.
type Thread struct {
	events chan func()
	quit   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// StartThread starts a thread whose queue holds queue functions. init, if
// not nil, runs on the thread first (to join a COM apartment, say); its
// error stops the thread and is returned, and the function it returns,
// if not nil, runs on the thread when it stops.
func StartThread(queue int, init func() (end func(), err error)) (*Thread, error) {
	th := &Thread{events: make(chan func(), queue), quit: make(chan struct{})}
	ready := make(chan error, 1)
	th.wg.Go(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if init != nil {
			end, err := init()
			if err != nil {
				ready <- err
				return
			}
			if end != nil {
				defer end()
			}
		}
		ready <- nil
		for {
			select {
			case f := <-th.events:
				f()
			case <-th.quit:
				return
			}
		}
	})
	if err := <-ready; err != nil {
		th.wg.Wait()
		return nil, err
	}
	return th, nil
}

// Post runs f on the thread, waiting for room no longer than ctx allows.
// Once the thread has stopped it returns an error wrapping
// dvc.ErrConnectionLost.
func (th *Thread) Post(ctx context.Context, f func()) error {
	select {
	case th.events <- f:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-th.quit:
		return fmt.Errorf("dvctest: the thread has stopped: %w", dvc.ErrConnectionLost)
	}
}

// Call runs f on the thread and waits for it, no longer than ctx allows.
func (th *Thread) Call(ctx context.Context, f func()) error {
	done := make(chan struct{})
	if err := th.Post(ctx, func() { f(); close(done) }); err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Stop ends the thread once the function it runs returns (what is still
// queued is dropped) and waits for it. It is idempotent.
func (th *Thread) Stop() {
	th.once.Do(func() { close(th.quit) })
	th.wg.Wait()
}
