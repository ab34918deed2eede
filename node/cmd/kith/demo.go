package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/spf13/cobra"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/node/daemon"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/rendezvous"
)

func demoCmd(g *globals) *cobra.Command {
	var once bool
	var dir string
	c := &cobra.Command{
		Use:   "demo [--once] [--dir DIR]",
		Short: "Start a relay and six users on loopback and play the whole story",
		Long: `demo starts a rendezvous node and six users (Alice, Bob, Carol, Dave, Erin,
Frank) on loopback in this one process, and plays the patent's story step by
step: friendships, a group, Bob offline while Alice shares it with him, the
share stored and delivered when Bob logs in, Bob picking everyone, one friend
offline who gets the request later, one who declines.

With --once it exits when the story is told; otherwise the network keeps
running so that you can drive any of the six with the kith CLI.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				d, err := os.MkdirTemp("", "kith-demo-")
				if err != nil {
					return err
				}
				dir = d
				if once {
					defer os.RemoveAll(d)
				}
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			d := &demo{out: cmd.OutOrStdout(), dir: dir, daemons: map[string]*daemon.Daemon{}, ids: map[string]peer.ID{}}
			defer d.close()
			if err := d.run(ctx); err != nil {
				return fmt.Errorf("demo: %w", err)
			}
			if once {
				return nil
			}
			d.say("The network keeps running. Drive any user with the CLI, for example:")
			for _, name := range []string{"alice", "bob"} {
				fmt.Fprintf(d.out, "    kith --data %s friends\n", filepath.Join(dir, name))
			}
			fmt.Fprintf(d.out, "    kith --data %s requests\n", filepath.Join(dir, "erin"))
			d.say("Web UIs: ")
			for _, name := range demoCast {
				if dm := d.daemons[name]; dm != nil {
					fmt.Fprintf(d.out, "    %-6s %s\n", name, dm.LoginURL())
				}
			}
			d.say("Press Ctrl-C to stop.")
			<-ctx.Done()
			return nil
		},
	}
	c.Flags().BoolVar(&once, "once", false, "exit when the story is told")
	c.Flags().StringVar(&dir, "dir", "", "directory for the users' data (default: a new temporary directory)")
	return c
}

var demoCast = []string{"Alice", "Bob", "Carol", "Dave", "Erin", "Frank"}

type demo struct {
	out     io.Writer
	dir     string
	relay   *rendezvous.Daemon
	raddr   string
	daemons map[string]*daemon.Daemon
	ids     map[string]peer.ID
	step    int
}

func (d *demo) say(format string, args ...any) { fmt.Fprintf(d.out, format+"\n", args...) }

func (d *demo) stepf(format string, args ...any) {
	d.step++
	fmt.Fprintf(d.out, "\n%d. %s\n", d.step, fmt.Sprintf(format, args...))
}

func (d *demo) n(name string) *node.Node { return d.daemons[name].Node }

func (d *demo) close() {
	for _, dm := range d.daemons {
		dm.Close()
	}
	if d.relay != nil {
		d.relay.Close()
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func (d *demo) up(ctx context.Context, name string) error {
	dm, err := daemon.Up(ctx, daemon.UpOptions{
		DataDir: filepath.Join(d.dir, strings.ToLower(name)), Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		API: "127.0.0.1:0", Logger: quiet,
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	d.daemons[name] = dm
	d.ids[name] = dm.Node.ID()
	return wait(ctx, name+" logging in", dm.Node.LoggedIn)
}

func (d *demo) down(name string) {
	d.daemons[name].Close()
	delete(d.daemons, name)
}

// wait polls cond for up to 20 seconds.
func wait(ctx context.Context, what string, cond func() bool) error {
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out waiting for %s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func (d *demo) incoming(name, from string) (node.RequestView, bool) {
	for _, r := range d.n(name).Requests() {
		if r.Direction == "in" && r.Name == from && r.State == "pending" {
			return r, true
		}
	}
	return node.RequestView{}, false
}

func (d *demo) isFriend(name, other string) bool {
	for _, f := range d.n(name).Friends(context.Background()) {
		if f.Name == other {
			return true
		}
	}
	return false
}

func (d *demo) run(ctx context.Context) error {
	var err error
	d.stepf("A rendezvous node starts on loopback.")
	d.relay, err = rendezvous.OpenDaemon(ctx, rendezvous.DaemonOptions{
		DataDir: filepath.Join(d.dir, "relay"), Listen: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		Config: rendezvous.DefaultConfig(), Logger: quiet,
	})
	if err != nil {
		return err
	}
	d.raddr = d.relay.Addrs()[0].String()
	d.say("   It listens at %s", d.raddr)
	d.say("   It holds nobody's friend list: it checks signatures, relays, and keeps mail for whoever is offline.")

	d.stepf("Six people create their identities (an Ed25519 key each) and start their nodes.")
	for _, name := range demoCast {
		id, err := daemon.Init(filepath.Join(d.dir, strings.ToLower(name)), name, []string{d.raddr})
		if err != nil {
			return err
		}
		if err := d.up(ctx, name); err != nil {
			return err
		}
		d.say("   %-6s %s", name, id)
	}

	d.stepf("Alice gives her invite to Bob, Carol, Dave, Erin and Frank; each sends a request and Alice accepts.")
	inv, err := d.n("Alice").IDView()
	if err != nil {
		return err
	}
	d.say("   Alice's invite: %s…", inv.Invite[:48])
	for _, name := range demoCast[1:] {
		if _, err := d.n(name).AddInvite(ctx, inv.Invite, ""); err != nil {
			return err
		}
		var req node.RequestView
		if err := wait(ctx, "Alice to see "+name+"'s request", func() bool { r, ok := d.incoming("Alice", name); req = r; return ok }); err != nil {
			return err
		}
		if _, err := d.n("Alice").Accept(ctx, req.ID); err != nil {
			return err
		}
		if err := wait(ctx, name+" to hear Alice's answer", func() bool { return d.isFriend(name, "Alice") }); err != nil {
			return err
		}
		d.say("   Alice and %s are friends: one attestation, signed by both.", name)
	}

	d.stepf("Alice puts Carol, Dave and Erin in a group called Work.")
	if err := d.n("Alice").CreateGroup("Work"); err != nil {
		return err
	}
	if err := d.n("Alice").AddToGroup("Work", []string{"Carol", "Dave", "Erin"}); err != nil {
		return err
	}

	d.stepf("Bob goes offline.")
	d.down("Bob")

	d.stepf("Alice ticks the group Work and Frank, and shares them with Bob (patent steps A-C).")
	res, err := d.n("Alice").Share(ctx, node.ShareArgs{To: []string{"Bob"}, Groups: []string{"Work"}, Friends: []string{"Frank"}})
	if err != nil {
		return err
	}
	for _, t := range res.Targets {
		d.say("   The relay checked every friendship and the seal, then for %s: %s (Bob is offline).", t.Name, t.Status)
	}

	d.stepf("A tampered client claims a friendship Alice does not have: the relay refuses it.")
	if err := d.tampered(ctx); err != nil {
		return err
	}

	d.stepf("Bob comes back online and logs in: the share is delivered (patent step 106).")
	if err := d.up(ctx, "Bob"); err != nil {
		return err
	}
	var share node.ShareView
	if err := wait(ctx, "Bob's share", func() bool {
		ss := d.n("Bob").Shares()
		if len(ss) > 0 {
			share = ss[0]
		}
		return len(ss) > 0
	}); err != nil {
		return err
	}
	for _, it := range share.Items {
		group := ""
		if it.Group != "" {
			group = " (from Alice's group " + it.Group + ")"
		}
		d.say("   %s%s: %s", it.Name, group, it.State)
	}

	d.stepf("Dave goes offline. Bob ticks everyone; requests go directly to those online, one combined request through the relay for the rest.")
	d.down("Dave")
	picks, err := d.n("Bob").Pick(ctx, node.PickArgs{Share: share.ID, All: true})
	if err != nil {
		return err
	}
	for _, p := range picks {
		how := map[string]string{"direct": "sent directly to their node", "relay": "stored at the relay", "queued": "queued", "skipped": "skipped"}[p.Sent]
		d.say("   %-6s %s", p.Name, how)
	}

	d.stepf("Carol and Frank see who made the introduction, verified with Alice's key, and accept; Erin declines.")
	for _, name := range []string{"Carol", "Frank", "Erin"} {
		var req node.RequestView
		if err := wait(ctx, name+"'s request", func() bool { r, ok := d.incoming(name, "Bob"); req = r; return ok }); err != nil {
			return err
		}
		d.say("   %s sees: %q", name, req.Provenance)
		if name == "Erin" {
			if err := d.n(name).Decline(req.ID); err != nil {
				return err
			}
			d.say("   Erin declines. Bob is never told.")
			continue
		}
		if _, err := d.n(name).Accept(ctx, req.ID); err != nil {
			return err
		}
		d.say("   %s accepts.", name)
	}

	d.stepf("Dave comes back online, finds Bob's request waiting, and accepts.")
	if err := d.up(ctx, "Dave"); err != nil {
		return err
	}
	var req node.RequestView
	if err := wait(ctx, "Dave's request", func() bool { r, ok := d.incoming("Dave", "Bob"); req = r; return ok }); err != nil {
		return err
	}
	d.say("   Dave sees: %q", req.Provenance)
	if _, err := d.n("Dave").Accept(ctx, req.ID); err != nil {
		return err
	}

	if err := wait(ctx, "Bob's new friends", func() bool {
		return d.isFriend("Bob", "Carol") && d.isFriend("Bob", "Dave") && d.isFriend("Bob", "Frank")
	}); err != nil {
		return err
	}

	d.stepf("Alice and Bob both share Carol with Dave; Dave picks her from both shares: one request carries both introductions.")
	for _, sharer := range []string{"Alice", "Bob"} {
		if _, err := d.n(sharer).Share(ctx, node.ShareArgs{To: []string{"Dave"}, Friends: []string{"Carol"}}); err != nil {
			return err
		}
	}
	var fromAlice, fromBob string
	if err := wait(ctx, "Dave's two shares", func() bool {
		for _, s := range d.n("Dave").Shares() {
			for _, it := range s.Items {
				if it.Name == "Carol" && s.FromName == "Alice" {
					fromAlice = s.ID
				}
				if it.Name == "Carol" && s.FromName == "Bob" {
					fromBob = s.ID
				}
			}
		}
		return fromAlice != "" && fromBob != ""
	}); err != nil {
		return err
	}
	for _, sid := range []string{fromAlice, fromBob} {
		picks, err := d.n("Dave").Pick(ctx, node.PickArgs{Share: sid, Peers: []string{"Carol"}})
		if err != nil {
			return err
		}
		if len(picks) == 1 && picks[0].Merged {
			d.say("   The second pick adds Bob's introduction to Dave's pending request.")
		}
	}
	if err := wait(ctx, "Carol's request from Dave", func() bool { r, ok := d.incoming("Carol", "Dave"); req = r; return ok && len(r.Introducers) == 2 }); err != nil {
		return err
	}
	d.say("   Carol sees: %q", req.Provenance)
	if _, err := d.n("Carol").Accept(ctx, req.ID); err != nil {
		return err
	}

	d.stepf("Frank says nobody may share him. Alice tries to share him with Erin: refused, and Erin learns nothing.")
	nobody := "nobody"
	if _, err := d.n("Frank").UpdateSettings(node.SettingsBody{Sharing: &nobody}); err != nil {
		return err
	}
	res, err = d.n("Alice").Share(ctx, node.ShareArgs{To: []string{"Erin"}, Friends: []string{"Frank"}})
	if err == nil || res == nil || len(res.Failed) == 0 {
		return fmt.Errorf("a share of Frank went through after he said nobody may share him (%v)", err)
	}
	d.say("   Alice is told: %s", res.Failed[0].Reason)

	d.stepf("Grace joins the team. Alice makes a welcome pack of Work; Grace redeems its one link: befriended and shared the group at once.")
	pack, err := d.n("Alice").MakeInvite(node.InviteBody{Pack: "Work", AutoAccept: true, Uses: 1})
	if err != nil {
		return err
	}
	if _, err := daemon.Init(filepath.Join(d.dir, "grace"), "Grace", []string{d.raddr}); err != nil {
		return err
	}
	if err := d.up(ctx, "Grace"); err != nil {
		return err
	}
	greq, err := d.n("Grace").AddInvite(ctx, pack.Link, "")
	if err != nil {
		return err
	}
	d.say("   Grace's node reads the link: %s's welcome pack %q (%d people).", greq.Name, greq.Pack, greq.PackSize)
	var welcome node.ShareView
	if err := wait(ctx, "Grace's welcome", func() bool {
		for _, s := range d.n("Grace").Shares() {
			if s.Pack != "" {
				welcome = s
				return true
			}
		}
		return false
	}); err != nil {
		return err
	}
	var names []string
	for _, it := range welcome.Items {
		names = append(names, it.Name)
	}
	d.say("   Grace's inbox: Alice welcomed you with %q: %s.", welcome.Pack, strings.Join(names, ", "))
	gp, err := d.n("Grace").Pick(ctx, node.PickArgs{Share: welcome.ID, All: true})
	if err != nil {
		return err
	}
	d.say("   She adds all: %d requests, each introduced by Alice with proof.", len(gp))

	d.stepf("Everyone's friends now:")
	if err := wait(ctx, "Dave and Carol", func() bool { return d.isFriend("Dave", "Carol") }); err != nil {
		return err
	}
	for _, name := range demoCast {
		var names []string
		for _, f := range d.n(name).Friends(ctx) {
			s := f.Name
			if f.IntroducedByName != "" {
				s += " (via " + f.IntroducedByName + ")"
			}
			names = append(names, s)
		}
		d.say("   %-6s %s", name, strings.Join(names, ", "))
	}
	d.say("\nThe story is told: Bob has three new friends, each introduced by Alice with proof, and Erin's decline stayed private;")
	d.say("Dave and Carol were introduced by two friends at once, and Frank's choice not to be shared held.")
	return nil
}

// tampered plays a client that lies: it seals a share naming Mallory as
// Alice's friend with a forged attestation, and sends it to the relay.
func (d *demo) tampered(ctx context.Context) error {
	key, err := identity.LoadKey(filepath.Join(d.dir, "alice", "key"), nil)
	if err != nil {
		return err
	}
	mk, _ := identity.GenerateKey()
	mallory, _ := peer.IDFromPrivateKey(mk)
	forged, _ := identity.MakeOffer(mk, d.ids["Alice"], time.Now(), 0) // only Mallory signed it
	var bobAtt []byte
	for _, f := range d.n("Alice").Friends(ctx) {
		if f.Name == "Bob" {
			bobAtt = friendAttestation(d, "Alice", peer.ID(d.ids["Bob"]))
		}
	}
	s, err := protocols.BuildShare(key, protocols.ShareSpec{
		CreatedAt: time.Now(),
		Targets:   []protocols.ShareTarget{{Peer: d.ids["Bob"], Attestation: bobAtt}},
		Items:     []protocols.ShareItem{{Peer: mallory, Attestation: forged}},
	})
	if err != nil {
		return err
	}
	h := d.n("Alice").Host()
	relay := d.relay.Host.ID()
	_, err = client.Share(ctx, h, relay, s.Raw)
	if err == nil {
		return fmt.Errorf("the relay accepted a forged friendship")
	}
	d.say("   The relay answers: %v", err)
	return nil
}

// friendAttestation reads a friend's attestation from the book through
// the node's datastore-backed view.
func friendAttestation(d *demo, name string, p peer.ID) []byte {
	return d.n(name).FriendAttestation(p)
}
