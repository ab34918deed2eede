package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/client"
)

func inviteCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "invite", Short: "Make, list and revoke invites (kith id shows your general one)"}
	var b node.InviteBody
	var qr string
	create := &cobra.Command{
		Use:   "create [--label TEXT] [--expires 14d] [--uses N] [--pack GROUP [--accept]] [--qr FILE.png] [--json]",
		Short: "Make an invite: for a number of people, for a while, with a label; or a welcome pack",
		Long: `Make an invite: for a number of people, for a while, with a label to know it by.
With --pack GROUP it is a welcome pack: whoever it befriends is shared the group at
once (each member as any share checks them: those who say nobody are left out,
those who ask first are asked); with --accept too, their request is accepted
on its own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDaemon(g, func(cx context.Context, cl *client.Client) error {
				v, err := cl.MakeInvite(cx, b)
				if err != nil {
					return err
				}
				if qr != "" {
					if err := qrcode.WriteFile(v.Link, qrcode.Medium, 320, qr); err != nil {
						return fmt.Errorf("writing the QR code: %w", err)
					}
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				kind := "Invite"
				if v.Pack != "" {
					kind = "Welcome pack (" + v.Pack + ")"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s%s: %s, until %s.\n%s\n", kind, shortHex(v.Token), labelled(v.Label),
					usesWords(v), v.ExpiresAt.Local().Format("2 Jan 2006 15:04"), v.Link)
				if qr != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "QR code: %s\n", qr)
				}
				return nil
			})
		},
	}
	create.Flags().StringVar(&b.Label, "label", "", "a few words to know the invite by (say, where you posted it)")
	create.Flags().StringVar(&b.Expires, "expires", "", "how long it lasts: days (14d, the default) or hours and minutes (12h)")
	create.Flags().IntVar(&b.Uses, "uses", 0, "how many people may use it (0: any number)")
	create.Flags().StringVar(&qr, "qr", "", "also write the invite as a QR code to this PNG file")
	create.Flags().StringVar(&b.Pack, "pack", "", "a welcome pack: share this group with whoever the invite befriends")
	create.Flags().BoolVar(&b.AutoAccept, "accept", false, "with --pack: accept their request on its own")
	jsonFlag(create, g)

	list := listCmd(g, "list [--json]", "List your invites, newest first", "No invites yet: kith id makes your general one, kith invite create others.",
		(*client.Client).Invites, []string{"TOKEN", "LABEL", "STATE", "USES", "EXPIRES"},
		func(v node.InviteView) [][]string {
			label := v.Label
			if v.General {
				label = "(general: kith id)"
			}
			return [][]string{{shortHex(v.Token), orDash(label), v.State, usesColumn(v), v.ExpiresAt.Local().Format("2 Jan 2006 15:04")}}
		})
	revoke := actionCmd(g, "revoke TOKEN|LABEL", "Revoke an invite: requests resting on it are refused from now on", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error {
			_, err := c.RevokeInvite(cx, a[0])
			return err
		},
		func(a []string) string {
			return fmt.Sprintf("Revoked invite %s: requests made with it are refused.", a[0])
		})
	c.AddCommand(create, list, revoke)
	return c
}

func labelled(label string) string {
	if label == "" {
		return ""
	}
	return " (" + label + ")"
}

func usesWords(v node.InviteView) string {
	if v.MaxUses == 0 {
		return "for anyone who has it"
	}
	if v.MaxUses == 1 {
		return "for one person"
	}
	return "for " + strconv.Itoa(v.MaxUses) + " people"
}

func usesColumn(v node.InviteView) string {
	if v.MaxUses == 0 {
		return strconv.Itoa(v.Uses)
	}
	return fmt.Sprintf("%d of %d", v.Uses, v.MaxUses)
}
