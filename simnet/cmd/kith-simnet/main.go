// Command kith-simnet runs whole Kith networks in simulated time.
//
//	kith-simnet run [--nodes N] [--relays R] [--shares S] [--churn C]
//	                [--adversaries A] [--seed N] [--relay-restart] [--partition] [--json]
//	                [--unfriend F] [--move F] [--relay-down D] [--homes K] [--discover]
//	                [--html FILE]
//
// Every node and relay is the real code on a real libp2p host; the network
// between them is simulated (github.com/marcopolo/simnet) and time is
// virtual (testing/synctest), so minutes of network life take seconds.
//
//	kith-simnet load --relay MULTIADDR [--relay-pid PID] --mode online|offline|conns [...]
//
// run: the report says whether every valid share, request and answer arrived,
// whether anything arrived twice, and whether anything forged was
// accepted; the exit code is non-zero if any of those promises broke.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	flag "github.com/spf13/pflag"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/simnet"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	switch os.Args[1] {
	case "-h", "--help", "help":
		usage()
		os.Exit(0)
	case "version", "--version":
		fmt.Println("kith-simnet", protocols.BuildInfo())
		os.Exit(0)
	case "run":
		os.Exit(run(os.Args[2:]))
	case "load":
		os.Exit(loadCmd(os.Args[2:]))
	case "script":
		os.Exit(scriptCmd(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "kith-simnet: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  kith-simnet run [flags]    a simulated network of real nodes and relays, in virtual time
  kith-simnet load [flags]   a load generator against a real kith-rendezvous
  kith-simnet script FILE    a scenario script of your own (the language of simnet/testdata/*.txt)
  kith-simnet version        the version, the commit and the Go version

Run kith-simnet COMMAND --help for the flags.
`)
}

func run(args []string) int {
	fs := flag.NewFlagSet("kith-simnet run", flag.ContinueOnError)
	var cfg simnet.Config
	fs.IntVar(&cfg.Nodes, "nodes", 100, "personal nodes")
	fs.IntVar(&cfg.Relays, "relays", 1, "rendezvous nodes")
	fs.IntVar(&cfg.Shares, "shares", 0, "shares made during the workload (default 2 per node)")
	fs.Float64Var(&cfg.Churn, "churn", 0, "fraction of nodes that go offline and come back, 0..1")
	fs.IntVar(&cfg.Adversaries, "adversaries", 0, "nodes that forge, replay, claim introductions, seal them with sock-puppet keys and flood")
	seed := fs.Uint64("seed", 1, "fixes the hosts, the friend graph and every choice of the workload")
	fs.IntVar(&cfg.ClusterSize, "cluster", 10, "friends come in clusters (workplaces) of this size")
	fs.DurationVar(&cfg.Workload, "workload", 10*time.Minute, "virtual time over which shares are made")
	fs.DurationVar(&cfg.Drain, "drain", 20*time.Minute, "extra virtual time allowed for delivery")
	fs.BoolVar(&cfg.RelayRestart, "relay-restart", false, "restart relay 0 halfway through the workload")
	fs.BoolVar(&cfg.Partition, "partition", false, "cut a cluster off the relays for a minute, then heal")
	fs.Float64Var(&cfg.Unfriend, "unfriend", 0, "fraction of users who end one friendship during the workload")
	fs.Float64Var(&cfg.Move, "move", 0, "fraction of users who move to another home relay during the workload (needs --relays 2 or more)")
	fs.DurationVar(&cfg.RelayDown, "relay-down", 0, "keep the last relay down this long from the middle of the workload")
	fs.IntVar(&cfg.Homes, "homes", 1, "home relays per user")
	fs.BoolVar(&cfg.Discover, "discover", false, "relays know only relay 0 and find each other through the DHT")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	htmlOut := fs.String("html", "", "also write the report as one self-contained web page, with charts, to `file`")
	quiet := fs.Bool("quiet", false, "no progress on standard error")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	memProfile := fs.String("memprofile", "", "write a heap profile, taken when the workload ends, to `file`")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "kith-simnet:", err)
		return 2
	}
	if *memProfile != "" {
		f, err := os.Create(*memProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kith-simnet:", err)
			return 1
		}
		defer f.Close() // simnet.Main exits; the profile is written before the drain
		cfg.HeapProfile = f
	}
	cfg.Seed = *seed
	cfg.Quiet = *quiet
	stopProfile := func() {}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "kith-simnet:", err)
			return 1
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "kith-simnet:", err)
			return 1
		}
		stopProfile = func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
	start := simnet.WallClock()
	last := ""
	lastDone := -1.0
	if !*quiet {
		cfg.Progress = func(p simnet.Progress) {
			if p.Phase == last && p.Done-lastDone < 0.1 {
				return
			}
			last, lastDone = p.Phase, p.Done
			fmt.Fprintf(os.Stderr, "[%6.1fs] %-8s %3.0f%%  (virtual %s)\n", (simnet.WallClock() - start).Seconds(),
				p.Phase, 100*p.Done, p.Virtual.Round(time.Second))
		}
	}
	simnet.Main(cfg, func(rep *simnet.Report, err error) int {
		stopProfile()
		if err != nil {
			fmt.Fprintln(os.Stderr, "kith-simnet:", err)
			return 1
		}
		printReport(rep, *asJSON)
		if *htmlOut != "" {
			if err := writeHTML(rep, *htmlOut); err != nil {
				fmt.Fprintln(os.Stderr, "kith-simnet:", err)
				return 1
			}
		}
		if !rep.OK() {
			fmt.Fprintln(os.Stderr, "kith-simnet: the network broke a promise (see the report)")
			return 1
		}
		return 0
	})
	return 0 // simnet.Main exits
}

func scriptCmd(args []string) int {
	fs := flag.NewFlagSet("kith-simnet script", flag.ContinueOnError)
	quiet := fs.Bool("quiet", false, "print nothing but a failure")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(os.Stderr, "kith-simnet:", err)
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: kith-simnet script [--quiet] FILE")
		return 2
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kith-simnet:", err)
		return 1
	}
	defer f.Close()
	simnet.MainScript(f, *quiet, func(err error) int {
		if err != nil {
			fmt.Fprintf(os.Stderr, "kith-simnet: %s: %v\n", fs.Arg(0), err)
			return 1
		}
		if !*quiet {
			fmt.Printf("%s: every step held\n", fs.Arg(0))
		}
		return 0
	})
	return 0 // MainScript exits
}

// writeHTML writes rep's page to path, whole or not at all.
func writeHTML(rep *simnet.Report, path string) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := rep.WriteHTML(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// printReport prints rep to standard output as one JSON object or as a
// table.
func printReport(rep interface{ WriteTable(io.Writer) }, asJSON bool) {
	if asJSON {
		b, _ := json.Marshal(rep)
		fmt.Println(string(b))
		return
	}
	rep.WriteTable(os.Stdout)
}
