// Package e2e runs the MS-RDPEPNP server role (pnp/server) against the
// client role (pnp/client) with real device backends (pnp/device), over
// the portable transport on loopback TCP: the whole stack a redirected
// device goes through, in one process, plus the two programs in two.
package e2e
