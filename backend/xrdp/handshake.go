package xrdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// Protocol is the xrdpapi open request a chansrv understands. chansrv
// speaks exactly one of them, and the two are not compatible: each
// version misreads the other's request (see the package doc), so the
// Opener finds out which one before its first open ([Probe]).
type Protocol int

const (
	// ProtocolAuto (the zero value, for Options.Protocol) asks the
	// Opener to find out with Probe.
	ProtocolAuto Protocol = iota
	// ProtocolV0 is xrdp 0.9.x to 0.10.4's request: a length-prefixed
	// record with version 0 (my_api_trans_data_in in 0.9.21's and
	// 0.10.1's chansrv).
	ProtocolV0
	// ProtocolV1 is xrdp 0.10.5's and later: struct xrdp_chan_connect
	// (version 1) padded to a fixed 384 bytes (XRDPAPI_CONNECT_PDU_LEN
	// in common/channel_defs.h), which also opens xrdp's private
	// session-information channel ([Opener.WatchSession]).
	ProtocolV1
)

func (p Protocol) String() string {
	switch p {
	case ProtocolAuto:
		return "auto"
	case ProtocolV0:
		return "xrdp 0.9-0.10.4 (version 0)"
	case ProtocolV1:
		return "xrdp 0.10.5+ (version 1)"
	}
	return fmt.Sprintf("Protocol(%d)", int(p))
}

// Wire values of the two open requests.
const (
	// connectV1Len is XRDPAPI_CONNECT_PDU_LEN: chansrv 0.10.5+ reads
	// exactly this many bytes before it looks at any of them.
	connectV1Len = 384
	// connectV1Version is XRDPAPI_CONNECT_PDU_VERSION; chansrv drops
	// the connection without an answer for any other version.
	connectV1Version = 1
	// connectV1NameOff is where the NUL-terminated name starts, after
	// version, private_chan and flags.
	connectV1NameOff = 12
	// chanIDSessionInfo is CHAN_ID_XRDP_SESSION_INFO ('xrdp'), the
	// private channel on which chansrv 0.10.5+ reports whether a client
	// is connected.
	chanIDSessionInfo = 'x'<<24 | 'r'<<16 | 'd'<<8 | 'p'
	// probeName is the static channel the probes ask for. Static
	// channel names have at most 7 characters (CHANNEL_NAME_LEN,
	// MS-RDPBCGR 2.2.1.3.4.1), so chansrv never finds it and answers
	// "open failed" (1) at once, without asking the client.
	probeName = "rdpdvc-probe"
	// DefaultProbeTimeout bounds each probe when the context has no
	// earlier deadline: chansrv answers a probe by itself, without the
	// client, so it is a round trip on the machine.
	DefaultProbeTimeout = 5 * time.Second
)

// appendHandshake appends the version-0 open request (xrdp 0.9 to
// 0.10.4), all little-endian:
//
//	[u32 total = 16 + nameLen][u32 version = 0][u32 nameLen][name][u32 flags]
func appendHandshake(b []byte, name string, flags uint32) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(handshakeFixed+len(name)))
	b = binary.LittleEndian.AppendUint32(b, xrdpapiVersion)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(name)))
	b = append(b, name...)
	return binary.LittleEndian.AppendUint32(b, flags)
}

// appendConnectV1 appends the version-1 open request (xrdp 0.10.5+):
// struct xrdp_chan_connect, little-endian as chansrv's host order on
// every platform xrdp packages exist for, zero-padded to 384 bytes:
//
//	[u32 version = 1][u32 private_chan][u32 flags][name, NUL-terminated, in 261 bytes][zeros]
func appendConnectV1(b []byte, private, flags uint32, name string) []byte {
	start := len(b)
	b = binary.LittleEndian.AppendUint32(b, connectV1Version)
	b = binary.LittleEndian.AppendUint32(b, private)
	b = binary.LittleEndian.AppendUint32(b, flags)
	b = append(b, name...) // checkName keeps it under 261 bytes with its NUL
	return append(b, make([]byte, connectV1Len-(len(b)-start))...)
}

// AppendOpenRequest appends the request that opens the dynamic channel
// name on a chansrv speaking p (ProtocolV0 or ProtocolV1). It is what
// Open sends; programs that drive the socket themselves (the RTT
// baseline) use it with [Opener.OpenSocket] or after [Probe].
func AppendOpenRequest(b []byte, p Protocol, name string) ([]byte, error) {
	if err := checkName(name); err != nil {
		return b, err
	}
	switch p {
	case ProtocolV0:
		return appendHandshake(b, name, flagDynamic), nil
	case ProtocolV1:
		return appendConnectV1(b, 0, flagDynamic, name), nil
	}
	return b, fmt.Errorf("xrdp: no open request for protocol %v", p)
}

// Probe tells which open request the chansrv listening on the xrdpapi
// socket at path speaks, without involving the client.
//
// It sends, on a connection of its own, the version-0 request for a
// static channel that cannot exist, then shuts its side down. chansrv
// 0.9 to 0.10.4 answers with a u32 status (1, "no such channel") right
// away; chansrv 0.10.5+ is still waiting for the rest of its 384-byte
// request when it sees the end of the stream, and closes the socket
// without a word. Only in that case does Probe send, on a second
// connection, the version-1 request for the same static channel, which
// 0.10.5+ answers the same way. The order matters: an old chansrv reads
// the version-1 request's first field (1) as the request's total length
// and could not be trusted with it, while the version-0 request is
// harmless to a new one. No answer is inferred from a timeout: each
// chansrv either answers or closes, and a probe that gets neither within
// DefaultProbeTimeout (or ctx) fails.
func Probe(ctx context.Context, path string) (Protocol, error) {
	st, n, err := probeOnce(ctx, path, appendHandshake(nil, probeName, 0))
	if err != nil {
		return ProtocolAuto, fmt.Errorf("xrdp: probing %s with the %v open request: %w", path, ProtocolV0, err)
	}
	if n == 4 {
		_ = st // any status: only the old chansrv answers this request at all
		return ProtocolV0, nil
	}
	if n != 0 {
		return ProtocolAuto, fmt.Errorf("xrdp: probing %s: the answer to the %v open request is %d bytes, want a 4-byte status: %w",
			path, ProtocolV0, n, ErrUnknownProtocol)
	}
	_, n, err = probeOnce(ctx, path, appendConnectV1(nil, 0, 0, probeName))
	if err != nil {
		return ProtocolAuto, fmt.Errorf("xrdp: probing %s with the %v open request: %w", path, ProtocolV1, err)
	}
	if n == 4 {
		return ProtocolV1, nil
	}
	return ProtocolAuto, fmt.Errorf("xrdp: %s closed the socket on the %v open request and answered the %v one with %d bytes, want a 4-byte status: %w",
		path, ProtocolV0, ProtocolV1, n, ErrUnknownProtocol)
}

// ErrUnknownProtocol is wrapped by Probe's error when chansrv answers
// neither open request as xrdp 0.9 to 0.10.6 do.
var ErrUnknownProtocol = errors.New("chansrv answers neither xrdpapi open request")

// ErrSessionEnded is wrapped (with dvc.ErrConnectionLost) by Open's and
// Probe's errors when the xrdpapi socket is gone or refuses connections:
// chansrv has exited, so the session has ended (or is ending).
var ErrSessionEnded = errors.New("xrdp: the session's chansrv is gone")

// probeOnce sends req, shuts down the write side, and reads what comes
// back until chansrv closes. It returns the first u32 of the answer (if
// any) and the answer's length, up to 8 bytes.
func probeOnce(ctx context.Context, path string, req []byte) (uint32, int, error) {
	ctx, cancel := context.WithTimeout(ctx, DefaultProbeTimeout)
	defer cancel()
	uc, err := dial(ctx, path)
	if err != nil {
		return 0, 0, err
	}
	defer uc.Close()
	stop := context.AfterFunc(ctx, func() { uc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := uc.Write(req); err != nil {
		if closedByPeer(err) {
			return 0, 0, nil // closed before reading it all: no answer
		}
		return 0, 0, probeErr(ctx, "sending the probe", err)
	}
	if err := uc.CloseWrite(); err != nil {
		if closedByPeer(err) {
			return 0, 0, nil
		}
		return 0, 0, probeErr(ctx, "shutting down the probe's write side", err)
	}
	var ans [8]byte
	n, err := io.ReadFull(uc, ans[:])
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	case errors.Is(err, syscall.ECONNRESET):
		// Closed with part of our request unread: what it sent before
		// still counts.
	case err != nil:
		return 0, 0, probeErr(ctx, "waiting for the answer", err)
	default:
		// 8 bytes or more: no chansrv answers a probe with that much.
	}
	return binary.LittleEndian.Uint32(ans[:4]), n, nil
}

// closedByPeer reports whether a write failed because chansrv had closed
// the socket.
func closedByPeer(err error) bool {
	return errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}

func probeErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: no answer and no close within %v (or the caller's deadline): %w", what, DefaultProbeTimeout, ctx.Err())
	}
	return fmt.Errorf("%s: %w: %w", what, dvc.ErrConnectionLost, err)
}

// dial connects to the xrdpapi socket, telling "the session is gone"
// (no socket, or nobody listening on it) apart from other failures.
func dial(ctx context.Context, path string) (*net.UnixConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		return nc.(*net.UnixConn), nil
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("%w: %w: %s refuses connections (a socket left by a chansrv that has exited): %w", ErrSessionEnded, dvc.ErrConnectionLost, path, err)
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%w: %w: %s no longer exists: %w", ErrSessionEnded, dvc.ErrConnectionLost, path, err)
	}
	return nil, fmt.Errorf("%w: connecting to %s: %w", dvc.ErrConnectionLost, path, err)
}

// protocolCache is the Opener's knowledge of its chansrv's protocol.
type protocolCache struct {
	mu    sync.Mutex
	known Protocol
}

// get returns the protocol, probing path the first time. A failed probe
// is not remembered: the next Open tries again.
func (pc *protocolCache) get(ctx context.Context, path string) (Protocol, error) {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	if pc.known != ProtocolAuto {
		return pc.known, nil
	}
	p, err := Probe(ctx, path)
	if err != nil {
		return ProtocolAuto, err
	}
	pc.known = p
	return p, nil
}

// forget drops the cached protocol, after chansrv went away: the next
// chansrv on the same path may be another version.
func (pc *protocolCache) forget(fixed Protocol) {
	pc.mu.Lock()
	pc.known = fixed
	pc.mu.Unlock()
}
