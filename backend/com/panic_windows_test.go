package com

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// holdThenBoom holds its first message until released, and panics on
// "boom".
type holdThenBoom struct {
	entered, release chan struct{}
	closed           chan error
}

func (h *holdThenBoom) Accept(dvc.Channel) (dvc.Handler, error) { return h, nil }
func (h *holdThenBoom) Received(msg []byte) {
	switch string(msg) {
	case "hold":
		close(h.entered)
		<-h.release
	case "boom":
		panic("Received exploded")
	}
}
func (h *holdThenBoom) Closed(err error) { h.closed <- err }

// A host calls OnDataReceived from two threads: a message that arrives
// while another's Received runs is queued, its own call returns S_OK, and
// when its Received then panics on the first call's thread, that first
// call (whose own message was fine) is not told E_FAIL for it.
func TestInProcPanicOfAQueuedMessage(t *testing.T) {
	h := &holdThenBoom{entered: make(chan struct{}), release: make(chan struct{}), closed: make(chan error, 1)}
	p := &Plugin{Logger: quiet}
	if err := p.Listen("boom", h); err != nil {
		t.Fatal(err)
	}
	ip := NewInProc(p)
	var n uint32 = 1
	var plugin uintptr
	getInstance(ip, &IID_IWTSPlugin, &n, &plugin)
	mgrState, ch, _, cb := connect(t, plugin)

	hold := []byte("hold")
	first := make(chan hresult.HRESULT, 1)
	go func() {
		first <- hr(comCall(cb, slotOnDataReceived, uintptr(len(hold)), uintptr(unsafe.Pointer(&hold[0]))))
	}()
	<-h.entered // the first call is inside Received
	boom := []byte("boom")
	if r := hr(comCall(cb, slotOnDataReceived, uintptr(len(boom)), uintptr(unsafe.Pointer(&boom[0])))); r != hresult.S_OK {
		t.Errorf("the queued message's own call: %v, want S_OK (its Received has not run yet)", r)
	}
	close(h.release) // the first call now delivers "boom", which panics
	if r := <-first; r != hresult.S_OK {
		t.Errorf("the first call: %v, want S_OK: its own message did not panic", r)
	}
	if err := <-h.closed; err == nil || !strings.Contains(err.Error(), "Received exploded") {
		t.Errorf("Closed(%v), want the panic", err)
	}
	finishPlugin(t, ip, plugin, mgrState, ch, cb)
}
