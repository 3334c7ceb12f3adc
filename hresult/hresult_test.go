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
