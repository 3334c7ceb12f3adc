// Package dvc is rdpdvc's channel API: the only surface a channel protocol
// (Simple, ECHO, PNP) sees, whatever backend carries the channel — the
// portable MS-RDPEDYC transport, xrdp, FreeRDP, the Windows COM plugin or
// the WTS API.
//
// The two ends have the shapes their native APIs give them, so that one
// handler runs unchanged on all of them:
//
//   - The client side (the RDP client, where listeners live) is
//     callback-driven, like IWTSListenerCallback::OnNewChannelConnection and
//     IWTSVirtualChannelCallback::OnDataReceived/OnClose: a [Listener] is
//     registered by name with a [Registrar] and returns a [Handler] for each
//     new channel instance.
//   - The server side (the program inside the RDP session) opens channels by
//     name through an [Opener] and gets a [Conn] with blocking Read and Write,
//     like WTSVirtualChannelOpenEx/Read/Write.
//
// Every channel is message-oriented: one Write is one message, and the
// receiver sees it whole. Backends that only carry a byte stream (xrdp's
// xrdpapi socket) recover boundaries with the [Framer] given at Open.
//
// Several instances may share one name (MS-RDPEPNP opens one
// FileRedirectorChannel per file handle); [Channel.ID] tells them apart.
package dvc

import (
	"context"
	"errors"
	"fmt"

	"github.com/rdpdvc/rdpdvc/hresult"
)

// Channel is one open instance of a dynamic virtual channel, from either end.
type Channel interface {
	// Name is the listener name the channel was opened with.
	Name() string
	// ID tells instances apart. On MS-RDPEDYC backends it is the ChannelId
	// (MS-RDPEDYC 2.2.2.1); other backends number instances themselves.
	ID() uint32
	// Write sends msg as one message. It may block for flow control until
	// ctx is done. The channel does not keep msg after Write returns.
	Write(ctx context.Context, msg []byte) error
	// Close closes this instance (DYNVC_CLOSE, MS-RDPEDYC 2.2.4). It is
	// idempotent and safe from any goroutine, including from inside a
	// Handler callback.
	Close() error
}

// Conn is the server-side shape of a channel: blocking receive.
type Conn interface {
	Channel
	// Read returns the next whole message; the caller owns the slice.
	// It returns io.EOF once the peer has closed the channel and every
	// message before the close has been read, ErrClosed after Close, and
	// an error wrapping ErrConnectionLost when the carrier died.
	Read(ctx context.Context) ([]byte, error)
}

// Opener opens channels by name: the server side (the program in the RDP
// session).
type Opener interface {
	// Open asks the client for a channel instance named name. It returns
	// an *OpenError when the client refuses or has no listener.
	Open(ctx context.Context, name string, opts ...OpenOption) (Conn, error)
}

// Handler receives one channel instance's events on the client side.
//
// Calls for one instance are serialized and in order: every Received
// happens before Closed, and Closed is called exactly once. They never
// overlap and never nest: a Close inside Received gets its Closed after
// Received returns.
//
// Which goroutine makes the calls is the backend's, so a Handler must not
// assume one: the portable client starts each instance on a goroutine of
// its own and, once the Handler has returned quickly a few times, calls it
// on the connection's receiving goroutine; FreeRDP and COM call it on the
// platform's channel thread; loopback always on the instance's goroutine
// (docs/design.md lists them). So Received should return promptly: while
// it runs, the backend may be holding up other channels of the connection.
//
// Received may call the channel's Write and Close. Write inside Received
// is how a client answers; give it a context with a deadline, because a
// Write that waits for a stalled peer holds up delivery as long as it
// waits. After Closed, Write returns dvc.ErrClosed (or an error wrapping
// ErrConnectionLost) and nothing more is delivered; the Handler owns no
// goroutine of the backend's and need not stop anything.
type Handler interface {
	// Received delivers one whole message. msg is valid only during the
	// call; copy it to keep it.
	Received(msg []byte)
	// Closed reports that the instance is gone. err is nil when either
	// end closed it in an orderly way.
	Closed(err error)
}

// Listener accepts new channel instances by name on the client side, as
// IWTSListenerCallback::OnNewChannelConnection does.
type Listener interface {
	// Accept is called for each new instance. Returning a Handler accepts
	// the channel; returning an error refuses it, and the client reports
	// the error's HRESULT (see [StatusOf]) to the server. Accept must not
	// block on the channel's own traffic: nothing is delivered until it
	// returns.
	Accept(ch Channel) (Handler, error)
}

// ListenerFunc adapts a function to a Listener.
type ListenerFunc func(ch Channel) (Handler, error)

// Accept calls f(ch).
func (f ListenerFunc) Accept(ch Channel) (Handler, error) { return f(ch) }

// Registrar is where client-side listeners are registered (what
// IWTSVirtualChannelManager::CreateListener is on Windows).
type Registrar interface {
	// Listen registers l for channels named name. Registering a name twice
	// is an error.
	Listen(name string, l Listener) error
}

// Framer recovers message boundaries on backends that carry only a byte
// stream (xrdp's xrdpapi socket keeps none). Given the bytes received so
// far, it returns the length of the first whole message, 0 if more bytes
// are needed, or an error if buf cannot start a valid message (the backend
// then closes the channel). It is called from one goroutine at a time.
type Framer func(buf []byte) (int, error)

// OpenOptions are the settings an OpenOption changes.
type OpenOptions struct {
	// Framer recovers messages on stream-only backends; backends that keep
	// message boundaries ignore it. Without one, a stream backend delivers
	// each read as a message.
	Framer Framer
	// Priority is the MS-RDPEDYC priority class 0..3 (2.2.2.1, Pri).
	Priority uint8
}

// OpenOption changes how Open opens a channel.
type OpenOption func(*OpenOptions)

// WithFramer sets the Framer used on stream-only backends.
func WithFramer(f Framer) OpenOption { return func(o *OpenOptions) { o.Framer = f } }

// WithPriority sets the MS-RDPEDYC priority class (0..3).
func WithPriority(p uint8) OpenOption { return func(o *OpenOptions) { o.Priority = p & 3 } }

// ApplyOpenOptions folds opts into an OpenOptions value, for backends.
func ApplyOpenOptions(opts []OpenOption) OpenOptions {
	var o OpenOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

var (
	// ErrClosed is returned by operations on a channel this end closed.
	ErrClosed = errors.New("dvc: channel closed")
	// ErrConnectionLost wraps errors from a channel whose carrier (the
	// DRDYNVC connection, the xrdp socket, the RDP session) went away.
	ErrConnectionLost = errors.New("dvc: connection lost")
	// ErrTooLarge is returned by Write for a message over the backend's
	// ceiling, and wraps receive errors for messages over the receiver's.
	ErrTooLarge = errors.New("dvc: message too large")
)

// OpenError is returned by Open when the client did not create the channel.
type OpenError struct {
	Name   string
	Status hresult.HRESULT // the CreationStatus the client sent (MS-RDPEDYC 2.2.2.2)
}

func (e *OpenError) Error() string {
	switch e.Status {
	case hresult.StatusUnsuccessful:
		return fmt.Sprintf("dvc: open %q: client refused (%v; most clients send this when no listener is registered)", e.Name, e.Status)
	case hresult.StatusNotFound:
		return fmt.Sprintf("dvc: open %q: client refused (%v: no listener is registered for the name; FreeRDP 3.11 and later)", e.Name, e.Status)
	}
	return fmt.Sprintf("dvc: open %q: client refused: %v", e.Name, e.Status)
}

// StatusOf returns the HRESULT a client reports when a Listener refuses a
// channel with err: the error's own HRESULT if it carries one (anything in
// its chain with an HRESULT() method), else STATUS_UNSUCCESSFUL (0xC0000001),
// the value mstsc and FreeRDP send for a refused or unknown channel.
func StatusOf(err error) hresult.HRESULT {
	var h interface{ HRESULT() hresult.HRESULT }
	if errors.As(err, &h) {
		return h.HRESULT()
	}
	return hresult.StatusUnsuccessful
}
