package features

import (
	"log/slog"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/tunnel"
)

// Tunnel is the "tunnel" feature: the client side of rdpdvc tunnel
// (package tunnel, docs/tunnel.md), carrying the session's TCP streams
// from this machine where its options allow:
//
//	/dvc:rdpdvc,tunnel=allow:10.0.0.0/8:443,tunnel=allow:*.corp.example,tunnel=listen:127.0.0.1:8080
//
// Each value is allow:RULE (tunnel/allow's syntax: HOST, *.SUFFIX, IP or
// CIDR, each with an optional :PORT or :N-M) or listen:HOST:PORT (an
// address the session's reverse forwards may listen on). Nothing is
// allowed that no option names; allow:* allows everything, with a
// warning. Values that do not parse make the plugin refuse to load.
func Tunnel(log *slog.Logger) Feature {
	if log == nil {
		log = slog.Default()
	}
	return Feature{
		Name:       "tunnel",
		Usage:      "carry the session's TCP connections (rdpdvc tunnel) from here, once per rule: tunnel=allow:HOST|CIDR[:PORTS] (allow:* for all), tunnel=listen:HOST:PORT for a reverse forward",
		Repeatable: true,
		Setup: func(r dvc.Registrar, values []string) error {
			c, err := tunnel.RegisterOptions(r, values, log.With("feature", "tunnel"))
			if err != nil {
				return err
			}
			if t, ok := r.(interface{ OnTerminate(func()) }); ok {
				t.OnTerminate(func() { c.Close() }) // the streams end with the plugin
			}
			return nil
		},
	}
}
