// Package cli holds what rdpdvc's programs share: the sample family's
// flag spellings, log setup, the default address, Ctrl+C handling, and
// the wiring every program would otherwise repeat (Main, ParseFlags,
// Finish). Nothing here knows about a channel beyond its name.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rdpdvc/rdpdvc/trace"
)

// DefaultAddr is where the portable transport listens and connects when
// no address is given: loopback, because the transport has no
// authentication or encryption.
const DefaultAddr = "127.0.0.1:3390"

// NormalizeArgs rewrites the Windows sample's "/flag" spelling ("/count 5",
// "/filehandle", "/count=5") into Go's "-flag" for the flags fs defines, so
// that users of the other Simple samples find what they know. "--flag" is
// Go's own. Arguments that are not a defined flag name (a path such as
// /tmp/x.bin) and everything after "--" are left alone. Names match
// case-insensitively, as Windows programs do ("/Register").
func NormalizeArgs(fs *flag.FlagSet, args []string) []string {
	out := make([]string, 0, len(args))
	for i, a := range args {
		if a == "--" {
			return append(out, args[i:]...)
		}
		if isHelp(a) {
			out = append(out, "-h")
			continue
		}
		if len(a) > 1 && a[0] == '/' {
			name, value, hasValue := strings.Cut(a[1:], "=")
			if f := lookupFold(fs, name); f != nil {
				a = "-" + f.Name
				if hasValue {
					a += "=" + value
				}
			}
		}
		out = append(out, a)
	}
	return out
}

// ExitStatus is what every program's -h says of its exit status.
const ExitStatus = "Exit status: 0 success (and Ctrl+C), 1 failure, 2 bad usage."

// isHelp reports whether a asks for help in a spelling Go's flag package
// does not know (it knows -h, -help and --help).
func isHelp(a string) bool {
	switch strings.ToLower(a) {
	case "/?", "/h", "/help", "-?":
		return true
	}
	return false
}

func lookupFold(fs *flag.FlagSet, name string) *flag.Flag {
	if f := fs.Lookup(name); f != nil {
		return f
	}
	var found *flag.Flag
	fs.VisitAll(func(f *flag.Flag) {
		if strings.EqualFold(f.Name, name) {
			found = f
		}
	})
	return found
}

// Parse normalizes args (NormalizeArgs) and parses them into fs. -h (and
// the Windows spellings /?, /h, /help, and -?) prints fs.Usage; a bad
// flag prints what flag says of it and one line pointing to -h, not the
// whole usage, which would bury the error.
func Parse(fs *flag.FlagSet, args []string) error {
	full := fs.Usage
	fs.Usage = func() {}
	defer func() { fs.Usage = full }()
	err := fs.Parse(NormalizeArgs(fs, args))
	switch {
	case errors.Is(err, flag.ErrHelp):
		if full != nil {
			full()
		} else {
			fmt.Fprintf(fs.Output(), "usage of %s:\n", fs.Name())
			fs.PrintDefaults()
			fmt.Fprintln(fs.Output(), "\n"+ExitStatus)
		}
	case err != nil:
		fmt.Fprintf(fs.Output(), "Run '%s -h' for the flags.\n", fs.Name())
	}
	return err
}

// LogFlags are the logging flags every program has.
type LogFlags struct {
	Format  string // text or json
	Verbose bool
	Quiet   bool
}

// Register defines -log-format, -v and -q on fs.
func (l *LogFlags) Register(fs *flag.FlagSet) {
	fs.StringVar(&l.Format, "log-format", "text", "log format: text or json")
	fs.BoolVar(&l.Verbose, "v", false, "verbose: log at debug level")
	fs.BoolVar(&l.Quiet, "q", false, "quiet: log warnings and errors only")
	// Main answers -version before the flags are parsed; it is defined
	// here so that -h lists it and the parse accepts it.
	fs.Bool("version", false, "print the version and exit")
}

// Logger builds the logger the flags ask for, writing to w. The text
// format is PlainHandler's one line per record, with the message
// unquoted so that "Ping#3 payload=5120 rttMs=0.42" appears as is.
func (l *LogFlags) Logger(w io.Writer) (*slog.Logger, error) {
	level := slog.LevelInfo
	switch {
	case l.Verbose:
		level = slog.LevelDebug
	case l.Quiet:
		level = slog.LevelWarn
	}
	switch l.Format {
	case "text", "":
		return slog.New(NewPlainHandler(w, level)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})), nil
	}
	return nil, fmt.Errorf("-log-format %q: want text or json", l.Format)
}

// SignalContext is ctx cancelled on Ctrl+C (SIGINT) or SIGTERM. Once it is
// cancelled the handler is removed, so a second Ctrl+C kills a program
// that is stuck shutting down.
func SignalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// IsLoopbackAddr reports whether the host of addr ("host:port") is a
// loopback address or "localhost". An empty host (":3390") listens on
// every address, so it is not loopback.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// WarnExposed prints a plain warning to w when addr is not loopback: the
// portable transport carries channel data in the clear and accepts anyone.
func WarnExposed(w io.Writer, addr string) {
	if !IsLoopbackAddr(addr) {
		fmt.Fprintf(w, "WARNING: %s is not a loopback address. The portable transport has no authentication or encryption: anyone who can reach it can open channels, and the data crosses the network in the clear.\n", addr)
	}
}

// TraceFlag is -trace FILE: record every channel event of the program in
// FILE (package trace, docs/trace.md).
type TraceFlag struct{ Path string }

// Register defines -trace on fs.
func (t *TraceFlag) Register(fs *flag.FlagSet) {
	fs.StringVar(&t.Path, "trace", "", "record every message of every channel, each way, in `FILE` (rdpdvc decode -trace FILE prints it)")
}

// Recorder opens the trace for a program on side; nil without -trace.
func (t *TraceFlag) Recorder(side trace.Side) (*trace.Recorder, error) {
	if t.Path == "" {
		return nil, nil
	}
	return trace.Create(t.Path, side)
}
