// Package server is the server role of MS-RDPEPNP, the Plug and Play
// Devices Virtual Channel Extension: the side inside the RDP session that
// learns which devices the client redirects (PNPDR, the PNP Device Info
// Subprotocol, 3.3.5.1) and lets applications do I/O on them
// (FileRedirectorChannel, the PNP Device I/O Subprotocol, 3.3.5.2).
//
// It runs on any dvc.Opener: the portable transport, xrdp, the WTS API or
// the in-process loopback. It sees messages, never sockets; message
// encoding is package wire's.
//
// # Device list
//
// [Start] opens PNPDR, sends the Server Version first (3.3.5.1.1.1) and
// keeps the client device list. The Authenticated Client message
// (3.3.5.1.1.3) is sent as soon as the Client Version arrives, or, with
// Config.WaitForLogon, when the application calls [Server.Authenticate]
// (what a real RDP server does when the user has logged on). Device
// messages that come before it are dropped. Arrivals and removals reach
// the application through Config.OnDevice, [Server.Devices] and
// [Server.WaitDevice].
//
// # Device I/O
//
// [Server.Open] opens a new FileRedirectorChannel instance for each handle
// (2.1), sends the Server Capabilities Request and waits for the reply
// (3.3.5.2.1), then sends the CreateFile Request (3.3.5.2.2.1). The
// [Handle] it returns has Read, Write and IoControl, each taking a context,
// and Close. Calls on one handle may run concurrently: they are pipelined on
// the channel and complete in whatever order the client answers.
//
// # Request IDs and cancellation
//
// Every RequestId this package sends is a wire.CancelSafeRequestID: its
// three bytes are equal, so a Specific IoCancel Request that names it reads
// the same under both layouts of 2.2.2.3.9 (see wire.SpecificIoCancelRequest).
// That leaves 255 IDs per handle (0x000000, 0x010101, ... 0xFEFEFE);
// 0xFFFFFF is kept for the cancel requests themselves, as in the section
// 4.4 capture. An ID stays reserved until the call that used it has
// returned, so it is never reused while a request, or a cancel naming it,
// may still be in flight; IDs are handed out round-robin, so a late
// duplicate reply cannot meet a new request with the same ID soon after.
// A 256th concurrent call on one handle waits for an ID (MaxOutstanding).
//
// When a call's context is done, one Specific IoCancel Request is sent
// (3.3.5.2.2.9: never more than one per request) and the call keeps waiting
// for the reply, since the request is complete only then. If the reply says
// the operation succeeded anyway, the call returns its result and no error;
// otherwise the error wraps both ctx.Err() and the reply's HRESULT. A
// client that does not answer within Config.CancelTimeout after the
// context ended has its channel closed.
//
// A call waiting for its turn to write (behind another call's request)
// ends with its context, having sent nothing. A request already being
// written is never abandoned halfway, since that would break the
// channel's framing; if the client has stopped reading so that the write
// is stalled, Config.CancelTimeout after the call's context ended the
// handle is closed instead, which ends the write.
//
// # What the server guarantees
//
//   - No CreateFile, and so no device I/O, before Authenticated Client has
//     been sent, and only on devices in the client device list.
//   - A reply whose RequestId is not outstanding is ignored (3.3.5.2.2).
//   - A Read Reply with more data than cbBytesToRead, or an IOControl Reply
//     with more than cbOut (3.3.5.2.2.8), closes the channel instance; so
//     does any reply that does not decode, or a CLIENT_IO_HEADER with an
//     unknown PacketType. Every call pending on it then fails.
//   - Custom events are delivered only where both ends announced version 6
//     (3.3.5.2.2.10), to the subscribers of their GUID; without one they
//     are ignored.
//   - A client that sends no Client Version within Config.VersionTimeout
//     (DefaultVersionTimeout) after the Server Version has PNPDR closed and
//     the server ended with ErrVersionTimeout: the handshake's one wait on
//     the client is bounded (WaitVersion reports its outcome).
//   - When a channel instance or the whole connection goes away, every
//     call pending on it returns promptly with an error wrapping
//     ErrChannelLost (and dvc.ErrConnectionLost when the connection died).
//
// # Stream backends
//
// Backends that carry a byte stream (xrdp) need the message boundaries
// recovered: PNPDR messages by the PNP_INFO_HEADER Size ([PNPDRFramer]),
// FileRedirectorChannel replies by the request each answers
// ([FileRedirectorFramer]). Both are passed to Open with dvc.WithFramer.
// On such a backend a reply to an unknown RequestId cannot be delimited, so
// it closes the channel instead of being ignored.
//
// xrdp also delivers a server message whole only up to 32768 bytes. With
// Config.MaxMessage set to that, Handle.Write sends larger data as several
// Write Requests, and Handle.IoControl refuses larger input (an IOCTL
// cannot be cut) with dvc.ErrTooLarge.
//
// docs/pnp.md has the design notes and the table of reactions to bad input.
package server
