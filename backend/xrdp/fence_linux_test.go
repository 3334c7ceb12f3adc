//go:build linux

package xrdp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/rdpdvc/rdpdvc/dvc"
)

// burst writes n messages back to back to a fake chansrv that reads
// slowly, and returns the sizes its recv() calls returned.
func burst(t *testing.T, n int) (got, want []int) {
	t.Helper()
	sizes := make(chan int, 4*n)
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		buf := make([]byte, MaxWrite)
		for {
			k, err := c.Read(buf)
			if k > 0 {
				sizes <- k
			}
			if err != nil {
				close(sizes)
				return
			}
			time.Sleep(200 * time.Microsecond)
		}
	})
	c, err := f.opener(t, Options{}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	lens := []int{5140, 1, 1590, MaxWrite, 300}
	for i := 0; i < n; i++ {
		l := lens[i%len(lens)]
		want = append(want, l)
		if err := c.Write(context.Background(), bytes.Repeat([]byte{byte(i)}, l)); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	for k := range sizes {
		got = append(got, k)
	}
	return got, want
}

// The SCM_RIGHTS fence alone, without waiting for the send queue to
// drain, keeps every recv() to one message.
func TestFenceAloneKeepsMessages(t *testing.T) {
	drainEnabled = false
	defer func() { drainEnabled = true }()
	got, want := burst(t, 20)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("recv() sizes with the fence only\n got %v\nwant %v", got, want)
	}

	// The control: with neither mechanism the kernel glues the burst.
	fenceEnabled = false
	defer func() { fenceEnabled = true }()
	got, _ = burst(t, 20)
	t.Logf("without fence or drain wait, recv() sizes were %v", got)
}

// A split message cancelled after its first piece went out leaves the
// stream unusable: the channel is closed, not left to desynchronize.
func TestSplitWriteCancelledMidway(t *testing.T) {
	release := make(chan struct{})
	f := startFake(t, 7, func(_ string, c *net.UnixConn) {
		<-release // chansrv busy: the first piece stays queued
	})
	defer close(release)
	c, err := f.opener(t, Options{SplitLarge: true}).Open(context.Background(), "x")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c.Write(ctx, make([]byte, 3*MaxWrite))
	if !errors.Is(err, dvc.ErrConnectionLost) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write = %v, want a lost connection caused by the deadline", err)
	}
	if err := c.Write(context.Background(), []byte("x")); !errors.Is(err, dvc.ErrClosed) {
		t.Fatalf("Write after a broken one = %v, want ErrClosed", err)
	}
}
