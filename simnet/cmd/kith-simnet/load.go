package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/kithnet/kith/simnet/load"
)

func loadCmd(args []string) int {
	fs := flag.NewFlagSet("kith-simnet load", flag.ContinueOnError)
	var c load.Config
	fs.StringVar(&c.Relay, "relay", "", "the relay's multiaddr, ending in /p2p/<id> (required)")
	fs.IntVar(&c.RelayPID, "relay-pid", 0, "the relay's process id, to read its CPU time and memory from /proc")
	fs.StringVar(&c.Mode, "mode", "online", "online, offline or conns")
	fs.IntVar(&c.Pairs, "pairs", 10, "online: sharer/target pairs")
	fs.IntVar(&c.Window, "window", 16, "online, offline: shares in flight per sharer")
	fs.Float64Var(&c.Rate, "rate", 0, "online: shares per second offered in total (0 = as fast as possible)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "online: measured time")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "online: unmeasured time first")
	fs.IntVar(&c.Items, "items", 5, "shared friends per share")
	fs.IntVar(&c.Presealed, "presealed", 0, "online: shares sealed before the clock, in all (0 = enough for --rate, or 10,000/s unpaced, at most 200,000); more are sealed as they are sent")
	fs.IntVar(&c.M, "m", 1000, "offline: shares stored for one offline target")
	fs.IntVar(&c.Conns, "conns", 1000, "conns: users that log in")
	fs.DurationVar(&c.Hold, "hold", 10*time.Second, "conns: how long they stay")
	asJSON := fs.Bool("json", false, "print one JSON object")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of this generator over the measured phase to `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "kith-simnet:", err)
		return 2
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kith-simnet load:", err)
			return 1
		}
		defer f.Close()
		c.CPUProfile = f
	}
	if c.Relay == "" {
		fmt.Fprintln(os.Stderr, "kith-simnet load: --relay is required (start kith-rendezvous first; it prints its addresses)")
		return 2
	}
	if !*quiet {
		start := time.Now()
		c.Progress = func(s string) { fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(start).Seconds(), s) }
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := load.Run(ctx, c)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kith-simnet load:", err)
		return 1
	}
	printReport(rep, *asJSON)
	if rep.Lost > 0 || rep.Duplicates > 0 || rep.Redelivered > 0 {
		fmt.Fprintln(os.Stderr, "kith-simnet load: items were lost, duplicated or redelivered")
		return 1
	}
	if rep.FailedLogins > 0 || rep.Live < rep.LoggedIn {
		fmt.Fprintf(os.Stderr, "kith-simnet load: %d logins failed and %d of %d logged-in users were dropped\n",
			rep.FailedLogins, rep.LoggedIn-rep.Live, rep.LoggedIn)
		return 1
	}
	return 0
}
