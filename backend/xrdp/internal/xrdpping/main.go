// Command xrdpping is the e2e script's stand-in for
// rdp-simple-plugin-server's xrdp mode: inside an xrdp session it opens a
// channel through backend/xrdp and runs simple.Pinger over it, then
// prints one line of RTT figures in the format of xrdpapi-echo-baseline.
// It exits non-zero unless every ping came back intact.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/rdpdvc/rdpdvc/backend/xrdp"
	"github.com/rdpdvc/rdpdvc/dvc"
	"github.com/rdpdvc/rdpdvc/simple"
)

func main() {
	channel := flag.String("channel", simple.ChannelName, "dynamic channel to open")
	count := flag.Int("count", 20, "pings to send")
	interval := flag.Duration("interval", 10*time.Millisecond, "time between pings")
	payload := flag.Int("payload", simple.DefaultPayload, "payload bytes per ping")
	verbose := flag.Bool("v", false, "log every ping")
	flag.Parse()

	lvl := slog.LevelWarn
	if *verbose {
		lvl = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	op, err := xrdp.New(xrdp.Options{})
	if err != nil {
		fail(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second+time.Duration(*count)**interval)
	defer cancel()
	c, err := op.Open(ctx, *channel, dvc.WithFramer(simple.FrameLen))
	if err != nil {
		fail(err)
	}
	defer c.Close()
	p := &simple.Pinger{Interval: *interval, Count: *count, Payload: *payload, Logger: log}
	st, err := p.Run(ctx, c)
	if err != nil {
		fail(err)
	}
	if !st.OK() || st.Received != *count {
		fail(fmt.Errorf("sent %d, received %d, lost %d, mismatched %d, unexpected %d", st.Sent, st.Received, st.Lost, st.Mismatched, st.Unexpected))
	}
	fmt.Println(summary("rdpdvc", st.RTTs))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "xrdpping:", err)
	os.Exit(1)
}

func summary(what string, rtts []time.Duration) string {
	s := slices.Clone(rtts)
	slices.Sort(s)
	var sum time.Duration
	for _, r := range s {
		sum += r
	}
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64) }
	pct := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("%s rtt_us n=%d min=%s median=%s mean=%s p90=%s max=%s",
		what, len(s), us(s[0]), us(pct(0.5)), us(sum/time.Duration(len(s))), us(pct(0.9)), us(s[len(s)-1]))
}
