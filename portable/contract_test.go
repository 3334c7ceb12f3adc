package portable

import (
	"context"
	"net"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
)

// The portable transport keeps the whole channel contract, over TCP on
// 127.0.0.1 as it runs in practice.
func TestContract(t *testing.T) {
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, err := ln.Accept()
		if err != nil {
			cc.Close()
			t.Fatal(err)
		}
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
