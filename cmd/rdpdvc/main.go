// Command rdpdvc is the toolkit's command line: demos, probes and
// decoders for RDP dynamic virtual channels.
//
//	rdpdvc demo                      Simple ping/echo over the portable transport, in one process
//	rdpdvc decode -as drdynvc -from server 0501000200
//	rdpdvc echo -listen 127.0.0.1:3390   probe a client's ECHO channel (MS-RDPEECO);
//	                                     rdp-simple-plugin-client -connect 127.0.0.1:3390 answers
//
// `rdpdvc help` lists every subcommand; `rdpdvc <command> -h` its flags.
package main

import (
	"context"
	"fmt"
	"io"

	"github.com/rdpdvc/rdpdvc/internal/cli"
)

func main() { cli.Main(run) }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help", "/?", "/h", "/help":
		if len(args) > 1 && args[0] == "help" {
			// "rdpdvc help CMD" is "rdpdvc CMD -h".
			c, ok := commands[args[1]]
			if !ok {
				fmt.Fprintf(stderr, "rdpdvc: unknown command %q\n\n", args[1])
				usage(stderr)
				return 2
			}
			return c.run(ctx, []string{"-h"}, stdout, stderr)
		}
		usage(stdout)
		return 0
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rdpdvc: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: rdpdvc <command> [flags]\n\ncommands:")
	width := 0
	for _, n := range commandNames() {
		width = max(width, len(n))
	}
	for _, n := range commandNames() {
		fmt.Fprintf(w, "  %-*s  %s\n", width, n, commands[n].summary)
	}
	fmt.Fprintln(w, "\n`rdpdvc help <command>` or `rdpdvc <command> -h` shows a command's flags;\n`rdpdvc -version` the version. Exit status: 0 success, 1 failure, 2 bad usage.")
}
