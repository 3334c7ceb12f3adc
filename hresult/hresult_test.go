package hresult

import "testing"

func TestFromWin32(t *testing.T) {
	for _, tc := range []struct {
		code uint32
		want HRESULT
	}{
		{0, S_OK},
		{ERROR_ACCESS_DENIED, E_ACCESSDENIED},
		{ERROR_INVALID_PARAMETER, E_INVALIDARG},
		{ERROR_INSUFFICIENT_BUFFER, 0x8007007A},
		{ERROR_NOT_ENOUGH_MEMORY, 0x80070008},
		{0x80004005, E_FAIL}, // already an HRESULT: unchanged (MS-ERREF 2.1.2)
	} {
		if got := FromWin32(tc.code); got != tc.want {
			t.Errorf("FromWin32(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestStringAndSeverity(t *testing.T) {
	if s := FromWin32(ERROR_INSUFFICIENT_BUFFER).String(); s != "HRESULT_FROM_WIN32(ERROR_INSUFFICIENT_BUFFER) (0x8007007A)" {
		t.Errorf("String = %q", s)
	}
	if s := StatusUnsuccessful.String(); s != "STATUS_UNSUCCESSFUL (0xC0000001)" {
		t.Errorf("String = %q", s)
	}
	if s := StatusNotFound.String(); s != "STATUS_NOT_FOUND (0xC0000225)" {
		t.Errorf("String = %q", s)
	}
	if !E_FAIL.Failed() || S_OK.Failed() || !S_OK.Succeeded() {
		t.Error("severity bit misread")
	}
	var err error = New("write", E_ACCESSDENIED)
	if err.Error() != "write: E_ACCESSDENIED (0x80070005)" {
		t.Errorf("Error = %q", err)
	}
}

// Win32 errors a device commonly returns are named, each under its
// MS-ERREF name, HRESULT_FROM_WIN32'd.
func TestWin32Names(t *testing.T) {
	for _, tc := range []struct {
		h    HRESULT
		want string
	}{
		{0x80070001, "HRESULT_FROM_WIN32(ERROR_INVALID_FUNCTION) (0x80070001)"},
		{0x80070070, "HRESULT_FROM_WIN32(ERROR_DISK_FULL) (0x80070070)"},
		{0x80070015, "HRESULT_FROM_WIN32(ERROR_NOT_READY) (0x80070015)"},
		{0x800705AA, "HRESULT_FROM_WIN32(ERROR_NO_SYSTEM_RESOURCES) (0x800705AA)"},
		{0x80070008, "HRESULT_FROM_WIN32(ERROR_NOT_ENOUGH_MEMORY) (0x80070008)"},
		{0x80070005, "E_ACCESSDENIED (0x80070005)"}, // the SDK name wins
		{0x8007FFFE, "0x8007FFFE"},
	} {
		if got := tc.h.String(); got != tc.want {
			t.Errorf("%08X: %q, want %q", uint32(tc.h), got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want HRESULT
	}{
		{"0x80070013", 0x80070013},
		{"2147942419", 0x80070013},
		{"ERROR_WRITE_PROTECT", 0x80070013},
		{"error_disk_full", 0x80070070},
		{"HRESULT_FROM_WIN32(ERROR_INVALID_FUNCTION)", 0x80070001},
		{"E_FAIL", E_FAIL},
		{"S_OK", S_OK},
		{"ERROR_ACCESS_DENIED", E_ACCESSDENIED},
		{"STATUS_NOT_FOUND", StatusNotFound},
	} {
		got, err := Parse(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "ERROR_NO_SUCH_THING", "HRESULT_FROM_WIN32(E_FAIL)", "0x1FFFFFFFF", "E_FAIL)"} {
		if h, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", bad, h)
		}
	}
}
