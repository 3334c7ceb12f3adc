package wire

// Ceilings on counts and lengths read from the wire. A decoder checks each
// one before it allocates or slices anything for the field, and returns an
// *Error wrapping ErrTooLarge when a peer exceeds it. They are deliberately
// generous for real devices and small enough that no single message can
// make a decoder allocate much more than the message itself. A role may
// apply tighter limits of its own.
const (
	// MaxDevicesPerAddition bounds DeviceCount in a Client Device Addition
	// message (2.2.1.3.1).
	MaxDevicesPerAddition = 256

	// MaxInterfaceGUIDs bounds the GUIDs in one InterfaceGUIDArray
	// (2.2.1.3.1.1), so cbInterfaceLength <= 16*MaxInterfaceGUIDs.
	MaxInterfaceGUIDs = 64

	// MaxMultiszBytes bounds cbHardwareIdLength and cbCompatIdLength
	// (2.2.1.3.1.1). Windows caps one device ID at 200 characters
	// (MAX_DEVICE_ID_LEN); this leaves room for a long list of them.
	MaxMultiszBytes = 16 << 10

	// MaxDeviceDescriptionBytes bounds cbDeviceDescriptionLength
	// (2.2.1.3.1.1).
	MaxDeviceDescriptionBytes = 4 << 10

	// MaxReadBytes bounds cbBytesToRead in a Read Request (2.2.2.3.3) and
	// cbBytesRead in a Read Reply (2.2.2.3.4).
	MaxReadBytes = 16 << 20

	// MaxWriteBytes bounds cbWrite in a Write Request (2.2.2.3.5).
	MaxWriteBytes = 16 << 20

	// MaxIOControlBytes bounds cbIn and cbOut in an IOControl Request
	// (2.2.2.3.7) and cbBytesReadReturned in an IOControl Reply
	// (2.2.2.3.8).
	MaxIOControlBytes = 16 << 20

	// MaxCustomEventBytes bounds cbData in a Client Device Custom Event
	// (2.2.2.3.10).
	MaxCustomEventBytes = 64 << 10
)
