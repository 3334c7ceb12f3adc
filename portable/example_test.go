package portable_test

import (
	"context"
	"fmt"
	"log"
	"log/slog"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/portable"
)

// upper answers each message with itself in upper case. Writing inside
// Received is allowed; it is how a client answers.
type upper struct{ ch dvc.Channel }

func (u upper) Received(msg []byte) {
	out := make([]byte, len(msg))
	for i, c := range msg {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	u.ch.Write(context.Background(), out)
}

func (u upper) Closed(error) {}

// A server and a client on one machine: the client registers a listener
// and runs; the server accepts, runs, and opens a channel.
func Example() {
	ctx := context.Background()
	cfg := portable.Config{Logger: slog.New(slog.DiscardHandler)}

	ln, err := portable.Listen("127.0.0.1:0", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	// The RDP-client side: listeners first, then Run.
	client, err := portable.Dial(ctx, ln.Addr().String(), cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()
	client.Listen("UPPER", dvc.ListenerFunc(func(ch dvc.Channel) (dvc.Handler, error) {
		return upper{ch}, nil
	}))
	go client.Run(ctx)

	// The RDP-server side: Accept, Run, then Open while it runs.
	srv, err := ln.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	go srv.Run(ctx)

	conn, err := srv.Open(ctx, "UPPER")
	if err != nil {
		log.Fatal(err)
	}
	if err := conn.Write(ctx, []byte("hello")); err != nil {
		log.Fatal(err)
	}
	reply, err := conn.Read(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", reply)
	// Output: HELLO
}

// Accept with a deadline: when it passes, Accept returns ctx.Err() and
// the listener stays open for the next call.
func ExampleListener_Accept() {
	cfg := portable.Config{Logger: slog.New(slog.DiscardHandler)}
	ln, err := portable.Listen("127.0.0.1:0", cfg)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = ln.Accept(ctx)
	fmt.Println(err)
	// Output: context canceled
}
