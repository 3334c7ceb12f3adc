package tunnel

import (
	"context"
	"testing"

	"github.com/rdpdvc/rdpdvc/tunnel/wire"
)

// nullChannel is a dvc.Channel that takes every write and counts closes.
type nullChannel struct{ closes int }

func (*nullChannel) Name() string                        { return wire.ChannelName }
func (*nullChannel) ID() uint32                          { return 1 }
func (*nullChannel) Write(context.Context, []byte) error { return nil }
func (c *nullChannel) Close() error                      { c.closes++; return nil }

// FuzzDeliver feeds a stream whatever messages a peer could send after
// the handshake, cut from the input with wire.Framer, reading between
// them: no panic, and the stream never holds more than its window.
func FuzzDeliver(f *testing.F) {
	for _, m := range []wire.Message{wire.Data{Payload: []byte("hello")}, wire.Credit{Increment: 100}, wire.EOF{}, wire.Close{}} {
		b, _ := m.Append(nil)
		f.Add(append(append([]byte(nil), b...), b...))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const window = 64
		st := newStream(&nullChannel{}, nil, nil, window, 1000, DefaultMaxData, DefaultWriteTimeout, nil)
		buf := make([]byte, 7)
		for len(in) > 0 {
			n, err := wire.Framer(in)
			if err != nil || n == 0 {
				return
			}
			m, err := wire.Parse(in[:n])
			in = in[n:]
			if err != nil {
				continue
			}
			if err := st.deliver(m); err != nil {
				st.abort(err, wire.CloseProtocol)
				return
			}
			st.mu.Lock()
			held, rbytes, credit := st.held, st.rbytes, st.credit
			st.mu.Unlock()
			if held > window || rbytes > held || credit > 1000 {
				t.Fatalf("held %d, buffered %d, credit %d: over the window", held, rbytes, credit)
			}
			if rbytes > 0 {
				st.Read(buf)
			}
		}
		st.Close()
	})
}
