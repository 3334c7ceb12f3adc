package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rdpdvc/rdpdvc/internal/cli"
	"github.com/rdpdvc/rdpdvc/pnp/server"
	"github.com/rdpdvc/rdpdvc/pnp/server/script"
	"github.com/rdpdvc/rdpdvc/portable"
)

func init() {
	register(&command{
		name:    "pnp-server",
		summary: "MS-RDPEPNP server: list a client's redirected devices and drive I/O on them from a script",
		run:     runPNPServer,
	})
}

const pnpServerUsage = `usage: rdpdvc pnp-server [-listen ADDR] [-script FILE|-]

Waits for one portable-transport connection (rdpdvc pnp-client -connect),
prints each device the client redirects as it comes and goes, and, with
-script, runs the script's commands against the devices, one JSON line per
result on stdout. Without -script it prints events until Ctrl+C or until the
client hangs up. The exit status is 0 when every command did what it was
expected to, 1 otherwise, 2 for bad usage.

Script commands (see package pnp/server/script):
  wait-device [SEL] [timeout=DUR]     SEL: ID | any | hwid:ID | desc:TEXT
  wait-removed SEL [timeout=DUR]
  devices
  open [NAME] SEL [access=N] [share=N] [disposition=N|OPEN_EXISTING...] [flags=N]
  read NAME OFFSET COUNT [timeout=DUR]
  write NAME OFFSET DATA [timeout=DUR]   DATA: hex | text:... | @FILE | -
  ioctl NAME CODE DATA OUTMAX [timeout=DUR]
  close NAME
  subscribe GUID|all
  wait-event GUID [timeout=DUR]
  sleep DUR
  ! COMMAND                           COMMAND must fail

A timeout on read, write or ioctl cancels the call with a Specific IoCancel
Request when it expires.

flags:
`

func runPNPServer(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var (
		addr, scriptPath string
		lf               cli.LogFlags
	)
	fs := flag.NewFlagSet("rdpdvc pnp-server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, pnpServerUsage); fs.PrintDefaults() }
	fs.StringVar(&addr, "listen", cli.DefaultAddr, "`address` to listen on (portable transport)")
	fs.StringVar(&scriptPath, "script", "", "run the commands in `FILE` (- for stdin), then exit")
	lf.Register(fs)
	// stdout carries the JSON lines; logs go to stderr.
	log, code, ok := lf.ParseFlags(fs, args, stderr)
	if !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: unexpected arguments:", fs.Args())
		return 2
	}
	var in io.Reader
	switch scriptPath {
	case "":
	case "-":
		in = os.Stdin
	default:
		f, err := os.Open(scriptPath)
		if err != nil {
			fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
			return 2
		}
		defer f.Close()
		in = f
	}
	ln, err := portable.Listen(cli.ListenAddr(addr, stderr), portable.Config{Logger: log})
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
		return 1
	}
	defer ln.Close()
	r := script.New(stdout)
	r.Print(map[string]any{"event": "listening", "addr": ln.Addr().String()})
	conn, err := ln.Accept(ctx)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
		return 1
	}
	defer conn.Close()
	r.Print(map[string]any{"event": "connected"})
	srv, err := server.Start(ctx, conn, server.Config{Logger: log, OnDevice: r.DeviceEvent})
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server:", err)
		return 1
	}
	defer srv.Close()
	r.Attach(srv)
	defer r.Close()

	if in == nil {
		srv.SubscribeAll(func(e server.CustomEvent) {
			r.Print(map[string]any{"event": "custom-event", "guid": e.GUID, "device": e.DeviceID, "data": fmt.Sprintf("%x", e.Data)})
		})
		select {
		case <-ctx.Done():
		case <-srv.Done():
			r.Print(map[string]any{"event": "disconnected", "error": errString(srv.Err())})
		}
		return 0
	}
	failed, err := r.Run(ctx, in)
	if err != nil {
		fmt.Fprintln(stderr, "rdpdvc pnp-server: script:", err)
		return 1
	}
	if failed > 0 {
		fmt.Fprintf(stderr, "rdpdvc pnp-server: %d command(s) did not do what was expected\n", failed)
		return 1
	}
	return 0
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
