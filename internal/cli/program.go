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
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
)

// A RunFunc is a program (or subcommand) minus its process: it gets the
// arguments after its name and returns the exit status, 0 for success,
// 1 for failure, 2 for bad usage. Tests call it directly.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) int

// Main runs run with the process's arguments and a context that Ctrl+C
// cancels (SignalContext), then exits with its status.
//
// -version (also --version, /version) anywhere before "--" prints the
// program's version (Version) on stdout and exits 0, in every program.
func Main(run RunFunc) {
	if WantsVersion(os.Args[1:]) {
		fmt.Println(Version(filepath.Base(os.Args[0])))
		os.Exit(0)
	}
	ctx, stop := SignalContext(context.Background())
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// WantsVersion reports whether args ask for the version.
func WantsVersion(args []string) bool {
	for _, a := range args {
		switch strings.ToLower(a) {
		case "--":
			return false
		case "-version", "--version", "/version":
			return true
		}
	}
	return false
}

// Version is the one line -version prints: the program's name, the
// module's version and the VCS revision it was built from, as the Go
// toolchain recorded them in the binary (debug.ReadBuildInfo).
func Version(name string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return name + " (no build information)"
	}
	var rev, at, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = " (modified)"
			}
		}
	}
	v := name + " " + bi.Main.Version
	if rev != "" {
		v += " revision " + rev + dirty
		if at != "" {
			v += " of " + at
		}
	}
	return v + ", " + bi.GoVersion
}

// ParseArgs parses args into fs (Parse), whose error handling must be
// flag.ContinueOnError. When the program must stop there, ok is false and
// code is its status: 0 after -h, 2 for a bad flag (fs has said why).
func ParseArgs(fs *flag.FlagSet, args []string) (code int, ok bool) {
	if err := Parse(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	return 0, true
}

// ParseFlags is ParseArgs for a program with LogFlags l registered on fs;
// it also builds the logger the flags ask for, writing to logw. A bad
// -log-format stops the program with status 2, said on fs's output after
// fs's name.
func (l *LogFlags) ParseFlags(fs *flag.FlagSet, args []string, logw io.Writer) (log *slog.Logger, code int, ok bool) {
	if code, ok := ParseArgs(fs, args); !ok {
		return nil, code, false
	}
	log, err := l.Logger(logw)
	if err != nil {
		fmt.Fprintf(fs.Output(), "%s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	return log, 0, true
}

// Figures are what a probe reports when it ends (simple.Stats).
type Figures interface {
	// Summary is the report for people, headed by name.
	Summary(name string) string
	// OK reports whether everything came back intact.
	OK() bool
}

// Finish reports how a probe of the channel name ended and returns the
// program's exit status. The figures go to stdout as their Summary, or
// with -log-format json as one JSON "summary" record on stdout (Figures
// that are also a slog.LogValuer are written as such); logs go to log. An err other than a Ctrl+C is logged at
// Error with msg. The status is 1 after such an error or when s is not
// OK, else 0.
func (l *LogFlags) Finish(stdout io.Writer, log *slog.Logger, name string, s Figures, err error, msg string) int {
	if l.Format == "json" {
		// A result, so on stdout like the text summary: one JSON record.
		slog.New(slog.NewJSONHandler(stdout, nil)).Info("summary", "channel", name, "stats", s)
	} else {
		fmt.Fprint(stdout, s.Summary(name))
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error(msg, "err", err)
		return 1
	}
	if !s.OK() {
		return 1
	}
	return 0
}

// ListenAddr is where a portable-transport server listens given its
// -listen flag: DefaultAddr when the flag is empty. portable.Listen warns
// when that is not loopback (once: stderr is not told again here).
func ListenAddr(flagValue string, _ io.Writer) string {
	if flagValue == "" {
		return DefaultAddr
	}
	return flagValue
}

// DialAddr is the address a client on this machine gives -connect to
// reach a listener on a: the loopback address of a's family where a is
// the unspecified address (0.0.0.0 or ::), which cannot be dialled.
func DialAddr(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok || !t.IP.IsUnspecified() {
		return a.String()
	}
	ip := net.IPv6loopback
	if t.IP.To4() != nil {
		ip = net.IPv4(127, 0, 0, 1)
	}
	return net.JoinHostPort(ip.String(), strconv.Itoa(t.Port))
}

// CheckPings checks the flags of a program that pings (-count, -interval,
// -payload) and names the first one that is out of range, with the value
// given, so that a user sees which flag to mend.
func CheckPings(count int, interval time.Duration, payload, maxPayload int) error {
	switch {
	case count < 0:
		return fmt.Errorf("-count %d: want 0 (until Ctrl+C) or more", count)
	case interval <= 0:
		return fmt.Errorf("-interval %v: want more than 0", interval)
	case payload < 0 || payload > maxPayload:
		return fmt.Errorf("-payload %d: want 0 to %d bytes", payload, maxPayload)
	}
	return nil
}
