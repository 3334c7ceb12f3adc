package tunnel

import (
	"bytes"
	"io"
	"testing"
)

func TestEchoHalfClose(t *testing.T) {
	for name, mk := range map[string]func(testing.TB, *Server, *Client) *pair{"portable": newPortable, "loopback": newLoopback} {
		t.Run(name, func(t *testing.T) {
			p := mk(t, &Server{}, &Client{})
			host, port := echoServer(t)
			c, err := p.srv.Dial(ctxT(t), host, port)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := bytes.Repeat([]byte("0123456789abcdef"), 100000) // 1.6 MB: several windows
			go func() {
				c.Write(want)
				c.(*Stream).CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(want))
			}
		})
	}
}
