//go:build unix

package bridge

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// A live listener whose accept queue is full answers a dial with EAGAIN,
// not "connection refused": its socket is not stale and must not be
// replaced (only ECONNREFUSED says nobody listens).
func TestListenKeepsABusyListenersSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "busy.sock")
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	// Fill the queue: connections nobody accepts, until one is refused
	// for want of room.
	var queued []net.Conn
	defer func() {
		for _, c := range queued {
			c.Close()
		}
	}()
	for range 16 {
		c, err := net.Dial("unix", path)
		if err != nil {
			break
		}
		queued = append(queued, c)
	}
	if _, err := Listen(Addr{"unix", path}); err == nil || !strings.Contains(err.Error(), "not replacing") {
		t.Errorf("Listen over a busy listener's socket: %v, want it refused", err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("the busy listener's socket is gone: %v", err)
	}
}

// A client opens at most MaxConns bridge connections at once; the
// server's instances beyond that are refused, and a slot freed by a
// closed instance is used again.
func TestClientMaxConns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "prog.sock")
	prog, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	go func() {
		for {
			c, err := prog.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c := NewClient(ClientConfig{Addr: Addr{"unix", path}, MaxConns: 2})
	var hs []*clientConn
	for i := range 2 {
		h, err := c.accept(&nopChannel{id: uint32(i)})
		if err != nil {
			t.Fatalf("instance %d: %v", i, err)
		}
		hs = append(hs, h.(*clientConn))
	}
	if _, err := c.accept(&nopChannel{id: 3}); err == nil || !strings.Contains(err.Error(), "MaxConns") {
		t.Fatalf("a third instance: %v, want refused", err)
	}
	for _, h := range hs {
		h.Closed(nil)
		h.sc.Close()
	}
	c.Wait() // the slots are freed as the connections' goroutines end
	h, err := c.accept(&nopChannel{id: 4})
	if err != nil {
		t.Fatalf("after the others closed: %v", err)
	}
	h.(*clientConn).Closed(nil)
	h.(*clientConn).sc.Close()
	c.Wait()
}

// nopChannel is a channel instance whose writes go nowhere.
type nopChannel struct{ id uint32 }

func (*nopChannel) Name() string                        { return "rdpdvc::test::bridge" }
func (c *nopChannel) ID() uint32                        { return c.id }
func (*nopChannel) Write(context.Context, []byte) error { return nil }
func (*nopChannel) Close() error                        { return nil }
