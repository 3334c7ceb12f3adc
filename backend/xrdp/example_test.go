package xrdp_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/simple"
)

// A program inside an xrdp session opens the Simple channel and sends
// one ping; outside a session New says so.
func ExampleNew() {
	op, err := xrdp.New(xrdp.Options{Display: ":4242", SocketDir: "/nonexistent"})
	if errors.Is(err, xrdp.ErrNotInSession) {
		fmt.Println("not in an xrdp session")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := op.Open(ctx, simple.ChannelName, dvc.WithFramer(simple.FrameLen))
	var oe *dvc.OpenError
	if errors.As(err, &oe) {
		fmt.Println("the client has no listener:", oe.Status)
		return
	}
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	ping := simple.Frame{Seq: 1, Payload: simple.Pattern(simple.DefaultPayload)}.Append(nil)
	c.Write(ctx, ping)
	echo, err := c.Read(ctx)
	fmt.Println(len(echo), err)
	// Output: not in an xrdp session
}
