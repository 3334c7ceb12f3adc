// Package client is the client role of MS-RDPEPNP (section 3.2): it
// redirects the devices its user named (package pnp/device) to an RDP
// server, announcing them on the PNPDR channel and servicing the server's
// I/O on FileRedirectorChannel instances.
//
//	c, err := client.New(client.Config{}, mem, file)
//	err = c.Register(registrar) // a dvc.Registrar: portable, loopback, FreeRDP, COM
//	id, err := c.AddDevice(dev)  // hot-plug, from any goroutine
//	err = c.RemoveDevice(ctx, id)
//	c.Close()
//
// # PNPDR (3.2.5.1)
//
// One PNPDR instance is active at a time (2.1): while one is open, the
// client refuses another (ERROR_ALREADY_EXISTS); after it closed, a new
// one is accepted and hears of every device again.
// The Server Version message MUST come first (3.2.5.1.1.1); anything else
// first — or a first message that does not decode — closes the PNPDR
// instance without a word, since the client cannot know what the server
// speaks. The client answers with its Client Version and sends no device
// message until the Authenticated Client message (3.2.5.1.1.3); then it
// announces every device in its list, several per Client Device Addition
// message, and afterwards each AddDevice and RemoveDevice as it happens.
// A device is removed only on instances it was announced on
// (3.2.5.1.2.2). Later messages that do not decode, repeated Server
// Version or Authenticated Client messages, and packets the client does
// not expect are logged and ignored. Messages go out in order through one
// writer per instance, so a Handler callback never waits on the network.
//
// # FileRedirectorChannel (3.2.5.2)
//
// Each instance carries one handle. Its first message MUST be the Server
// Capabilities Request (3.2.5.2.1.1); the client queues its reply, version
// 6 (Config.IOVersion), before processing anything else, and sends custom
// events only when both versions are 6 or later. The rules for bad input:
//
//   - closes the instance: a message too short for SERVER_IO_HEADER, an
//     unknown FunctionId (2.2.2.1.1, MUST), a RequestId equal to one still
//     outstanding (3.1.1, SHOULD), anything but a Capabilities Request
//     first or a second Capabilities Request, a second CreateFile Request
//     (2.2.2.3.1: sent once per instance), and Read, Write or IOControl
//     before any CreateFile Request (3.2.5.2.2.3): each breaks the
//     sequence the specification fixes, so nothing later can be trusted;
//   - answered with a failure HRESULT, touching no device: a request whose
//     body does not decode (ERROR_INVALID_PARAMETER), a CreateFile for a
//     device never announced (ERROR_FILE_NOT_FOUND) or removed
//     (ERROR_DEV_NOT_EXIST), I/O on an instance whose CreateFile failed
//     (ERROR_INVALID_HANDLE) or whose device was removed
//     (ERROR_DEV_NOT_EXIST), an IOControl whose DataOut is neither absent
//     nor cbOut bytes (ERROR_INSUFFICIENT_BUFFER, 3.2.5.2.2.7), and a
//     request beyond Config.MaxOutstanding or Config.MaxBufferedBytes, or
//     whose reply is too large for the transport (ERROR_NO_SYSTEM_RESOURCES,
//     with no data: the Result of a reply is the client's to choose,
//     2.2.2.3.4, and this is what Windows' ReadFile gives for a buffer the
//     system cannot provide);
//   - closes the instance too: Config.MaxOutstanding refusals waiting to
//     be written (a server that keeps sending requests but reads no
//     replies), and a message not written within Config.WriteTimeout;
//   - ignored: a Specific IoCancel Request that names nothing outstanding
//     (3.2.5.2.2.9, MUST) or does not decode.
//
// Read, Write and IOControl requests run concurrently, each on its own
// goroutine, and are answered as they complete, in any order. Everything
// an instance sends goes out in order through one queue, so Received
// never waits for the network; a request keeps its slot among
// Config.MaxOutstanding and its bytes of Config.MaxBufferedBytes until its
// reply has been written (its RequestId is free once the reply is queued,
// 3.1.1: the server may reuse it as soon as it has the reply). Requests
// that arrive while the CreateFile is still opening the device wait for it
// and are answered after the CreateFile Reply. An IOControl reply never
// carries more than cbOut bytes: a device that returns more is reported as
// ERROR_INSUFFICIENT_BUFFER with no data (2.2.2.3.8 MUST).
//
// Custom events (2.2.2.3.10) a device raises on a handle go out in the
// order it raised them, through one writer per instance and at most
// MaxPendingEvents queued (more are dropped); events raised while the
// device is still opening wait for the CreateFile Reply, and are dropped
// if the open fails, so the server never hears of a handle it was refused.
//
// # Which request an IoCancel names
//
// The specification places idToCancel two ways (see
// wire.SpecificIoCancelRequest). The client tries the diagram's reading
// first, then the section 4.4 reading of the same bytes, and cancels the
// first that names an outstanding request. One pattern reverses the order:
// when byte 8 (the diagram's UnusedBits, which a diagram-layout server
// leaves 0) is not zero and byte 11 (the section 4.4 reading's unused
// byte) is zero, the server evidently writes the section 4.4 layout, so
// that reading is tried first. When both readings name outstanding
// requests the client logs it at debug level. A reading that names a request
// completed recently stops the search: the cancel came late, and going on
// to the other reading could cancel an unrelated request. (Section
// 3.2.5.2.2.9 also says the operation is "identified by the value in the
// RequestId field"; the header's own RequestId is not tried: the section
// 4.4 capture has 0xFFFFFF there, a RequestId a server may also give an
// ordinary request.) The cancelled operation's context is cancelled; its
// reply is still sent, with ERROR_OPERATION_ABORTED if the device gave up,
// or its result if it finished anyway.
//
// # Device removal with handles open
//
// RemoveDevice models a surprise removal: the device is gone from the
// client's list at once, so a later CreateFile for its ID fails with
// ERROR_DEV_NOT_EXIST; a Client Device Removal goes to the server
// (3.2.5.1.2.2), which MUST drop every reference to it (3.3.5.1.2.2);
// operations in progress on its handles are cancelled (their replies still
// go out), later requests on those instances are answered
// ERROR_DEV_NOT_EXIST, and the backend handles are closed as soon as their
// last operation returns. The instances themselves stay open until the
// server closes them, so a server application gets an HRESULT for each
// call instead of a dead channel. RemoveDevice returns when every backend
// handle of the device is closed: after it, the client no longer touches
// the device.
//
// # Share modes
//
// The client passes dwDesiredAccess, dwShareMode and dwCreationDisposition
// to the device unchanged; the backends of package device apply Windows'
// share rules between the handles of one device (device.Sharing).
//
// # Goroutines
//
// Handler callbacks only decode, update state and start work; device calls
// run on their own goroutines and never under the client's locks. Close
// ends every channel instance, cancels every operation and waits for all of
// them to return, so a device call that ignores its context holds Close.
package client
