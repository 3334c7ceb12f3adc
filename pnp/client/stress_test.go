package client

import (
	"context"
	"sync"
	"testing"

	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// TestHotPlugChurn removes and adds devices while servers open handles,
// read, raise events and cancel on them: under -race it checks the locks
// and the handle bookkeeping; at the end no backend handle may be open.
func TestHotPlugChurn(t *testing.T) {
	s := newServer(t, Config{})
	pconn, _ := s.pnpdrReady()
	var mu sync.Mutex
	var devs []*device.Emulated
	ids := make(chan uint32, 64)
	add := func() {
		e, _ := device.NewDemo(device.Description{Text: "churn"}, 64)
		id, err := s.c.AddDevice(e)
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		devs = append(devs, e)
		mu.Unlock()
		ids <- id
	}
	for range 4 {
		add()
	}
	// Drain PNPDR so the writer never waits.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for {
			if _, err := pconn.Read(context.Background()); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				id := <-ids
				conn := s.open(wire.ChannelFileRedirector)
				send(t, conn, capsReq(0), createReq(1, id),
					ioctlReq(2, device.IoctlDemoSlow, 0, nil, nil),
					readReq(3, 8, 0),
					ioctlReq(4, device.IoctlDemoRaise, 4, []byte{byte(w)}, nil))
				if (i+w)%2 == 0 {
					if err := s.c.RemoveDevice(context.Background(), id); err != nil {
						t.Error(err)
					}
					add()
				} else {
					send(t, conn, wire.NewSpecificIoCancelRequest(0xFFFFFF, 2).Append(nil))
					ids <- id
				}
				// Every request gets exactly one reply, whatever happened.
				got := map[uint32]bool{}
				for len(got) < 5 { // RequestIds 0 (capabilities) to 4
					m := recv(t, conn)
					h, err := wire.ParseClientIOHeader(m)
					if err != nil {
						t.Error(err)
						return
					}
					if h.PacketType == wire.PacketTypeCustomEvent {
						continue
					}
					if got[h.RequestID] {
						t.Errorf("two replies for %d", h.RequestID)
					}
					got[h.RequestID] = true
				}
				conn.Close()
			}
		}()
	}
	wg.Wait()
	s.hub.Close()
	s.c.Close()
	<-drained
	mu.Lock()
	defer mu.Unlock()
	for i, e := range devs {
		if n := e.OpenHandles(); n != 0 {
			t.Errorf("device %d: %d handles open", i, n)
		}
	}
}
