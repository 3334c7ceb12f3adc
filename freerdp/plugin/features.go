//go:build (freerdp && !freerdp3) || (freerdp3 && !freerdp)

package main

import (
	"log/slog"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/freerdp/features"
	"github.com/rdpdvc/rdpdvc/simple"
)

// plugFeatures are the client-side channels the plugin can host, chosen by
// /dvc:rdpdvc,<name>[=<value>],...
func plugFeatures(log *slog.Logger) []features.Feature {
	return []features.Feature{
		{
			Name:  "simple",
			Usage: "echo the Simple sample's pings on " + simple.ChannelName,
			// Not wrapped in kit.Reframe: the echo does not need
			// whole frames, and scripts/e2e-linux.sh reads the sizes
			// it logs to check that backend/xrdp keeps boundaries.
			Setup: features.NoValue(func(r dvc.Registrar) error {
				return r.Listen(simple.ChannelName, &simple.Echoer{Logger: log})
			}),
		},
		{
			Name: "echo",
			// FreeRDP's /echo addin listens on the same channel name;
			// with both, which one gets the channel depends on the
			// FreeRDP version and the load order.
			Usage: "answer MS-RDPEECO echo requests on " + echo.ChannelName + "; do not also enable xfreerdp's /echo, which listens on the same channel",
			Setup: features.NoValue(func(r dvc.Registrar) error {
				return r.Listen(echo.ChannelName, &echo.Responder{Logger: log})
			}),
		},
		// pnp=SPEC, once per device (features.PNP).
		features.PNP(log),
		// bridge=NAME=[FRAMING:]unix:PATH, once per channel (features.Bridge).
		features.Bridge(log),
		// tunnel=allow:RULE|listen:HOST:PORT, once per rule (features.Tunnel).
		features.Tunnel(log),
	}
}
