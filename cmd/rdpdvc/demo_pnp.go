package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdpdvc/rdpdvc/hresult"
	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/pnp/client"
	"github.com/rdpdvc/rdpdvc/pnp/device"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/portable"
)

// The PNP part of `rdpdvc demo`. demo.go has no hook for parts yet, so it
// also runs alone as `rdpdvc pnp-demo`; `rdpdvc demo` should call demoPNP
// after its Simple part.
func init() {
	register(&command{
		name:    "pnp-demo",
		summary: "MS-RDPEPNP: redirect a memory and an emulated device over the portable transport and drive them from the server, in one process",
		run:     runPNPDemo,
	})
}

func runPNPDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var lf cli.LogFlags
	fs := flag.NewFlagSet("rdpdvc pnp-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	lf.Register(fs)
	if err := cli.Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rdpdvc pnp-demo: no arguments wanted")
		return 2
	}
	log, err := lf.Logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-demo:", err)
		return 2
	}
	if err := demoPNP(ctx, log); err != nil {
		log.Error("PNP demo failed", "err", err)
		return 1
	}
	return 0
}

// demoPNP redirects a memory device and the emulated demo device from an
// in-process pnp/client to a pnp/server over the portable transport on a
// loopback TCP connection, and drives them from the server side: write and
// read back, an IOCTL, a slow IOCTL cancelled with a Specific IoCancel
// Request, a custom event, and a hot-plug removal. Any step that does not
// do what it should is an error.
func demoPNP(ctx context.Context, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	quiet := slog.New(slog.DiscardHandler)

	mem, err := device.NewMemory(1<<20, device.Description{Text: "demo memory disk", HardwareIDs: []string{`RDPDVC\MEM`}})
	if err != nil {
		return err
	}
	emu, err := device.NewDemo(device.Description{Text: "demo emulated device", HardwareIDs: []string{`RDPDVC\EMU`}}, 0)
	if err != nil {
		return err
	}
	cl, err := client.New(client.Config{Logger: quiet}, mem, emu)
	if err != nil {
		return err
	}
	defer cl.Close()

	ln, err := portable.Listen("127.0.0.1:0", portable.Config{Logger: quiet})
	if err != nil {
		return err
	}
	defer ln.Close()
	addr := ln.Addr().String()
	log.Info("PNP: portable transport listening; client redirecting 2 devices", "addr", addr)

	// The client side: what `rdpdvc pnp-client` does.
	clientCtx, stopClient := context.WithCancel(context.WithoutCancel(ctx))
	clientErr := make(chan error, 1)
	go func() {
		pc, err := portable.Dial(clientCtx, addr, portable.Config{Logger: quiet})
		if err != nil {
			clientErr <- err
			return
		}
		if err := cl.Register(pc); err != nil {
			pc.Close()
			clientErr <- err
			return
		}
		clientErr <- pc.Run(clientCtx)
	}()
	defer func() { stopClient(); <-clientErr }()

	// The server side: what `rdpdvc pnp-server` does.
	conn, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	go conn.Run(context.Background())
	srv, err := server.Start(ctx, conn, server.Config{Logger: quiet, OnDevice: func(e server.DeviceEvent) {
		log.Info("PNP: "+e.Kind.String(), "id", e.Device.ClientDeviceID, "description", e.Device.DeviceDescription, "hardwareId", e.Device.HardwareIDs)
	}})
	if err != nil {
		return err
	}
	defer srv.Close()
	byHWID := func(id string) func(server.Device) bool {
		return func(d server.Device) bool { return len(d.HardwareIDs) > 0 && d.HardwareIDs[0] == id }
	}
	memDev, err := srv.WaitDevice(ctx, byHWID(`RDPDVC\MEM`))
	if err != nil {
		return err
	}
	emuDev, err := srv.WaitDevice(ctx, byHWID(`RDPDVC\EMU`))
	if err != nil {
		return err
	}

	// Write and read back on the memory device.
	mh, err := srv.Open(ctx, memDev.ClientDeviceID)
	if err != nil {
		return fmt.Errorf("open memory device: %w", err)
	}
	defer mh.Close()
	data := bytes.Repeat([]byte("rdpdvc PNP demo "), 256) // 4 KiB
	const off = 4096 + 7
	n, err := mh.Write(ctx, off, data)
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	log.Info("PNP: wrote to the memory device", "offset", off, "bytes", n)
	back, err := mh.Read(ctx, off, len(data))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	if !bytes.Equal(back, data) {
		return fmt.Errorf("read back %d bytes that differ from what was written", len(back))
	}
	if snap := mem.Snapshot(off, len(data)); !bytes.Equal(snap, data) {
		return errors.New("the client's memory device does not hold what was written")
	}
	log.Info("PNP: read back the same bytes; the client's device holds them", "offset", off, "bytes", len(back))

	// IOCTLs on the emulated device.
	eh, err := srv.Open(ctx, emuDev.ClientDeviceID)
	if err != nil {
		return fmt.Errorf("open emulated device: %w", err)
	}
	defer eh.Close()
	out, err := eh.IoControl(ctx, device.IoctlDemoEcho, []byte("echo this, cut to 9"), 9)
	if err != nil || string(out) != "echo this" {
		return fmt.Errorf("echo IOCTL = %q, %v", out, err)
	}
	log.Info("PNP: IOCTL echo", "code", fmt.Sprintf("0x%08X", device.IoctlDemoEcho), "out", string(out))

	slowCtx, cancelSlow := context.WithTimeout(ctx, 100*time.Millisecond)
	start := time.Now()
	_, err = eh.IoControl(slowCtx, device.IoctlDemoSlow, nil, 0) // no input: waits until cancelled
	cancelSlow()
	var he *hresult.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &he) || he.Code != device.ErrorOperationAborted {
		return fmt.Errorf("slow IOCTL after its deadline: %v; want the client to answer ERROR_OPERATION_ABORTED", err)
	}
	log.Info("PNP: slow IOCTL cancelled with a Specific IoCancel Request; the client answered", "result", he.Code, "afterMs", time.Since(start).Milliseconds())

	// A custom event, raised by the device through an IOCTL.
	events := make(chan server.CustomEvent, 1)
	unsub := srv.Subscribe(device.DemoEventGUID, func(e server.CustomEvent) {
		select {
		case events <- server.CustomEvent{DeviceID: e.DeviceID, GUID: e.GUID, Data: bytes.Clone(e.Data)}:
		default:
		}
	})
	defer unsub()
	out, err = eh.IoControl(ctx, device.IoctlDemoRaise, []byte("hello from the device"), 4)
	if err != nil || len(out) != 4 || binary.LittleEndian.Uint32(out) != 1 {
		return fmt.Errorf("raise IOCTL = %x, %v; want one handle told", out, err)
	}
	select {
	case e := <-events:
		log.Info("PNP: custom event", "guid", e.GUID, "device", e.DeviceID, "data", string(e.Data))
	case <-ctx.Done():
		return errors.New("no custom event arrived")
	}

	// Hot-plug removal: the client stops redirecting the memory device.
	if err := cl.RemoveDevice(ctx, memDev.ClientDeviceID); err != nil {
		return fmt.Errorf("remove device: %w", err)
	}
	if err := srv.WaitRemoved(ctx, memDev.ClientDeviceID); err != nil {
		return err
	}
	if _, err := mh.Read(ctx, 0, 1); !errors.Is(err, server.ErrDeviceRemoved) {
		return fmt.Errorf("read on the removed device's handle: %v, want ErrDeviceRemoved", err)
	}
	log.Info("PNP: the removed device's handle fails as it should", "devicesLeft", len(srv.Devices()))
	log.Info("PNP: demo complete")
	return nil
}
