package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node/client"
	"github.com/kithnet/kith/protocols"
)

// globals are the flags every command takes.
type globals struct {
	data string
	json bool
}

func defaultData() string {
	if d := os.Getenv("KITH_DATA"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ".kith"
	}
	return filepath.Join(home, ".kith")
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "kith",
		Short: "Share friends on a peer-to-peer network",
		Long: `kith runs your Kith node and talks to it.

Start with:  kith init --name NAME --rendezvous ADDR   then   kith up
Then:        kith id                 (your invite to give friends)
             kith add INVITE         (befriend someone from their invite)
             kith share --to PEER --group NAME
             kith shares, kith pick SHARE --all, kith requests, kith accept ID`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       protocols.BuildInfo().String(),
	}
	root.SetVersionTemplate("kith {{.Version}}\n")
	root.PersistentFlags().StringVar(&g.data, "data", defaultData(), "data directory (also KITH_DATA)")
	root.AddCommand(
		initCmd(g), upCmd(g), demoCmd(g), idCmd(g), addCmd(g), requestsCmd(g), acceptCmd(g), declineCmd(g),
		friendsCmd(g), groupCmd(g), groupsCmd(g), shareCmd(g), sharesCmd(g), pickCmd(g),
		unfriendCmd(g), blockCmd(g), unblockCmd(g), blockedCmd(g), settingsCmd(g), consentsCmd(g), consentCmd(g), inviteCmd(g), cancelCmd(g), dismissCmd(g), keyCmd(g), pingCmd(g), statusCmd(g), uiCmd(g), versionCmd(),
	)
	markUsage(root)
	return root
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version, the commit and the Go version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "kith", protocols.BuildInfo())
		},
	}
}

// jsonFlag adds --json to a command.
func jsonFlag(c *cobra.Command, g *globals) {
	c.Flags().BoolVar(&g.json, "json", false, "print JSON instead of a table")
}

func clientOf(g *globals) (*client.Client, error) { return client.NewClient(g.data) }

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 90*time.Second)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table prints rows under a header, aligned.
func table(w io.Writer, header []string, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// short abbreviates an id for tables; --json always has the full one.
func short(id string) string {
	if len(id) > 16 {
		return id[:6] + "…" + id[len(id)-6:]
	}
	return id
}

func shortHex(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// withDaemon runs f against the running daemon, with a deadline.
func withDaemon(g *globals, f func(ctx context.Context, c *client.Client) error) error {
	cl, err := clientOf(g)
	if err != nil {
		return err
	}
	cx, cancel := ctx()
	defer cancel()
	return f(cx, cl)
}

// actionCmd is a command that asks the daemon to do something and says
// what was done.
// With --json, success is {"ok": true, "text": WORDS} and a failure the
// usual error object.
func actionCmd(g *globals, use, short string, args cobra.PositionalArgs, do func(ctx context.Context, c *client.Client, args []string) error, done func(args []string) string) *cobra.Command {
	c := &cobra.Command{
		Use: use, Short: short, Args: args,
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := withDaemon(g, func(cx context.Context, c *client.Client) error { return do(cx, c, a) }); err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), map[string]any{"ok": true, "text": done(a)})
			}
			fmt.Fprintln(cmd.OutOrStdout(), done(a))
			return nil
		},
	}
	jsonFlag(c, g)
	return c
}

// listCmd is a command that prints a list from the daemon, as a table or
// (--json) as the JSON array of the API.
// fetch is a Client method expression, such as (*client.Client).Friends.
// empty is what to say instead of an empty table: what would fill it.
func listCmd[T any](g *globals, use, short, empty string, fetch func(c *client.Client, ctx context.Context) ([]T, error), header []string, row func(T) [][]string) *cobra.Command {
	c := &cobra.Command{
		Use: use, Short: short, Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDaemon(g, func(cx context.Context, cl *client.Client) error {
				list, err := fetch(cl, cx)
				if err != nil {
					return err
				}
				if g.json {
					if list == nil {
						list = []T{} // [] for none, never null
					}
					return printJSON(cmd.OutOrStdout(), list)
				}
				if len(list) == 0 {
					fmt.Fprintln(cmd.OutOrStdout(), empty)
					return nil
				}
				var rows [][]string
				for _, v := range list {
					rows = append(rows, row(v)...)
				}
				table(cmd.OutOrStdout(), header, rows)
				return nil
			})
		},
	}
	jsonFlag(c, g)
	return c
}
