package portable

import (
	"context"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
)

// The portable transport keeps the whole channel contract, over TCP on
// 127.0.0.1 as it runs in practice.
func TestContract(t *testing.T) {
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		sc, cc := loopbackConns(t)
		c := NewClient(cc, quietCfg())
		runDone := make(chan struct{})
		go func() { c.Run(context.Background()); close(runDone) }()
		s := NewServer(sc, quietCfg())
		go s.Run(context.Background())
		return dvctest.Pair{
			Registrar: c,
			Opener:    s,
			// Closing the server's socket drops the connection under both
			// ends, as a reset does; Close returns once every server
			// channel has failed.
			Kill: func() { s.Close() },
			Cleanup: func() {
				s.Close()
				c.Close()
				<-runDone
			},
		}
	})
}
