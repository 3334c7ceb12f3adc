package features

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/wire"
)

// PNP is the "pnp" feature: the MS-RDPEPNP client role
// (pnp/client) with listeners for PNPDR and FileRedirectorChannel,
// redirecting exactly the devices named, one per occurrence, in order
// (ClientDeviceIDs 1, 2, ...):
//
//	/dvc:rdpdvc,pnp=mem:1MiB,pnp=file:/tmp/disk.img:ro:hwid=USB\VID_1234
//
// Each value is a device spec as pnp/device.ParseSpecSep reads it with
// device.PluginSpecSep: the options of rdpdvc pnp-client -device, after
// colons instead of commas (FreeRDP splits the /dvc option at commas, so
// no value can hold one; "\:" puts a colon in a value). A spec that does
// not parse, or a file that cannot be used, makes the plugin refuse to
// load. A relative path is taken from xfreerdp's working directory.
//
// PNPDR is reframed by its PNP_INFO_HEADER Size (kit.Reframe with
// wire.PNPDRFramer), so a server behind xrdp that writes messages back
// to back still works. FileRedirectorChannel is not: an IOControl
// Request's length cannot be told from its header (its DataOut may be
// absent or cbOut bytes, 2.2.2.3.7), so the plugin relies on the server
// writing one request per message, as every Windows server and rdpdvc's
// backend/xrdp do (up to 32768 bytes; pnp/server splits larger writes
// when Config.MaxMessage says so).
//
// If r has an OnTerminate method (a *freerdp.Host does), the client is closed
// when the plugin terminates.
func PNP(log *slog.Logger) Feature {
	if log == nil {
		log = slog.Default()
	}
	return Feature{
		Name:       "pnp",
		Usage:      "redirect a device with MS-RDPEPNP, once per device: pnp=file:PATH[:ro], pnp=mem:SIZE or pnp=emu:NAME, options after colons",
		Repeatable: true,
		Setup: func(r dvc.Registrar, values []string) error {
			devs, err := ParsePNPDevices(values)
			if err != nil {
				return err
			}
			c, err := client.New(client.Config{Logger: log.With("feature", "pnp")}, devs...)
			if err != nil {
				return err
			}
			err = r.Listen(wire.ChannelPNPDR, kit.Reframe(c.PNPDRListener(), wire.PNPDRFramer, wire.MaxPNPDRMessage))
			if err == nil {
				err = r.Listen(wire.ChannelFileRedirector, c.FileRedirectorListener())
			}
			if err != nil {
				c.Close()
				return err
			}
			if t, ok := r.(interface{ OnTerminate(func()) }); ok {
				t.OnTerminate(func() { c.Close() })
			}
			for i, d := range devs {
				desc := d.Describe()
				log.Info("pnp device", "ClientDeviceID", i+1, "spec", values[i], "description", desc.Text, "hardwareIds", desc.HardwareIDs)
			}
			return nil
		},
	}
}

// ParsePNPDevices makes the devices of the pnp feature's values, in
// order (see PNP).
func ParsePNPDevices(values []string) ([]device.Device, error) {
	devs := make([]device.Device, 0, len(values))
	for _, v := range values {
		if v == "" {
			return nil, errors.New("wants a device: pnp=file:PATH[:ro], pnp=mem:SIZE or pnp=emu:NAME")
		}
		d, err := device.ParseSpecSep(v, device.PluginSpecSep)
		if err != nil {
			return nil, fmt.Errorf("pnp=%s: %w", v, err)
		}
		devs = append(devs, d)
	}
	return devs, nil
}
