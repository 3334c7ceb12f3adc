package kit

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/drdynvc"
	"github.com/rdpdvc/rdpdvc/dvc"
)

var nop = dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, errors.New("no") })

func TestRegistryNameRule(t *testing.T) {
	var r Registry
	r.Prefix = "test"
	for _, bad := range []string{"", "a\x00b", strings.Repeat("n", drdynvc.MaxChannelNameLen+1)} {
		err := r.Listen(bad, nop)
		var pe *drdynvc.ParseError
		if !errors.As(err, &pe) || pe.Field != "ChannelName" || !strings.HasPrefix(err.Error(), "test: listen ") {
			t.Errorf("Listen(%q) = %v, want the DYNVC_CREATE_REQ ChannelName rule", bad, err)
		}
	}
	if err := r.Listen(strings.Repeat("n", drdynvc.MaxChannelNameLen), nop); err != nil {
		t.Errorf("a 256-byte name: %v", err)
	}
	if err := r.Listen("x", nil); err == nil {
		t.Error("a nil listener was registered")
	}
	r.Check = func(name string) error {
		if name == "nope" {
			return errors.New("platform says no")
		}
		return nil
	}
	if err := r.Listen("nope", nop); err == nil || !strings.Contains(err.Error(), "platform says no") {
		t.Errorf("Check not applied: %v", err)
	}
}

func TestRegistryDuplicatesOrderWatchClose(t *testing.T) {
	var r Registry
	if err := r.Listen("a", nop); err != nil {
		t.Fatal(err)
	}
	if err := r.Listen("a", nop); err == nil {
		t.Fatal("second Listen(a) succeeded")
	}
	r.Listen("b", nop)
	var created []string
	if err := r.Watch(func(n string) error { created = append(created, n); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := r.Watch(func(string) error { return nil }); err == nil {
		t.Fatal("a second watcher was set")
	}
	r.Listen("c", nop)
	if fmt.Sprint(created, r.Names()) != "[a b c] [a b c]" {
		t.Fatalf("watched %v, names %v", created, r.Names())
	}
	if r.Lookup("b") == nil || r.Lookup("z") != nil {
		t.Fatal("Lookup")
	}
	r.Close()
	if r.Lookup("a") != nil || r.Listen("d", nop) == nil {
		t.Fatal("closed registry still serves")
	}

	var f Registry
	f.Listen("x", nop)
	if err := f.Watch(func(string) error { return errors.New("boom") }); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Watch = %v", err)
	}
	var g Registry
	g.Watch(func(n string) error { return errors.New("refused " + n) })
	if err := g.Listen("y", nop); err == nil || g.Lookup("y") != nil {
		t.Fatalf("a name the watcher refused was registered: %v", err)
	}
}

func TestAcceptNilHandler(t *testing.T) {
	l := dvc.ListenerFunc(func(dvc.Channel) (dvc.Handler, error) { return nil, nil })
	if h, err := Accept(l, &stubChan{name: "x"}); h != nil || err == nil {
		t.Fatalf("Accept = %v, %v", h, err)
	}
}
