package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"

	"github.com/kithnet/kith/node/book"
)

// ErrRefused is returned when a share is refused (by the node itself or
// by the relay); the ShareResult says which ids failed and why.
var ErrRefused = errors.New("the share was not sent")

// ErrNoRelay is returned when no rendezvous node is reachable right now;
// what was asked is queued and sent when one is.
var ErrNoRelay = errors.New("no rendezvous node is reachable now")

// ---- identity

// ID returns the user's id, name and invite link.
func (n *Node) IDView() (IDView, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	link, muts, err := n.book.Invite(n.relayAddrs(), n.clock())
	if err != nil {
		return IDView{}, err
	}
	if err := n.commit(muts); err != nil {
		return IDView{}, err
	}
	return IDView{ID: n.h.ID().String(), Name: n.book.Settings.Name, Invite: link}, nil
}

// MakeInvite makes an invite to hand out (kith invite create).
func (n *Node) MakeInvite(b InviteBody) (InviteView, error) {
	var validity time.Duration
	if b.Expires != "" {
		var err error
		if validity, err = ParseLifetime(b.Expires); err != nil {
			return InviteView{}, err
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	e, muts, err := n.book.MakeInvite(book.InviteSpec{Label: b.Label, Validity: validity, MaxUses: b.Uses, Pack: b.Pack, AutoAccept: b.AutoAccept}, n.relayAddrs(), n.clock())
	if err != nil {
		return InviteView{}, err
	}
	if err := n.commit(muts); err != nil {
		return InviteView{}, err
	}
	return n.inviteView(e), nil
}

// ParseLifetime reads how long something lasts: a number of days ("14d")
// or a Go duration ("12h", "90m").
func ParseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(days); err == nil && d > 0 {
			return time.Duration(d) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, book.Kindf(book.ErrBadArgument, "how long? %q is not a number of days (14d) or hours and minutes (12h, 90m)", s)
	}
	return d, nil
}

func (n *Node) inviteView(e book.InviteEntry) InviteView {
	v := InviteView{Token: e.Token, Label: e.Label, Link: n.book.InviteLinkOf(e.Invite), General: !e.Made,
		CreatedAt: e.CreatedAt, ExpiresAt: e.ExpiresAt, MaxUses: e.MaxUses, Uses: len(e.UsedBy), State: e.State(n.clock())}
	if e.Pack != nil {
		v.Pack, v.AutoAccept = e.Pack.Group, e.Pack.AutoAccept
	}
	return v
}

// Invites lists the user's invites, newest first.
func (n *Node) Invites() []InviteView {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []InviteView{}
	for _, e := range n.book.Invites() {
		out = append(out, n.inviteView(e))
	}
	return out
}

// RevokeInvite withdraws an invite (by token prefix or label): the node
// refuses requests resting on it, and so do the relays once they have
// the newer profile that lists it, which the node logs in with at once.
func (n *Node) RevokeInvite(which string) (InviteView, error) {
	n.mu.Lock()
	e, muts, err := n.book.RevokeInvite(which, n.clock())
	if err == nil {
		err = n.commit(muts)
	}
	var v InviteView
	if err == nil {
		v = n.inviteView(e)
	}
	n.mu.Unlock()
	if err != nil {
		return InviteView{}, err
	}
	if len(muts) > 0 {
		if err := n.republish(); err != nil {
			return v, err
		}
	}
	return v, nil
}

// Settings returns what the user's profile says.
func (n *Node) Settings() SettingsView {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := n.book.Settings
	return SettingsView{Name: st.Name, Sharing: st.Policy.String(), Seq: st.Seq}
}

// UpdateSettings renames the user or sets who may share them, then signs
// the profile again and logs in again at every rendezvous node with it:
// relays refuse shares against the new policy at once, and friends' nodes
// learn the new name and policy from there (WithProfileRefresh).
func (n *Node) UpdateSettings(b SettingsBody) (SettingsView, error) {
	var changed bool
	err := n.do(func(bk *book.Book) ([]book.Mutation, error) {
		// Both are checked before either changes the book.
		var muts []book.Mutation
		if b.Name != nil {
			if err := identity.ValidateName(*b.Name); err != nil {
				return nil, book.Kindf(book.ErrBadArgument, "%v", err)
			}
		}
		if b.Sharing != nil {
			p, err := book.ParsePolicy(*b.Sharing)
			if err != nil {
				return nil, err
			}
			m, err := bk.SetPolicy(p)
			if err != nil {
				return nil, err
			}
			muts = append(muts, m...)
		}
		if b.Name != nil {
			m, err := bk.Rename(*b.Name)
			if err != nil {
				return nil, err
			}
			muts = append(muts, m...)
		}
		changed = len(muts) > 0
		return muts, nil
	})
	if err != nil {
		return n.Settings(), err
	}
	if changed {
		if err := n.republish(); err != nil {
			return n.Settings(), err
		}
		n.publish("settings", "", n.h.ID(), "")
	}
	return n.Settings(), nil
}

// ---- friends and groups

// Friends lists friends, asking a relay which are online (within a short
// deadline; if no relay answers, everyone shows offline).
func (n *Node) Friends(ctx context.Context) []FriendView {
	// The views are made under the lock: a friend's record changes when
	// a newer profile of theirs is learnt (a new name).
	n.mu.Lock()
	friends := n.book.Friends()
	out := make([]FriendView, 0, len(friends))
	var asks []*pb.PresenceAsk
	for _, f := range friends {
		asks = append(asks, &pb.PresenceAsk{Peer: []byte(f.ID), Attestation: f.Attestation})
		v := FriendView{ID: f.ID.String(), Name: f.Name, Groups: append([]string{}, n.book.GroupsOf(f.ID)...),
			IntroducedByName: f.IntroducedByName, Since: f.Since.UTC().Format(time.RFC3339),
			Sharing: n.book.SharingOf(f.ID, n.clock()).String()}
		if f.IntroducedBy != "" {
			v.IntroducedBy = f.IntroducedBy.String()
		}
		out = append(out, v)
	}
	n.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	online := n.presence(ctx, asks)
	for i := range out {
		id, _ := peer.Decode(out[i].ID)
		out[i].Online = len(online[id]) > 0
	}
	return out
}

// chunks splits asks into runs of at most n, in order, for queries that
// may carry no more (protocols.MaxAsksPerPresence).
func chunks(asks []*pb.PresenceAsk, n int) [][]*pb.PresenceAsk {
	var out [][]*pb.PresenceAsk
	for len(asks) > 0 {
		k := min(n, len(asks))
		out = append(out, asks[:k:k])
		asks = asks[k:]
	}
	return out
}

// Groups lists groups with their members.
func (n *Node) Groups() []GroupView {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []GroupView
	for _, g := range n.book.Groups() {
		v := GroupView{Name: g.Name, Members: []MemberView{}}
		for _, m := range g.Members {
			v.Members = append(v.Members, MemberView{ID: m.String(), Name: n.book.Name(m)})
		}
		out = append(out, v)
	}
	if out == nil {
		out = []GroupView{}
	}
	return out
}

// CreateGroup makes a group.
func (n *Node) CreateGroup(name string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) { return b.CreateGroup(name) })
}

// RenameGroup renames a group.
func (n *Node) RenameGroup(old, name string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) { return b.RenameGroup(old, name) })
}

// DeleteGroup deletes a group.
func (n *Node) DeleteGroup(name string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) { return b.DeleteGroup(name) })
}

// AddToGroup adds friends (ids or unique names) to a group.
func (n *Node) AddToGroup(name string, who []string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) {
		ids, err := resolveAll(b, who, nil)
		if err != nil {
			return nil, err
		}
		return b.AddToGroup(name, ids)
	})
}

// RemoveFromGroup removes members (ids or unique names) from a group.
func (n *Node) RemoveFromGroup(name string, who []string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) {
		ids, err := resolveAll(b, who, nil)
		if err != nil {
			return nil, err
		}
		return b.RemoveFromGroup(name, ids)
	})
}

func resolveAll(b *book.Book, who []string, candidates map[peer.ID]string) ([]peer.ID, error) {
	var ids []peer.ID
	for _, w := range who {
		id, err := b.ResolvePeer(w, candidates)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// ---- share (patent A-C)

// ShareArgs is a share as the user asks for it: names or ids.
type ShareArgs struct {
	To      []string `json:"to"`
	Friends []string `json:"friends"`
	Groups  []string `json:"groups"`
	Partial bool     `json:"partial"`
	Note    string   `json:"note"`
	pack    string   // the welcome pack's label the share keeps the promise of
}

// Share builds, seals and sends a share: one sealed share per home relay
// of the targets (usually one), each checked by that relay, which answers
// per target and per failing id.
func (n *Node) Share(ctx context.Context, a ShareArgs) (*ShareResult, error) {
	n.mu.Lock()
	to, err := resolveAll(n.book, a.To, nil)
	var friends []peer.ID
	if err == nil {
		friends, err = resolveAll(n.book, a.Friends, nil)
	}
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if len(to) == 0 {
		return nil, book.Kindf(book.ErrBadArgument, "no target: say whom to share with (--to)")
	}
	// Friends who ask to be asked first are asked, and left out.
	req := book.ShareRequest{To: to, Friends: friends, Groups: a.Groups, Partial: a.Partial, Note: a.Note, Pack: a.pack}
	n.mu.Lock()
	asks, muts := n.book.AskFirst(&req, n.clock())
	err = n.commit(muts)
	var asked []book.AskedID
	for _, p := range req.Skip {
		for _, t := range to {
			asked = append(asked, book.AskedID{Peer: p.String(), Name: n.book.Name(p), Target: t.String(), TargetName: n.book.Name(t)})
		}
	}
	left := n.book.ItemsLeft(req)
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, ask := range asks {
		n.sendAsk(ctx, ask)
	}
	if left == 0 && len(asked) > 0 {
		return &ShareResult{Targets: []TargetStatus{}, Asked: asked}, nil
	}
	res, err := n.shareWith(ctx, req)
	if res != nil {
		res.Asked = asked
	}
	return res, err
}

// shareWith builds, records and sends the share req asks for, one per
// home relay of its targets.
func (n *Node) shareWith(ctx context.Context, req book.ShareRequest) (*ShareResult, error) {
	to := req.To
	var err error
	n.resolveHomes(ctx, to)
	order, groups := n.byRelay(to)
	if len(order) == 0 {
		order, groups = []peer.ID{""}, map[peer.ID][]peer.ID{"": to}
	}
	total := &ShareResult{Targets: []TargetStatus{}}
	var firstErr error
	for _, relay := range order {
		var s *protocols.UnverifiedShare
		var local []protocols.Failure
		n.mu.Lock()
		var sent *book.SentShare
		part := req
		part.To = groups[relay]
		s, local, err = n.book.BuildShare(part, n.clock())
		if err == nil && s != nil {
			var muts []book.Mutation
			sent, muts = n.book.RecordSent(s, n.clock())
			if err = n.commit(muts); err == nil {
				n.claim(s.ID) // new: nobody else can hold it
			}
		}
		n.mu.Unlock()
		if err != nil {
			return nil, err
		}
		var res *ShareResult
		if s == nil {
			res = &ShareResult{}
			for _, t := range groups[relay] {
				res.Targets = append(res.Targets, TargetStatus{Peer: t.String(), Name: n.name(t), Status: "not sent"})
			}
			err = ErrRefused
		} else {
			res, err = n.sendClaimed(ctx, sent)
		}
		n.mu.Lock()
		for _, f := range local {
			res.Failed = append(res.Failed, n.book.Failure(f))
		}
		n.mu.Unlock()
		if total.Share == "" {
			total.Share = res.Share
		} else if res.Share != "" {
			total.Share += "," + res.Share
		}
		total.Targets = append(total.Targets, res.Targets...)
		total.Failed = append(total.Failed, res.Failed...)
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	if errors.Is(firstErr, ErrRefused) {
		return total, fmt.Errorf("%w: %s", ErrRefused, describeFailures(total.Failed))
	}
	return total, firstErr
}

func describeFailures(fs []FailedID) string {
	if len(fs) == 0 {
		return "no reason given"
	}
	out := ""
	for i, f := range fs {
		if i > 0 {
			out += "; "
		}
		out += f.Reason
	}
	return out
}

func (n *Node) name(p peer.ID) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.book.Name(p)
}

// sendShare hands a sealed share to the relay of its first target (a share
// goes to one home relay; Share makes one per relay), else to the user's
// own, and records the answer. A share no relay could take stays queued.
func (n *Node) sendShare(ctx context.Context, ss *book.SentShare) (*ShareResult, error) {
	n.mu.Lock()
	claimed := n.claim(ss.ID)
	n.mu.Unlock()
	if !claimed {
		return &ShareResult{Share: ss.ID.String(), Targets: []TargetStatus{}}, fmt.Errorf("%w; the share is being sent already", ErrNoRelay)
	}
	return n.sendClaimed(ctx, ss)
}

// claim marks share id as being sent, unless it is already: one send of
// a share at a time, so that the retry loop and the user's own call do
// not both send it (after a MOVED, one would reshare it while the other
// sent the original to the new relay too). Called with mu held; the
// claim ends with sendClaimed.
func (n *Node) claim(id identity.ShareID) bool { return !n.claimMaking(shareKey(id)) }

// sendClaimed is sendShare for a share claimed already.
func (n *Node) sendClaimed(ctx context.Context, ss *book.SentShare) (*ShareResult, error) {
	defer func() {
		n.mu.Lock()
		delete(n.making, shareKey(ss.ID))
		n.mu.Unlock()
	}()
	res, err := n.sendShareOnce(ctx, ss)
	if res == nil || len(res.moved) == 0 {
		return res.result(), err
	}
	// Some targets moved: a new share for them, to where they are now.
	n.mu.Lock()
	_, again, muts, rerr := n.book.Reshare(ss.ID, res.moved, n.clock())
	if rerr == nil {
		if rerr = n.commit(muts); rerr == nil {
			n.claim(again.ID)
		}
	}
	n.mu.Unlock()
	if rerr != nil {
		return res.result(), errors.Join(err, rerr)
	}
	more, merr := n.sendShareOnce(ctx, again)
	n.mu.Lock()
	delete(n.making, shareKey(again.ID))
	n.mu.Unlock()
	total := res.result()
	if more != nil {
		m := more.result()
		total.Share += "," + m.Share
		total.Targets = append(total.Targets, m.Targets...)
		total.Failed = append(total.Failed, m.Failed...)
	}
	if err == nil || errors.Is(err, ErrRefused) && merr == nil {
		err = merr // the moved targets were the refusal
	}
	return total, err
}

// sentOnce is what one relay said of a share: its result, and the
// targets it says moved.
type sentOnce struct {
	ShareResult
	moved []peer.ID
}

func (s *sentOnce) result() *ShareResult {
	if s == nil {
		return nil
	}
	return &s.ShareResult
}

// sendShareOnce is sendShare without following moved targets.
func (n *Node) sendShareOnce(ctx context.Context, ss *book.SentShare) (*sentOnce, error) {
	relays := n.ownRelays()
	if len(ss.Targets) > 0 {
		relays = n.relaysOf(ss.Targets[0])
	}
	var lastErr error = ErrNoRelay
	for _, relay := range relays {
		n.redial(relay)
		resp, err := client.Share(ctx, n.h, relay, ss.Raw)
		if resp == nil {
			lastErr = fmt.Errorf("%w (%v); the share is queued and will be sent when one is", ErrNoRelay, err)
			continue
		}
		var ans book.ShareAnswer
		n.note(func(b *book.Book) []book.Mutation {
			var muts []book.Mutation
			ans, muts = b.AnswerShare(ss.ID, resp, n.clock())
			return muts
		})
		out := &sentOnce{ShareResult: *ans.Result, moved: ans.Moved}
		switch {
		case !ans.Final:
			return out, fmt.Errorf("%w (%v); the share is queued and will be sent again", ErrNoRelay, err)
		case ans.Refused:
			return out, fmt.Errorf("%w: %v", ErrRefused, err)
		}
		return out, nil
	}
	// No home relay answered: targets connected to the user's node now
	// take it from there.
	if res := n.shareDirect(ctx, ss); res != nil {
		return &sentOnce{ShareResult: *res}, nil
	}
	return &sentOnce{ShareResult: ShareResult{Share: ss.ID.String(), Targets: []TargetStatus{}}}, lastErr
}

// shareDirect hands ss to each of its targets' nodes directly, and records
// the answer if every one took it (a share that reached only some stays
// queued for its relay; the others drop the second copy by its id).
func (n *Node) shareDirect(ctx context.Context, ss *book.SentShare) *ShareResult {
	if len(ss.Targets) == 0 {
		return nil
	}
	for _, t := range ss.Targets {
		// Only a target connected now: dialing addresses that may be
		// stale would hold up every queued share on each retry.
		if n.h.Network().Connectedness(t) != network.Connected {
			return nil
		}
	}
	for _, t := range ss.Targets {
		dctx, cancel := context.WithTimeout(ctx, n.opts.directWait)
		_, err := client.DirectShare(dctx, n.h, t, ss.Raw)
		cancel()
		if err != nil {
			n.log.Debug("direct share failed", "peer", t, "err", err)
			return nil
		}
	}
	var res *ShareResult
	n.note(func(b *book.Book) []book.Mutation {
		var muts []book.Mutation
		res, muts = b.DeliveredDirectly(ss.ID)
		return muts
	})
	return res
}

// ---- received shares (D1-D3)

// ShareView returns one received share by id (or unique prefix).
func (n *Node) ShareView(id string) (ShareView, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	s, err := n.book.FindShare(id)
	if err != nil {
		return ShareView{}, err
	}
	return n.shareView(s), nil
}

// Shares lists the inbox of received shares.
func (n *Node) Shares() []ShareView { return n.shares(false) }

// AllShares is Shares with the dismissed ones too.
func (n *Node) AllShares() []ShareView { return n.shares(true) }

func (n *Node) shares(all bool) []ShareView {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []ShareView{}
	for _, s := range n.book.Shares() {
		if all || !s.Dismissed {
			out = append(out, n.shareView(s))
		}
	}
	return out
}

// DismissShare puts a received share away, or back (dismissed false). Its
// introductions still count for requests already made from it.
func (n *Node) DismissShare(id string, dismissed bool) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) {
		s, err := b.FindShare(id)
		if err != nil {
			return nil, err
		}
		return b.DismissShare(s.ID, dismissed), nil
	})
}

func (n *Node) shareView(s *book.ReceivedShare) ShareView {
	v := ShareView{ID: s.ID.String(), From: s.From.String(), FromName: s.FromName, Note: s.Note, Unopened: s.Unopened,
		ReceivedAt: s.ReceivedAt.UTC().Format(time.RFC3339), Withdrawn: s.Withdrawn, Dismissed: s.Dismissed, Items: []ItemView{}}
	if s.Secret != nil {
		v.Awaiting, v.Pack = s.Secret.Awaiting, s.Secret.Pack
	}
	for _, it := range s.Items {
		name := it.Name
		if f := n.book.Friend(it.Peer); f != nil {
			name = f.Name
		}
		if name == "" {
			name = n.book.Name(it.Peer) // the sealed names did not open
		}
		v.Items = append(v.Items, ItemView{ID: it.Peer.String(), Name: name, Group: it.Group,
			State: string(n.book.ItemState(s, it.Peer)), Reason: s.Refused[it.Peer.String()]})
	}
	return v
}

// PickArgs is what the user ticked in a share.
type PickArgs struct {
	Share   string   `json:"share"`
	Peers   []string `json:"peers"`
	All     bool     `json:"all"`
	Message string   `json:"message"`
}

// Pick sends friend requests to the shared friends the user ticked
// (claims 5, 6): directly to each one online and reachable, and one
// combined request through the relay for the rest.
func (n *Node) Pick(ctx context.Context, a PickArgs) ([]PickView, error) {
	var results []book.PickResult
	var reqs []*book.Request // claimed here: flush leaves them alone
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		s, err := b.FindShare(a.Share)
		if err != nil {
			return nil, err
		}
		candidates := map[peer.ID]string{}
		for _, it := range s.Items {
			candidates[it.Peer] = it.Name
		}
		picks, err := resolveAll(b, a.Peers, candidates)
		if err != nil {
			return nil, err
		}
		var muts []book.Mutation
		results, muts, err = b.Pick(s, picks, a.All, a.Message, n.clock())
		for _, r := range results {
			if r.Request != nil && !n.claimMaking(requestKey(r.Request)) {
				reqs = append(reqs, r.Request)
			}
		}
		return muts, err
	})
	if err != nil {
		for _, r := range reqs {
			n.releaseMaking(requestKey(r))
		}
		return nil, err
	}
	sent := n.sendRequests(ctx, reqs)
	out := make([]PickView, 0, len(results))
	for _, r := range results {
		v := PickView{Peer: r.Peer.String(), Name: r.Name, Sent: string(book.Skipped), Reason: r.Reason}
		if r.Request != nil {
			st, ok := sent[r.Request.ID]
			if !ok { // a flush was sending it already
				st.how = book.Queued
			}
			v.Sent, v.Reason, v.Request, v.Merged = string(st.how), st.reason, r.Request.ID.String(), r.Merged
		}
		out = append(out, v)
	}
	return out, nil
}

type sendOutcome struct {
	how    book.Delivery
	reason string
	moved  bool // the relay said the recipient moved: sent again to their new relay
}

// sendRequests delivers outgoing requests: directly where the peer is
// online, and in one combined request per home relay for the rest. Those
// a relay says moved go once more, to where their profile says now. The
// caller has claimed each (claimMaking with requestKey); sendRequests
// releases them.
func (n *Node) sendRequests(ctx context.Context, reqs []*book.Request) map[protocols.RequestID]sendOutcome {
	defer func() {
		n.mu.Lock()
		for _, r := range reqs {
			delete(n.making, requestKey(r))
		}
		n.mu.Unlock()
	}()
	out := n.sendRequestsOnce(ctx, reqs)
	var moved []*book.Request
	for _, r := range reqs {
		if out[r.ID].moved {
			moved = append(moved, r)
		}
	}
	if len(moved) > 0 {
		maps.Copy(out, n.sendRequestsOnce(ctx, moved))
	}
	return out
}

// sendRequestsOnce is sendRequests without following moved recipients.
func (n *Node) sendRequestsOnce(ctx context.Context, reqs []*book.Request) map[protocols.RequestID]sendOutcome {
	out := map[protocols.RequestID]sendOutcome{}
	if len(reqs) == 0 {
		return out
	}
	wires := map[protocols.RequestID]*pb.AddRequest{}
	byPeer := map[peer.ID][]*book.Request{}
	var peers []peer.ID
	for _, r := range reqs {
		var w pb.AddRequest
		if err := proto.Unmarshal(r.Wire, &w); err != nil {
			continue
		}
		wires[r.ID] = &w
		if _, ok := byPeer[r.Peer]; !ok {
			peers = append(peers, r.Peer)
		}
		byPeer[r.Peer] = append(byPeer[r.Peer], r)
	}
	n.resolveHomes(ctx, peers)
	order, groups := n.byRelay(peers)
	for _, relay := range order {
		var asks []*pb.PresenceAsk
		var group []*book.Request
		for _, p := range groups[relay] {
			for _, r := range byPeer[p] {
				group = append(group, r)
				if u, err := protocols.DecodeAddRequest(wires[r.ID]); err == nil && len(u.Introduction) > 0 {
					asks = append(asks, &pb.PresenceAsk{Peer: []byte(r.Peer), Introduction: u.Introduction})
				}
			}
		}
		addrs := n.directAddrs(ctx, relay, asks)
		var viaRelay []*book.Request
		for _, r := range group {
			if a := addrs[r.Peer]; len(a) > 0 {
				how, err := n.sendDirect(ctx, r.Peer, a, &pb.AddMessage{Msg: &pb.AddMessage_Request{Request: wires[r.ID]}})
				if err == nil {
					out[r.ID] = sendOutcome{how: how}
					n.note(func(b *book.Book) []book.Mutation { return b.MarkSent(r.ID, how) })
					continue
				}
				n.log.Debug("direct request failed; using the relay", "peer", r.Peer, "err", err)
			}
			viaRelay = append(viaRelay, r)
		}
		n.combined(ctx, relay, viaRelay, wires, out)
	}
	return out
}

// combined sends requests through one relay, in as few combined requests
// as the protocol allows.
func (n *Node) combined(ctx context.Context, relay peer.ID, reqs []*book.Request, wires map[protocols.RequestID]*pb.AddRequest, out map[protocols.RequestID]sendOutcome) {
	for len(reqs) > 0 {
		batch := reqs
		if len(batch) > protocols.MaxRequestsPerAdd {
			batch = batch[:protocols.MaxRequestsPerAdd]
		}
		reqs = reqs[len(batch):]
		combined := &pb.CombinedAdd{}
		for _, r := range batch {
			combined.Requests = append(combined.Requests, wires[r.ID])
		}
		resp, err := n.toRelay(ctx, relay, &pb.AddMessage{Msg: &pb.AddMessage_Combined{Combined: combined}})
		if resp == nil {
			for _, r := range batch {
				out[r.ID] = sendOutcome{how: book.Queued, reason: fmt.Sprintf("%v; it will be sent when the rendezvous node is reachable", err)}
			}
			continue
		}
		byID := map[string]*pb.AddResult{}
		for _, res := range resp.Results {
			byID[string(res.RequestId)] = res
		}
		for _, r := range batch {
			n.note(func(b *book.Book) []book.Mutation {
				res := byID[string(r.ID[:])]
				how, reason, muts := b.RequestAnswered(r.ID, res, resp.Text, n.clock())
				out[r.ID] = sendOutcome{how: how, reason: reason, moved: res.GetReason() == pb.Reason_MOVED}
				return muts
			})
		}
	}
}

// presence asks each friend's home relay which of them are online.
func (n *Node) presence(ctx context.Context, asks []*pb.PresenceAsk) map[peer.ID][]ma.Multiaddr {
	var peers []peer.ID
	byPeer := map[peer.ID]*pb.PresenceAsk{}
	for _, a := range asks {
		p := peer.ID(a.Peer)
		peers = append(peers, p)
		byPeer[p] = a
	}
	order, groups := n.byRelay(peers)
	out := map[peer.ID][]ma.Multiaddr{}
	for _, relay := range order {
		var group []*pb.PresenceAsk
		for _, p := range groups[relay] {
			group = append(group, byPeer[p])
		}
		for p, a := range n.directAddrs(ctx, relay, group) {
			out[p] = a
		}
	}
	return out
}

// ---- requests (step 107)

// Requests lists requests in and out.
func (n *Node) Requests() []RequestView {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []RequestView{}
	for _, r := range n.book.Requests() {
		v := RequestView{ID: r.ID.String(), Direction: string(r.Direction), Peer: r.Peer.String(), Name: r.Name, Unopened: r.Unopened,
			State: string(r.State), IntroducerName: r.IntroducerName, IntroducerVerified: r.IntroducerVerified,
			Message: r.Message, Sent: string(r.Sent), CreatedAt: r.CreatedAt.UTC().Format(time.RFC3339),
			ExpiresAt: r.Expiry().UTC().Format(time.RFC3339)}
		v.State = string(r.StateAt(n.clock()))
		v.Pack, v.PackSize = r.PackLabel, r.PackSize
		if p := n.book.PackOf(r); p != nil {
			v.Pack = p.Group
		}
		if v.Name == "" {
			v.Name = n.book.Name(r.Peer) // the sealed words did not open
		}
		if r.Direction == book.Outgoing && r.State == book.Declined && v.State != string(book.Expired) {
			v.State = string(book.Pending)
		}
		if r.Introducer != "" {
			v.Introducer = r.Introducer.String()
		}
		for _, in := range r.IntroducerList() {
			v.Introducers = append(v.Introducers, IntroducerView{ID: in.Peer.String(), Name: in.Name})
		}
		v.Provenance = provenance(r, n.book.Settings.Name)
		out = append(out, v)
	}
	return out
}

func introducerNames(r *book.Request) string {
	var ns []string
	for _, in := range r.IntroducerList() {
		ns = append(ns, in.Name)
	}
	return book.JoinNames(ns)
}

func provenance(r *book.Request, me string) string {
	switch {
	case r.Direction == book.Incoming && r.IntroducerVerified && len(r.IntroducerList()) > 1:
		return fmt.Sprintf("%s, your friends, shared you with %s (verified)", introducerNames(r), r.Name)
	case r.Direction == book.Incoming && r.IntroducerVerified:
		return fmt.Sprintf("%s, your friend, shared you with %s (verified)", r.IntroducerName, r.Name)
	case r.Direction == book.Incoming && r.ViaInvite:
		return fmt.Sprintf("%s used your invite", r.Name)
	case r.Direction == book.Outgoing && r.Introducer != "":
		return fmt.Sprintf("%s shared %s with you", introducerNames(r), r.Name)
	case r.Direction == book.Outgoing && r.ViaInvite:
		return fmt.Sprintf("you used %s's invite", r.Name)
	}
	return ""
}

// Accept accepts an incoming request and sends the countersigned
// attestation back, directly if the requester is online, else through a
// relay.
func (n *Node) Accept(ctx context.Context, id string) (*book.Friend, error) {
	var f *book.Friend
	var r *book.Request
	claimed := false // the answer is this call's to send
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		var err error
		r, err = b.FindRequest(id)
		if err != nil {
			return nil, err
		}
		var muts []book.Mutation
		f, _, muts, err = b.Accept(r.ID, n.clock())
		claimed = err == nil && !n.claimMaking(answerKey(r))
		return muts, err
	})
	if err != nil {
		if claimed {
			n.releaseMaking(answerKey(r))
		}
		return nil, err
	}
	n.publish("friend", f.ID.String(), f.ID, fmt.Sprintf("you and %s are now friends", f.Name))
	if claimed { // else a flush is sending it
		n.sendAnswer(ctx, r)
	}
	n.sharePack(ctx, r)
	return f, nil
}

// sharePack keeps a welcome pack's promise: the group it names, shared
// with the friend the pack's invite befriended, as any share is (each
// member checked; those who say nobody left out, those who ask first
// asked). It is made once; flush makes one a crash left undone.
func (n *Node) sharePack(ctx context.Context, r *book.Request) {
	key := "pack/" + r.ID.String()
	n.mu.Lock()
	pack := n.book.PackOf(r)
	done := r.PackShared || (pack != nil && n.claimMaking(key))
	n.mu.Unlock()
	if pack == nil || done {
		return
	}
	defer n.releaseMaking(key)
	res, err := n.Share(ctx, ShareArgs{To: []string{r.Peer.String()}, Groups: []string{pack.Group}, Partial: true, pack: pack.Group})
	if err != nil && (res == nil || (res.Share == "" && len(res.Asked) == 0)) && !errors.Is(err, book.ErrNotFound) {
		n.log.Info("the welcome pack was not shared yet", "peer", r.Peer, "err", err)
		if !errors.Is(err, ErrRefused) {
			return // tried again at the next flush
		}
	}
	n.note(func(b *book.Book) []book.Mutation { return b.MarkPackShared(r) })
}

// sendAnswer sends the answer to r; the caller has claimed it
// (claimMaking with answerKey), and sendAnswer releases it.
func (n *Node) sendAnswer(ctx context.Context, r *book.Request) {
	defer n.releaseMaking(answerKey(r))
	n.mu.Lock()
	f := n.book.Friend(r.Peer)
	var answer *pb.AddAnswer
	if r.Answer != nil {
		answer = n.book.Answer(r, n.clock())
	}
	n.mu.Unlock()
	if f == nil || answer == nil {
		return
	}
	m := &pb.AddMessage{Msg: &pb.AddMessage_Answer{Answer: answer}}
	n.resolveHomes(ctx, []peer.ID{r.Peer})
	n.sendAnswerTo(ctx, r, f, m, false)
}

// sendAnswerTo sends answer m of r to its requester, directly if they are
// online, else through their home relays; moved says it follows a MOVED
// already.
func (n *Node) sendAnswerTo(ctx context.Context, r *book.Request, f *book.Friend, m *pb.AddMessage, moved bool) {
	for _, relay := range n.relaysOf(r.Peer) {
		addrs := n.directAddrs(ctx, relay, []*pb.PresenceAsk{{Peer: []byte(r.Peer), Attestation: f.Attestation}})
		if a := addrs[r.Peer]; len(a) > 0 {
			if how, err := n.sendDirect(ctx, r.Peer, a, m); err == nil {
				n.note(func(b *book.Book) []book.Mutation { return b.MarkAnswerSent(r.ID, how) })
				return
			}
		}
		resp, err := n.toRelay(ctx, relay, m)
		if err == nil && resp != nil {
			n.note(func(b *book.Book) []book.Mutation { return b.MarkAnswerSent(r.ID, book.SentRelay) })
			return
		}
		if res := resp.GetResults(); len(res) == 1 && res[0].Reason == pb.Reason_MOVED && !moved {
			// They moved: learn where, and send there.
			moved = true
			n.note(func(b *book.Book) []book.Mutation { return b.LearnProfile(res[0].Profile, n.clock()) })
			n.sendAnswerTo(ctx, r, f, m, true)
			return
		}
	}
}

// Decline declines an incoming request. Nothing is sent.
func (n *Node) Decline(id string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) {
		r, err := b.FindRequest(id)
		if err != nil {
			return nil, err
		}
		return b.Decline(r.ID, n.clock())
	})
}

// CancelRequest takes back a request the user sent: the offer in it is
// revoked, the relays withdraw the request (never shown to its recipient
// if not yet delivered), and a recipient's node it was sent to directly
// is told at once if it can be reached.
func (n *Node) CancelRequest(ctx context.Context, id string) error {
	var raw []byte
	var r *book.Request
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		var err error
		if r, err = b.FindRequest(id); err != nil {
			return nil, err
		}
		var muts []book.Mutation
		raw, muts, err = b.CancelRequest(r.ID, n.clock())
		if raw != nil {
			muts = append(muts, b.QueueRevocation(raw)...)
		}
		return muts, err
	})
	if err != nil {
		return err
	}
	n.sendRevocations(ctx, [][]byte{raw})
	if r.Sent == book.SentDirect || r.Sent == book.SentCircuit {
		n.cancelDirect(ctx, r.Peer, raw)
	}
	return nil
}

// cancelDirect tells a peer's node that the request sent there is
// cancelled, where their relay says they are; a node that cannot be
// reached learns nothing, and a later answer to the request is dropped.
func (n *Node) cancelDirect(ctx context.Context, p peer.ID, raw []byte) {
	m := &pb.AddMessage{Msg: &pb.AddMessage_Cancel{Cancel: raw}}
	n.mu.Lock()
	asks := n.book.ProfileAsks([]peer.ID{p})
	n.mu.Unlock()
	if conns := n.h.Network().ConnsToPeer(p); len(conns) > 0 {
		if _, err := n.sendDirect(ctx, p, nil, m); err == nil {
			return
		}
	}
	for _, relay := range n.relaysOf(p) {
		if a := n.directAddrs(ctx, relay, asks)[p]; len(a) > 0 {
			if _, err := n.sendDirect(ctx, p, a, m); err == nil {
				return
			}
		}
	}
	n.log.Info("the cancelled request's recipient is not reachable directly", "peer", p)
}

// AddInvite sends a friend request to the inviter of an invite link.
func (n *Node) AddInvite(ctx context.Context, link, message string) (*RequestView, error) {
	var r *book.Request
	var in *identity.Invite
	claimed := false // the request is this call's to send
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		var muts []book.Mutation
		var err error
		r, in, muts, err = b.AddByInvite(link, message, n.clock())
		claimed = r != nil && !n.claimMaking(requestKey(r))
		return muts, err
	})
	if err != nil {
		if claimed {
			n.releaseMaking(requestKey(r))
		}
		return nil, err
	}
	// The inviter's relays may not be ours: learn their addresses.
	for _, a := range in.Relays {
		if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil {
			n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		}
	}
	res := sendOutcome{how: book.Queued} // a flush is sending it
	if claimed {
		res = n.sendRequests(ctx, []*book.Request{r})[r.ID]
	}
	v := RequestView{ID: r.ID.String(), Direction: string(r.Direction), Peer: r.Peer.String(), Name: r.Name,
		State: string(r.State), Message: r.Message, Sent: string(res.how), Pack: r.PackLabel, PackSize: r.PackSize}
	if res.how == book.Skipped {
		return &v, &refusedError{fmt.Sprintf("the request was refused: %s", res.reason)}
	}
	return &v, nil
}

// refusedError is a refusal that is not a share's: it reads as its own
// words, and errors.Is finds ErrRefused (code refused).
type refusedError struct{ msg string }

func (e *refusedError) Error() string        { return e.msg }
func (e *refusedError) Is(target error) bool { return target == ErrRefused }

// Unfriend ends a friendship and hands the revocation to the relays.
func (n *Node) Unfriend(ctx context.Context, who string) error {
	var raw []byte
	err := n.do(func(b *book.Book) ([]book.Mutation, error) {
		p, err := b.ResolvePeer(who, nil)
		if err != nil {
			return nil, err
		}
		var muts []book.Mutation
		raw, muts, err = b.Unfriend(p, n.clock())
		if raw != nil {
			muts = append(muts, b.QueueRevocation(raw)...)
		}
		return muts, err
	})
	if err != nil {
		return err
	}
	if raw != nil {
		n.sendRevocations(ctx, [][]byte{raw})
	}
	return nil
}

func (n *Node) sendRevocations(ctx context.Context, raws [][]byte) {
	for _, relay := range n.loggedInRelays() {
		if _, err := client.Revoke(ctx, n.h, relay, raws); err == nil {
			n.note(func(b *book.Book) []book.Mutation { return b.RevocationsSent(raws) })
			return
		}
	}
}

// Block blocks a peer (an id, or a unique name among friends and the
// people in requests and shares).
func (n *Node) Block(ctx context.Context, who string, unfriend bool) error {
	n.mu.Lock()
	p, err := n.book.ResolveKnown(who)
	friend := err == nil && n.book.Friend(p) != nil
	n.mu.Unlock()
	if err != nil {
		return err
	}
	if friend {
		if !unfriend {
			return book.Kindf(book.ErrNeedsConfirm, "%s is your friend: blocking them also ends the friendship (a signed revocation goes to the relays) and nothing more is shared with them or from them; confirm to go on", who)
		}
		if err := n.Unfriend(ctx, p.String()); err != nil {
			return err
		}
	}
	return n.do(func(b *book.Book) ([]book.Mutation, error) { return b.Block(p), nil })
}

// Unblock lets a blocked peer reach the user again.
func (n *Node) Unblock(who string) error {
	return n.do(func(b *book.Book) ([]book.Mutation, error) {
		p, err := b.ResolvePeer(who, blockedNames(b))
		if err != nil {
			return nil, err
		}
		return b.Unblock(p)
	})
}

// blockedNames maps the blocked peers to their names, for resolving one.
func blockedNames(b *book.Book) map[peer.ID]string {
	out := map[peer.ID]string{}
	for _, p := range b.Blocked() {
		out[p] = b.Name(p)
	}
	return out
}

// Blocked lists the blocked peers.
func (n *Node) Blocked() []BlockedView {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := []BlockedView{}
	for _, p := range n.book.Blocked() {
		out = append(out, BlockedView{ID: p.String(), Name: n.book.Name(p)})
	}
	return out
}

// Status reports the node's state.
// isCircuit reports whether a is a circuit relay address.
func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func (n *Node) Status() StatusView {
	n.mu.Lock()
	c := n.book.Counts(n.clock())
	v := StatusView{ID: n.h.ID().String(), Name: n.book.Settings.Name, Friends: c.Friends, Shares: c.Shares,
		Pending: c.Pending, Queued: c.Queued, Addrs: []string{}, Rendezvous: []RelayStatus{}}
	for _, l := range n.book.Settings.Left {
		v.Leaving = append(v.Leaving, l.Peer.String())
	}
	n.mu.Unlock()
	v.Reachability = "unreachable"
	for _, a := range n.h.Addrs() {
		v.Addrs = append(v.Addrs, a.String()+"/p2p/"+n.h.ID().String())
		switch {
		case isCircuit(a):
			v.Reachability = "circuit"
		case manet.IsPublicAddr(a) && v.Reachability == "unreachable":
			v.Reachability = "public"
		}
	}
	v.ReachabilityText = ReachabilityWords(v.Reachability)
	n.relayMu.Lock()
	for _, ai := range n.opts.rendezvous {
		st := n.relays[ai.ID]
		addr := ""
		if len(ai.Addrs) > 0 {
			addr = ai.Addrs[0].String() + "/p2p/" + ai.ID.String()
		}
		v.Rendezvous = append(v.Rendezvous, RelayStatus{Addr: addr, Peer: ai.ID.String(), LoggedIn: st.loggedIn, LastError: st.lastErr})
	}
	n.relayMu.Unlock()
	sort.Strings(v.Addrs)
	return v
}

// Connected reports whether the node has a direct (not relayed) connection
// to p.
func (n *Node) Connected(p peer.ID) bool {
	for _, c := range n.h.Network().ConnsToPeer(p) {
		if !c.Stat().Limited {
			return true
		}
	}
	return false
}

// LoggedIn reports whether the node has a session with some relay.
func (n *Node) LoggedIn() bool { return len(n.loggedInRelays()) > 0 }

// FriendAttestation returns the attestation of the friendship with p, or
// nil.
func (n *Node) FriendAttestation(p peer.ID) []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	if f := n.book.Friend(p); f != nil {
		return f.Attestation
	}
	return nil
}

// FriendIDs returns the user's friends' ids, without asking anyone who is
// online.
func (n *Node) FriendIDs() []peer.ID {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []peer.ID
	for _, f := range n.book.Friends() {
		out = append(out, f.ID)
	}
	return out
}

// IsFriend reports whether p is the user's friend.
func (n *Node) IsFriend(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.book.Friend(p) != nil
}

// RequestState returns the direction and state of a request, if the node
// has it.
func (n *Node) RequestState(id protocols.RequestID) (book.Direction, book.RequestState, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	r := n.book.Request(id)
	if r == nil {
		return "", "", false
	}
	return r.Direction, r.State, true
}

// HasShare reports whether a share is in the user's inbox.
func (n *Node) HasShare(id identity.ShareID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.book.Share(id) != nil
}
