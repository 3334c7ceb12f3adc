//go:build freerdp

package main

import (
	"log/slog"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/freerdp"
	"github.com/rdpdvc/rdpdvc/simple"
)

// features are the client-side channels the plugin can host, chosen by
// /dvc:rdpdvc,<name>[=<value>],...
func features(log *slog.Logger) []freerdp.Feature {
	return []freerdp.Feature{
		{
			Name:  "simple",
			Usage: "echo the Simple sample's pings on " + simple.ChannelName,
			// Not wrapped in freerdp.Reframe: the echo does not need
			// whole frames, and scripts/e2e-linux.sh reads the sizes
			// it logs to check that backend/xrdp keeps boundaries.
			Setup: freerdp.NoValue(func(r dvc.Registrar) error {
				return r.Listen(simple.ChannelName, &simple.Echoer{Logger: log})
			}),
		},
		// pnp=SPEC, once per device (freerdp.PNPFeature).
		freerdp.PNPFeature(log),
	}
}
