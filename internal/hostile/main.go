// Command hostile runs the scenarios of issue 10 ("hostile and stuck
// peers") against the real programs built from cmd/, over 127.0.0.1: stuck
// and silent first clients of rdp-simple-plugin-server -listen and rdpdvc
// pnp-server -listen, a PNP server that stops reading while it asks
// rdpdvc pnp-client for 40 reads of 16 MiB, a DVC server flooding
// rdp-simple-plugin-client with refused DYNVC_CREATE_REQ, and a PNP server
// that swaps a file device's file or folder for another before opening it.
//
//	go build -o /tmp/bin ./cmd/... && go run ./internal/hostile -bin /tmp/bin [-short]
//
// (scripts/hostile.sh does both.) It prints, per scenario, each program's
// peak resident size (VmHWM in /proc/PID/status), its goroutines (counted
// from the stack dump SIGQUIT makes the Go runtime print as the program is
// ended) and whether the legitimate peer was served, and exits 1 when a
// figure misses its target (docs/security.md).
//
// It lives under internal/, as internal/rttbench does, because it is a
// test harness, not a program to install: `go install ./cmd/...` stays the
// user's programs.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"
)

// figure is one measured value and whether it meets its target.
type figure struct {
	what   string
	value  string
	target string // empty: reported only
	ok     bool
}

type scenario struct {
	name string
	run  func(ctx context.Context, e *env) ([]figure, error)
}

// env is what every scenario gets.
type env struct {
	bin   string
	short bool
	log   *slog.Logger // the harness's own peers: quiet
}

var scenarios = []scenario{
	{"simple-server: stuck and silent first clients", simpleServer},
	{"simple-server: held connections past -max-clients", heldConnections},
	{"pnp-server: stuck and silent first clients", pnpServer},
	{"pnp-client: server stops reading, 40 x 16 MiB reads", pnpClientMemory},
	{"dvc client: flood of refused DYNVC_CREATE_REQ", refusalFlood},
	{"pnp-client file devices: swapped file and folder", fileDevice},
}

func main() {
	bin := flag.String("bin", "", "`directory` holding rdp-simple-plugin-server, rdp-simple-plugin-client and rdpdvc built from cmd/")
	short := flag.Bool("short", false, "smaller floods and shorter waits, for CI (under a minute)")
	only := flag.String("run", "", "run only the scenarios whose name contains `TEXT`")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "hostile: -bin is required")
		os.Exit(2)
	}
	e := &env{bin: *bin, short: *short, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	failed := 0
	start := time.Now()
	for _, s := range scenarios {
		if *only != "" && !strings.Contains(s.name, *only) {
			continue
		}
		t := time.Now()
		// Every scenario is bounded: its own waits are, and this is the
		// backstop.
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		figs, err := s.run(ctx, e)
		cancel()
		fmt.Printf("== %s (%.1f s)\n", s.name, time.Since(t).Seconds())
		if err != nil {
			fmt.Printf("   ERROR %v\n", err)
			failed++
		}
		for _, f := range figs {
			mark := "    "
			switch {
			case f.target != "" && f.ok:
				mark = "ok  "
			case f.target != "":
				mark = "FAIL"
				failed++
			}
			line := fmt.Sprintf("   %s %-58s %s", mark, f.what, f.value)
			if f.target != "" {
				line += "   (target " + f.target + ")"
			}
			fmt.Println(line)
		}
	}
	fmt.Printf("hostile: %d figure(s) missed, %.1f s\n", failed, time.Since(start).Seconds())
	if failed > 0 {
		os.Exit(1)
	}
}

func info(what, value string) figure { return figure{what: what, value: value} }

func mib(v float64) string { return fmt.Sprintf("%.1f MiB", v) }

func secs(d time.Duration) string { return fmt.Sprintf("%.2f s", d.Seconds()) }

// goroutines is p's goroutine count for the report ("exited" when it had
// already ended: the goroutines of an exited program are none).
func goroutines(p *proc) string {
	if n := p.goroutines(); n >= 0 {
		return fmt.Sprint(n)
	}
	return "exited"
}
