package server

import (
	"time"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Limits of the server role. The wire package's Max constants bound each
// field of a message; these bound what the role keeps.
const (
	// MaxPNPDRMessage bounds one PNPDR message (its PNP_INFO_HEADER Size):
	// wire.MaxPNPDRMessage, the bound PNPDRFramer applies on streams. A
	// larger message closes PNPDR as malformed.
	MaxPNPDRMessage = wire.MaxPNPDRMessage

	// MaxDevices bounds the client device list. An addition that would
	// take it past this closes PNPDR, as a duplicate ClientDeviceID does:
	// 3.3.5.1.1.3 is about not letting a peer flood the server with
	// devices.
	MaxDevices = 4096

	// MaxOutstanding is how many requests one handle has outstanding at
	// once: the CancelSafeRequestIDs 0x000000 to 0xFEFEFE. Further calls
	// wait for one to complete.
	MaxOutstanding = 255

	// CancelRequestID is the RequestId of every Specific IoCancel Request
	// this package sends (the section 4.4 capture uses it too). It is never
	// the ID of a request that gets a reply.
	CancelRequestID = 0xFFFFFF

	// DefaultCancelTimeout is how long a call whose context has ended
	// waits to finish (write, cancel, reply) before the handle's channel
	// is closed.
	DefaultCancelTimeout = 30 * time.Second

	// DefaultVersionTimeout is how long the server waits for the Client
	// Version message after sending its Server Version (3.3.5.1.1.1). The
	// spec sets no timer; a client that never answers must not hold the
	// server, and a real one answers at once (3.2.5.1.1.1).
	DefaultVersionTimeout = 10 * time.Second
)

// Versions sent when Config leaves them zero.
const (
	// DefaultMajorVersion and DefaultMinorVersion are what a Windows server
	// sends in the Server Version message (Appendix A <2>, <3>).
	DefaultMajorVersion = wire.WindowsMajorVersion
	DefaultMinorVersion = wire.WindowsMinorVersion
	// DefaultIOVersion is the Server Capabilities Request Version: 6,
	// custom events supported (2.2.2.2.1).
	DefaultIOVersion = wire.IOVersionCustomEvents
)
