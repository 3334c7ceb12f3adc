package server_test

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/rdpdvc/rdpdvc/loopback"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/server"
)

// A server application opens a device the client redirects, writes at an
// offset and reads it back. The client role and a memory device run in
// the same process here, over the loopback backend; with the portable
// transport, xrdp or the WTS API only the Opener changes.
func Example() {
	hub := loopback.New() // both ends of an imaginary RDP connection
	defer hub.Close()
	quiet := slog.New(slog.DiscardHandler)

	// The RDP client's side: redirect a 64 KiB memory device.
	mem, _ := device.NewMemory(64<<10, device.Description{Text: "RAM disk", HardwareIDs: []string{`RDPDVC\MEM`}})
	cl, _ := client.New(client.Config{Logger: quiet}, mem)
	defer cl.Close()
	cl.Register(hub)

	// The server's side.
	ctx := context.Background()
	srv, err := server.Start(ctx, hub, server.Config{Logger: quiet})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	d, _ := srv.WaitDevice(ctx, nil)
	fmt.Printf("device %d: %s %v\n", d.ClientDeviceID, d.DeviceDescription, d.HardwareIDs)

	h, err := srv.Open(ctx, d.ClientDeviceID)
	if err != nil {
		panic(err)
	}
	defer h.Close()
	n, _ := h.Write(ctx, 4096, []byte("hello, device"))
	b, _ := h.Read(ctx, 4096, n)
	fmt.Printf("read back %q\n", b)
	// Output:
	// device 1: RAM disk [RDPDVC\MEM]
	// read back "hello, device"
}
