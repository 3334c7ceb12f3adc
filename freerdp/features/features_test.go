package features

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/freerdp"
)

func TestConfigure(t *testing.T) {
	var calls []string
	features := []Feature{
		{Name: "simple", Usage: "Simple echo", Setup: NoValue(func(dvc.Registrar) error { calls = append(calls, "simple"); return nil })},
		{Name: "pnp", Usage: "file:<path>", Repeatable: true, Setup: func(_ dvc.Registrar, vs []string) error {
			calls = append(calls, "pnp="+strings.Join(vs, "|"))
			return nil
		}},
	}
	h := freerdp.NewHost()
	if err := Configure(h, features, []string{"pnp=file:/a=b", "simple", "pnp=file:/c"}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(calls) != "[pnp=file:/a=b|file:/c simple]" {
		t.Fatalf("setups %v", calls)
	}
	for _, bad := range [][]string{nil, {"nosuch"}, {"simple", "simple"}, {"=x"}, {"simple=1"}} {
		if err := Configure(freerdp.NewHost(), features, bad); err == nil {
			t.Errorf("Configure(%q) succeeded", bad)
		}
	}
	if err := Configure(freerdp.NewHost(), features, []string{"nosuch"}); !strings.Contains(err.Error(), "pnp (file:<path>); simple (Simple echo)") {
		t.Fatalf("unknown feature error does not list features: %v", err)
	}
}

// captureRegistrar keeps the listeners registered on it.
type captureRegistrar map[string]dvc.Listener

func (c captureRegistrar) Listen(name string, l dvc.Listener) error { c[name] = l; return nil }

type fakeChannel struct{ name string }

func (f fakeChannel) Name() string                      { return f.name }
func (fakeChannel) ID() uint32                          { return 7 }
func (fakeChannel) Write(context.Context, []byte) error { return nil }
func (fakeChannel) Close() error                        { return nil }

type nopHandler struct{}

func (nopHandler) Received([]byte) {}
func (nopHandler) Closed(error)    {}

// TestConfigureTrace: trace=FILE wraps the registrar of every feature,
// whatever the order, and the channels' messages land in FILE.
func TestConfigureTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "plugin.jsonl")
	features := []Feature{{Name: "simple", Setup: NoValue(func(r dvc.Registrar) error {
		return r.Listen("dvc::sample::simpleplugin", dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nopHandler{}, nil }))
	})}}
	reg := captureRegistrar{}
	if err := Configure(reg, features, []string{"trace=" + path, "simple"}); err != nil {
		t.Fatal(err)
	}
	h, err := reg["dvc::sample::simpleplugin"].Accept(fakeChannel{"dvc::sample::simpleplugin"})
	if err != nil {
		t.Fatal(err)
	}
	h.Received([]byte("ping"))
	h.Closed(nil)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"event":"open"`, `"from":"server","event":"data","channel":"dvc::sample::simpleplugin","id":7,"len":4,"data":"70696e67"`, `"event":"close"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("trace lacks %s:\n%s", want, b)
		}
	}
	for _, bad := range [][]string{{"trace=", "simple"}, {"trace=" + path, "trace=" + path, "simple"}, {"trace=" + path}} {
		if err := Configure(captureRegistrar{}, features, bad); err == nil {
			t.Errorf("Configure(%q) succeeded", bad)
		}
	}
}
