package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/client"
)

func splitList(vs []string) []string {
	var out []string
	for _, v := range vs {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func shareCmd(g *globals) *cobra.Command {
	var to, friends, groups []string
	var a node.ShareArgs
	c := &cobra.Command{
		Use:   "share --to PEER[,PEER...] [--friend PEER]... [--group NAME]... [--partial] [--json]",
		Short: "Share friends and groups with one or more friends",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			a.To, a.Friends, a.Groups = splitList(to), splitList(friends), groups
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			res, err := cl.Share(cx, a)
			out := cmd.OutOrStdout()
			var ae *client.APIError
			answered := errors.As(err, &ae) && (res.Share != "" || len(res.Failed) > 0)
			if err != nil && !answered {
				return err
			}
			if g.json {
				if res.Share == "" && len(res.Asked) == 0 {
					return err // {error, code, result}: the result names each failure
				}
				return printJSON(out, res) // sent, to some targets if --partial, or asked
			}
			for _, t := range res.Targets {
				fmt.Fprintf(out, "%s: %s\n", t.Name, t.Status)
			}
			for _, f := range res.Failed {
				fmt.Fprintf(out, "failed: %s (%s): %s\n", f.Name, f.Peer, f.Reason)
			}
			for _, a := range res.Asked {
				fmt.Fprintf(out, "asked first: %s, whether you may share them with %s (they follow in a share of their own if they agree)\n", a.Name, a.TargetName)
			}
			if res.Share == "" {
				if len(res.Asked) > 0 {
					return nil
				}
				return fmt.Errorf("the share was not sent")
			}
			fmt.Fprintf(out, "Share %s sent.\n", res.Share)
			return nil
		},
	}
	c.Flags().StringArrayVar(&to, "to", nil, "friend(s) to share with, comma separated or repeated")
	c.Flags().StringArrayVar(&friends, "friend", nil, "friend to share (repeatable)")
	c.Flags().StringArrayVar(&groups, "group", nil, "group to share, every member (repeatable)")
	c.Flags().BoolVar(&a.Partial, "partial", false, "send the valid friends even if some fail the check (default: all or nothing)")
	c.Flags().StringVar(&a.Note, "note", "", "a few words to go with the share")
	jsonFlag(c, g)
	return c
}

func sharesCmd(g *globals) *cobra.Command {
	var all bool
	c := listCmd(g, "shares [--all] [--json]", "List the shares friends sent you (--all: the dismissed ones too)", "No shares yet. When a friend shares friends with you, they appear here.",
		func(c *client.Client, cx context.Context) ([]node.ShareView, error) {
			if all {
				return c.AllShares(cx)
			}
			return c.Shares(cx)
		}, []string{"SHARE", "FROM", "FRIEND", "GROUP", "STATE"},
		func(s node.ShareView) [][]string {
			var rows [][]string
			for i, it := range s.Items {
				id, from := "", ""
				if i == 0 {
					id, from = shortHex(s.ID), s.FromName
				}
				state := it.State
				if it.Reason != "" {
					state += " (" + it.Reason + ")"
				}
				rows = append(rows, []string{id, from, it.Name, orDash(it.Group), state})
			}
			if s.Dismissed && len(rows) > 0 {
				rows[0][1] += " (dismissed)"
			}
			return rows
		})
	c.Flags().BoolVar(&all, "all", false, "the dismissed shares too")
	return c
}

func dismissCmd(g *globals) *cobra.Command {
	var undo bool
	c := actionCmd(g, "dismiss SHARE [--undo]", "Put a received share away (kith shares --all still lists it)", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error { return c.DismissShare(cx, a[0], !undo) },
		func(a []string) string {
			if undo {
				return fmt.Sprintf("Share %s is back in your inbox.", a[0])
			}
			return fmt.Sprintf("Dismissed share %s.", a[0])
		})
	c.Flags().BoolVar(&undo, "undo", false, "put it back in the inbox")
	return c
}

func pickCmd(g *globals) *cobra.Command {
	var a node.PickArgs
	c := &cobra.Command{
		Use:   "pick SHARE (PEER... | --all) [--message TEXT] [--json]",
		Short: "Send friend requests to friends from a share",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a.Share, a.Peers = args[0], args[1:]
			if !a.All && len(a.Peers) == 0 {
				return fmt.Errorf("name the friends to add, or --all")
			}
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			cx, cancel := ctx()
			defer cancel()
			res, err := cl.Pick(cx, a)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			var rows [][]string
			for _, p := range res {
				reason := p.Reason
				if p.Merged && reason == "" {
					reason = "this introduction added to your pending request"
				}
				rows = append(rows, []string{p.Name, short(p.Peer), p.Sent, orDash(reason)})
			}
			table(cmd.OutOrStdout(), []string{"NAME", "ID", "SENT", "REASON"}, rows)
			return nil
		},
	}
	c.Flags().BoolVar(&a.All, "all", false, "pick every friend in the share")
	c.Flags().StringVar(&a.Message, "message", "", "a few words to go with the requests")
	jsonFlag(c, g)
	return c
}
