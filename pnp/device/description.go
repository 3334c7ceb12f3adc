package device

import (
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Description is what a client announces for a device: the
// PNP_DEVICE_DESCRIPTION fields (2.2.1.3.1.1) except ClientDeviceID, which
// the client assigns.
type Description struct {
	HardwareIDs      []string    // HardwareId (multisz), most specific first
	CompatibilityIDs []string    // CompatibilityID (multisz)
	Text             string      // DeviceDescription, shown to the server's user
	InterfaceGUIDs   []wire.GUID // InterfaceGUIDArray: device interfaces the device exposes
	ContainerID      *wire.GUID  // ContainerId: nil when the device is not part of a composite device
	Capabilities     *uint32     // DeviceCaps (wire.DevCaps* bits): nil to leave the field out
	Optional         bool        // CustomFlag 0x00000001: the server MAY decline the device (3.3.5.1.2.1)
}

// PNP returns the description as the Client Device Addition message
// carries it, with ClientDeviceID id.
func (d Description) PNP(id uint32) wire.PNPDeviceDescription {
	p := wire.PNPDeviceDescription{
		ClientDeviceID:    id,
		InterfaceGUIDs:    d.InterfaceGUIDs,
		HardwareIDs:       d.HardwareIDs,
		CompatibilityIDs:  d.CompatibilityIDs,
		DeviceDescription: d.Text,
		CustomFlag:        wire.CustomFlagRedirectable,
		ContainerID:       d.ContainerID,
		DeviceCaps:        d.Capabilities,
	}
	if d.Optional {
		p.CustomFlag = wire.CustomFlagOptional
	}
	return p
}

// Validate reports what would make the description unencodable or
// rejected by a peer (see wire.PNPDeviceDescription.Validate).
func (d Description) Validate() error { return d.PNP(0).Validate() }
