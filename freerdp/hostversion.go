package freerdp

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// HostVersion is one FreeRDP core library (libfreerdp<major>) seen in the
// process that loaded the plugin.
type HostVersion struct {
	Major    int
	Minor    int // -1 when only the major is known (from the file name)
	Revision int // -1 likewise
	Path     string
	// Global: found by the process's global symbol lookup (dlsym on
	// RTLD_DEFAULT), that is, a library the executable itself links, so
	// the FreeRDP that runs the client. Otherwise it was only seen mapped
	// (dl_iterate_phdr), which includes libraries other plugins pulled in.
	Global bool
}

// String is "3.15.0", or "3" when only the major is known.
func (v HostVersion) String() string {
	if v.Minor < 0 || v.Revision < 0 {
		return strconv.Itoa(v.Major)
	}
	return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Revision)
}

// BuildTag is the Go build tag that builds the plugin for a FreeRDP
// major: "freerdp" for 2 (the tag predates FreeRDP 3 support), "freerdp3"
// for 3, "" for one the plugin does not support.
func BuildTag(major int) string {
	switch major {
	case 2:
		return "freerdp"
	case 3:
		return "freerdp3"
	}
	return ""
}

// MajorFromLibName returns N for a FreeRDP core library's file name,
// libfreerdpN.so or libfreerdpN.so.M (any folder), and ok=false for
// anything else, including FreeRDP's other libraries
// (libfreerdp-client3.so.3, libfreerdp-server-proxy3.so.3).
func MajorFromLibName(path string) (major int, ok bool) {
	rest, found := strings.CutPrefix(filepath.Base(path), "libfreerdp")
	if !found {
		return 0, false
	}
	digits, tail, found := strings.Cut(rest, ".so")
	if !found || (tail != "" && tail[0] != '.') || digits == "" {
		return 0, false
	}
	n, err := strconv.Atoi(digits)
	if err != nil || n <= 0 || strconv.Itoa(n) != digits {
		return 0, false
	}
	return n, true
}

// CheckHost decides whether a plugin compiled against the headers of
// FreeRDP major built may run in a process where found were seen. The
// DVC plugin interfaces differ between majors (FreeRDP 3 added members to
// several of them, FreeRDP 3's freerdp/dvc.h), so a plugin must refuse a
// host of another major before it reads or hands over any structure.
//
// The global library decides when there is one: it is the one the
// executable links, and so the drdynvc that calls the plugin. Without
// one, the mapped libraries decide, and refuse only when none has the
// built major. host is the library that decided; ok=false (and a nil
// error) means nothing was found, so the caller can only warn and go on.
func CheckHost(built int, found []HostVersion) (host HostVersion, ok bool, err error) {
	for _, v := range found {
		if v.Global {
			return v, true, mismatch(built, v)
		}
	}
	if len(found) == 0 {
		return HostVersion{}, false, nil
	}
	for _, v := range found {
		if v.Major == built {
			return v, true, nil
		}
	}
	return found[0], true, mismatch(built, found[0])
}

func mismatch(built int, host HostVersion) error {
	if host.Major == built {
		return nil
	}
	where := ""
	if host.Path != "" {
		where = " (" + host.Path + ")"
	}
	msg := fmt.Sprintf("this librdpdvc-client.so was built for FreeRDP %d but is loaded by FreeRDP %s%s", built, host, where)
	if tag := BuildTag(host.Major); tag != "" {
		return fmt.Errorf("%s; rebuild with -tags %s", msg, tag)
	}
	return fmt.Errorf("%s, which rdpdvc does not support (FreeRDP 2 and 3 only)", msg)
}
