// Package xrdp is the server-side dvc backend for programs running inside
// an xrdp session on Linux: it opens dynamic virtual channels through the
// session's xrdpapi socket, the UNIX socket xrdp-chansrv listens on for
// WTSVirtualChannelOpenEx, and gives them the [dvc.Conn] shape.
//
//	op, err := xrdp.New(xrdp.Options{})   // display from $DISPLAY
//	c, err := op.Open(ctx, simple.ChannelName, dvc.WithFramer(simple.FrameLen))
//
// # The xrdpapi socket
//
// chansrv listens on <sockdir>/xrdpapi_<display>. sockdir is
// $XRDP_SOCKET_PATH in the session; from outside, New tries the layouts
// distributions build (SocketDirs): xrdp 0.10 keeps a folder per uid
// (/run/xrdp/sockdir/<uid> on Debian and Ubuntu, /run/xrdp/<uid> by
// upstream's default), xrdp 0.9 a shared one (/run/xrdp/sockdir, or
// /tmp/.xrdp upstream).
//
// chansrv speaks one of two open requests, all little-endian:
//
//   - xrdp 0.9 to 0.10.4 (ProtocolV0, my_api_trans_data_in in chansrv.c
//     at v0.9.21 and v0.10.1): [u32 total = 16 + nameLen][u32 version = 0]
//     [u32 nameLen][name][u32 flags]. chansrv reads 8 bytes, drops the
//     connection unless version is 0, then reads total-8 more.
//   - xrdp 0.10.5+ (ProtocolV1, struct xrdp_chan_connect in
//     common/channel_defs.h): [u32 version = 1][u32 private_chan]
//     [u32 flags][name, NUL-terminated] padded to exactly 384 bytes;
//     chansrv reads all 384 before looking at any.
//
// flags is WTS_CHANNEL_OPTION_DYNAMIC (1) for a dynamic channel. For a
// dynamic channel chansrv sends DYNVC_CREATE_REQ to the client and relays
// the client's CreationStatus (MS-RDPEDYC 2.2.2.2) as a u32: 0 when the
// channel opened. For a static channel (flags 0) it answers at once, 0 or
// 1 (no such channel). From then on the socket is a raw byte stream.
//
// The requests do not mix: chansrv 0.10.5+ waits for the rest of 384
// bytes after a version-0 request (until the Open deadline), and an older
// chansrv reads a version-1 request's first u32 (1) as its total length.
// So before the first open the Opener probes (Probe): a version-0 request
// for a static channel that cannot exist, then end of stream. An old
// chansrv answers 1 at once; a new one closes without a word, and only
// then is the version-1 probe sent, which it answers. Neither involves
// the client and neither depends on a timeout.
//
// chansrv 0.10.5+ also reports whether a client is connected on a private
// channel (private_chan 'xrdp'): WatchSession follows it, and
// OpenWhenConnected uses it to reopen after a client comes back.
//
// # What xrdp does not keep, and what this package does about it
//
// The byte stream has no message boundaries. Read from the xrdp sources
// (sesman/chansrv/chansrv.c, 0.9.21 to 0.10):
//
//   - Server to client: chansrv reads the socket with one recv() of up to
//     32768 bytes and sends whatever that recv() returned as one DVC message
//     (DYNVC_DATA_FIRST with that total, then DYNVC_DATA chunks of 1590
//     bytes), which the client reassembles. So a message reaches the client
//     whole exactly when one recv() returns exactly that message: if two
//     writes are queued when chansrv reads, the client gets them glued
//     together, or the first plus the head of the second; a message over
//     32768 bytes always arrives in several pieces.
//   - Client to server: chansrv writes each DVC chunk it gets from xrdp to
//     the socket as it comes. Message boundaries are gone.
//   - A close by the client (DYNVC_CLOSE) is not passed on: chansrv only
//     acts on a close it asked for itself, so the socket stays open and
//     Read blocks until the session ends or ctx is done. A client
//     disconnect is not passed on either, until the program writes:
//     chansrv then drops the socket (seen on 0.9.21), and Read returns an
//     error wrapping dvc.ErrConnectionLost.
//   - Priority (the flags' priority bits) is ignored: xrdp sends every
//     DYNVC_CREATE_REQ with Pri 0.
//   - The client cannot say why it refused: FreeRDP and mstsc send
//     0xC0000001 whatever the reason.
//
// What rdpdvc does:
//
//   - Write sends each message with a single write() and refuses messages
//     over [MaxWrite] (32768) bytes with [dvc.ErrTooLarge], unless
//     [Options.SplitLarge] allows pieces.
//   - On Linux, each message also carries an SCM_RIGHTS control message
//     with a descriptor of /dev/null. The kernel ends a recv() on a UNIX
//     stream socket right after a socket buffer carrying descriptors, so
//     chansrv's recv() can never return a message glued to the start of
//     the next one; chansrv reads with plain recv(), so the kernel drops
//     the descriptor and chansrv never sees it. The socket's send buffer
//     is raised so that a 32768-byte write is one socket buffer.
//   - On Linux, Write also waits before each message until the socket's
//     send queue is empty (ioctl SIOCOUTQ), that is until chansrv has read
//     the previous message. This is the flow control (chansrv stops
//     reading while xrdp's queue to the client is full) and keeps one
//     fenced message in flight. It was the first mechanism, and alone it
//     let one message in 200 through glued on a loaded machine: chansrv's
//     recv() can take a message off the queue and still be in the kernel
//     when the next arrives. With both, a client of an rdpdvc server
//     receives every message whole (2,500 of 2,500 pings sent 100 us
//     apart, on the real stack). Elsewhere than Linux messages may merge.
//   - Read recovers messages with the [dvc.Framer] given at Open (Simple:
//     frameLen; PNPDR: Size; FileRedirectorChannel replies: from the
//     request each one answers). Without a Framer each read() is returned
//     as a message, which is only right for protocols that tolerate that.
//   - Clients that talk to servers other than rdpdvc's (which do not wait
//     for the send queue) must expect merged or split messages; rdpdvc's
//     FreeRDP plugin reframes with the same Framer where a protocol has one.
//
// Conn.ID numbers instances within an Opener; chansrv's own channel id is
// not visible through the socket.
//
// # Goroutines and closing
//
// This is the server side only, so there are no Handler callbacks: a
// Conn's Read and Write run on the caller's goroutine, one Read and one
// Write at a time each (a second waits, bounded by its context), and a
// Read and a Write may run at once. The package starts no goroutine per
// channel; a SessionWatch has one, which its Close stops. Conn.Close
// closes the socket at once, whatever Read or Write is waiting (they
// return dvc.ErrClosed); it never waits for chansrv or the client.
package xrdp
