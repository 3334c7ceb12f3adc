package script_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rdpdvc/rdpdvc/pnp/server/script"
)

// FuzzParse: any text parses or is refused with line errors, never a
// panic. (@FILE is left out: it would read whatever file the input names.)
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"wait-device hwid:MEM timeout=1s # c\nopen m any\nwrite m 0 text:a #b\nread m 0 3 expect data=text:\"a\" count=1 & as=r\nwait r\n",
		"! ioctl e 0x00222004 - 0 timeout=100ms  # cancelled\n",
		"open 1\nioctl h1 1 text:\"x\\\"y\" 4 expect hresult=ERROR_DISK_FULL &\ncancel j2\n",
		"subscribe all\nwait-event all expect data=-\nsleep 1ms\n! frobnicate\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if strings.Contains(src, "@") {
			return
		}
		s, err := script.Parse(strings.NewReader(src))
		if err != nil {
			var se *script.Error
			if !errors.As(err, &se) || (se.Line == 0 && !strings.Contains(err.Error(), "token too long")) {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if s.Lines() > strings.Count(src, "\n")+1 {
			t.Fatalf("%d commands from %d lines", s.Lines(), strings.Count(src, "\n")+1)
		}
	})
}
