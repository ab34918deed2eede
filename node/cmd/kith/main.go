// Command kith is a Kith personal node and its command-line interface.
//
// `kith up` runs the daemon; every other command but `init` and `demo`
// talks to the running daemon through its local API, found through the
// data directory (--data, or KITH_DATA, default ~/.kith). Run `kith help`
// for the commands.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/kithnet/kith/node/client"
)

func main() {
	root := newRoot()
	if err := root.Execute(); err != nil {
		msg := err.Error()
		var ae *client.APIError
		if errors.As(err, &ae) {
			msg = ae.Message
		}
		fmt.Fprintln(os.Stderr, "kith:", msg)
		os.Exit(1)
	}
}
