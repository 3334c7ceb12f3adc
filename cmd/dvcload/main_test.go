package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Both modes run to completion on several channels and print both lines
// and the ratio. Nothing is asserted about the figures themselves.
func TestRun(t *testing.T) {
	for _, args := range [][]string{
		{"-n", "5", "-size", "100000", "-channels", "3"},
		{"-mode", "echo", "-n", "5", "-size", "5140", "-channels", "2"},
		{"-mode", "echo", "-n", "3", "-size", "0", "-raw=false"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), args, &out, &errb); code != 0 {
				t.Fatalf("exit %d: %s", code, errb.String())
			}
			want := []string{"portable", "raw TCP", "portable/raw"}
			if strings.Contains(strings.Join(args, " "), "-raw=false") {
				want = want[:1]
			}
			for _, w := range want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-mode", "x"}, {"-n", "0"}, {"extra"}} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), args, &out, &errb); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
}
