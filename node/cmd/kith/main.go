// Command kith is a Kith personal node and its command-line interface.
//
// `kith up` runs the daemon; every other command but `init` and `demo`
// talks to the running daemon through its local API, found through the
// data directory (--data, or KITH_DATA, default ~/.kith). Run `kith help`
// for the commands.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"

	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/api"
	"github.com/kithnet/kith/node/client"
	"github.com/kithnet/kith/protocols"
)

func main() {
	if protocols.ApplyTestbedEnv() && len(os.Args) > 1 && os.Args[1] == "up" {
		fmt.Fprintln(os.Stderr, "kith: "+protocols.TestbedEnv+"=1: the documentation address ranges count as public (a test bed)")
	}
	root := newRoot()
	cmd, err := root.ExecuteC()
	if err != nil {
		os.Exit(report(os.Stdout, os.Stderr, cmd, err, os.Args[1:]))
	}
}

// report prints a failure: as a JSON object {error, code, result} on
// standard output when the command was asked for --json (scripts read one
// place; args are looked at too, for a failure before the flags parsed),
// else as "kith: words" on standard error. It returns the exit code.
func report(stdout, stderr io.Writer, cmd *cobra.Command, err error, args []string) int {
	body := node.ErrorBody{Error: err.Error(), Code: codeOf(err)}
	var ae *client.APIError
	if errors.As(err, &ae) {
		body.Error = ae.Message
		if len(ae.Result) > 0 && string(ae.Result) != "null" {
			body.Result = ae.Result
		}
	}
	asJSON := slices.Contains(args, "--json") || slices.Contains(args, "--json=true")
	if cmd != nil {
		if f := cmd.Flags().Lookup("json"); f != nil && f.Value.String() == "true" {
			asJSON = true
		}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(body)
		return 1
	}
	fmt.Fprintln(stderr, "kith:", body.Error)
	return 1
}

// usageError is a mistake in how the command was called.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// argError is a flag or argument the command itself found invalid.
type argError struct{ error }

func (e argError) Unwrap() error { return e.error }

// codeOf returns the stable code of a failure (node.Code...).
func codeOf(err error) string {
	var ae *client.APIError
	switch {
	case errors.As(err, &ae) && ae.Code != "":
		return ae.Code
	case errors.Is(err, client.ErrDaemonNotRunning):
		return node.CodeNotRunning
	case errors.As(err, new(usageError)):
		return node.CodeUsage
	case errors.As(err, new(argError)):
		return node.CodeBadArgument
	}
	return api.CodeOf(err) // errors of the node's own packages (init, demo)
}

// markUsage makes the errors of flag parsing and argument counts, in
// every command of the tree, usage errors.
func markUsage(c *cobra.Command) {
	c.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	if args := c.Args; args != nil {
		c.Args = func(cmd *cobra.Command, a []string) error {
			if err := args(cmd, a); err != nil {
				return usageError{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markUsage(sub)
	}
}
