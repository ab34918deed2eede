package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

func idCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "id [--json]",
		Short: "Show your id, name and invite link",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			v, err := cl.ID(cx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), v)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Name:   %s\nID:     %s\nInvite: %s\n", v.Name, v.ID, v.Invite)
			return nil
		},
	}
	jsonFlag(c, g)
	return c
}

func addCmd(g *globals) *cobra.Command {
	var message string
	c := &cobra.Command{
		Use:   "add INVITE [--message TEXT]",
		Short: "Send a friend request to the person who gave you an invite",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			v, err := cl.Add(cx, args[0], message)
			if err != nil {
				return err
			}
			how := map[string]string{"direct": "delivered directly", "relay": "sent through the rendezvous node", "queued": "queued until a rendezvous node is reachable"}[v.Sent]
			fmt.Fprintf(cmd.OutOrStdout(), "Friend request to %s %s (request %s).\n", v.Name, orDash(how), shortHex(v.ID))
			return nil
		},
	}
	c.Flags().StringVar(&message, "message", "", "a few words to go with the request")
	return c
}

func requestsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "requests [--json]",
		Short: "List friend requests, in and out",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			rs, err := cl.Requests(cx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), rs)
			}
			var rows [][]string
			for _, r := range rs {
				rows = append(rows, []string{shortHex(r.ID), r.Direction, r.Name, r.State, orDash(r.Provenance), orDash(r.Message)})
			}
			table(cmd.OutOrStdout(), []string{"ID", "DIR", "NAME", "STATE", "HOW", "MESSAGE"}, rows)
			return nil
		},
	}
	jsonFlag(c, g)
	return c
}

func acceptCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "accept ID",
		Short: "Accept a friend request (ID or a unique prefix)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			if err := cl.Accept(cx, args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Accepted: you are now friends.")
			return nil
		},
	}
}

func declineCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "decline ID",
		Short: "Decline a friend request (they are not told)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			if err := cl.Decline(cx, args[0]); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Declined. The sender is not told.")
			return nil
		},
	}
}

func friendsCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "friends [--json]",
		Short: "List your friends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			fs, err := cl.Friends(cx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), fs)
			}
			var rows [][]string
			for _, f := range fs {
				online := "offline"
				if f.Online {
					online = "online"
				}
				rows = append(rows, []string{f.Name, short(f.ID), orDash(strings.Join(f.Groups, ",")), online, orDash(f.IntroducedByName)})
			}
			table(cmd.OutOrStdout(), []string{"NAME", "ID", "GROUPS", "ONLINE", "INTRODUCED BY"}, rows)
			return nil
		},
	}
	jsonFlag(c, g)
	return c
}

func unfriendCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "unfriend PEER",
		Short: "End a friendship (a signed revocation goes to the relays)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			if err := cl.Unfriend(cx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "You are no longer friends with %s.\n", args[0])
			return nil
		},
	}
}

func blockCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "block PEER",
		Short: "Drop everything from a peer from now on",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			if err := cl.Block(cx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Blocked %s.\n", args[0])
			return nil
		},
	}
}
