package session

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// Client is the DVC client manager (MS-RDPEDYC 3.2): it answers the
// capabilities request, keeps listeners by name, accepts or refuses each
// DYNVC_CREATE_REQ and carries channel data. It is a dvc.Registrar.
//
// Each accepted instance gets one goroutine that runs its Listener.Accept
// and then its Handler callbacks in order, so a slow handler delays only
// its own channel until its inbox (Config.InboxBytes) fills.
type Client struct {
	core
	reg     kit.Registry
	version atomic.Uint32 // negotiated; 0 until the capabilities request (read by Version from any goroutine)
	rules   roleRules
}

// NewClient returns a client manager that sends through carrier. Register
// listeners, then feed every received PDU to Receive from one goroutine.
func NewClient(carrier Carrier, cfg Config) *Client {
	c := &Client{}
	c.reg.Prefix = "session"
	c.core.init(cfg, carrier)
	c.core.abort = c.abort
	c.rules = roleRules{
		capsDone:   func() bool { return c.version.Load() != 0 },
		beforeCaps: "received before the capabilities request (2.2.1: the server sends capabilities first)",
		caps:       c.onCaps,
		create: func(b []byte) error {
			p, err := drdynvc.ParseCreateRequest(b)
			if err != nil {
				return decodeErr("DYNVC_CREATE_REQ", err)
			}
			return c.onCreateRequest(p)
		},
		close:      c.onClose,
		compressed: "compressed data needs version 3, which this client did not accept (2.2.3.3)",
	}
	return c
}

// Listen registers l for channels named name. It may be called at any
// time; a create request for a name with no listener is refused with
// STATUS_UNSUCCESSFUL, as mstsc does. name must be one a DYNVC_CREATE_REQ
// can carry (drdynvc.CreateRequest.Validate: 1..256 bytes, no NUL).
//
// The rule is the one a server's Open applies (MS-RDPEDYC 2.2.2.1): a
// name no DYNVC_CREATE_REQ can carry could never be opened.
func (c *Client) Listen(name string, l dvc.Listener) error { return c.reg.Listen(name, l) }

// Version returns the negotiated version, 0 before the server asked.
func (c *Client) Version() uint16 { return uint16(c.version.Load()) }

// Receive handles one PDU from the server. pdu is not kept. A non-nil
// error means the connection must be terminated (3.1.5.2.4); the manager
// has then already failed every channel with it.
func (c *Client) Receive(pdu []byte) error {
	err := c.receive(pdu)
	if err == nil {
		err = c.overflowErr()
	}
	if err != nil {
		c.fail(err)
	}
	return err
}

func (c *Client) receive(b []byte) error {
	return c.dispatch(b, &c.rules)
}

// onCaps handles the capabilities request (2.2.1.1).
func (c *Client) onCaps(b []byte) error {
	p, err := drdynvc.ParseCapsRequest(b)
	if err != nil {
		return decodeErr("DYNVC_CAPS_VERSION", err)
	}
	if c.version.Load() != 0 {
		return protoErr("DYNVC_CAPS_VERSION", "received twice (3.1.5.2.4)")
	}
	if p.Version < 1 || p.Version > 3 {
		return protoErr("DYNVC_CAPS_VERSION", "Version %d is not 1, 2 or 3 (2.2.1.1)", p.Version)
	}
	// Answer at once (2.2.1) with the highest version both sides
	// speak: never 3, which would invite compressed PDUs.
	v := min(p.Version, Version)
	c.version.Store(uint32(v))
	c.queueCtrl(drdynvc.CapsResponse{Version: v}.Append(nil))
	return nil
}

func (c *Client) refuse(id uint32, status hresult.HRESULT) {
	c.queueCtrl(drdynvc.CreateResponse{ChannelID: id, CreationStatus: status}.Append(nil))
}

func (c *Client) onCreateRequest(p drdynvc.CreateRequest) error {
	l := c.reg.Lookup(p.ChannelName)
	c.mu.Lock()
	if c.dead != nil {
		// fail has already ended every channel and Shutdown may be waiting:
		// a channel added now would never be ended, and its goroutine would
		// outlive Shutdown.
		err := c.dead
		c.mu.Unlock()
		return fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, err)
	}
	if _, dup := c.channels[p.ChannelID]; dup {
		c.mu.Unlock()
		return protoErr("DYNVC_CREATE_REQ", "ChannelId %d is already in use (2.2.2.1: unique within the connection)", p.ChannelID)
	}
	if l == nil {
		c.mu.Unlock()
		// A peer can ask for unknown names at will: a log line each would
		// make every 13-byte request a 79-byte line (lograte).
		c.refusals.Log(c.cfg.Logger, slog.LevelInfo, "no listener", "session: no listener; refusing channel", "name", p.ChannelName, "channelId", p.ChannelID)
		c.refuse(p.ChannelID, hresult.StatusUnsuccessful)
		return nil
	}
	if len(c.channels) >= c.cfg.MaxChannels {
		c.mu.Unlock()
		c.refusals.Log(c.cfg.Logger, slog.LevelWarn, "too many", "session: too many channels; refusing", "name", p.ChannelName, "max", c.cfg.MaxChannels)
		c.refuse(p.ChannelID, hresult.E_OUTOFMEMORY)
		return nil
	}
	ch := newChannel(&c.core, p.ChannelID, p.ChannelName, statePending)
	ch.client = c
	c.newDelivery(ch)
	c.channels[p.ChannelID] = ch
	c.wg.Add(1)
	c.mu.Unlock()
	// The server sends no data before our DYNVC_CREATE_RSP, so Accept can
	// run off the receive path without anything racing it.
	go c.run(ch, l)
	return nil
}

// run accepts ch and then delivers its messages to the Handler.
func (c *Client) run(ch *channel, l dvc.Listener) {
	defer c.wg.Done()
	h, err := kit.Accept(l, &clientChan{ch})
	if err != nil {
		c.remove(ch)
		ch.end(dvc.ErrClosed, true)
		status := dvc.StatusOf(err)
		c.refusals.Log(c.cfg.Logger, slog.LevelInfo, "listener refused", "session: listener refused channel", "name", ch.name, "channelId", ch.id, "status", status, "err", err)
		c.refuse(ch.id, status)
		return
	}
	// Hold the channel's write lock across the state change and the
	// response, so nothing the handler writes can precede DYNVC_CREATE_RSP.
	ch.wsem <- struct{}{}
	c.mu.Lock()
	answer, status := true, hresult.S_OK
	switch {
	case c.dead != nil || ch.state == stateGone:
		// The connection died, or the server closed the id while we were
		// accepting: there is nobody to answer.
		answer = false
	case ch.localDone:
		// Closed during Accept: the server still waits for an answer
		// (3.2.3.2.1), and it is a refusal.
		status = hresult.StatusUnsuccessful
	default:
		ch.state = stateOpen
	}
	c.mu.Unlock()
	if answer {
		// Written here, synchronously, not queued: a queued response could
		// be overtaken by the handler's first message.
		_ = c.sendNow(context.Background(), drdynvc.CreateResponse{ChannelID: ch.id, CreationStatus: status}.Append(nil))
	}
	ch.wsem.release()
	// From here on this goroutine is the instance's first delivery
	// goroutine (see delivery.go).
	ch.d.s.Run(h)
}

func (c *Client) onClose(id uint32) {
	c.mu.Lock()
	ch := c.channels[id]
	if ch == nil {
		c.mu.Unlock()
		// 3.2.5.2: ignore, and do not answer.
		c.cfg.Logger.Debug("session: DYNVC_CLOSE for an unknown channel; ignored", "channelId", id)
		return
	}
	delete(c.channels, id)
	st := ch.state
	ch.state = stateGone // writes now fail instead of going to a freed id
	c.mu.Unlock()
	if st == stateOpen {
		c.queueCtrl(drdynvc.Close{ChannelID: id}.Append(nil)) // the reply mstsc sends (3.2.5.2: MAY)
	}
	ch.end(nil, false)
}

// abort closes ch from the receive path; the server will not answer.
func (c *Client) abort(ch *channel, cause error) {
	c.mu.Lock()
	send := c.channels[ch.id] == ch && ch.state == stateOpen
	if c.channels[ch.id] == ch {
		delete(c.channels, ch.id)
	}
	ch.state = stateGone
	c.mu.Unlock()
	if send {
		c.queueCtrl(drdynvc.Close{ChannelID: ch.id}.Append(nil))
	}
	ch.end(cause, true)
}

// Shutdown ends the manager: every Handler gets Closed with err wrapped in
// dvc.ErrConnectionLost, and Shutdown returns when all have.
func (c *Client) Shutdown(err error) {
	c.fail(err)
	c.wg.Wait()
	c.refusals.Flush(c.cfg.Logger)
}

// Done is closed when the manager has failed or been shut down.
func (c *Client) Done() <-chan struct{} { return c.deadCh }

// clientChan is the dvc.Channel a Listener and Handler see.
type clientChan struct{ ch *channel }

func (cc *clientChan) Name() string { return cc.ch.name }
func (cc *clientChan) ID() uint32   { return cc.ch.id }
func (cc *clientChan) Write(ctx context.Context, msg []byte) error {
	return cc.ch.c.sendMessage(ctx, cc.ch, msg)
}

// Close sends an unsolicited DYNVC_CLOSE, which the server does not answer
// (3.2.5.2); the Handler then gets Closed(nil).
func (cc *clientChan) Close() error {
	ch := cc.ch
	c := ch.c
	c.mu.Lock()
	if ch.localDone {
		c.mu.Unlock()
		return nil
	}
	ch.localDone = true
	send := c.channels[ch.id] == ch && ch.state == stateOpen && c.dead == nil
	if c.channels[ch.id] == ch {
		delete(c.channels, ch.id)
	}
	c.mu.Unlock()
	ch.end(dvc.ErrClosed, true)
	if send {
		// Queued rather than written here: Close may be called from a
		// Handler callback, and must not wait behind a stalled carrier. A
		// message already being written finishes first (ctrlLoop needs the
		// carrier), and one not yet started sees localDone and fails.
		c.queueCtrl(drdynvc.Close{ChannelID: ch.id}.Append(nil))
	}
	return nil
}

var (
	_ dvc.Registrar = (*Client)(nil)
	_ dvc.Opener    = (*Server)(nil)
)
