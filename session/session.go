// Package session holds the two DVC managers of MS-RDPEDYC: Server (the
// DVC server manager, in the RDP session, which opens channels) and Client
// (the DVC client manager, in the RDP client, which keeps listeners).
//
// They are state machines over DRDYNVC PDUs and nothing else: a carrier
// (the portable transport, or a test) hands each received PDU to Receive
// and gives the manager a Carrier to send through. They know nothing of
// sockets, chunks below the PDU, or the protocols above the channel API.
// Inside, a machine with no I/O (machine.go: no goroutines, locks or
// clock) takes one PDU or local request and returns the PDUs to send and
// the events to deliver; Server and Client are its driver, which owns the
// goroutines, the carrier, the inboxes and the timers.
//
// Rules taken from the spec:
//   - The server sends a capabilities request first and opens nothing
//     until the client answers (2.2.1, 3.3.3.1), within CapsTimeout (3.3.2).
//   - Messages over drdynvc.MaxSingleData (1,590) bytes go as DATA_FIRST +
//     DATA; smaller as one DATA (2.2.3, 3.1.5.1; drdynvc.SplitMessage);
//     receivers reassemble per channel (3.1.5.2.3) up to MaxMessage.
//   - Channel names are checked by drdynvc.CreateRequest.Validate at Open
//     and at Listen (2.2.2.1), so no malformed DYNVC_CREATE_REQ goes out.
//   - Unrecognized, malformed, out-of-sequence or duplicated PDUs terminate
//     the static virtual channel connection (3.1.5.2.4): Receive returns an
//     error and the carrier drops the connection.
//   - Compression (v3) and Soft-Sync are never negotiated by rdpdvc, so
//     their PDUs are protocol errors here.
//   - Close: the server's DYNVC_CLOSE is answered by the client; the
//     client's own close is not answered (3.2.5.2, 3.3.5.2).
//   - DYNVC_CAPS_RSP is exactly 4 bytes (2.2.1.2); one with bytes after
//     Version is malformed and ends the connection (3.1.5.2.4).
//
// Limits the spec leaves open, each a Config field: Server.Open waits
// OpenTimeout for DYNVC_CREATE_RSP; unread data is bounded per channel
// (InboxBytes) and per connection (ConnInboxBytes), reassembly per
// connection (MaxHeldBytes), and control PDUs queued for a peer that does
// not read them (MaxCtrlBytes, past which the connection is dropped).
// Refusals a peer can cause at will are logged a few per window, then
// counted.
//
// # Goroutines and closing
//
// The carrier owns the receiving goroutine: it calls Receive with one PDU
// at a time and, when the connection ends, Shutdown. A carrier that is a
// Pump may lend that role to a server Conn.Read that waits, which then
// receives on its own goroutine (ReceiveNoWait, Resume). A manager runs one
// goroutine of its own for queued control PDUs, from NewServer or
// NewClient until Shutdown. The client side gives each accepted instance
// a goroutine for Listener.Accept and the Handler's calls; a Handler that
// keeps returning quickly is then called on the receiving goroutine
// instead, so Receive may run Handler code (see delivery.go). A channel's
// Write may be called from any goroutine, Received included; Close
// anywhere. Shutdown fails every channel (dvc.ErrConnectionLost) and, on
// the client, waits for every Handler to return from its Closed, without
// a timeout: a carrier that must not hang bounds that wait itself, as the
// portable transport does (portable.Config.CloseTimeout).
package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// Limits and defaults. Each is a field of Config; these are the values a
// zero Config gets.
const (
	// DefaultMaxMessage caps one reassembled channel message. The spec
	// allows 2^32-1 (2.2.3); a peer that announces more than this in
	// DATA_FIRST.Length gets that channel closed, not an allocation.
	DefaultMaxMessage = 64 << 20
	// DefaultReassemblyBudget is how many bytes of announced-but-unfinished
	// messages a connection allocates up front (one copy, no regrowth);
	// announcements beyond it are buffered as their data arrives.
	DefaultReassemblyBudget = 64 << 20
	// DefaultMaxChannels caps channel instances open at once on one
	// connection (MS-RDPEPNP opens one per file handle; 1,000 at once is
	// a tested case).
	DefaultMaxChannels = 8192
	// DefaultCapsTimeout is the server's capabilities timer (3.3.2).
	DefaultCapsTimeout = 10 * time.Second
	// DefaultOpenTimeout is how long Server.Open waits for the client's
	// DYNVC_CREATE_RSP. The spec sets no timer for it (3.3.5.1), but a
	// client that never answers must not hold the server's caller for
	// ever: mstsc answers within milliseconds.
	DefaultOpenTimeout = 10 * time.Second
	// DefaultConnInboxBytes caps the received, unread bytes of all the
	// channels of one connection together (InboxBytes caps each one):
	// past it the receiving goroutine waits, as a full inbox makes it
	// wait, so a peer writing to many channels nobody reads cannot grow
	// memory past it.
	DefaultConnInboxBytes = 64 << 20
	// DefaultMaxHeldBytes caps the bytes held by messages being
	// reassembled on all the channels of one connection together. The
	// DYNVC_DATA (or DATA_FIRST) that would pass it closes its channel, as
	// a message over MaxMessage does. rdpdvc's own sender never
	// interleaves messages, so it has at most one in progress.
	DefaultMaxHeldBytes = 2 * DefaultMaxMessage
	// DefaultMaxCtrlBytes caps the control PDUs (create responses,
	// refusals, close replies) queued for a peer that does not read them:
	// past it the connection is dropped, since a peer sending requests
	// faster than it reads the answers is flooding it.
	DefaultMaxCtrlBytes = 1 << 20
	// Version is the highest MS-RDPEDYC version rdpdvc speaks: 2, because
	// version 3 means RDP8-lite compression (2.2.3.3), which rdpdvc does
	// not implement; priorities (v2) carry no processing (3.3.3.2).
	Version = 2
)

// DefaultPriorityCharges are the version 2 charges rdpdvc's server sends:
// the 70/20/7/3 percent split worked through in MS-RDPEDYC 2.2.1.1.2.
var DefaultPriorityCharges = [4]uint16{936, 3276, 9362, 21845}

// Config tunes a manager. The zero value is usable.
type Config struct {
	MaxMessage  uint32        // reassembly ceiling per message (DefaultMaxMessage)
	MaxChannels int           // open instances at once (DefaultMaxChannels)
	CapsTimeout time.Duration // server: wait for DYNVC_CAPS_RSP (DefaultCapsTimeout)
	OpenTimeout time.Duration // server: Open's wait for DYNVC_CREATE_RSP (DefaultOpenTimeout)
	InboxBytes  int           // unread bytes buffered per channel (dvc.DefaultInboxBytes)
	// ConnInboxBytes caps the unread bytes of all channels together
	// (DefaultConnInboxBytes).
	ConnInboxBytes int
	// MaxHeldBytes caps the bytes of messages being reassembled, all
	// channels together (DefaultMaxHeldBytes; never below MaxMessage).
	MaxHeldBytes int64
	// MaxCtrlBytes caps control PDUs queued for a peer that does not
	// read them; past it the connection is dropped (DefaultMaxCtrlBytes).
	MaxCtrlBytes int
	// ReassemblyBudget bounds the reassembly buffers allocated whole when
	// DATA_FIRST arrives, across the connection (DefaultReassemblyBudget);
	// past it, buffers grow with the data received instead.
	ReassemblyBudget int64
	Logger           *slog.Logger // nil: slog.Default()
}

func (c Config) withDefaults() Config {
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.MaxChannels <= 0 {
		c.MaxChannels = DefaultMaxChannels
	}
	if c.CapsTimeout <= 0 {
		c.CapsTimeout = DefaultCapsTimeout
	}
	if c.OpenTimeout <= 0 {
		c.OpenTimeout = DefaultOpenTimeout
	}
	if c.ReassemblyBudget <= 0 {
		c.ReassemblyBudget = DefaultReassemblyBudget
	}
	if c.ConnInboxBytes <= 0 {
		c.ConnInboxBytes = DefaultConnInboxBytes
	}
	if c.MaxHeldBytes <= 0 {
		c.MaxHeldBytes = DefaultMaxHeldBytes
	}
	// One whole message must always fit.
	c.MaxHeldBytes = max(c.MaxHeldBytes, int64(c.MaxMessage))
	if c.MaxCtrlBytes <= 0 {
		c.MaxCtrlBytes = DefaultMaxCtrlBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Carrier is how a manager sends. WritePDU queues one DRDYNVC PDU (the
// manager never passes more than drdynvc.MaxPDU bytes, and pdu is reused
// after the call); Flush pushes what is queued. The manager serializes all
// calls, so a carrier needs no locking of its own.
type Carrier interface {
	WritePDU(pdu []byte) error
	Flush() error
}

// Interrupter is an optional Carrier method: SetWriteContext makes the
// carrier's WritePDU, WritePDUParts and Flush, until the next call, stop
// waiting for the peer once ctx is done and return an error wrapping
// ErrInterrupted. Such a return loses nothing: the PDU passed was queued
// whole, and whatever was queued and not yet written stays queued for the
// next Flush. A nil ctx: writes wait only as long as the carrier's own
// timeout allows. The manager calls it with the carrier held, so that a
// Write whose context ends while the peer is not reading returns at once;
// the rest of its message is then written by a goroutine of the manager's
// (a message cannot be cut short without corrupting the stream).
type Interrupter interface {
	SetWriteContext(ctx context.Context)
}

// Pump is an optional Carrier method set, used by a Server: it lets a
// goroutine waiting in a channel's Read receive for the whole connection
// itself while nobody else is, so that a message reaches its reader with
// no hand-off between goroutines.
type Pump interface {
	// Pump receives PDUs on the calling goroutine, handing each to the
	// Server's ReceiveNoWait, until in is Ready, ctx ends or the stream
	// fails (in, not a func: a method value would be an allocation per
	// Read). It returns false at once, having received nothing,
	// when another goroutine is receiving: the caller is then counted as
	// asleep, until Awake, and the carrier keeps receiving for it.
	Pump(ctx context.Context, in *dvc.Inbox) bool
	// Awake ends one count Pump's false return began: the sleeper's
	// inbox has had a message put in it, or its wait is over.
	Awake()
	// Kick is called before the Server waits for the peer other than in
	// Read (Open, the capabilities): the carrier's own goroutine must be
	// receiving, or soon be.
	Kick()
	// Interrupt is called when this end closed a channel: a Pump blocked
	// reading for that channel's reader (or another's) must return soon,
	// losing nothing, since a peer that sends nothing more would
	// otherwise hold the closed channel's Read for ever.
	Interrupt()
}

// ErrInterrupted is what an Interrupter's writes return (wrapped) when the
// writer's context ended first.
var ErrInterrupted = errors.New("session: carrier write interrupted by the writer's context")

// PartsWriter is an optional Carrier method: WritePDUParts queues the PDU
// whose bytes are head followed by body, so the manager need not copy a
// message's data into a PDU buffer before the carrier copies it again.
type PartsWriter interface {
	WritePDUParts(head, body []byte) error
}

// ProtocolError is what Receive returns for input that MS-RDPEDYC 3.1.5.2.4
// says terminates the connection.
type ProtocolError struct {
	PDU    string // e.g. "DYNVC_DATA"
	Reason string
	Err    error // the decoder's error, if any
}

func (e *ProtocolError) Error() string {
	s := "session: " + e.PDU + ": " + e.Reason
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(pdu, format string, args ...any) error {
	return &ProtocolError{PDU: pdu, Reason: fmt.Sprintf(format, args...)}
}

func decodeErr(pdu string, err error) error {
	return &ProtocolError{PDU: pdu, Reason: "malformed", Err: err}
}

// ErrShutdown is the cause carried by channels of a manager whose carrier
// was shut down without a more specific error.
var ErrShutdown = errors.New("session: connection shut down")

// pduName names a Cmd for errors and logs.
func pduName(cmd drdynvc.Cmd) string {
	switch cmd {
	case drdynvc.CmdCreate:
		return "DYNVC_CREATE"
	case drdynvc.CmdDataFirst:
		return "DYNVC_DATA_FIRST"
	case drdynvc.CmdData:
		return "DYNVC_DATA"
	case drdynvc.CmdClose:
		return "DYNVC_CLOSE"
	case drdynvc.CmdCapability:
		return "DYNVC_CAPS"
	case drdynvc.CmdDataFirstCompressed:
		return "DYNVC_DATA_FIRST_COMPRESSED"
	case drdynvc.CmdDataCompressed:
		return "DYNVC_DATA_COMPRESSED"
	case drdynvc.CmdSoftSyncRequest:
		return "DYNVC_SOFT_SYNC_REQUEST"
	case drdynvc.CmdSoftSyncResponse:
		return "DYNVC_SOFT_SYNC_RESPONSE"
	}
	return fmt.Sprintf("unknown Cmd 0x%X", cmd)
}
