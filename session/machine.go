package session

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/hresult"
)

// machine is one MS-RDPEDYC manager with no I/O: it is fed one received
// DRDYNVC PDU (receive) or one local request (start, open, accepted,
// closeLocal, ...) at a time, and says what to do about it — the control
// PDUs to send and the events to deliver — in an output. It starts no
// goroutine, takes no lock and reads no clock: the driver (core, Server,
// Client) serializes every call under its mutex, owns the carrier, the
// inboxes and the handlers, and keeps the timers, telling the machine when
// one fires (capsTimer). Data PDUs are not its output: a channel's message
// is fragmented by drdynvc.SplitMessage on the writer's goroutine once
// writable has said the channel may carry it.
//
// The receive switch is one for both roles, as far as MS-RDPEDYC lets the
// two share it (3.1.5: "Sending and receiving messages is symmetrical"):
// capabilities first (2.2.1), data and reassembly alike in both
// directions, compressed and Soft-Sync PDUs refused (neither is
// negotiated), anything unrecognized fatal (3.1.5.2.4). What differs is
// which capabilities and create PDU each role receives, and closing: the
// client answers the server's DYNVC_CLOSE, the server does not answer the
// client's (3.2.5.2, 3.3.5.2), so the server keeps a closed id until the
// client's reply and the client frees it at once.
type machine struct {
	role        role
	maxMessage  uint32
	maxChannels int
	log         *slog.Logger // diagnostics only; refusals a peer repeats at will are events

	version     uint16 // negotiated; 0 until the capabilities exchange
	started     bool   // server: the capabilities request was handed out
	capsExpired bool   // server: the caps timer fired first (3.3.2)
	nextID      uint32 // server: the last ChannelId handed out
	channels    map[uint32]*mchan
	listening   map[string]bool // client: names with a listener
	dead        error           // why the connection ended; nil while it runs

	// reserved counts reassembly bytes allocated up front on DATA_FIRST,
	// against Config.ReassemblyBudget.
	reserved budget
	// held counts the bytes held by messages being reassembled, against
	// Config.MaxHeldBytes: a hard cap, where reserved only decides what is
	// allocated up front.
	held budget
}

type role uint8

const (
	roleServer role = iota
	roleClient
)

// mchan is one channel instance as the machine sees it. Only the machine
// changes it; the driver reads id and name at will and the rest only
// under its mutex.
type mchan struct {
	id        uint32
	name      string
	state     chanState
	localDone bool       // this end closed it
	rx        reassembly // the message being received
	up        *channel   // the driver's handle; nil when the machine runs alone
}

type chanState uint8

const (
	statePending chanState = iota // server: CREATE_REQ sent, no CREATE_RSP yet; client: accepting
	stateAbandon                  // server: Open gave up while pending
	stateOpen                     // both: created
	stateClosing                  // server: DYNVC_CLOSE sent, awaiting the client's
	stateGone                     // both: closed by the peer (or the manager); writes fail
)

// evKind is what an event asks of the driver.
type evKind uint8

const (
	evCaps    evKind = iota + 1 // capabilities done; version
	evDeliver                   // msg is a whole message for ch
	evOpened                    // server: ch's DYNVC_CREATE_RSP was a success
	evEnd                       // ch ended: its reader sees err (nil: EOF after what is queued), at once if discard
	evAccept                    // client: ch awaits its listener's Accept, then accepted or acceptFailed
	evRefused                   // client: the create request for id, name was refused with status (why: a log key)
)

// event is one thing for the driver to deliver.
type event struct {
	kind    evKind
	ch      *mchan
	msg     []byte
	err     error
	discard bool
	id      uint32 // evRefused
	name    string // evRefused
	why     string // evRefused: "no listener" or "too many"
	status  hresult.HRESULT
	version uint16 // evCaps
}

// output is what one call of the machine asks for: PDUs to send (control
// PDUs, each its own allocation; send them before delivering the events)
// and events to deliver, in order. The driver reuses one per goroutine.
type output struct {
	send   [][]byte
	events []event
}

func (o *output) reset() {
	clear(o.send)
	clear(o.events)
	o.send, o.events = o.send[:0], o.events[:0]
}

func (o *output) pdu(p []byte)    { o.send = append(o.send, p) }
func (o *output) ev(e event)      { o.events = append(o.events, e) }
func (o *output) empty() bool     { return len(o.send) == 0 && len(o.events) == 0 }
func (m *machine) isServer() bool { return m.role == roleServer }

func (m *machine) init(r role, cfg Config) {
	cfg = cfg.withDefaults()
	m.role = r
	m.maxMessage = cfg.MaxMessage
	m.maxChannels = cfg.MaxChannels
	m.log = cfg.Logger
	m.reserved.limit = cfg.ReassemblyBudget
	m.held.limit = cfg.MaxHeldBytes
	m.channels = map[uint32]*mchan{}
	m.listening = map[string]bool{}
}

// start returns the server's capabilities request (DYNVC_CAPS_VERSION2,
// 2.2.1.1.2): the server manager speaks first (3.3.3.1).
func (m *machine) start() []byte {
	m.started = true
	return drdynvc.CapsRequest{Version: Version, PriorityCharges: DefaultPriorityCharges}.Append(nil)
}

// capsTimer is the input for the server's capabilities timer firing
// (3.3.2). It reports whether the timer won: the answer had not come, and
// from now on open refuses even if it turns up late (3.3.3.1.4).
func (m *machine) capsTimer() bool {
	if m.version != 0 {
		return false
	}
	m.capsExpired = true
	return true
}

// listen records that the client has a listener for name (the driver's
// registry has checked the name and holds the listener).
func (m *machine) listen(name string) { m.listening[name] = true }

// receive handles one PDU from the peer. A non-nil error is input that
// terminates the connection (3.1.5.2.4): the machine has then failed, and
// o ends every channel.
func (m *machine) receive(b []byte, o *output) error {
	err := m.dispatch(b, o)
	if err != nil {
		m.fail(err, o)
	}
	return err
}

func (m *machine) dispatch(b []byte, o *output) error {
	if len(b) == 0 {
		return protoErr("PDU", "empty virtual channel message")
	}
	cmd := drdynvc.Cmd(b[0] >> 4)
	if m.version == 0 && cmd != drdynvc.CmdCapability {
		if m.isServer() {
			return protoErr(pduName(cmd), "received before DYNVC_CAPS_RSP (2.2.1: capabilities come first)")
		}
		return protoErr(pduName(cmd), "received before the capabilities request (2.2.1: the server sends capabilities first)")
	}
	switch cmd {
	case drdynvc.CmdCapability:
		if m.isServer() {
			return m.onCapsResponse(b, o)
		}
		return m.onCapsRequest(b, o)
	case drdynvc.CmdCreate:
		if m.isServer() {
			p, err := drdynvc.ParseCreateResponse(b)
			if err != nil {
				return decodeErr("DYNVC_CREATE_RSP", err)
			}
			return m.onCreateResponse(p, o)
		}
		p, err := drdynvc.ParseCreateRequest(b)
		if err != nil {
			return decodeErr("DYNVC_CREATE_REQ", err)
		}
		return m.onCreateRequest(p, o)
	case drdynvc.CmdDataFirst:
		return m.onDataFirst(b, o)
	case drdynvc.CmdData:
		return m.onData(b, o)
	case drdynvc.CmdClose:
		p, err := drdynvc.ParseClose(b)
		if err != nil {
			return decodeErr("DYNVC_CLOSE", err)
		}
		m.onClose(p.ChannelID, o)
		return nil
	case drdynvc.CmdDataFirstCompressed, drdynvc.CmdDataCompressed:
		if m.isServer() {
			return protoErr(pduName(cmd), "compressed data needs version 3, which this server did not offer (2.2.3.3)")
		}
		return protoErr(pduName(cmd), "compressed data needs version 3, which this client did not accept (2.2.3.3)")
	case drdynvc.CmdSoftSyncRequest, drdynvc.CmdSoftSyncResponse:
		return protoErr(pduName(cmd), "Soft-Sync needs multitransport, which this connection does not have (3.1.5.3)")
	}
	return protoErr(pduName(cmd), "unrecognized Cmd (3.1.5.2.4)")
}

// capsRspLen is DYNVC_CAPS_RSP's size: header, Pad, Version (2.2.1.2).
const capsRspLen = 4

// onCapsResponse handles DYNVC_CAPS_RSP (2.2.1.2).
func (m *machine) onCapsResponse(b []byte, o *output) error {
	p, err := drdynvc.ParseCapsResponse(b)
	if err != nil {
		return decodeErr("DYNVC_CAPS_RSP", err)
	}
	// The PDU is exactly Cmd, Pad and Version (2.2.1.2). Anything after
	// Version is malformed, and 3.1.5.2.4 makes a malformed packet end
	// the connection: ignoring it would let a client pad every answer
	// with up to a chunk of junk the server keeps reading.
	if len(b) != capsRspLen {
		return protoErr("DYNVC_CAPS_RSP", "%d bytes after the Version field (2.2.1.2: the PDU is %d bytes)", len(b)-capsRspLen, capsRspLen)
	}
	if m.version != 0 {
		return protoErr("DYNVC_CAPS_RSP", "received twice (3.1.5.2.4)")
	}
	if p.Version < 1 || p.Version > 3 {
		return protoErr("DYNVC_CAPS_RSP", "Version %d is not 1, 2 or 3 (2.2.1.2)", p.Version)
	}
	// A client answering above what we offered gets what we offered:
	// the server "MUST adjust to the version level supported by the
	// client" (3.3.3.1) only downwards.
	m.version = min(p.Version, Version)
	o.ev(event{kind: evCaps, version: m.version})
	return nil
}

// onCapsRequest handles the capabilities request (2.2.1.1).
func (m *machine) onCapsRequest(b []byte, o *output) error {
	p, err := drdynvc.ParseCapsRequest(b)
	if err != nil {
		return decodeErr("DYNVC_CAPS_VERSION", err)
	}
	if m.version != 0 {
		return protoErr("DYNVC_CAPS_VERSION", "received twice (3.1.5.2.4)")
	}
	if p.Version < 1 || p.Version > 3 {
		return protoErr("DYNVC_CAPS_VERSION", "Version %d is not 1, 2 or 3 (2.2.1.1)", p.Version)
	}
	// Answer at once (2.2.1) with the highest version both sides
	// speak: never 3, which would invite compressed PDUs.
	m.version = min(p.Version, Version)
	o.pdu(drdynvc.CapsResponse{Version: m.version}.Append(nil))
	o.ev(event{kind: evCaps, version: m.version})
	return nil
}

// onCreateRequest handles the client's DYNVC_CREATE_REQ (2.2.2.1).
func (m *machine) onCreateRequest(p drdynvc.CreateRequest, o *output) error {
	if m.dead != nil {
		// Every channel has been ended: a channel added now would never be.
		return fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, m.dead)
	}
	if _, dup := m.channels[p.ChannelID]; dup {
		return protoErr("DYNVC_CREATE_REQ", "ChannelId %d is already in use (2.2.2.1: unique within the connection)", p.ChannelID)
	}
	refuse := func(why string, status hresult.HRESULT) {
		o.pdu(drdynvc.CreateResponse{ChannelID: p.ChannelID, CreationStatus: status}.Append(nil))
		o.ev(event{kind: evRefused, id: p.ChannelID, name: p.ChannelName, why: why, status: status})
	}
	if !m.listening[p.ChannelName] {
		// STATUS_UNSUCCESSFUL, as mstsc answers.
		refuse("no listener", hresult.StatusUnsuccessful)
		return nil
	}
	if len(m.channels) >= m.maxChannels {
		refuse("too many", hresult.E_OUTOFMEMORY)
		return nil
	}
	e := m.add(p.ChannelID, p.ChannelName, statePending)
	// The server sends no data before our DYNVC_CREATE_RSP, so the
	// listener's Accept can run off the receive path without anything
	// racing it.
	o.ev(event{kind: evAccept, ch: e})
	return nil
}

func (m *machine) add(id uint32, name string, st chanState) *mchan {
	e := &mchan{id: id, name: name, state: st}
	e.rx.b = &m.reserved
	e.rx.h = &m.held
	m.channels[id] = e
	return e
}

// onCreateResponse handles the client's DYNVC_CREATE_RSP (2.2.2.2).
func (m *machine) onCreateResponse(p drdynvc.CreateResponse, o *output) error {
	e := m.channels[p.ChannelID]
	if e == nil || (e.state != statePending && e.state != stateAbandon) {
		return protoErr("DYNVC_CREATE_RSP", "ChannelId %d answers no pending DYNVC_CREATE_REQ (3.1.5.2.4)", p.ChannelID)
	}
	ok := int32(p.CreationStatus) >= 0 // "A zero or positive value indicates success" (2.2.2.2)
	switch {
	case ok && e.state == stateAbandon:
		// Nobody wants it: close it, and wait for the reply.
		e.state = stateClosing
		o.pdu(drdynvc.Close{ChannelID: p.ChannelID}.Append(nil))
	case ok:
		e.state = stateOpen
		o.ev(event{kind: evOpened, ch: e})
	default:
		m.drop(e) // the id may be reused at once (3.2.3.2.1)
		e.state = stateGone
		o.ev(event{kind: evEnd, ch: e, err: &dvc.OpenError{Name: e.name, Status: p.CreationStatus}, discard: true})
	}
	return nil
}

func (m *machine) onClose(id uint32, o *output) {
	e := m.channels[id]
	if e == nil {
		// 3.2.5.2 (client): ignore, and do not answer.
		m.log.Debug("session: DYNVC_CLOSE for an unknown channel; ignored", "channelId", id)
		return
	}
	st := e.state
	m.drop(e)
	e.state = stateGone // writes now fail instead of going to a freed id
	switch {
	case !m.isServer():
		if st == stateOpen {
			o.pdu(drdynvc.Close{ChannelID: id}.Append(nil)) // the reply mstsc sends (3.2.5.2: MAY)
		}
		o.ev(event{kind: evEnd, ch: e})
	case st == stateOpen:
		// The client closed it; the server does not answer (3.3.5.2).
		o.ev(event{kind: evEnd, ch: e})
	case st == statePending || st == stateAbandon:
		// Some clients close instead of refusing; treat it as a refusal.
		o.ev(event{kind: evEnd, ch: e, err: &dvc.OpenError{Name: e.name, Status: hresult.E_FAIL}, discard: true})
	case st == stateClosing:
		// The reply to our own close: the id is free again.
	}
}

// lookupOpen is the channel data for id goes to, nil when it is not open.
func (m *machine) lookupOpen(id uint32) *mchan {
	e := m.channels[id]
	if e == nil || e.state != stateOpen {
		return nil
	}
	return e
}

// onDataFirst and onData return a *ProtocolError for input that ends the
// connection. Data for a channel that is not open (closed by this end a
// moment ago, with PDUs still in flight) is dropped.
func (m *machine) onDataFirst(b []byte, o *output) error {
	p, err := drdynvc.ParseDataFirst(b)
	if err != nil {
		return decodeErr("DYNVC_DATA_FIRST", err)
	}
	e := m.lookupOpen(p.ChannelID)
	if e == nil {
		m.log.Debug("session: DYNVC_DATA_FIRST for a channel that is not open; dropped", "channelId", p.ChannelID)
		return nil
	}
	if p.Length > m.maxMessage && !e.rx.active {
		m.log.Warn("session: message over the ceiling; closing the channel",
			"channelId", p.ChannelID, "name", e.name, "DYNVC_DATA_FIRST.Length", p.Length, "ceiling", m.maxMessage)
		// Only this channel suffers: it is closed from this end, and what
		// is still in flight for it is dropped as data for a closed channel.
		m.abort(e, fmt.Errorf("session: %w: DYNVC_DATA_FIRST.Length %d exceeds the ceiling %d", dvc.ErrTooLarge, p.Length, m.maxMessage), o)
		return nil
	}
	msg, done, err := e.rx.first(p)
	if errors.Is(err, errHeld) {
		m.overHeld(e, "DYNVC_DATA_FIRST", err, o)
		return nil
	}
	if err != nil || !done {
		return err
	}
	o.ev(event{kind: evDeliver, ch: e, msg: msg})
	return nil
}

func (m *machine) onData(b []byte, o *output) error {
	p, err := drdynvc.ParseData(b)
	if err != nil {
		return decodeErr("DYNVC_DATA", err)
	}
	e := m.lookupOpen(p.ChannelID)
	if e == nil {
		m.log.Debug("session: DYNVC_DATA for a channel that is not open; dropped", "channelId", p.ChannelID)
		return nil
	}
	msg, done, err := e.rx.data(p.ChannelID, p.Data)
	if errors.Is(err, errHeld) {
		m.overHeld(e, "DYNVC_DATA", err, o)
		return nil
	}
	if err != nil || !done {
		return err
	}
	o.ev(event{kind: evDeliver, ch: e, msg: msg})
	return nil
}

// overHeld closes e, whose message would take the connection's
// reassembly bytes past Config.MaxHeldBytes: like a message over
// MaxMessage, only this channel suffers.
func (m *machine) overHeld(e *mchan, pdu string, err error, o *output) {
	m.log.Warn("session: messages being reassembled over the connection's ceiling; closing the channel",
		"channelId", e.id, "name", e.name, "pdu", pdu, "ceiling", m.held.limit)
	m.abort(e, fmt.Errorf("%w: %s: %w", dvc.ErrTooLarge, pdu, err), o)
}

// abort closes e from this end because of cause, on the receive path. The
// server then waits for the client's DYNVC_CLOSE; the client does not
// (3.2.5.2, 3.3.5.2).
func (m *machine) abort(e *mchan, cause error, o *output) {
	if m.channels[e.id] == e && e.state == stateOpen {
		o.pdu(drdynvc.Close{ChannelID: e.id}.Append(nil))
	}
	if m.isServer() {
		if m.channels[e.id] == e && e.state == stateOpen {
			e.state = stateClosing
		}
		e.rx.release()
	} else {
		m.drop(e)
		e.state = stateGone
	}
	o.ev(event{kind: evEnd, ch: e, err: cause, discard: true})
}

// drop takes e out of the table, if it is there, and gives its
// reassembly bytes back for good.
func (m *machine) drop(e *mchan) {
	if m.channels[e.id] == e {
		delete(m.channels, e.id)
	}
	e.rx.release()
}

// fail ends the connection because of err: every channel ends with err
// wrapped in dvc.ErrConnectionLost (a pending open gets it as its
// answer). Only the first call counts.
func (m *machine) fail(err error, o *output) {
	if m.dead != nil {
		return
	}
	if err == nil {
		err = ErrShutdown
	}
	m.dead = err
	lost := fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, err)
	for _, e := range m.channels {
		e.rx.release()
		e.state = stateGone
		o.ev(event{kind: evEnd, ch: e, err: lost})
	}
	clear(m.channels)
}

func (m *machine) lost() error {
	return fmt.Errorf("%w: %v", dvc.ErrConnectionLost, m.dead)
}

// Local requests.

var errCapsTimeout = errors.New("the client did not answer the capabilities request in time (MS-RDPEDYC 3.3.2)")

// open is the server's request for a channel named name: it returns the
// new pending instance and the DYNVC_CREATE_REQ to send, or why not. A
// name the client cannot parse would make it end the whole connection
// (3.1.5.2.4), so it is refused here, before anything is sent.
func (m *machine) open(name string, priority uint8) (*mchan, []byte, error) {
	req := drdynvc.CreateRequest{Priority: priority, ChannelName: name}
	if err := req.Validate(); err != nil {
		return nil, nil, err
	}
	switch {
	case m.dead != nil:
		return nil, nil, m.lost()
	case m.capsExpired:
		// 3.3.3.1.4: after the timer, no further create requests, even if
		// the answer turns up late.
		return nil, nil, errCapsTimeout
	case m.version == 0:
		return nil, nil, errors.New("the client has not answered the capabilities request yet (MS-RDPEDYC 3.3.3.1)")
	case m.live() >= m.maxChannels:
		return nil, nil, fmt.Errorf("%d channels already open (Config.MaxChannels)", m.maxChannels)
	}
	req.ChannelID = m.allocID()
	return m.add(req.ChannelID, name, statePending), req.Append(nil), nil
}

// live counts the channels that count against MaxChannels: not those only
// waiting for the client's close reply, which a client may never send
// (3.2.5.2: it MAY answer).
func (m *machine) live() int {
	n := 0
	for _, e := range m.channels {
		if e.state != stateClosing {
			n++
		}
	}
	return n
}

// allocID picks an unused ChannelId (2.2.2.1: unique within the
// connection). Ids of channels still closing are not reused until the
// client's DYNVC_CLOSE reply, so a late PDU can never land on a new
// channel.
func (m *machine) allocID() uint32 {
	for {
		m.nextID++
		if m.nextID == 0 {
			m.nextID = 1
		}
		if _, used := m.channels[m.nextID]; !used {
			return m.nextID
		}
	}
}

// unsent is the input for e's DYNVC_CREATE_REQ not having been written
// (the carrier was not the opener's in time, or the connection died): the
// id is free again.
func (m *machine) unsent(e *mchan) {
	if m.channels[e.id] == e && e.state == statePending {
		m.drop(e)
		e.state = stateGone
	}
}

// abandon is the input for the opener giving up on e. It reports whether
// e was still unanswered: then whoever answers later closes it. If not,
// the answer is already among the events of some output.
func (m *machine) abandon(e *mchan) bool {
	if m.channels[e.id] == e && e.state == statePending {
		e.state = stateAbandon
		return true
	}
	return false
}

// accepted is the client's input for its listener having accepted e: it
// returns the DYNVC_CREATE_RSP to send (nil when nobody is left to
// answer). The driver writes it before anything the handler writes.
func (m *machine) accepted(e *mchan) []byte {
	status := hresult.S_OK
	switch {
	case m.dead != nil || e.state == stateGone:
		// The connection died, or the server closed the id while we were
		// accepting: there is nobody to answer.
		return nil
	case e.localDone:
		// Closed during Accept: the server still waits for an answer
		// (3.2.3.2.1), and it is a refusal.
		status = hresult.StatusUnsuccessful
	default:
		e.state = stateOpen
	}
	return drdynvc.CreateResponse{ChannelID: e.id, CreationStatus: status}.Append(nil)
}

// acceptFailed is the client's input for its listener having refused e
// with status: it returns the refusal to send.
func (m *machine) acceptFailed(e *mchan, status hresult.HRESULT) []byte {
	m.drop(e)
	e.state = stateGone
	return drdynvc.CreateResponse{ChannelID: e.id, CreationStatus: status}.Append(nil)
}

// closeLocal is this end closing e. first is false when it already had;
// pdu is the DYNVC_CLOSE to send, if any. The server keeps the id until
// the client's reply (3.3.5.2); the client frees it at once, as the
// server does not answer (3.2.5.2).
func (m *machine) closeLocal(e *mchan) (pdu []byte, first bool) {
	if e.localDone {
		return nil, false
	}
	e.localDone = true
	mine := m.channels[e.id] == e
	if mine && e.state == stateOpen && m.dead == nil {
		pdu = drdynvc.Close{ChannelID: e.id}.Append(nil)
		if m.isServer() {
			e.state = stateClosing
		}
	}
	if m.isServer() {
		e.rx.release()
	} else {
		m.drop(e)
	}
	return pdu, true
}

// writable reports whether e may carry a message now, and if not, why.
func (m *machine) writable(e *mchan) error {
	if e.localDone {
		return dvc.ErrClosed
	}
	if m.dead != nil {
		return fmt.Errorf("session: %w: %v", dvc.ErrConnectionLost, m.dead)
	}
	switch e.state {
	case stateOpen:
		return nil
	case statePending:
		return fmt.Errorf("session: channel %q (%d) is not open yet: write after Accept returns", e.name, e.id)
	}
	return fmt.Errorf("session: channel %q (%d) was closed by the peer: %w", e.name, e.id, dvc.ErrClosed)
}
