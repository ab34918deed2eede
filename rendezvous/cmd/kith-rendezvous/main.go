// Command kith-rendezvous runs a Kith rendezvous/relay node: it verifies
// signed friendship attestations before relaying shares, stores and
// forwards for users who are offline, and serves circuit relay v2.
//
//	kith-rendezvous [--data DIR] [--listen MULTIADDR]... [--metrics HOST:PORT] [--config FILE]
//
// On start it prints one line per listen address, each ending in
// /p2p/<peer id>: give one to users as their --rendezvous address. SIGINT
// or SIGTERM stops it gracefully.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/rendezvous"
)

type multiaddrs []ma.Multiaddr

func (m *multiaddrs) String() string {
	var s []string
	for _, a := range *m {
		s = append(s, a.String())
	}
	return strings.Join(s, ",")
}

func (m *multiaddrs) Set(v string) error {
	a, err := ma.NewMultiaddr(v)
	if err != nil {
		return fmt.Errorf("%q is not a multiaddr: %w", v, err)
	}
	*m = append(*m, a)
	return nil
}

func (m *multiaddrs) Type() string { return "multiaddr" }

func main() {
	if protocols.ApplyTestbedEnv() {
		fmt.Fprintln(os.Stderr, "kith-rendezvous: "+protocols.TestbedEnv+"=1: the documentation address ranges count as public (a test bed)")
	}
	root := newRoot()
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "kith-rendezvous:", err)
		os.Exit(1)
	}
}

// newRoot is the command line: flags in the style of kith's and
// kith-simnet's (--long, -h), `version`, `completion`.
func newRoot() *cobra.Command {
	home, _ := os.UserHomeDir()
	var o struct {
		data, metrics, config, logLevel string
		listen                          multiaddrs
		logJSON, printConfig, pprof     bool
	}
	root := &cobra.Command{
		Use:   "kith-rendezvous",
		Short: "A Kith rendezvous/relay node",
		Long: `A Kith rendezvous/relay node: it verifies signed friendship attestations before
relaying shares, stores and forwards for users who are offline, and serves circuit relay v2.

On start it prints one line per listen address, each ending in /p2p/<peer id>: give one to users
as their --rendezvous address. SIGINT or SIGTERM stops it gracefully.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       protocols.BuildInfo().String(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(o.data, o.listen, o.metrics, o.config, o.logLevel, o.logJSON, o.printConfig, o.pprof)
		},
	}
	root.SetVersionTemplate("kith-rendezvous {{.Version}}\n")
	fs := root.Flags()
	fs.StringVar(&o.data, "data", filepath.Join(home, ".kith-rendezvous"), "data directory (key and datastore)")
	fs.Var(&o.listen, "listen", "listen address, repeatable (default TCP and QUIC on port 4001)")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics, /healthz and /readyz on HOST:PORT")
	fs.StringVar(&o.config, "config", "", "JSON config file of quotas and limits (see rendezvous/README.md)")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&o.logJSON, "log-json", false, "log as JSON instead of text")
	fs.BoolVar(&o.printConfig, "print-config", false, "print the configuration in force as JSON and exit")
	fs.BoolVar(&o.pprof, "pprof", false, "serve Go profiles at /debug/pprof/ on the --metrics address")
	root.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit and the Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "kith-rendezvous", protocols.BuildInfo())
		},
	})
	return root
}

func run(data string, listen multiaddrs, metrics, configPath, logLevel string, logJSON, printConfig, pprofOn bool) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if logJSON {
		handler = slog.NewJSONHandler(os.Stderr, hopts)
	}
	log := slog.New(handler)

	cfg := rendezvous.DefaultConfig()
	if configPath != "" {
		var err error
		if cfg, err = rendezvous.LoadConfig(configPath); err != nil {
			return err
		}
	}
	if printConfig {
		return printJSON(cfg.Effective())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := rendezvous.OpenDaemon(ctx, rendezvous.DaemonOptions{
		DataDir: data, Listen: listen, MetricsAddr: metrics, Config: cfg, Logger: log, Pprof: pprofOn,
	})
	if err != nil {
		return err
	}
	for _, a := range d.Addrs() {
		fmt.Println(a)
	}
	if d.MetricsAddr != "" {
		log.Info("serving metrics", "url", "http://"+d.MetricsAddr+"/metrics")
	}
	<-ctx.Done()
	log.Info("shutting down")
	return d.Close()
}
