package device

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// Option separators of a device spec (see ParseSpec).
const (
	// SpecSep separates options on the command line:
	// rdpdvc pnp-client -device 'file:/x,ro,desc=Disk\, 1 MiB'.
	SpecSep = ','
	// PluginSpecSep separates options where a comma cannot be used:
	// FreeRDP splits /dvc:rdpdvc,... at every comma, so the FreeRDP
	// plugin's pnp= feature reads /dvc:rdpdvc,pnp=file:/x:ro:desc=Disk.
	PluginSpecSep = ':'
)

// Default description fields of the devices a spec makes.
const (
	DefaultCompatibilityID = `RDPDVC\DEVICE`
	FileHardwareID         = `RDPDVC\FILE`
	MemoryHardwareID       = `RDPDVC\MEM`
	EmulatedHardwareID     = `RDPDVC\EMU`
	// DefaultEmulatedSize is the storage of an emu: device without size=.
	DefaultEmulatedSize = 64 << 10
)

// ParseSpec makes the device a spec names, in the command-line spelling
// (options after commas). It is ParseSpecSep(spec, SpecSep).
func ParseSpec(spec string) (Device, error) { return ParseSpecSep(spec, SpecSep) }

// ParseSpecSep makes the device a spec names:
//
//	KIND:ARG[<sep>OPTION...]
//
//	file:PATH[<sep>ro][<sep>maxsize=SIZE]
//	                          a File (NewFileOptions); ro: write-protected;
//	                          maxsize: writes ending beyond SIZE bytes fail
//	                          with ERROR_DISK_FULL (default: no limit;
//	                          ParseFileSize)
//	mem:SIZE                  a zeroed Memory of SIZE bytes (ParseSize)
//	emu:NAME[<sep>size=SIZE]  the demo Emulated device (NewDemo), NAME its
//	                          description, SIZE its storage (DefaultEmulatedSize)
//
// and, for every kind, description options (repeat one to list several):
//
//	hwid=ID        HardwareId (default FileHardwareID, MemoryHardwareID, EmulatedHardwareID)
//	compat=ID      CompatibilityID (default DefaultCompatibilityID)
//	desc=TEXT      DeviceDescription (default from the kind and ARG)
//	iface=GUID     InterfaceGUIDArray entry, {xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx}
//	container=GUID ContainerId
//	caps=N         DeviceCaps bits (wire.DevCaps*), decimal or 0x hex
//	optional       CustomFlag 1: the server may decline the device
//
// A backslash before sep puts sep itself in ARG or a value (desc=Disk\,
// 64 MiB with sep ','); any other backslash is kept as it is, so that
// hardware IDs such as USB\VID_1234 need no escaping. sep is SpecSep on
// the command line and PluginSpecSep in FreeRDP's /dvc option.
func ParseSpecSep(spec string, sep byte) (Device, error) {
	kind, rest, ok := strings.Cut(spec, ":")
	if !ok {
		return nil, errors.New("device spec: want KIND:ARG (file:PATH, mem:SIZE or emu:NAME)")
	}
	parts := splitEscaped(rest, sep)
	arg, opts := parts[0], parts[1:]
	if arg == "" {
		return nil, fmt.Errorf("device spec %s: empty argument", kind)
	}
	var desc Description
	var readOnly bool
	var maxSize int64
	size := int64(DefaultEmulatedSize)
	for _, o := range opts {
		key, val, hasVal := strings.Cut(o, "=")
		var err error
		switch {
		case key == "ro" && !hasVal && kind == "file":
			readOnly = true
		case key == "maxsize" && hasVal && kind == "file":
			if maxSize, err = ParseFileSize(val); err == nil && maxSize == 0 {
				err = errors.New("want a size above 0 (omit maxsize for no limit)")
			}
		case key == "optional" && !hasVal:
			desc.Optional = true
		case key == "size" && hasVal && kind == "emu":
			size, err = ParseSize(val)
		case key == "hwid" && hasVal && val != "":
			desc.HardwareIDs = append(desc.HardwareIDs, val)
		case key == "compat" && hasVal && val != "":
			desc.CompatibilityIDs = append(desc.CompatibilityIDs, val)
		case key == "desc" && hasVal:
			desc.Text = val
		case key == "iface" && hasVal:
			var g wire.GUID
			if g, err = wire.ParseGUID(val); err == nil {
				desc.InterfaceGUIDs = append(desc.InterfaceGUIDs, g)
			}
		case key == "container" && hasVal:
			var g wire.GUID
			if g, err = wire.ParseGUID(val); err == nil {
				desc.ContainerID = &g
			}
		case key == "caps" && hasVal:
			var n uint64
			if n, err = strconv.ParseUint(val, 0, 32); err == nil {
				c := uint32(n)
				desc.Capabilities = &c
			}
		default:
			return nil, fmt.Errorf("device spec %s: unknown option %q", kind, o)
		}
		if err != nil {
			return nil, fmt.Errorf("device spec %s: %s: %w", kind, key, err)
		}
	}
	if len(desc.CompatibilityIDs) == 0 {
		desc.CompatibilityIDs = []string{DefaultCompatibilityID}
	}
	switch kind {
	case "file":
		if len(desc.HardwareIDs) == 0 {
			desc.HardwareIDs = []string{FileHardwareID}
		}
		if desc.Text == "" {
			desc.Text = "rdpdvc file " + filepath.Base(arg)
		}
		return NewFileOptions(arg, FileOptions{ReadOnly: readOnly, MaxSize: maxSize}, desc)
	case "mem":
		n, err := ParseSize(arg)
		if err != nil {
			return nil, fmt.Errorf("device spec mem: %w", err)
		}
		if len(desc.HardwareIDs) == 0 {
			desc.HardwareIDs = []string{MemoryHardwareID}
		}
		if desc.Text == "" {
			desc.Text = "rdpdvc memory device (" + arg + ")"
		}
		return NewMemory(n, desc)
	case "emu":
		if len(desc.HardwareIDs) == 0 {
			desc.HardwareIDs = []string{EmulatedHardwareID}
		}
		if desc.Text == "" {
			desc.Text = arg
		}
		return NewDemo(desc, size)
	}
	return nil, fmt.Errorf("device spec: unknown kind %q (want file, mem or emu)", kind)
}

// splitEscaped splits s at each sep not escaped as \sep.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s) && s[i+1] == sep:
			cur.WriteByte(sep)
			i++
		case s[i] == sep:
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(parts, cur.String())
}

// ParseSize reads a byte count: 4096, 64K, 64KiB, 64M, 64MiB, 1G, 1GiB
// (K, M and G are binary multiples too), at most MaxMemorySize.
func ParseSize(s string) (int64, error) {
	n, ok := parseBytes(s, false)
	if !ok || n > MaxMemorySize {
		return 0, fmt.Errorf("size %q: want a number of bytes up to 4GiB, with an optional K, KiB, M, MiB, G or GiB", s)
	}
	return n, nil
}

// MaxFileSize bounds maxsize= (ParseFileSize): 2^62 bytes, beyond any
// file system's files.
const MaxFileSize = 1 << 62

// ParseFileSize reads a file size limit (maxsize=): a byte count as for
// ParseSize, also with T or TiB, at most MaxFileSize.
func ParseFileSize(s string) (int64, error) {
	n, ok := parseBytes(s, true)
	if !ok || n > MaxFileSize {
		return 0, fmt.Errorf("size %q: want a number of bytes up to 2^62, with an optional K, KiB, M, MiB, G, GiB, T or TiB", s)
	}
	return n, nil
}

func parseBytes(s string, tera bool) (int64, bool) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40}, {"k", 1 << 10}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	if mult == 1<<40 && !tera {
		return 0, false
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}
