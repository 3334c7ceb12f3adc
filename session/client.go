package session

import (
	"context"
	"log/slog"

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
	reg kit.Registry
}

// NewClient returns a client manager that sends through carrier. Register
// listeners, then feed every received PDU to Receive from one goroutine.
func NewClient(carrier Carrier, cfg Config) *Client {
	c := &Client{}
	c.reg.Prefix = "session"
	c.core.init(roleClient, cfg, carrier)
	c.core.cl = c
	return c
}

// Listen registers l for channels named name. It may be called at any
// time; a create request for a name with no listener is refused with
// STATUS_UNSUCCESSFUL, as mstsc does. name must be one a DYNVC_CREATE_REQ
// can carry (drdynvc.CreateRequest.Validate: 1..256 bytes, no NUL).
//
// The rule is the one a server's Open applies (MS-RDPEDYC 2.2.2.1): a
// name no DYNVC_CREATE_REQ can carry could never be opened.
func (c *Client) Listen(name string, l dvc.Listener) error {
	if err := c.reg.Listen(name, l); err != nil {
		return err
	}
	c.mu.Lock()
	c.machine.listen(name)
	c.mu.Unlock()
	return nil
}

// Version returns the negotiated version, 0 before the server asked.
func (c *Client) Version() uint16 { return uint16(c.ver.Load()) }

// Receive handles one PDU from the server. pdu is not kept. A non-nil
// error means the connection must be terminated (3.1.5.2.4); the manager
// has then already failed every channel with it.
func (c *Client) Receive(pdu []byte) error { return c.core.receive(pdu) }

// run accepts ch and then delivers its messages to the Handler.
func (c *Client) run(ch *channel, l dvc.Listener) {
	defer c.wg.Done()
	var h dvc.Handler
	err := errNoListener
	if l != nil {
		h, err = kit.Accept(l, &clientChan{ch})
	}
	if err != nil {
		status := dvc.StatusOf(err)
		c.mu.Lock()
		rsp := c.machine.acceptFailed(ch.m, status)
		c.mu.Unlock()
		ch.end(dvc.ErrClosed, true)
		c.refusals.Log(c.cfg.Logger, slog.LevelInfo, "listener refused", "session: listener refused channel", "name", ch.name, "channelId", ch.id, "status", status, "err", err)
		c.queueCtrl(rsp)
		return
	}
	// Hold the channel's write lock across the state change and the
	// response, so nothing the handler writes can precede DYNVC_CREATE_RSP.
	ch.wsem <- struct{}{}
	c.mu.Lock()
	rsp := c.machine.accepted(ch.m)
	c.mu.Unlock()
	if rsp != nil {
		// Written here, synchronously, not queued: a queued response could
		// be overtaken by the handler's first message.
		_ = c.sendNow(context.Background(), rsp)
	}
	ch.wsem.release()
	// From here on this goroutine is the instance's first delivery
	// goroutine (see delivery.go).
	ch.d.s.Run(h)
}

// errNoListener refuses a create request whose listener went away between
// the machine's check and the accept (a closed registry).
var errNoListener = hresult.New("session: no listener", hresult.StatusUnsuccessful)

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
	pdu, first := c.machine.closeLocal(ch.m)
	c.mu.Unlock()
	if !first {
		return nil
	}
	ch.end(dvc.ErrClosed, true)
	if pdu != nil {
		// Queued rather than written here: Close may be called from a
		// Handler callback, and must not wait behind a stalled carrier. A
		// message already being written finishes first (ctrlLoop needs the
		// carrier), and one not yet started sees localDone and fails.
		c.queueCtrl(pdu)
	}
	return nil
}

var (
	_ dvc.Registrar = (*Client)(nil)
	_ dvc.Opener    = (*Server)(nil)
)
