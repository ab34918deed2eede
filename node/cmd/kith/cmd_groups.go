package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func groupCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "group", Short: "Create and edit groups of friends"}
	run := func(f func(args []string) error, done func(args []string) string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			if err := f(args); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), done(args))
			return nil
		}
	}
	c.AddCommand(
		&cobra.Command{Use: "create NAME", Short: "Create a group", Args: cobra.ExactArgs(1),
			RunE: run(func(a []string) error {
				c, err := clientOf(g)
				if err != nil {
					return err
				}
				cx, cancel := ctx()
				defer cancel()
				return c.CreateGroup(cx, a[0])
			}, func(a []string) string { return fmt.Sprintf("Created group %q.", a[0]) })},
		&cobra.Command{Use: "add NAME PEER...", Short: "Add friends to a group", Args: cobra.MinimumNArgs(2),
			RunE: run(func(a []string) error {
				c, err := clientOf(g)
				if err != nil {
					return err
				}
				cx, cancel := ctx()
				defer cancel()
				return c.AddToGroup(cx, a[0], a[1:])
			}, func(a []string) string { return fmt.Sprintf("Added %s to %q.", strings.Join(a[1:], ", "), a[0]) })},
		&cobra.Command{Use: "remove NAME PEER...", Short: "Remove friends from a group", Args: cobra.MinimumNArgs(2),
			RunE: run(func(a []string) error {
				c, err := clientOf(g)
				if err != nil {
					return err
				}
				cx, cancel := ctx()
				defer cancel()
				return c.RemoveFromGroup(cx, a[0], a[1:])
			}, func(a []string) string { return fmt.Sprintf("Removed %s from %q.", strings.Join(a[1:], ", "), a[0]) })},
		&cobra.Command{Use: "rename NAME NEWNAME", Short: "Rename a group", Args: cobra.ExactArgs(2),
			RunE: run(func(a []string) error {
				c, err := clientOf(g)
				if err != nil {
					return err
				}
				cx, cancel := ctx()
				defer cancel()
				return c.RenameGroup(cx, a[0], a[1])
			}, func(a []string) string { return fmt.Sprintf("Renamed %q to %q.", a[0], a[1]) })},
		&cobra.Command{Use: "delete NAME", Short: "Delete a group (its members stay your friends)", Args: cobra.ExactArgs(1),
			RunE: run(func(a []string) error {
				c, err := clientOf(g)
				if err != nil {
					return err
				}
				cx, cancel := ctx()
				defer cancel()
				return c.DeleteGroup(cx, a[0])
			}, func(a []string) string { return fmt.Sprintf("Deleted group %q.", a[0]) })},
	)
	return c
}

func groupsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "groups [--json]",
		Short: "List your groups",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			gs, err := cl.Groups(cx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), gs)
			}
			var rows [][]string
			for _, gr := range gs {
				var names []string
				for _, m := range gr.Members {
					names = append(names, m.Name)
				}
				rows = append(rows, []string{gr.Name, fmt.Sprint(len(gr.Members)), orDash(strings.Join(names, ", "))})
			}
			table(cmd.OutOrStdout(), []string{"GROUP", "SIZE", "MEMBERS"}, rows)
			return nil
		},
	}
	jsonFlag(c, g)
	return c
}
