package com

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/rdpdvc/rdpdvc/backend/wts"
	"github.com/rdpdvc/rdpdvc/backend/wts/wtstest"
	"github.com/rdpdvc/rdpdvc/simple"
)

// Both Windows halves in one loop, with Simple at each end: the server's
// Pinger writes through backend/wts (the test wtsapi32.dll), the Go peer
// playing Remote Desktop Services hands each message to the plugin
// through the real COM runtime (OnDataReceived), the plugin's Echoer
// answers with IWTSVirtualChannel::Write, and the peer sends that back in
// 1600-byte CHANNEL_PDU chunks to be reassembled: 5 pings, all intact,
// in both server I/O modes.
func TestWTSServerToCOMPlugin(t *testing.T) {
	p := &Plugin{Logger: quiet}
	echo := &simple.Echoer{Logger: quiet}
	if err := p.Listen(simple.ChannelName, echo); err != nil {
		t.Fatal(err)
	}
	srv, clsid := comEnv(t, p)
	plugin := createPlugin(t, clsid)
	mgrState := &fakeMgr{}
	mgr := newObject(fakeMgrVtbl, mgrState, nil, IID_IWTSVirtualChannelManager)
	defer mgr.release()
	if h := hr(comCall(plugin, slotInitialize, mgr.mem)); h.Failed() {
		t.Fatal(h)
	}
	lcb := mgrState.callbacks[0]

	for _, fileHandle := range []bool{false, true} {
		chState := &fakeChannel{}
		ch := newObject(fakeChannelVtbl, chState, nil, IID_IWTSVirtualChannel)
		// Set by the test, read by the peer's goroutine; they are ordered
		// through the pipe, which the race detector cannot see.
		var cbv atomic.Uintptr
		// The client side of RDS: each message from the server goes to
		// the plugin, and whatever the plugin writes meanwhile goes back.
		peer, err := wtstest.Listen(0, func(msg []byte, reply func([]byte) error) error {
			cb := cbv.Load()
			if cb == 0 {
				return errors.New("data before the channel was connected")
			}
			chState.mu.Lock()
			chState.writes = nil
			chState.mu.Unlock()
			comCall(cb, slotOnDataReceived, uintptr(len(msg)), uintptr(unsafe.Pointer(&msg[0])))
			chState.mu.Lock()
			out := chState.writes
			chState.mu.Unlock()
			for _, w := range out {
				if err := reply(w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		conn, err := (&wts.Opener{FileHandle: fileHandle}).Open(ctx, simple.ChannelName)
		if err != nil {
			t.Fatalf("Open (file handle %v): %v", fileHandle, err)
		}
		<-peer.Opened()
		// The client accepts the channel (DYNVC_CREATE_RSP) before any
		// data flows, as mstsc does.
		var accept int32
		var cb uintptr
		comCall(lcb, slotOnNewChannelConnection, ch.mem, 0, uintptr(unsafe.Pointer(&accept)), uintptr(unsafe.Pointer(&cb)))
		if accept != 1 {
			t.Fatal("plugin refused the channel")
		}
		chState.mu.Lock()
		chState.callback = cb
		chState.mu.Unlock()
		cbv.Store(cb)

		tick := make(chan time.Time, 1)
		pinger := simple.Pinger{Count: 5, Tick: tick, Timeout: time.Minute, Logger: quiet,
			OnReply: func(simple.Reply) {
				select {
				case tick <- time.Now():
				default:
				}
			}}
		st, err := pinger.Run(ctx, conn)
		if err != nil || st.Sent != 5 || st.Received != 5 || !st.OK() {
			t.Fatalf("file handle %v: %+v, %v", fileHandle, st, err)
		}
		conn.Close()
		peer.Close()
		cancel()
		comCall(cb, slotOnClose)
		comRelease(cb)
		ch.release()
	}
	if c := echo.Counts(); c.Channels != 2 || c.Messages != 10 || c.Bytes != 10*5140 {
		t.Errorf("echoer counts %+v", c)
	}
	comCall(plugin, slotTerminated)
	for _, l := range mgrState.listeners {
		l.release()
	}
	comRelease(lcb)
	comRelease(plugin)
	if err := srv.Wait(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
}
