package client

import (
	"context"
	"errors"
	"log/slog"
	"sort"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

type pnpState uint8

const (
	pnpAwaitVersion  pnpState = iota // nothing received yet
	pnpVersioned                     // Client Version sent; waiting for Authenticated Client
	pnpAuthenticated                 // devices may be announced
	pnpClosed
)

// pnpdr is one PNPDR instance (3.2.5.1). Its state, queue and announced
// set are guarded by the Client's mutex, so that device list changes and
// announcements happen in one order.
type pnpdr struct {
	c   *Client
	ch  dvc.Channel
	log *slog.Logger

	state     pnpState
	announced map[uint32]bool // devices this instance announced and did not remove
	queue     [][]byte        // messages for the writer, in order
	wake      chan struct{}   // cap 1: the queue has something
	done      chan struct{}   // closed at shutdown
}

// Received implements dvc.Handler.
func (p *pnpdr) Received(msg []byte) {
	m, err := wire.ParsePNPDR(wire.ServerToClient, msg)
	c := p.c
	c.mu.Lock()
	switch p.state {
	case pnpClosed:
		c.mu.Unlock()
		return
	case pnpAwaitVersion:
		v, ok := m.(wire.ServerVersion)
		if err != nil || !ok {
			c.mu.Unlock()
			p.log.Warn("the first PNPDR message is not a Server Version (3.2.5.1.1.1); closing PNPDR", "err", err, "got", wire.SpecName(m))
			p.shutdown()
			p.ch.Close()
			return
		}
		p.log.Info("PNPDR server version", "major", v.MajorVersion, "minor", v.MinorVersion, "capabilities", v.Capabilities)
		p.state = pnpVersioned
		p.enqueueLocked(wire.ClientVersion{
			MajorVersion: c.cfg.MajorVersion, MinorVersion: c.cfg.MinorVersion,
			Capabilities: wire.CapDynamicDeviceAddition,
		}.Append(nil))
		c.mu.Unlock()
		return
	}
	defer c.mu.Unlock()
	if err != nil {
		p.log.Warn("ignoring a PNPDR message that does not decode", "err", err)
		return
	}
	switch m.(type) {
	case wire.AuthenticatedClient:
		if p.state == pnpAuthenticated {
			p.log.Debug("ignoring a repeated Authenticated Client")
			return
		}
		p.state = pnpAuthenticated
		p.log.Info("server authenticated the client; announcing devices", "devices", len(c.devices))
		p.announceLocked()
	default:
		p.log.Warn("ignoring an unexpected PNPDR message", "message", wire.SpecName(m))
	}
}

// Closed implements dvc.Handler.
func (p *pnpdr) Closed(err error) {
	if err != nil {
		p.log.Warn("PNPDR closed", "err", err)
	} else {
		p.log.Debug("PNPDR closed")
	}
	p.shutdown()
}

func (p *pnpdr) shutdown() {
	c := p.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if p.state == pnpClosed {
		return
	}
	p.state = pnpClosed
	p.queue = nil
	close(p.done)
	delete(c.pnpdrs, p)
}

// announceLocked sends a Client Device Addition for every device this
// instance has not announced, if the server has authenticated the client
// (3.2.5.1.2.1: never before). c.mu is held.
func (p *pnpdr) announceLocked() {
	if p.state != pnpAuthenticated {
		return
	}
	c := p.c
	var ids []uint32
	for id := range c.devices {
		if !p.announced[id] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	var batch wire.ClientDeviceAddition
	size := 0
	flush := func() {
		if len(batch.Devices) > 0 {
			p.enqueueLocked(batch.Append(nil))
			batch.Devices, size = nil, 0
		}
	}
	for _, id := range ids {
		e := c.devices[id]
		n := e.pnp.Len()
		if len(batch.Devices) == c.cfg.DevicesPerAddition || (size > 0 && size+n > MaxAdditionBytes) {
			flush()
		}
		batch.Devices = append(batch.Devices, e.pnp)
		size += n
		p.announced[id] = true
		e.announced = true
		p.log.Info("announcing device", "ClientDeviceID", id, "description", e.desc.Text)
	}
	flush()
}

// removeLocked sends a Client Device Removal if this instance announced
// the device (3.2.5.1.2.2). c.mu is held.
func (p *pnpdr) removeLocked(id uint32) {
	if p.state == pnpClosed || !p.announced[id] {
		return
	}
	delete(p.announced, id)
	p.log.Info("removing device", "ClientDeviceID", id)
	p.enqueueLocked(wire.ClientDeviceRemoval{ClientDeviceID: id}.Append(nil))
}

func (p *pnpdr) enqueueLocked(msg []byte) {
	p.queue = append(p.queue, msg)
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// writer sends the queue in order, so that Received and AddDevice never
// wait on the network.
func (p *pnpdr) writer() {
	defer p.c.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-p.wake:
		}
		p.c.mu.Lock()
		q := p.queue
		p.queue = nil
		p.c.mu.Unlock()
		for _, m := range q {
			ctx, cancel := context.WithTimeout(context.Background(), p.c.cfg.WriteTimeout)
			// A backend that does not give up when ctx does gets PNPDR
			// closed at the deadline all the same.
			fired := make(chan struct{})
			stop := context.AfterFunc(ctx, func() {
				defer close(fired)
				if errors.Is(ctx.Err(), context.DeadlineExceeded) {
					p.log.Warn("PNPDR write timed out; closing PNPDR", "timeout", p.c.cfg.WriteTimeout)
					p.shutdown()
					p.ch.Close()
				}
			})
			err := p.ch.Write(ctx, m)
			if !stop() {
				<-fired
				if err == nil {
					err = context.DeadlineExceeded
				}
			}
			cancel()
			if err != nil {
				if !errors.Is(err, dvc.ErrClosed) && !errors.Is(err, dvc.ErrConnectionLost) {
					p.log.Warn("PNPDR write failed; closing PNPDR", "err", err)
				}
				p.shutdown()
				p.ch.Close()
				return
			}
		}
	}
}
