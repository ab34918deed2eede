package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/client"
)

func groupCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Create and edit groups of friends"}
	c.AddCommand(
		actionCmd(g, "create NAME", "Create a group", cobra.ExactArgs(1),
			func(cx context.Context, c *client.Client, a []string) error { return c.CreateGroup(cx, a[0]) },
			func(a []string) string { return fmt.Sprintf("Created group %q.", a[0]) }),
		actionCmd(g, "add NAME PEER...", "Add friends to a group", cobra.MinimumNArgs(2),
			func(cx context.Context, c *client.Client, a []string) error { return c.AddToGroup(cx, a[0], a[1:]) },
			func(a []string) string { return fmt.Sprintf("Added %s to %q.", strings.Join(a[1:], ", "), a[0]) }),
		actionCmd(g, "remove NAME PEER...", "Remove friends from a group", cobra.MinimumNArgs(2),
			func(cx context.Context, c *client.Client, a []string) error {
				return c.RemoveFromGroup(cx, a[0], a[1:])
			},
			func(a []string) string { return fmt.Sprintf("Removed %s from %q.", strings.Join(a[1:], ", "), a[0]) }),
		actionCmd(g, "rename NAME NEWNAME", "Rename a group", cobra.ExactArgs(2),
			func(cx context.Context, c *client.Client, a []string) error { return c.RenameGroup(cx, a[0], a[1]) },
			func(a []string) string { return fmt.Sprintf("Renamed %q to %q.", a[0], a[1]) }),
		actionCmd(g, "delete NAME", "Delete a group (its members stay your friends)", cobra.ExactArgs(1),
			func(cx context.Context, c *client.Client, a []string) error { return c.DeleteGroup(cx, a[0]) },
			func(a []string) string { return fmt.Sprintf("Deleted group %q.", a[0]) }),
	)
	return c
}

func groupsCmd(g *globals) *cobra.Command {
	return listCmd(g, "groups [--json]", "List your groups", "No groups yet. Make one: kith group create NAME, then kith group add NAME FRIEND...",
		(*client.Client).Groups, []string{"GROUP", "SIZE", "MEMBERS"},
		func(gr node.GroupView) [][]string {
			var names []string
			for _, m := range gr.Members {
				names = append(names, m.Name)
			}
			return [][]string{{gr.Name, fmt.Sprint(len(gr.Members)), orDash(strings.Join(names, ", "))}}
		})
}
