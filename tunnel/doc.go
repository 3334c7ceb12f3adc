// Package tunnel carries TCP streams through an RDP connection, over the
// dynamic virtual channel rdpdvc::tunnel (docs/tunnel.md has the protocol
// byte for byte; package tunnel/wire is its codec).
//
// The server side (the program in the RDP session, a [dvc.Opener]) is
// [Server]: its Dial opens one channel instance per TCP stream and asks
// the client side to connect it to a target, so connections made in the
// session leave from the client's network (a SOCKS5 front-end, package
// tunnel/socks, or a fixed forward sits on top). The client side (the RDP
// client, a [dvc.Registrar]) is [Client]: it decides where connections
// may go (its Dial, which package tunnel/allow provides) and joins each
// instance to the connection it made. Reverse forwards go the other way:
// [Server.Reverse] asks the client to listen on an address its user
// allowed, and every connection accepted there is carried to a target on
// the server's side.
//
// Every stream has its own credit-based flow control (a window of bytes
// each way, replenished as the receiving end writes to its socket), so a
// reader that stops stalls only its own stream: DRDYNVC's only flow
// control stalls the whole connection (MS-RDPEDYC 1.3.3.2 has none per
// channel), which one slow TCP peer must not do to the others.
package tunnel
