package echo

import "testing"

// go test -run '^$' -bench . ./echo
func BenchmarkParseRequest(b *testing.B) {
	req := RequestBytes(1, DefaultSize)
	b.ReportAllocs()
	b.SetBytes(int64(len(req)))
	for b.Loop() {
		if _, err := ParseRequest(req); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponse(b *testing.B) {
	req, _ := ParseRequest(RequestBytes(1, DefaultSize))
	buf := make([]byte, 0, DefaultSize)
	b.ReportAllocs()
	b.SetBytes(DefaultSize)
	for b.Loop() {
		resp := ResponseTo(req)
		buf = resp.Append(buf[:0])
	}
}
