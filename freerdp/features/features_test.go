package features

import (
	"fmt"
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
