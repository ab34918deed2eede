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
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	ma "github.com/multiformats/go-multiaddr"

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

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kith-rendezvous:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	home, _ := os.UserHomeDir()
	fs := flag.NewFlagSet("kith-rendezvous", flag.ContinueOnError)
	data := fs.String("data", filepath.Join(home, ".kith-rendezvous"), "data directory (key and datastore)")
	var listen multiaddrs
	fs.Var(&listen, "listen", "listen address, repeatable (default TCP and QUIC on port 4001)")
	metrics := fs.String("metrics", "", "serve Prometheus metrics on HOST:PORT (/metrics)")
	configPath := fs.String("config", "", "JSON config file of quotas and limits (see rendezvous.Config)")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	logJSON := fs.Bool("log-json", false, "log as JSON instead of text")
	printConfig := fs.Bool("print-config", false, "print the effective config as JSON and exit")
	pprofOn := fs.Bool("pprof", false, "serve Go profiles at /debug/pprof/ on the --metrics address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	hopts := &slog.HandlerOptions{Level: level}
	var handler slog.Handler = slog.NewTextHandler(os.Stderr, hopts)
	if *logJSON {
		handler = slog.NewJSONHandler(os.Stderr, hopts)
	}
	log := slog.New(handler)

	cfg := rendezvous.DefaultConfig()
	if *configPath != "" {
		var err error
		if cfg, err = rendezvous.LoadConfig(*configPath); err != nil {
			return err
		}
	}
	if *printConfig {
		return printJSON(cfg.Effective())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := rendezvous.OpenDaemon(ctx, rendezvous.DaemonOptions{
		DataDir: *data, Listen: listen, MetricsAddr: *metrics, Config: cfg, Logger: log, Pprof: *pprofOn,
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
