// Package bridge makes a dynamic virtual channel reachable as a local
// socket, so that a program in any language can use a DVC without
// writing a plugin (what UniversalDVC, rd_pipe and IronRDP's
// ironrdp-dvc-pipe-proxy do, one platform each).
//
// On the server side (the RDP session), a [Server] accepts connections on
// a local socket and opens one instance of its channel for each
// (dvc.Opener.Open); on the client side, a [Client] is the channel's
// dvc.Listener and connects once to its local socket for each instance the
// server opens, refusing the instance if that fails. The two are joined
// until either closes.
//
// Two framings, per bridge ([Framing]): Stream carries bytes, each socket
// read one channel message of at most [MaxChunk] bytes; Message carries
// messages, each a u32 little-endian length then the bytes, the same on
// the socket and on the channel, so that a program keeps message
// boundaries on every backend, xrdp's boundary-less socket included.
// docs/bridge.md describes both byte for byte.
//
// A channel has no half-close: when the local program shuts down its
// write side, the bridge writes what it read, then closes the channel;
// when the channel closes, the bridge writes what it queued for the
// socket, then closes the socket. Every write to either peer waits at most
// the configured timeout, and what a client queues for its socket is
// bounded in bytes.
package bridge
