package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		args   []string
		code   int
		ok     bool
		stderr string
	}{
		{[]string{"/count", "3"}, 0, true, ""},
		{[]string{"-h"}, 0, false, "Usage"},
		{[]string{"-nope"}, 2, false, "-nope"},
		{[]string{"-log-format", "xml"}, 2, false, `prog: -log-format "xml": want text or json`},
	} {
		var errs, out bytes.Buffer
		fs := flag.NewFlagSet("prog", flag.ContinueOnError)
		fs.SetOutput(&errs)
		count := fs.Int("count", 0, "")
		var lf LogFlags
		lf.Register(fs)
		log, code, ok := lf.ParseFlags(fs, c.args, &out)
		if code != c.code || ok != c.ok || (ok != (log != nil)) || !strings.Contains(errs.String(), c.stderr) {
			t.Errorf("%q: code %d ok %v log %v stderr %q", c.args, code, ok, log != nil, errs.String())
		}
		if ok {
			log.Info("hello")
			if *count != 3 || !strings.Contains(out.String(), "INFO hello") {
				t.Errorf("%q: count %d, log %q", c.args, *count, out.String())
			}
		}
	}
}

// figures stands in for simple.Stats.
type figures struct{ ok bool }

func (f figures) Summary(name string) string { return "--- " + name + " ping statistics ---\n" }
func (f figures) OK() bool                   { return f.ok }
func (f figures) LogValue() slog.Value       { return slog.GroupValue(slog.Bool("ok", f.ok)) }

func TestFinish(t *testing.T) {
	for _, c := range []struct {
		format string
		f      figures
		err    error
		code   int
		want   []string
	}{
		{"text", figures{ok: true}, nil, 0, []string{"--- ECHO ping statistics ---\n"}},
		{"text", figures{ok: true}, context.Canceled, 0, []string{"--- ECHO ping statistics ---\n"}},
		{"text", figures{ok: false}, nil, 1, []string{"--- ECHO ping statistics ---\n"}},
		{"text", figures{ok: true}, errors.New("boom"), 1, []string{"ERROR probe ended err=boom"}},
		{"json", figures{ok: true}, nil, 0, []string{`"msg":"summary","channel":"ECHO","stats":{"ok":true}`}},
	} {
		var out bytes.Buffer
		lf := LogFlags{Format: c.format}
		log, err := lf.Logger(&out)
		if err != nil {
			t.Fatal(err)
		}
		code := lf.Finish(&out, log, "ECHO", c.f, c.err, "probe ended")
		if code != c.code {
			t.Errorf("%+v: exit %d", c, code)
		}
		for _, w := range c.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%+v: output lacks %q:\n%s", c, w, out.String())
			}
		}
		if c.format == "json" && strings.Contains(out.String(), "ping statistics") {
			t.Errorf("json output has the text summary:\n%s", out.String())
		}
	}
}

func TestListenAddr(t *testing.T) {
	var errs bytes.Buffer
	if a := ListenAddr("", &errs); a != DefaultAddr || errs.Len() != 0 {
		t.Fatalf("%q, warned %q", a, errs.String())
	}
	// portable.Listen warns of a non-loopback address; ListenAddr must not
	// say it a second time.
	if a := ListenAddr("0.0.0.0:1", &errs); a != "0.0.0.0:1" || errs.Len() != 0 {
		t.Fatalf("%q, warned %q", a, errs.String())
	}
}

func TestDialAddr(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:3409": "127.0.0.1:3409", "[::]:3409": "[::1]:3409",
		"127.0.0.1:3390": "127.0.0.1:3390", "192.0.2.7:1": "192.0.2.7:1",
	} {
		a, err := net.ResolveTCPAddr("tcp", in)
		if err != nil {
			t.Fatal(err)
		}
		if got := DialAddr(a); got != want {
			t.Errorf("DialAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestCheckPingsNamesTheFlag(t *testing.T) {
	for _, c := range []struct {
		count    int
		interval time.Duration
		payload  int
		want     string
	}{
		{-1, time.Second, 5, "-count -1"},
		{1, 0, 5, "-interval 0s"},
		{1, time.Second, -5, "-payload -5: want 0 to 100 bytes"},
		{1, time.Second, 101, "-payload 101"},
	} {
		err := CheckPings(c.count, c.interval, c.payload, 100)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Count(err.Error(), "-") > strings.Count(c.want, "-")+1 {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if err := CheckPings(0, time.Millisecond, 0, 100); err != nil {
		t.Error(err)
	}
}
