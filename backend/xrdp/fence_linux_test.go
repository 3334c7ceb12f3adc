//go:build linux

package xrdp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"
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
