package loopback

import (
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc/dvctest"
)

// The loopback backend keeps the whole channel contract; Hub.Close is its
// carrier dying.
func TestContract(t *testing.T) {
	dvctest.TestContract(t, func(t *testing.T) dvctest.Pair {
		h := New()
		return dvctest.Pair{Registrar: h, Opener: h, Kill: func() { h.Close() }, Cleanup: func() { h.Close() }}
	})
}
