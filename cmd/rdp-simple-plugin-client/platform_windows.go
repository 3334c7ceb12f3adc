package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/rdpdvc/rdpdvc/backend/com"
	"github.com/rdpdvc/rdpdvc/echo"
	"github.com/rdpdvc/rdpdvc/simple"
)

// AddInName is the plugin's key under ...\Terminal Server Client\Default\AddIns,
// as the sample's.
const AddInName = "SimpleRdpPlugin"

// On Windows this exe is also the sample's COM LocalServer plugin:
//
//	rdp-simple-plugin-client /register [/machine]   write the registration (HKCU; HKLM with /machine)
//	rdp-simple-plugin-client /register /dll PATH [/machine]
//	                                                register rdpdvc-plugin.dll at PATH instead (the DllPath form)
//	rdp-simple-plugin-client /unregister            remove either form from both hives
//	rdp-simple-plugin-client -Embedding             what COM runs when mstsc creates the plugin
//
// Switches are case-insensitive and may start with /, - or --.
func init() { platformMain = windowsMain }

// comServe is com.Serve; tests replace it.
var comServe = com.Serve

func windowsMain(ctx context.Context, args []string, stdout, stderr io.Writer) (bool, int) {
	var register, unregister, machine, embedding bool
	var dll string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch strings.ToLower(strings.TrimLeft(a, "/-")) {
		case "dll":
			if i+1 == len(args) || dll != "" {
				fmt.Fprintln(stderr, "rdp-simple-plugin-client: /dll takes one PATH (of rdpdvc-plugin.dll)")
				return true, 2
			}
			i++
			dll = args[i]
		case "register", "regserver":
			register = true
		case "unregister", "unregserver":
			unregister = true
		case "machine":
			machine = true
		case "embedding":
			embedding = true
		default:
			if register || unregister || machine || embedding || dll != "" {
				fmt.Fprintf(stderr, "rdp-simple-plugin-client: unexpected argument %q\n", a)
				return true, 2
			}
		}
	}
	switch {
	case register && unregister, embedding && (register || unregister || machine):
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: use one of /register [/machine], /unregister, -Embedding")
		return true, 2
	case dll != "" && !register:
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: /dll PATH goes with /register")
		return true, 2
	case register && dll != "":
		return true, doRegisterDLL(dll, machine, stdout, stderr)
	case machine && !register:
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: /machine goes with /register (/unregister removes both registrations)")
		return true, 2
	case register:
		return true, doRegister(machine, stdout, stderr)
	case unregister:
		return true, doUnregister(stdout, stderr)
	case embedding:
		return true, serveCOM(ctx, stderr)
	}
	return false, 0
}

func registration() (com.Registration, error) {
	exe, err := os.Executable()
	if err != nil {
		return com.Registration{}, err
	}
	if p, err := filepath.EvalSymlinks(exe); err == nil {
		exe = p
	}
	return com.Registration{CLSID: simple.CLSID, Name: AddInName, Exe: exe}, nil
}

func doRegister(machine bool, stdout, stderr io.Writer) int {
	r, err := registration()
	if err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: cannot find my own path:", err)
		return 1
	}
	scope, hive := com.PerUser, "HKCU"
	if machine {
		scope, hive = com.Machine, "HKLM"
	}
	if err := com.Register(r, scope); err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: /register:", err)
		return 1
	}
	fmt.Fprintf(stdout, "registered %s:\n  %s\\%s = %s\n  %s\\%s\\Name = %s\nStart mstsc (a new connection) to load the plugin.\n",
		map[bool]string{false: "for this user", true: "for all users"}[machine],
		hive, r.LocalServerKey(), com.LocalServerCommand(r.Exe), hive, r.AddInKey(), r.CLSID)
	return 0
}

// doRegisterDLL writes the DllPath form for the DLL at path, which must
// exist: mstsc would otherwise fail to load it without a word.
func doRegisterDLL(path string, machine bool, stdout, stderr io.Writer) int {
	abs, err := filepath.Abs(path)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: /register /dll:", err)
		return 1
	}
	r := com.DLLRegistration{Name: AddInName, DLL: abs}
	scope, hive := com.PerUser, "HKCU"
	if machine {
		scope, hive = com.Machine, "HKLM"
	}
	if err := com.RegisterDLL(r, scope); err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: /register /dll:", err)
		return 1
	}
	fmt.Fprintf(stdout, "registered %s %s:\n  %s\\%s\\Name = %s\nStart mstsc (a new connection) to load the plugin.\n",
		map[bool]string{false: "for this user", true: "for all users"}[machine], filepath.Base(abs), hive, r.AddInKey(), abs)
	return 0
}

func doUnregister(stdout, stderr io.Writer) int {
	r, err := registration()
	if err != nil {
		r = com.Registration{CLSID: simple.CLSID, Name: AddInName}
	}
	if err := com.Unregister(r); err != nil {
		fmt.Fprintln(stderr, "rdp-simple-plugin-client: /unregister:", err)
		if errors.Is(err, com.ErrNeedAdmin) {
			fmt.Fprintln(stderr, "(the per-user registration, if any, was removed)")
		}
		return 1
	}
	fmt.Fprintf(stdout, "unregistered %s (%s) from HKCU and HKLM\n", AddInName, r.CLSID)
	return 0
}

// serveCOM is the COM-activated run: serve the plugin until mstsc is done
// with it. Logs go to stderr (the console COM gives a console exe) and to
// %TEMP%\rdp-simple-plugin-client.log, since nobody may be watching.
func serveCOM(ctx context.Context, stderr io.Writer) int {
	w := stderr
	if f, err := os.OpenFile(filepath.Join(os.TempDir(), "rdp-simple-plugin-client.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err == nil {
		defer f.Close()
		w = bestEffort{f, stderr}
	}
	log := slog.New(slog.NewTextHandler(w, nil)).With("pid", os.Getpid())
	p := &com.Plugin{Logger: log}
	echoer := &simple.Echoer{Logger: log}
	if err := p.Listen(simple.ChannelName, echoer); err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	responder := &echo.Responder{Logger: log}
	if err := p.Listen(echo.ChannelName, responder); err != nil {
		log.Error("listen", "err", err)
		return 1
	}
	log.Info("started by COM; serving the plugin", "clsid", simple.CLSID)
	err := comServe(ctx, simple.CLSID, p)
	report(log, simple.ChannelName, echoer, responder)
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error("plugin server stopped", "err", err)
		return 1
	}
	log.Info("plugin released; exiting")
	return 0
}

// bestEffort writes to w and then, ignoring failures, to also. A process
// COM starts may have no usable stderr (Wine starts it without a
// console), and io.MultiWriter would stop at that first failure.
type bestEffort struct {
	w    io.Writer
	also io.Writer
}

func (b bestEffort) Write(p []byte) (int, error) {
	n, err := b.w.Write(p)
	_, _ = b.also.Write(p)
	return n, err
}
