// Package cpumeter measures the CPU time a benchmark's process uses, for
// the "cpu-ns/op" figure rdpdvc's benchmarks report beside ns/op. On a
// shared machine wall-clock figures move with the neighbours' load; CPU
// time per op moves much less. It counts every thread of the process —
// both ends of a loopback connection — and the kernel's work for them,
// which is the cost the benchmarks compare.
package cpumeter

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Process returns the CPU time (user + system, all threads) this process
// has used, from /proc/self/stat; ok is false where there is no such file.
func Process() (d time.Duration, ok bool) { return read("self") }

// Of returns the CPU time process pid has used, as Process does for this
// one: for benchmarks that measure programs they started.
func Of(pid int) (d time.Duration, ok bool) { return read(strconv.Itoa(pid)) }

func read(pid string) (time.Duration, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// utime and stime are fields 14 and 15 of the line; count after the
	// parenthesised command name, which may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, false
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const userHZ = 100 // USER_HZ, the unit of utime and stime on Linux
	return time.Duration(ut+st) * time.Second / userHZ, true
}

// Start begins measuring; calling the function it returns (after the
// benchmark loop) reports "cpu-ns/op" for the ops in between.
func Start(b *testing.B) func() {
	start, ok := Process()
	return func() {
		end, ok2 := Process()
		if ok && ok2 && b.N > 0 {
			b.ReportMetric(float64((end-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
		}
	}
}
