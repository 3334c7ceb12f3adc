package wire

import (
	"errors"
	"strconv"
)

// PNPDeviceDescription is PNP_DEVICE_DESCRIPTION (2.2.1.3.1.1): one device
// of a Client Device Addition message.
//
// # DataSize
//
// The specification says DataSize is "the size of the PNP_DEVICE_DESCRIPTION
// structure", but its only example (section 4.2) carries DataSize 0x56 = 86
// for a 94-byte structure: there it counts the bytes after the DataSize
// field. Append writes DataSize as the example does, since that is what a
// Windows client sent and a Windows server accepts. Decoders accept both
// readings: ParseClientDeviceAddition first decodes the whole message with
// DataSize counting the bytes after it, and only if that fails decodes it
// again with DataSize counting the whole structure (as an implementation
// that followed the prose, such as justrdp's, writes it). Either way DataSize
// must agree exactly with the fields: it decides whether the optional
// ContainerId and DeviceCaps are present, and any other remainder is an
// error wrapping ErrInvalid.
//
// The optional tail is read by its length tags: cbContainerId = 16 starts a
// ContainerId, cbDeviceCaps = 4 a DeviceCaps. The diagram puts ContainerId
// first; a DeviceCaps without a ContainerId is accepted and written too,
// since the tags keep it unambiguous.
type PNPDeviceDescription struct {
	// ClientDeviceID names the device in CreateFile Requests and in the
	// Client Device Removal message.
	ClientDeviceID uint32 `json:"ClientDeviceID"`
	// InterfaceGUIDs is InterfaceGUIDArray (cbInterfaceLength/16 GUIDs).
	InterfaceGUIDs []GUID `json:"InterfaceGUIDArray"`
	// HardwareIDs is the multisz HardwareId, one string per element.
	HardwareIDs []string `json:"HardwareId"`
	// CompatibilityIDs is the multisz CompatibilityID.
	CompatibilityIDs []string `json:"CompatibilityID"`
	// DeviceDescription is sent as UTF-16LE without a terminator. A NUL
	// sent by a peer is kept as U+0000.
	DeviceDescription string `json:"DeviceDescription"`
	// CustomFlag is CustomFlagRedirectable, CustomFlagRedirectableAlt or
	// CustomFlagOptional; other values are kept as they are.
	CustomFlag uint32 `json:"CustomFlag"`
	// ContainerID is the optional ContainerId: nil when absent.
	ContainerID *GUID `json:"ContainerId,omitempty"`
	// DeviceCaps is the optional DeviceCaps (DevCaps* bits): nil when
	// absent.
	DeviceCaps *uint32 `json:"DeviceCaps,omitempty"`
}

// descriptionMinLen is a PNP_DEVICE_DESCRIPTION with every variable field
// empty and no optional field: ClientDeviceID, DataSize, four lengths,
// CustomFlagLength and CustomFlag.
const descriptionMinLen = 32

// Optional reports whether the server MAY decline to redirect the device
// (CustomFlag = 0x00000001, 3.3.5.1.2.1).
func (d PNPDeviceDescription) Optional() bool { return d.CustomFlag == CustomFlagOptional }

// Len is the encoded length of the description, DataSize included.
func (d PNPDeviceDescription) Len() int {
	n := descriptionMinLen + 16*len(d.InterfaceGUIDs) +
		multiszLen(d.HardwareIDs) + multiszLen(d.CompatibilityIDs) +
		utf16Len(d.DeviceDescription)
	if d.ContainerID != nil {
		n += 4 + 16
	}
	if d.DeviceCaps != nil {
		n += 4 + 4
	}
	return n
}

// Append appends the description, with DataSize = Len()-8 (see the type's
// documentation). Strings that Validate rejects are written anyway and do
// not decode back to the same value.
func (d PNPDeviceDescription) Append(b []byte) []byte {
	n := d.Len()
	b = grow(b, n)
	b = appendU32(b, d.ClientDeviceID)
	b = appendU32(b, uint32(n-8))
	b = appendU32(b, uint32(16*len(d.InterfaceGUIDs)))
	for _, g := range d.InterfaceGUIDs {
		b = g.AppendWire(b)
	}
	b = appendU32(b, uint32(multiszLen(d.HardwareIDs)))
	b = appendMultisz(b, d.HardwareIDs)
	b = appendU32(b, uint32(multiszLen(d.CompatibilityIDs)))
	b = appendMultisz(b, d.CompatibilityIDs)
	b = appendU32(b, uint32(utf16Len(d.DeviceDescription)))
	b = appendUTF16(b, d.DeviceDescription)
	b = appendU32(b, 4) // CustomFlagLength
	b = appendU32(b, d.CustomFlag)
	if d.ContainerID != nil {
		b = appendU32(b, 16) // cbContainerId
		b = d.ContainerID.AppendWire(b)
	}
	if d.DeviceCaps != nil {
		b = appendU32(b, 4) // cbDeviceCaps
		b = appendU32(b, *d.DeviceCaps)
	}
	return b
}

// Validate reports what would make the description unencodable or
// rejected by a peer using this package's ceilings: an empty or NUL-bearing
// element in a multisz list (it would end the list early), or a field over
// its ceiling. A client should validate descriptions it builds from user
// input before announcing them.
func (d PNPDeviceDescription) Validate() error {
	const msg = "PNPDeviceDescription"
	if len(d.InterfaceGUIDs) > MaxInterfaceGUIDs {
		return newError(msg, "InterfaceGUIDArray", ErrTooLarge, "%d GUIDs > %d", len(d.InterfaceGUIDs), MaxInterfaceGUIDs)
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"HardwareId", d.HardwareIDs}, {"CompatibilityID", d.CompatibilityIDs}} {
		if why := checkMultisz(f.list); why != "" {
			return newError(msg, f.name, ErrInvalid, "%s", why)
		}
		if n := multiszLen(f.list); n > MaxMultiszBytes {
			return newError(msg, f.name, ErrTooLarge, "%d bytes > %d", n, MaxMultiszBytes)
		}
	}
	if n := utf16Len(d.DeviceDescription); n > MaxDeviceDescriptionBytes {
		return newError(msg, "DeviceDescription", ErrTooLarge, "%d bytes > %d", n, MaxDeviceDescriptionBytes)
	}
	return nil
}

// description decodes one PNP_DEVICE_DESCRIPTION at r's offset.
// wholeDataSize selects the reading of DataSize: false counts the bytes
// after the DataSize field (section 4.2), true the whole structure.
func (r *reader) description(wholeDataSize bool) PNPDeviceDescription {
	var d PNPDeviceDescription
	start := r.off
	d.ClientDeviceID = r.u32("ClientDeviceID")
	dataSize := r.u32("DataSize")
	if r.err != nil {
		return d
	}
	total := uint64(dataSize) + 8
	if wholeDataSize {
		total = uint64(dataSize)
	}
	if total < descriptionMinLen {
		r.fail("DataSize", ErrInvalid, "%d is shorter than the mandatory fields", dataSize)
		return d
	}
	if total > uint64(len(r.b)-start) {
		r.fail("DataSize", ErrInvalid, "%d runs past the end of the message", dataSize)
		return d
	}
	end := start + int(total)
	// Decode inside the window DataSize gives, so that a field running
	// past it is caught as a disagreement with DataSize.
	w := reader{b: r.b[:end], off: r.off, msg: r.msg}
	w.descriptionBody(&d)
	if w.err != nil {
		var e *Error
		if errors.As(w.err, &e) && e.Err == ErrTruncated {
			e.Err = ErrInvalid
			e.Detail = "runs past DataSize " + strconv.FormatUint(uint64(dataSize), 10) + ": " + e.Detail
		}
		r.err = w.err
		return d
	}
	r.off = end
	return d
}

func (w *reader) descriptionBody(d *PNPDeviceDescription) {
	cb := w.length("cbInterfaceLength", 16*MaxInterfaceGUIDs)
	if w.err == nil && cb%16 != 0 {
		w.fail("cbInterfaceLength", ErrInvalid, "%d is not a multiple of 16", cb)
	}
	if w.err == nil && cb > 0 {
		d.InterfaceGUIDs = make([]GUID, cb/16)
		for i := range d.InterfaceGUIDs {
			d.InterfaceGUIDs[i] = w.guid("InterfaceGUIDArray")
		}
	}
	d.HardwareIDs = w.multisz("cbHardwareIdLength", "HardwareId")
	d.CompatibilityIDs = w.multisz("cbCompatIdLength", "CompatibilityID")
	cb = w.length("cbDeviceDescriptionLength", MaxDeviceDescriptionBytes)
	if w.err == nil && cb%2 != 0 {
		w.fail("cbDeviceDescriptionLength", ErrInvalid, "odd UTF-16 length %d", cb)
	}
	if desc := w.bytes("DeviceDescription", cb); w.err == nil {
		d.DeviceDescription = decodeUTF16(desc)
	}
	if n := w.u32("CustomFlagLength"); w.err == nil && n != 4 {
		w.fail("CustomFlagLength", ErrInvalid, "%d, MUST be 4", n)
	}
	d.CustomFlag = w.u32("CustomFlag")
	// The optional tail, told apart by its length tags.
	if w.err == nil && w.left() >= 4 && le32(w.b[w.off:]) == 16 {
		w.off += 4
		g := w.guid("ContainerId")
		d.ContainerID = &g
	}
	if w.err == nil && w.left() >= 4 && le32(w.b[w.off:]) == 4 {
		w.off += 4
		c := w.u32("DeviceCaps")
		d.DeviceCaps = &c
	}
	if w.err == nil && w.left() != 0 {
		field := "cbContainerId"
		if d.ContainerID != nil || d.DeviceCaps != nil {
			field = "cbDeviceCaps"
		}
		w.fail(field, ErrInvalid, "DataSize leaves %d bytes after the fields that are neither ContainerId nor DeviceCaps", w.left())
	}
}

// multisz reads a length field and the multisz string it announces.
func (w *reader) multisz(lenField, field string) []string {
	cb := w.length(lenField, MaxMultiszBytes)
	raw := w.bytes(field, cb)
	if w.err != nil || cb == 0 {
		return nil
	}
	list, err := decodeMultisz(raw, w.msg, field)
	if err != nil {
		w.err = err
	}
	return list
}

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

// ClientDeviceAddition is the Client Device Addition message (2.2.1.3.1):
// one or more devices announced at once.
type ClientDeviceAddition struct {
	Devices []PNPDeviceDescription `json:"DeviceDescriptions"`
}

// Len is the encoded length of the message.
func (m ClientDeviceAddition) Len() int {
	n := PNPInfoHeaderLen + 4
	for _, d := range m.Devices {
		n += d.Len()
	}
	return n
}

// Append appends the message; DeviceCount is len(m.Devices).
func (m ClientDeviceAddition) Append(b []byte) []byte {
	n := m.Len()
	b = grow(b, n)
	b = PNPInfoHeader{Size: uint32(n), PacketID: PacketRedirectDevices}.Append(b)
	b = appendU32(b, uint32(len(m.Devices)))
	for _, d := range m.Devices {
		b = d.Append(b)
	}
	return b
}

// Validate checks every description (PNPDeviceDescription.Validate), the
// device count against MaxDevicesPerAddition, and that ClientDeviceIDs are
// unique within the message (3.2.5.1.2.1; a server SHOULD close PNPDR on a
// duplicate, 3.3.5.1.2.1). Uniqueness against devices announced earlier is
// the client role's business.
func (m ClientDeviceAddition) Validate() error {
	if len(m.Devices) > MaxDevicesPerAddition {
		return newError("ClientDeviceAddition", "DeviceCount", ErrTooLarge, "%d > %d", len(m.Devices), MaxDevicesPerAddition)
	}
	seen := make(map[uint32]bool, len(m.Devices))
	for i, d := range m.Devices {
		if err := d.Validate(); err != nil {
			return err
		}
		if seen[d.ClientDeviceID] {
			return newError("ClientDeviceAddition", "ClientDeviceID", ErrInvalid, "device %d repeats ID %d", i, d.ClientDeviceID)
		}
		seen[d.ClientDeviceID] = true
	}
	return nil
}

// ParseClientDeviceAddition decodes a Client Device Addition message. See
// PNPDeviceDescription for how DataSize is read. Strings and GUIDs are
// copied out of b.
func ParseClientDeviceAddition(b []byte) (ClientDeviceAddition, error) {
	m, err := parseAddition(b, false)
	if err == nil {
		return m, nil
	}
	if m2, err2 := parseAddition(b, true); err2 == nil {
		return m2, nil
	}
	return ClientDeviceAddition{}, err
}

func parseAddition(b []byte, wholeDataSize bool) (ClientDeviceAddition, error) {
	r := readPNPHeader(b, "ClientDeviceAddition", PacketRedirectDevices)
	count := r.u32("DeviceCount")
	if r.err != nil {
		return ClientDeviceAddition{}, r.err
	}
	if count > MaxDevicesPerAddition {
		return ClientDeviceAddition{}, newError(r.msg, "DeviceCount", ErrTooLarge, "%d > %d", count, MaxDevicesPerAddition)
	}
	if uint64(count)*descriptionMinLen > uint64(r.left()) {
		return ClientDeviceAddition{}, newError(r.msg, "DeviceCount", ErrInvalid,
			"%d devices need at least %d bytes, %d left", count, uint64(count)*descriptionMinLen, r.left())
	}
	var m ClientDeviceAddition
	if count > 0 {
		m.Devices = make([]PNPDeviceDescription, 0, count)
	}
	for i := uint32(0); i < count && r.err == nil; i++ {
		m.Devices = append(m.Devices, r.description(wholeDataSize))
	}
	r.end()
	if r.err != nil {
		return ClientDeviceAddition{}, r.err
	}
	return m, nil
}
