// Command xrdpapi-echo-baseline measures the round-trip time of Simple
// pings through xrdp with none of rdpdvc's layers: it opens the channel
// on the session's xrdpapi socket with a hand-written handshake, writes
// a 5140-byte frame with one write() every -interval (as the Simple
// servers do), reads the echoes back on another goroutine and compares
// each with its ping. It is the baseline rdp-simple-plugin-server's
// xrdp mode is measured against (docs/benchmarks.md).
//
//	xrdpapi-echo-baseline [-channel dvc::sample::simpleplugin] [-count 200] [-interval 10ms]
//
// Run it inside the xrdp session (DISPLAY and XRDP_SOCKET_PATH set) while
// the client echoes the channel: FreeRDP's /echo for ECHO, or
// /dvc:rdpdvc,simple for the Simple channel.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
)

func main() {
	channel := flag.String("channel", "dvc::sample::simpleplugin", "dynamic channel to open")
	count := flag.Int("count", 200, "pings to send")
	interval := flag.Duration("interval", 10*time.Millisecond, "time between the starts of two pings")
	payload := flag.Int("payload", 5120, "payload bytes per ping")
	display := flag.String("display", os.Getenv("DISPLAY"), "X display of the session")
	sockdir := flag.String("sockdir", os.Getenv("XRDP_SOCKET_PATH"), "xrdp socket folder (default: found as backend/xrdp does)")
	timeout := flag.Duration("timeout", 5*time.Second, "give up on an echo after this long")
	flag.Parse()
	if err := run(*channel, *count, *interval, *payload, *display, *sockdir, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "xrdpapi-echo-baseline:", err)
		os.Exit(1)
	}
}

func run(channel string, count int, interval time.Duration, payload int, display, sockdir string, timeout time.Duration) error {
	if count < 1 || payload < 0 {
		return errors.New("-count must be at least 1 and -payload not negative")
	}
	// The socket is found and the channel opened by backend/xrdp, which
	// speaks both xrdpapi handshakes (xrdp 0.9 to 0.10.4, and 0.10.5+);
	// everything after the handshake is this program's own.
	op, err := xrdp.New(xrdp.Options{Display: display, SocketDir: sockdir})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	c, err := op.OpenSocket(ctx, channel)
	cancel()
	if err != nil {
		return err
	}
	defer c.Close()

	// Paced like simple.Pinger: a ping every interval whether or not the
	// last echo is back, echoes read and timed on their own goroutine, so
	// that stalls of a loaded machine queue pings up the same way in both
	// programs and the comparison measures only rdpdvc's layers.
	// Simple frame: [frameLen][seq][utcTicks i64][payloadLen][payload 0..255...]
	frames := make([][]byte, count+1)
	sentAt := make([]time.Time, count+1)
	var mu sync.Mutex
	type result struct {
		rtts []time.Duration
		err  error
	}
	done := make(chan result, 1)
	go func() {
		echo := make([]byte, 20+payload)
		rtts := make([]time.Duration, 0, count)
		for i := 1; i <= count; i++ {
			c.SetReadDeadline(time.Now().Add(timeout))
			if _, err := io.ReadFull(c, echo); err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					err = fmt.Errorf("no echo within %v", timeout)
				}
				done <- result{err: fmt.Errorf("echo %d: %w", i, err)}
				return
			}
			at := time.Now()
			seq := int(binary.LittleEndian.Uint32(echo[4:]))
			mu.Lock()
			var want []byte
			var start time.Time
			if seq >= 1 && seq <= count {
				want, start = frames[seq], sentAt[seq]
			}
			mu.Unlock()
			if want == nil || !bytes.Equal(echo, want) {
				done <- result{err: fmt.Errorf("echo %d (seq %d) differs from every ping sent", i, seq)}
				return
			}
			rtts = append(rtts, at.Sub(start))
		}
		done <- result{rtts: rtts}
	}()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for seq := 1; seq <= count; seq++ {
		if seq > 1 {
			select {
			case <-tick.C:
			case r := <-done:
				return r.err // the reader failed early
			}
		}
		start := time.Now()
		frame := make([]byte, 20+payload)
		binary.LittleEndian.PutUint32(frame[0:], uint32(16+payload))
		binary.LittleEndian.PutUint32(frame[4:], uint32(seq))
		binary.LittleEndian.PutUint64(frame[8:], uint64(start.UnixNano()/100+116444736000000000))
		binary.LittleEndian.PutUint32(frame[16:], uint32(payload))
		for i := range payload {
			frame[20+i] = byte(i)
		}
		mu.Lock()
		frames[seq], sentAt[seq] = frame, start
		mu.Unlock()
		if _, err := c.Write(frame); err != nil {
			return err
		}
	}
	r := <-done
	if r.err != nil {
		return r.err
	}
	fmt.Println(summary("baseline", r.rtts))
	return nil
}

// summary is one line of RTT figures in microseconds, the same format
// rdpdvc's e2e tools print.
func summary(what string, rtts []time.Duration) string {
	s := slices.Clone(rtts)
	slices.Sort(s)
	var sum time.Duration
	for _, r := range s {
		sum += r
	}
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("%s rtt_us n=%d min=%s median=%s mean=%s p99=%s max=%s",
		what, len(s), us(s[0]), us(pct(0.5)), us(sum/time.Duration(len(s))), us(pct(0.99)), us(s[len(s)-1]))
}
