// Package kit is what every rdpdvc backend is built from, so that each
// backend holds only its platform's plumbing: the client-side listener
// registry with the one channel-name rule ([Registry]), the per-instance
// serialiser of Handler calls ([Serial]), the stream reframer that
// recovers messages from a byte stream ([Stream], [Reframe]) and the
// checked call of a Listener ([Accept]). Server-side blocking reads use
// [dvc.Inbox], which stays in package dvc.
//
// It is a package of its own, not part of dvc, because channel protocols
// import dvc and never need any of this: dvc stays the surface a protocol
// sees, and kit is imported by backends only (session, loopback, freerdp,
// backend/com, backend/xrdp).
package kit
