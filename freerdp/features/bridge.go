package features

import (
	"log/slog"

	"github.com/rdpdvc/rdpdvc/bridge"
	"github.com/rdpdvc/rdpdvc/dvc"
)

// Bridge is the "bridge" feature: the client side of a bridge (package
// bridge, docs/bridge.md), once per channel:
//
//	/dvc:rdpdvc,bridge=my::chan=unix:/run/user/1000/my.sock,bridge=other=message:tcp:127.0.0.1:9000
//
// Each value is NAME=[stream:|message:]unix:PATH or ...tcp:HOST:PORT
// (bridge.ParseSpec): no commas, which FreeRDP would split at. Each
// instance of NAME the server opens connects once to the socket; if that
// fails the instance is refused. A value that does not parse makes the
// plugin refuse to load.
func Bridge(log *slog.Logger) Feature {
	if log == nil {
		log = slog.Default()
	}
	return Feature{
		Name:       "bridge",
		Usage:      "make channel NAME a local socket, once per channel: bridge=NAME=unix:PATH or bridge=NAME=tcp:HOST:PORT, message: before unix or tcp for message framing",
		Repeatable: true,
		Setup: func(r dvc.Registrar, values []string) error {
			return bridge.Register(r, values, log.With("feature", "bridge"))
		},
	}
}
