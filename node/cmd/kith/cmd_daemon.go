package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/daemon"
)

func initCmd(g *globals) *cobra.Command {
	var name, restoreFrom string
	var rendezvous []string
	c := &cobra.Command{
		Use:   "init (--name NAME [--rendezvous MULTIADDR]... | --restore BACKUP)",
		Short: "Create your identity in the data directory, or restore it from a backup",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if restoreFrom != "" {
				if name != "" || len(rendezvous) > 0 {
					return fmt.Errorf("--restore brings the name and rendezvous nodes of the backup: leave out --name and --rendezvous (change them later with kith settings and kith up --rendezvous)")
				}
				return restore(cmd, g, restoreFrom)
			}
			if name == "" {
				return fmt.Errorf("--name is required: the name your friends will see")
			}
			id, err := daemon.Init(g.data, name, rendezvous)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Created %s (%s) in %s.\nStart your node with: kith up --data %s\n", name, id, g.data, g.data)
			return nil
		},
	}
	c.Flags().StringVar(&name, "name", "", "your display name")
	c.Flags().StringArrayVar(&rendezvous, "rendezvous", nil, "rendezvous node address ending in /p2p/<id> (repeatable)")
	c.Flags().StringVar(&restoreFrom, "restore", "", "a backup made by kith key export")
	return c
}

func upCmd(g *globals) *cobra.Command {
	var o daemon.UpOptions
	var verbose bool
	c := &cobra.Command{
		Use:   "up [--rendezvous MULTIADDR]... [--listen MULTIADDR]... [--api HOST:PORT]",
		Short: "Run your node in the foreground (stop with Ctrl-C)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			o.DataDir = g.data
			p, err := keyPassphrase(g.data)
			if err != nil {
				return err
			}
			o.Passphrase = p
			o.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d, err := daemon.Up(ctx, o)
			if err != nil {
				return err
			}
			st := d.Node.Status()
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "%s is up as %s\n", st.Name, st.ID)
			fmt.Fprintf(out, "Local API and web UI: %s (API token in %s)\n", d.URL, filepath.Join(g.data, "api-token"))
			fmt.Fprintf(out, "Open the web interface (this link logs your browser in): %s\n", d.LoginURL())
			for _, a := range st.Addrs {
				fmt.Fprintf(out, "Listening on %s\n", a)
			}
			if len(st.Rendezvous) == 0 {
				fmt.Fprintln(out, "No rendezvous node configured: add one with --rendezvous to reach friends who are offline or behind NAT.")
			}
			<-ctx.Done()
			fmt.Fprintln(out, "Stopping.")
			return d.Close()
		},
	}
	c.Flags().StringArrayVar(&o.Rendezvous, "rendezvous", nil, "rendezvous node address ending in /p2p/<id> (repeatable; saved)")
	c.Flags().StringArrayVar(&o.Listen, "listen", nil, "libp2p listen address (repeatable; saved)")
	c.Flags().StringVar(&o.API, "api", "", "HOST:PORT of the local API and web UI on a loopback address (saved; default a free port)")
	c.Flags().StringVar(&o.Reachability, "reachability", "", "nat (at home, behind a router: the default), public or auto (saved)")
	c.Flags().BoolVarP(&verbose, "verbose", "v", false, "debug logging")
	c.Flags().BoolVar(&o.NoUI, "no-ui", false, "serve the API only, not the web interface")
	return c
}

func uiCmd(g *globals) *cobra.Command {
	var noOpen bool
	c := &cobra.Command{
		Use:   "ui [--print]",
		Short: "Open your node's web interface in the browser (or print its link)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			u, err := daemon.LoginURL(g.data)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), u)
			if noOpen {
				return nil
			}
			if opener, err := exec.LookPath("xdg-open"); err == nil {
				return exec.Command(opener, u).Start()
			}
			if opener, err := exec.LookPath("open"); err == nil { // macOS
				return exec.Command(opener, u).Start()
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "(no browser opener found: open the link above)")
			return nil
		},
	}
	c.Flags().BoolVar(&noOpen, "print", false, "only print the link")
	return c
}

func statusCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show your node's state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			st, err := cl.Status(cx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, st)
			}
			fmt.Fprintf(out, "%s  %s\nAPI and web UI: %s\n", st.Name, st.ID, st.API)
			fmt.Fprintf(out, "Friends: %d   pending requests: %d   shares in inbox: %d   queued to send: %d\n", st.Friends, st.Pending, st.Shares, st.Queued)
			fmt.Fprintf(out, "Reachability: %s\n", node.ReachabilityWords(st.Reachability))
			for _, r := range st.Rendezvous {
				state := "logged in"
				if !r.LoggedIn {
					state = "not connected"
					if r.LastError != "" {
						state += " (" + r.LastError + ")"
					}
				}
				fmt.Fprintf(out, "Rendezvous %s: %s\n", r.Addr, state)
			}
			for _, p := range st.Leaving {
				fmt.Fprintf(out, "Left rendezvous %s: taking what it still holds for you\n", p)
			}
			return nil
		},
	}
	jsonFlag(c, g)
	return c
}
