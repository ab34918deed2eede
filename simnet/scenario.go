package simnet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/node"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"
)

// A scenario is a story told as a script (simnet/testdata/*.txt): who is
// on the network, what they do, and what must then be true. Each line is
// a command; `expect` lines are the expected outcomes. Time is virtual.
//
//	relays N                         start N rendezvous nodes (before users)
//	users NAME...                    start users (home relay: index mod N)
//	friends A B...                   A befriends each of B... (invite, request, accept)
//	group A NAME MEMBER...           A makes a group
//	offline NAME / online NAME       a user's node stops / starts again
//	share A -> T[,T...] : ITEM...    A shares friends (ITEM) or groups (group:NAME) with targets
//	share-partial ...                the same, in partial mode
//	expect share T STATUS            the last share's status for target T (delivered, stored, not sent)
//	expect refused NAME REASON...    the last share failed for NAME, with REASON in its words
//	expect inbox B : NAME STATE...   the items of B's newest share, and their states
//	pick B all | pick B NAME...      B picks from its newest share
//	expect pick NAME SENT...         how the last pick sent to NAME (direct, relay, skipped)
//	accept X FROM / decline X FROM   X answers FROM's request
//	expect request X FROM verified INTRODUCER   X holds FROM's request, introduced with proof
//	expect request X FROM none       X holds no request from FROM
//	expect friends X : NAME...       X's friends are exactly these
//	unfriend A B                     A ends the friendship (revocation to the relays)
//	forge-share A -> T : VICTIM      A sends a share claiming a friendship it does not have
//	expect forged refused            the relay refused the forged share
//	restart-relay N                  relay N stops and starts again on the same data
//	stop-relay N / start-relay N     relay N stops, and starts again later, on the same data
//	move NAME N                      NAME's home relay becomes relay N (the node restarts with it)
//	homes NAME N...                  NAME's home relays become these, in order (the node restarts)
//	relays N discover                (as the first line) the relays know only relay 0, and find the rest in the DHT
//	expect relay-peers N COUNT       relay N is connected to COUNT other relays (within 2 min)
//	expect revoked everywhere        every running relay knows the last unfriend (within 1 min)
//	expect shares NAME N             NAME holds N received shares
//	expect waiting N NAME COUNT      COUNT items wait for NAME at relay N
//	wait DURATION                    let virtual time pass
type scenario struct {
	w        *world
	ctx      context.Context
	users    map[string]*user
	order    []string
	lastRes  *node.ShareResult
	lastErr  error
	lastPick []node.PickView
	forgedOK bool
	line     int
	revoked  identity.AttestationID // the friendship the last unfriend ended
}

// RunScript runs a scenario. It must run inside a synctest bubble.
func RunScript(ctx context.Context, r io.Reader) error {
	sc := &scenario{ctx: ctx, users: map[string]*user{}}
	defer func() {
		if sc.w != nil {
			sc.w.close()
		}
	}()
	in := bufio.NewScanner(r)
	for in.Scan() {
		sc.line++
		line := strings.TrimSpace(in.Text())
		if i := strings.Index(line, "#"); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		if err := sc.do(strings.Fields(line)); err != nil {
			return fmt.Errorf("line %d: %s: %w", sc.line, line, err)
		}
	}
	return in.Err()
}

func (sc *scenario) user(name string) (*user, error) {
	u := sc.users[strings.ToLower(name)]
	if u == nil {
		return nil, fmt.Errorf("no user %q", name)
	}
	return u, nil
}

func (sc *scenario) online(name string) (*node.Node, error) {
	u, err := sc.user(name)
	if err != nil {
		return nil, err
	}
	n := u.node()
	if n == nil {
		return nil, fmt.Errorf("%s is offline", name)
	}
	return n, nil
}

// after splits "A -> T1,T2 : X Y" into A, targets and items.
func splitArrow(args []string) (string, []string, []string, error) {
	s := strings.Join(args, " ")
	left, rest, ok := strings.Cut(s, "->")
	if !ok {
		return "", nil, nil, fmt.Errorf("want A -> T : ITEMS")
	}
	targets, items, _ := strings.Cut(rest, ":")
	var ts []string
	for _, t := range strings.Split(targets, ",") {
		if t = strings.TrimSpace(t); t != "" {
			ts = append(ts, t)
		}
	}
	return strings.TrimSpace(left), ts, strings.Fields(strings.ReplaceAll(items, ",", " ")), nil
}

func (sc *scenario) do(f []string) error {
	ctx := sc.ctx
	switch f[0] {
	case "relays":
		var n int
		fmt.Sscan(f[1], &n)
		sc.w = newWorld(Config{Nodes: 2, Relays: n, Seed: 1, NodeLink: Link{Latency: 20 * time.Millisecond, Bandwidth: 20_000_000},
			RelayLink: Link{Latency: 5 * time.Millisecond, Bandwidth: 1_000_000_000}, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Discover: len(f) > 2 && f[2] == "discover"})
		sc.w.nw.Start()
		return sc.w.startRelays(ctx)
	case "users":
		if sc.w == nil {
			return fmt.Errorf("relays first")
		}
		for _, name := range f[1:] {
			k := sc.w.newKey()
			u := &user{idx: len(sc.w.relays) + len(sc.w.users), name: strings.ToUpper(name[:1]) + name[1:], key: k, id: peerOf(k),
				ds: dssync.MutexWrap(ds.NewMapDatastore()), home: len(sc.w.users) % len(sc.w.relays)}
			sc.w.users = append(sc.w.users, u)
			sc.users[strings.ToLower(name)] = u
			sc.order = append(sc.order, name)
			if err := sc.w.up(ctx, u, func(*user, node.Event) {}); err != nil {
				return err
			}
			if err := waitUntil(time.Minute, u.node().LoggedIn); err != nil {
				return fmt.Errorf("%s never logged in", name)
			}
		}
	case "friends":
		a, err := sc.user(f[1])
		if err != nil {
			return err
		}
		s := &sim{ctx: ctx}
		for _, b := range f[2:] {
			ub, err := sc.user(b)
			if err != nil {
				return err
			}
			if err := s.befriendPair(a, ub); err != nil {
				return err
			}
		}
	case "group":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		if err := n.CreateGroup(f[2]); err != nil {
			return err
		}
		return n.AddToGroup(f[2], f[3:])
	case "offline":
		u, err := sc.user(f[1])
		if err != nil {
			return err
		}
		sc.w.down(u)
		time.Sleep(time.Second)
	case "online":
		u, err := sc.user(f[1])
		if err != nil {
			return err
		}
		if err := sc.w.up(ctx, u, func(*user, node.Event) {}); err != nil {
			return err
		}
		return waitUntil(time.Minute, u.node().LoggedIn)
	case "share", "share-partial":
		from, targets, items, err := splitArrow(f[1:])
		if err != nil {
			return err
		}
		n, err := sc.online(from)
		if err != nil {
			return err
		}
		args := node.ShareArgs{To: targets, Partial: f[0] == "share-partial"}
		for _, it := range items {
			if g, ok := strings.CutPrefix(it, "group:"); ok {
				args.Groups = append(args.Groups, g)
			} else {
				args.Friends = append(args.Friends, sc.idOrName(it))
			}
		}
		sc.lastRes, sc.lastErr = n.Share(ctx, args)
	case "pick":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		shares := n.Shares()
		if len(shares) == 0 {
			return fmt.Errorf("%s has no share", f[1])
		}
		args := node.PickArgs{Share: shares[0].ID}
		if len(f) > 2 && f[2] == "all" {
			args.All = true
		} else {
			args.Peers = f[2:]
		}
		sc.lastPick, err = n.Pick(ctx, args)
		return err
	case "accept", "decline":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		var id string
		if err := waitUntil(time.Minute, func() bool { id = findIncoming(n, f[2]); return id != "" }); err != nil {
			return fmt.Errorf("%s has no request from %s", f[1], f[2])
		}
		if f[0] == "accept" {
			_, err = n.Accept(ctx, id)
			return err
		}
		return n.Decline(id)
	case "unfriend":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		other, err := sc.user(f[2])
		if err != nil {
			return err
		}
		if att, err := identity.NewVerifier().Attestation(n.FriendAttestation(other.id), time.Now()); err == nil {
			sc.revoked = att.ID
		}
		return n.Unfriend(ctx, f[2])
	case "homes":
		u, err := sc.user(f[1])
		if err != nil {
			return err
		}
		var homes []int
		for _, a := range f[2:] {
			var i int
			if _, err := fmt.Sscan(a, &i); err != nil || i < 0 || i >= len(sc.w.relays) {
				return fmt.Errorf("no relay %q", a)
			}
			homes = append(homes, i)
		}
		if len(homes) == 0 {
			return fmt.Errorf("want: homes NAME RELAY [RELAY]")
		}
		sc.w.down(u)
		u.mu.Lock()
		u.home, u.homeList = homes[0], homes
		u.mu.Unlock()
		if err := sc.w.up(ctx, u, func(*user, node.Event) {}); err != nil {
			return err
		}
		return waitUntil(time.Minute, u.node().LoggedIn)
	case "forge-share":
		from, targets, items, err := splitArrow(f[1:])
		if err != nil || len(targets) != 1 || len(items) != 1 {
			return fmt.Errorf("want forge-share A -> T : VICTIM")
		}
		return sc.forge(from, targets[0], items[0])
	case "restart-relay":
		var i int
		fmt.Sscan(f[1], &i)
		rn := sc.w.relays[i]
		sc.w.stopRelay(rn)
		time.Sleep(5 * time.Second)
		return sc.w.startRelay(ctx, rn)
	case "stop-relay", "start-relay":
		var i int
		fmt.Sscan(f[1], &i)
		if i < 0 || i >= len(sc.w.relays) {
			return fmt.Errorf("no relay %d", i)
		}
		if f[0] == "stop-relay" {
			sc.w.stopRelay(sc.w.relays[i])
			return nil
		}
		return sc.w.startRelay(ctx, sc.w.relays[i])
	case "move":
		u, err := sc.user(f[1])
		if err != nil {
			return err
		}
		var i int
		fmt.Sscan(f[2], &i)
		if i < 0 || i >= len(sc.w.relays) {
			return fmt.Errorf("no relay %d", i)
		}
		sc.w.down(u)
		u.home = i
		if err := sc.w.up(ctx, u, func(*user, node.Event) {}); err != nil {
			return err
		}
		return waitUntil(time.Minute, u.node().LoggedIn)
	case "wait":
		d, err := time.ParseDuration(f[1])
		if err != nil {
			return err
		}
		time.Sleep(d)
	case "expect":
		return sc.expect(f[1:])
	default:
		return fmt.Errorf("unknown command %q", f[0])
	}
	return nil
}

func (sc *scenario) idOrName(s string) string {
	if u := sc.users[strings.ToLower(s)]; u != nil {
		return u.id.String()
	}
	return s
}

func findIncoming(n *node.Node, from string) string {
	for _, r := range n.Requests() {
		if r.Direction == "in" && strings.EqualFold(r.Name, from) && r.State == "pending" {
			return r.ID
		}
	}
	return ""
}

func (sc *scenario) forge(from, target, victim string) error {
	a, err := sc.user(from)
	if err != nil {
		return err
	}
	t, err := sc.user(target)
	if err != nil {
		return err
	}
	v, err := sc.user(victim)
	if err != nil {
		return err
	}
	n := a.node()
	forged, _ := identity.MakeOffer(a.key, v.id, time.Now(), 0)
	sh, err := protocols.BuildShare(a.key, protocols.ShareSpec{CreatedAt: time.Now(),
		Targets: []protocols.ShareTarget{{Peer: t.id, Attestation: n.FriendAttestation(t.id)}},
		Items:   []protocols.ShareItem{{Peer: v.id, Attestation: forged}}})
	if err != nil {
		return err
	}
	resp, err := client.Share(sc.ctx, n.Host(), sc.w.relays[t.home].addrInfo().ID, sh.Raw)
	sc.forgedOK = err == nil && resp.Status == pb.Status_OK
	return nil
}

// expect checks one expected outcome, waiting up to a minute of virtual
// time for it to become true.
func (sc *scenario) expect(f []string) error {
	if len(f) == 0 {
		return fmt.Errorf("expect what?")
	}
	var last error
	check := func() bool { last = sc.check(f); return last == nil }
	if waitUntil(time.Minute, check) != nil {
		return last
	}
	return nil
}

func (sc *scenario) check(f []string) error {
	switch f[0] {
	case "shares":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		var want int
		fmt.Sscan(f[2], &want)
		if got := n.Shares(); len(got) != want {
			var what []string
			for _, s := range got {
				var items []string
				for _, it := range s.Items {
					items = append(items, it.Name)
				}
				what = append(what, fmt.Sprintf("%s from %s: %s", s.ID[:8], s.FromName, strings.Join(items, ",")))
			}
			return fmt.Errorf("%s holds %d shares (%s), want %d", f[1], len(got), strings.Join(what, "; "), want)
		}
		return nil
	case "relay-peers":
		var i, want int
		fmt.Sscan(f[1], &i)
		fmt.Sscan(f[2], &want)
		if i < 0 || i >= len(sc.w.relays) {
			return fmt.Errorf("no relay %d", i)
		}
		rn := sc.w.relays[i]
		if err := waitUntil(2*time.Minute, func() bool { return rn.relayPeers() == want }); err != nil {
			return fmt.Errorf("relay %d is connected to %d other relays, want %d", i, rn.relayPeers(), want)
		}
		return nil
	case "revoked":
		if sc.revoked == (identity.AttestationID{}) {
			return fmt.Errorf("no unfriend before")
		}
		s := &sim{w: sc.w}
		if err := waitUntil(time.Minute, func() bool { return s.knownEverywhere(sc.revoked) }); err != nil {
			var missing []string
			for _, rn := range sc.w.relays {
				if !rn.knows(sc.revoked) {
					missing = append(missing, fmt.Sprint(rn.idx))
				}
			}
			return fmt.Errorf("relays %s do not know the revocation", strings.Join(missing, ", "))
		}
		return nil
	case "waiting":
		var i, want int
		fmt.Sscan(f[1], &i)
		fmt.Sscan(f[3], &want)
		u, err := sc.user(f[2])
		if err != nil {
			return err
		}
		rn := sc.w.relays[i]
		rn.mu.Lock()
		got := rn.r.Waiting(u.id)
		rn.mu.Unlock()
		if got != want {
			return fmt.Errorf("%d items wait for %s at relay %d, want %d", got, f[2], i, want)
		}
		return nil
	case "share":
		if sc.lastRes == nil {
			return fmt.Errorf("no share was made (%v)", sc.lastErr)
		}
		u, err := sc.user(f[1])
		if err != nil {
			return err
		}
		for _, t := range sc.lastRes.Targets {
			if t.Peer == u.id.String() {
				if t.Status != strings.Join(f[2:], " ") {
					return fmt.Errorf("share to %s: %s", f[1], t.Status)
				}
				return nil
			}
		}
		return fmt.Errorf("the last share had no target %s: %+v (%v)", f[1], sc.lastRes, sc.lastErr)
	case "refused":
		u, err := sc.user(f[1])
		if err != nil {
			return err
		}
		if sc.lastErr == nil || sc.lastRes == nil {
			return fmt.Errorf("the last share was not refused")
		}
		want := strings.Join(f[2:], " ")
		for _, fl := range sc.lastRes.Failed {
			if fl.Peer == u.id.String() && strings.Contains(fl.Reason, want) {
				return nil
			}
		}
		return fmt.Errorf("no failure of %s saying %q: %+v", f[1], want, sc.lastRes.Failed)
	case "inbox":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		shares := n.Shares()
		if len(shares) == 0 {
			return fmt.Errorf("%s's inbox is empty", f[1])
		}
		got := map[string]string{}
		for _, it := range shares[0].Items {
			got[strings.ToLower(it.Name)] = it.State
		}
		want := pairs(f[3:])
		if !equalMaps(got, want) {
			return fmt.Errorf("%s's newest share: %v, want %v", f[1], got, want)
		}
	case "pick":
		for _, p := range sc.lastPick {
			if strings.EqualFold(p.Name, f[1]) {
				if p.Sent != f[2] {
					return fmt.Errorf("pick of %s: %s (%s)", f[1], p.Sent, p.Reason)
				}
				return nil
			}
		}
		return fmt.Errorf("the last pick did not include %s", f[1])
	case "request":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		for _, r := range n.Requests() {
			if r.Direction == "in" && strings.EqualFold(r.Name, f[2]) {
				if f[3] == "none" {
					return fmt.Errorf("%s holds a request from %s", f[1], f[2])
				}
				if f[3] == "verified" && (!r.IntroducerVerified || !strings.EqualFold(r.IntroducerName, f[4])) {
					return fmt.Errorf("request from %s: introducer %q verified %v", f[2], r.IntroducerName, r.IntroducerVerified)
				}
				return nil
			}
		}
		if f[3] == "none" {
			return nil
		}
		return fmt.Errorf("%s holds no request from %s", f[1], f[2])
	case "friends":
		n, err := sc.online(f[1])
		if err != nil {
			return err
		}
		var got []string
		for _, p := range n.FriendIDs() {
			got = append(got, strings.ToLower(sc.nameOf(p)))
		}
		var want []string
		for _, w := range f[3:] {
			want = append(want, strings.ToLower(w))
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			return fmt.Errorf("%s's friends: %v, want %v", f[1], got, want)
		}
	case "forged":
		if sc.forgedOK {
			return fmt.Errorf("the relay accepted a forged share")
		}
	default:
		return fmt.Errorf("unknown expectation %q", f[0])
	}
	return nil
}

func (sc *scenario) nameOf(p peer.ID) string {
	for name, u := range sc.users {
		if u.id == p {
			return name
		}
	}
	return p.String()
}

func pairs(f []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(f); i += 2 {
		m[strings.ToLower(f[i])] = strings.TrimSuffix(f[i+1], ",")
	}
	return m
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
