package xrdp

import (
	"fmt"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/dvc/kit"
)

// reassembler recovers messages from the xrdpapi byte stream: kit.Stream
// (the reframer every stream backend shares), with the messages copied
// out for the reader to own and errors named for this package.
type reassembler struct {
	framer dvc.Framer
	max    int
	s      kit.Stream
}

func (r *reassembler) stream() *kit.Stream {
	r.s.Framer, r.s.Max = r.framer, r.max
	return &r.s
}

func (r *reassembler) space(min int) []byte { return r.stream().Space(min) }
func (r *reassembler) added(n int)          { r.s.Added(n) }
func (r *reassembler) buffered() int        { return r.s.Buffered() }

// next returns the next whole message (a copy the caller owns), or nil if
// more bytes are needed. Errors are final.
func (r *reassembler) next() ([]byte, error) {
	m, err := r.stream().Next()
	if err != nil {
		return nil, fmt.Errorf("xrdp: %w", err)
	}
	if m == nil {
		return nil, nil
	}
	return append([]byte(nil), m...), nil
}
