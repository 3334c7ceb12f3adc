package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one of the real programs, started from the -bin directory, with
// its output kept and watched.
type proc struct {
	name string
	cmd  *exec.Cmd

	mu     sync.Mutex
	out    bytes.Buffer // stdout and stderr, interleaved
	lines  []string
	total  int64 // bytes printed, kept or not
	hwmKiB int64 // peak VmHWM seen
	seen   chan struct{}
	exited chan struct{}
	err    error
}

func start(bin, name string, args ...string) (*proc, error) {
	cmd := exec.Command(filepath.Join(bin, name), args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	p := &proc{name: name, cmd: cmd, seen: make(chan struct{}), exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.total += int64(len(sc.Bytes()) + 1)
			if p.out.Len() < 8<<20 { // a flood of log lines is counted, not kept
				p.out.WriteString(sc.Text() + "\n")
				p.lines = append(p.lines, sc.Text())
			}
			close(p.seen)
			p.seen = make(chan struct{})
			p.mu.Unlock()
		}
		io.Copy(io.Discard, pr)
	}()
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	go p.sample()
	return p, nil
}

// sample keeps the process's peak resident size, VmHWM in
// /proc/PID/status, until it exits (the file goes with it).
func (p *proc) sample() {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if kib, ok := status(p.cmd.Process.Pid, "VmHWM"); ok {
			p.mu.Lock()
			p.hwmKiB = max(p.hwmKiB, kib)
			p.mu.Unlock()
		}
		select {
		case <-p.exited:
			return
		case <-t.C:
		}
	}
}

// status reads one "Key: N kB" (or plain N) field of /proc/PID/status.
func status(pid int, key string) (int64, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, key+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0, false
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// PeakMiB is the highest VmHWM seen, in MiB.
func (p *proc) PeakMiB() float64 {
	if kib, ok := status(p.cmd.Process.Pid, "VmHWM"); ok {
		p.mu.Lock()
		p.hwmKiB = max(p.hwmKiB, kib)
		p.mu.Unlock()
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return float64(p.hwmKiB) / 1024
}

// Threads is the process's OS thread count now (-1 once it has exited).
func (p *proc) Threads() int64 {
	n, ok := status(p.cmd.Process.Pid, "Threads")
	if !ok {
		return -1
	}
	return n
}

// waitFor waits until a line matching re has been printed, and returns it.
func (p *proc) waitFor(re *regexp.Regexp, d time.Duration) (string, bool) {
	deadline := time.After(d)
	next := 0
	for {
		p.mu.Lock()
		for ; next < len(p.lines); next++ {
			if re.MatchString(p.lines[next]) {
				l := p.lines[next]
				p.mu.Unlock()
				return l, true
			}
		}
		seen := p.seen
		p.mu.Unlock()
		select {
		case <-seen:
		case <-p.exited:
			// One more pass over what it printed before it went.
			p.mu.Lock()
			rest := p.lines[next:]
			p.mu.Unlock()
			for _, l := range rest {
				if re.MatchString(l) {
					return l, true
				}
			}
			return "", false
		case <-deadline:
			return "", false
		}
	}
}

// goroutines ends the process with SIGQUIT, which makes the Go runtime
// print every goroutine's stack, and counts them: the one view of a Go
// program's goroutines from outside it. -1 if it had already exited.
func (p *proc) goroutines() int {
	select {
	case <-p.exited:
		return -1
	default:
	}
	p.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
	time.Sleep(100 * time.Millisecond) // let the reader take the last lines
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(goroutineRe.FindAllIndex(p.out.Bytes(), -1))
}

// goroutineRe matches a stack's head, "goroutine 7 [select]:" or, from Go
// 1.23, "goroutine 7 gp=0x... m=... [select]:". Goroutine 0 is the
// runtime's own, for the thread that took the signal: not counted.
var goroutineRe = regexp.MustCompile(`(?m)^goroutine [1-9][0-9]* (gp=|\[)`)

// stop ends the process (SIGINT, then SIGKILL) if it still runs.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.exited
	}
}

// Output is everything the process printed (up to 8 MiB).
func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Printed is how many bytes it printed, counting what was not kept.
func (p *proc) Printed() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}
