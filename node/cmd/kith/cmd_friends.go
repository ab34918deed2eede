package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/client"
)

func idCmd(g *globals) *cobra.Command {
	c := &cobra.Command{
		Use:   "id [--json]",
		Short: "Show your id, name and invite link",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDaemon(g, func(cx context.Context, cl *client.Client) error {
				v, err := cl.ID(cx)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "Name:   %s\nID:     %s\nInvite: %s\n", v.Name, v.ID, v.Invite)
				return nil
			})
		},
	}
	jsonFlag(c, g)
	return c
}

func addCmd(g *globals) *cobra.Command {
	var message string
	c := &cobra.Command{
		Use:   "add INVITE [--message TEXT] [--json]",
		Short: "Send a friend request to the person who gave you an invite",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withDaemon(g, func(cx context.Context, cl *client.Client) error {
				v, err := cl.Add(cx, args[0], message)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				how := map[string]string{"direct": "delivered directly", "circuit": "delivered to their node", "relay": "sent through the rendezvous node", "queued": "queued until a rendezvous node is reachable"}[v.Sent]
				fmt.Fprintf(cmd.OutOrStdout(), "Friend request to %s %s (request %s).\n", v.Name, orDash(how), shortHex(v.ID))
				if v.Pack != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "It is %s's welcome pack %q (%d people): they follow in a share once %s accepts.\n", v.Name, v.Pack, v.PackSize, v.Name)
				}
				return nil
			})
		},
	}
	c.Flags().StringVar(&message, "message", "", "a few words to go with the request")
	jsonFlag(c, g)
	return c
}

func requestsCmd(g *globals) *cobra.Command {
	return listCmd(g, "requests [--json]", "List friend requests, in and out", "No friend requests yet. Give your invite (kith id) to someone, or pick friends from a share (kith shares).",
		(*client.Client).Requests, []string{"ID", "DIR", "NAME", "STATE", "HOW", "MESSAGE"},
		func(r node.RequestView) [][]string {
			return [][]string{{shortHex(r.ID), r.Direction, r.Name, r.State, orDash(r.Provenance), orDash(r.Message)}}
		})
}

func acceptCmd(g *globals) *cobra.Command {
	return actionCmd(g, "accept ID", "Accept a friend request (ID or a unique prefix; a declined one too, while it is valid)", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error { return c.Accept(cx, a[0]) },
		func([]string) string { return "Accepted: you are now friends." })
}

func cancelCmd(g *globals) *cobra.Command {
	return actionCmd(g, "cancel ID", "Take back a friend request you sent (withdrawn at the relays and at their node)", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error { return c.CancelRequest(cx, a[0]) },
		func([]string) string { return "Cancelled: the request is withdrawn." })
}

func declineCmd(g *globals) *cobra.Command {
	return actionCmd(g, "decline ID", "Decline a friend request (they are not told)", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error { return c.Decline(cx, a[0]) },
		func([]string) string { return "Declined. The sender is not told." })
}

func friendsCmd(g *globals) *cobra.Command {
	return listCmd(g, "friends [--json]", "List your friends", "No friends yet. Give your invite link (kith id) to someone, or add theirs: kith add INVITE.",
		(*client.Client).Friends, []string{"NAME", "ID", "GROUPS", "ONLINE", "INTRODUCED BY"},
		func(f node.FriendView) [][]string {
			online := "offline"
			if f.Online {
				online = "online"
			}
			return [][]string{{f.Name, short(f.ID), orDash(strings.Join(f.Groups, ",")), online, orDash(f.IntroducedByName)}}
		})
}

func unfriendCmd(g *globals) *cobra.Command {
	return actionCmd(g, "unfriend PEER", "End a friendship (a signed revocation goes to the relays)", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error { return c.Unfriend(cx, a[0]) },
		func(a []string) string { return fmt.Sprintf("You are no longer friends with %s.", a[0]) })
}

func blockCmd(g *globals) *cobra.Command {
	var yes bool
	c := actionCmd(g, "block PEER [--yes]", "Drop everything from a peer from now on (a friend is unfriended: say --yes)", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error {
			err := c.Block(cx, a[0], yes)
			var ae *client.APIError
			if errors.As(err, &ae) && ae.Code == node.CodeNeedsConfirm {
				return &client.APIError{Status: ae.Status, Code: ae.Code, Message: ae.Message + ": kith block " + a[0] + " --yes"}
			}
			return err
		},
		func(a []string) string {
			if yes {
				return fmt.Sprintf("Blocked %s (no longer friends).", a[0])
			}
			return fmt.Sprintf("Blocked %s.", a[0])
		})
	c.Flags().BoolVarP(&yes, "yes", "y", false, "block a friend too, ending the friendship")
	return c
}

func unblockCmd(g *globals) *cobra.Command {
	return actionCmd(g, "unblock PEER", "Let a blocked peer reach you again", cobra.ExactArgs(1),
		func(cx context.Context, c *client.Client, a []string) error { return c.Unblock(cx, a[0]) },
		func(a []string) string { return fmt.Sprintf("Unblocked %s.", a[0]) })
}

func blockedCmd(g *globals) *cobra.Command {
	return listCmd(g, "blocked [--json]", "List the peers you blocked", "Nobody is blocked.",
		(*client.Client).Blocked, []string{"NAME", "ID"},
		func(b node.BlockedView) [][]string { return [][]string{{orDash(b.Name), b.ID}} })
}

func settingsCmd(g *globals) *cobra.Command {
	var name, sharing string
	c := &cobra.Command{
		Use:   "settings [--name NAME] [--sharing friends|ask|nobody] [--json]",
		Short: "Show or change your name and who may share you with others",
		Long: `Show or change what your signed profile says: your display name, and who may
share you with others: any friend (friends, the default), any friend once you
agreed to each share (ask: kith consents lists what friends ask), or nobody. A
change is signed into a newer profile that your rendezvous nodes get at once:
they refuse shares naming you from then on against it, and your friends' nodes
learn your new name and choice from them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withDaemon(g, func(cx context.Context, cl *client.Client) error {
				var b node.SettingsBody
				if cmd.Flags().Changed("name") {
					b.Name = &name
				}
				if cmd.Flags().Changed("sharing") {
					b.Sharing = &sharing
				}
				var v node.SettingsView
				var err error
				if b.Name == nil && b.Sharing == nil {
					v, err = cl.Settings(cx)
				} else {
					v, err = cl.UpdateSettings(cx, b)
				}
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), v)
				}
				who := map[string]string{"friends": "any of your friends", "ask": "a friend, once you agreed (kith consents)", "nobody": "nobody (shares naming you are refused)"}[v.Sharing]
				fmt.Fprintf(cmd.OutOrStdout(), "Name:          %s\nWho may share: %s\nProfile:       version %d\n", v.Name, orDash(who), v.Seq)
				return nil
			})
		},
	}
	c.Flags().StringVar(&name, "name", "", "your display name, as friends see it")
	c.Flags().StringVar(&sharing, "sharing", "", "who may share you with others: friends, ask (ask me first) or nobody")
	jsonFlag(c, g)
	return c
}

func pingCmd(g *globals) *cobra.Command {
	var count int
	c := &cobra.Command{
		Use:   "ping PEER [--count N] [--json]",
		Short: "Reach a friend's node on fresh connections: direct, relayed, or made direct by hole punching",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cl, err := clientOf(g)
			if err != nil {
				return err
			}
			// A try that stays relayed waits for libp2p's hole punch to end.
			cx, cancel := context.WithTimeout(context.Background(), time.Duration(count)*45*time.Second+30*time.Second)
			defer cancel()
			return func(cx context.Context, cl *client.Client) error {
				res, err := cl.Ping(cx, args[0], count)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(cmd.OutOrStdout(), res)
				}
				for _, p := range res {
					switch {
					case p.Error != "":
						fmt.Fprintf(cmd.OutOrStdout(), "%d: %s\n", p.Try, p.Error)
					case p.Punched:
						fmt.Fprintf(cmd.OutOrStdout(), "%d: direct, hole punched after %.0f ms through the relayed connection; round trip %.1f ms\n", p.Try, p.DirectAfterMS, p.RTTMS)
					case p.Path == "circuit":
						fmt.Fprintf(cmd.OutOrStdout(), "%d: relayed by the rendezvous node (the NATs let no hole punch through); round trip %.1f ms\n", p.Try, p.RTTMS)
					default:
						fmt.Fprintf(cmd.OutOrStdout(), "%d: direct; round trip %.1f ms\n", p.Try, p.RTTMS)
					}
				}
				return nil
			}(cx, cl)
		},
	}
	c.Flags().IntVar(&count, "count", 1, "how many fresh connections to try")
	jsonFlag(c, g)
	return c
}

func consentsCmd(g *globals) *cobra.Command {
	return listCmd(g, "consents [--json]", "List what friends ask before sharing you, and what you asked", "Nobody asked. With kith settings --sharing ask, friends ask you before they share you.",
		(*client.Client).Consents, []string{"ID", "DIR", "FRIEND", "WITH", "STATE"},
		func(a node.AskView) [][]string {
			return [][]string{{shortHex(a.ID), a.Direction, a.Name, a.TargetName, a.State}}
		})
}

func consentCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "consent", Short: "Answer a friend who asks to share you"}
	c.AddCommand(
		actionCmd(g, "approve ID", "Let the friend share you with the one person they named", cobra.ExactArgs(1),
			func(cx context.Context, c *client.Client, a []string) error {
				_, err := c.AnswerConsent(cx, a[0], true)
				return err
			},
			func([]string) string { return "Approved: your friend may share you with that person, and nobody else." }),
		actionCmd(g, "refuse ID", "Say no: you are not shared", cobra.ExactArgs(1),
			func(cx context.Context, c *client.Client, a []string) error {
				_, err := c.AnswerConsent(cx, a[0], false)
				return err
			},
			func([]string) string { return "Refused: you are not shared." }),
	)
	return c
}
