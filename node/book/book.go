package book

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// Book is the pure core of a personal node: the user's friends, groups,
// requests, received shares, blocked peers and revocations, and every
// decision about them. Each method takes `now`, changes the book, and
// returns the datastore mutations that make the change durable; the node
// writes them in one batch before it acts on the network. Nothing here does
// I/O. A Book is not safe for concurrent use; the node serialises access.
type Book struct {
	key      crypto.PrivKey
	me       peer.ID
	verifier *identity.Verifier
	revoked  *identity.RevocationSet

	Settings Settings
	friends  map[peer.ID]*Friend
	groups   map[string]*Group
	requests map[protocols.RequestID]*Request
	shares   map[identity.ShareID]*ReceivedShare
	sent     map[identity.ShareID]*SentShare
	blocked  map[peer.ID]bool
	invites  map[string]*Invite // by token hex
	names    map[peer.ID]string // names learnt from shares and requests

	revokeQueue map[identity.AttestationID][]byte
	myProfile   []byte // the user's current signed profile, sent with requests and answers
}

// SetProfile sets the user's signed profile, which requests and answers
// carry so that the other side learns the user's home relays.
func (b *Book) SetProfile(raw []byte) { b.myProfile = raw }

// Profile returns the user's current signed profile (nil before
// SetProfile).
func (b *Book) Profile() []byte { return b.myProfile }

// Counts is what the book holds, in numbers, for a status line.
type Counts struct {
	Friends int
	Shares  int // received
	Pending int // incoming requests waiting for an answer
	Queued  int // requests, answers, shares and revocations waiting to be sent
}

// Counts returns what the book holds, in numbers.
func (b *Book) Counts() Counts {
	c := Counts{Friends: len(b.friends), Shares: len(b.shares)}
	for _, r := range b.requests {
		if r.State == Pending && r.Direction == Incoming {
			c.Pending++
		}
	}
	reqs, answers := b.Unsent()
	c.Queued = len(reqs) + len(answers) + len(b.UnansweredShares()) + len(b.revokeQueue)
	return c
}

// ResolveKnown is ResolvePeer among everyone the book has a name for:
// friends, the people in requests and shares.
func (b *Book) ResolveKnown(s string) (peer.ID, error) { return b.ResolvePeer(s, b.names) }

// HomeRelays returns the home relays (multiaddrs ending in /p2p/<id>) that
// p's profile, or an invite of theirs, named; nil if none is known.
func (b *Book) HomeRelays(p peer.ID, now time.Time) []string {
	var candidates [][]byte
	var fallback []string
	if f := b.friends[p]; f != nil {
		candidates = append(candidates, f.Profile)
		fallback = f.Relays
	}
	for _, r := range b.requests {
		if r.Peer == p {
			candidates = append(candidates, r.PeerProfile)
			if fallback == nil {
				fallback = r.PeerRelays
			}
		}
	}
	for _, raw := range candidates {
		if len(raw) == 0 {
			continue
		}
		if prof, err := b.verifier.Profile(raw, now.Add(identity.DefaultClockSkew)); err == nil && prof.Owner == p {
			var out []string
			for _, a := range prof.Relays {
				out = append(out, a.String())
			}
			if len(out) > 0 {
				return out
			}
		}
	}
	return fallback
}

// Mutation is one datastore write a Book asks for.
type Mutation struct {
	Key   ds.Key
	Value []byte
	Del   bool
}

// Datastore layout of a node, values JSON unless noted:
//
//	/kith/node/settings               Settings
//	/kith/node/friends/<peer>         Friend
//	/kith/node/groups/<name hex>      Group
//	/kith/node/requests/<id>          Request
//	/kith/node/shares/<id>            ReceivedShare
//	/kith/node/sent/<id>              SentShare
//	/kith/node/blocked/<peer>         {}
//	/kith/node/invites/<token>        Invite
//	/kith/node/revoked/<attestation>  identity revocation bytes (raw)
const (
	keySettings     = "/kith/node/settings"
	prefixFriends   = "/kith/node/friends/"
	prefixGroups    = "/kith/node/groups/"
	prefixRequests  = "/kith/node/requests/"
	prefixShares    = "/kith/node/shares/"
	prefixSent      = "/kith/node/sent/"
	prefixBlocked   = "/kith/node/blocked/"
	prefixInvites   = "/kith/node/invites/"
	prefixRevoked   = "/kith/node/revoked/"
	groupNameMaxLen = identity.MaxNameBytes
)

func put(key string, v any) Mutation {
	b, err := json.Marshal(v)
	if err != nil {
		panic("node: marshal " + key + ": " + err.Error()) // only our own records
	}
	return Mutation{Key: ds.RawKey(key), Value: b}
}

func del(key string) Mutation { return Mutation{Key: ds.RawKey(key), Del: true} }

func groupKey(name string) string { return prefixGroups + fmt.Sprintf("%x", name) }

// NewBook returns an empty book for the holder of key.
func NewBook(key crypto.PrivKey, name string) (*Book, error) {
	me, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	revoked := identity.NewRevocationSet()
	return &Book{
		key: key, me: me, revoked: revoked,
		verifier: identity.NewVerifier(identity.WithRevocations(revoked)),
		Settings: Settings{Name: name, Seq: 1},
		friends:  map[peer.ID]*Friend{}, groups: map[string]*Group{},
		requests: map[protocols.RequestID]*Request{}, shares: map[identity.ShareID]*ReceivedShare{},
		sent: map[identity.ShareID]*SentShare{}, blocked: map[peer.ID]bool{},
		invites: map[string]*Invite{}, names: map[peer.ID]string{},
		revokeQueue: map[identity.AttestationID][]byte{},
	}, nil
}

// Me returns the user's peer id.
func (b *Book) Me() peer.ID { return b.me }

// Verifier returns the book's verifier (it knows the book's revocations).
func (b *Book) Verifier() *identity.Verifier { return b.verifier }

// Load restores one stored record; the node calls it for every entry at
// start. Unknown keys are ignored.
func (b *Book) Load(key string, value []byte) error {
	switch {
	case key == keySettings:
		return json.Unmarshal(value, &b.Settings)
	case strings.HasPrefix(key, prefixFriends):
		var f Friend
		if err := json.Unmarshal(value, &f); err != nil {
			return err
		}
		b.friends[f.ID] = &f
		b.names[f.ID] = f.Name
	case strings.HasPrefix(key, prefixGroups):
		var g Group
		if err := json.Unmarshal(value, &g); err != nil {
			return err
		}
		b.groups[g.Name] = &g
	case strings.HasPrefix(key, prefixRequests):
		var r Request
		if err := json.Unmarshal(value, &r); err != nil {
			return err
		}
		b.requests[r.ID] = &r
		if r.Name != "" {
			b.names[r.Peer] = r.Name
		}
	case strings.HasPrefix(key, prefixShares):
		var s ReceivedShare
		if err := json.Unmarshal(value, &s); err != nil {
			return err
		}
		u, err := protocols.DecodeShare(s.Raw, protocols.Limits{})
		if err != nil {
			return err
		}
		s.Items = u.Items
		b.shares[s.ID] = &s
		b.learnNames(u.Items)
	case strings.HasPrefix(key, prefixSent):
		var s SentShare
		if err := json.Unmarshal(value, &s); err != nil {
			return err
		}
		b.sent[s.ID] = &s
	case strings.HasPrefix(key, prefixBlocked):
		id, err := peer.Decode(strings.TrimPrefix(key, prefixBlocked))
		if err != nil {
			return err
		}
		b.blocked[id] = true
	case strings.HasPrefix(key, prefixInvites):
		var in Invite
		if err := json.Unmarshal(value, &in); err != nil {
			return err
		}
		b.invites[strings.TrimPrefix(key, prefixInvites)] = &in
	case strings.HasPrefix(key, prefixRevokeQueue):
		r, err := b.verifier.Revocation(value)
		if err != nil {
			return err
		}
		b.revokeQueue[r.AttestationID] = value
	case strings.HasPrefix(key, prefixRevoked):
		r, err := b.verifier.Revocation(value)
		if err != nil {
			return err
		}
		b.revoked.Add(r)
	}
	return nil
}

// ---- errors the user sees

// Errors of the book, wrapped with the specifics.
var (
	ErrNotFound     = errors.New("not found")
	ErrNotFriend    = errors.New("not your friend")
	ErrAmbiguous    = errors.New("more than one friend has that name")
	ErrBadArgument  = errors.New("invalid argument")
	ErrAlreadyFinal = errors.New("already answered")
)

// ---- friends and names

// Friends returns the user's friends, sorted by name.
func (b *Book) Friends() []*Friend {
	out := make([]*Friend, 0, len(b.friends))
	for _, f := range b.friends {
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Name != out[j].Name {
			return out[i].Name < out[j].Name
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Friend returns the friend with id p, or nil.
func (b *Book) Friend(p peer.ID) *Friend { return b.friends[p] }

// Name returns the best name known for p, or its short id.
func (b *Book) Name(p peer.ID) string {
	if p == b.me {
		return b.Settings.Name
	}
	if f := b.friends[p]; f != nil {
		return f.Name
	}
	if n := b.names[p]; n != "" {
		return n
	}
	return identity.ShortID(p)
}

// ResolvePeer turns what the user typed (a peer id, or the unique display
// name of a friend) into a peer id. candidates, when given, are other
// named peers to match by name (the items of a share being picked).
func (b *Book) ResolvePeer(s string, candidates map[peer.ID]string) (peer.ID, error) {
	s = strings.TrimSpace(s)
	if id, err := peer.Decode(s); err == nil {
		return id, nil
	}
	var found []peer.ID
	seen := map[peer.ID]bool{}
	for _, f := range b.friends {
		if strings.EqualFold(f.Name, s) {
			found = append(found, f.ID)
			seen[f.ID] = true
		}
	}
	for id, name := range candidates {
		if strings.EqualFold(name, s) && !seen[id] {
			found = append(found, id)
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("%w: %q is neither a peer id nor the name of a friend", ErrNotFound, s)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: %d are named %q; use the peer id", ErrAmbiguous, len(found), s)
}

// IsBlocked reports whether the user blocked p.
func (b *Book) IsBlocked(p peer.ID) bool { return b.blocked[p] }

// addFriend records a countersigned attestation as a friendship.
func (b *Book) addFriend(att *identity.Attestation, name string, introducer peer.ID, profile []byte, relays []string, now time.Time) (*Friend, []Mutation) {
	other := att.Other(b.me)
	if name == "" {
		name = b.Name(other)
	}
	f := &Friend{ID: other, Name: name, Attestation: att.Raw, AttestationID: att.ID, Since: now, Profile: profile, Relays: relays}
	if introducer != "" {
		f.IntroducedBy = introducer
		f.IntroducedByName = b.Name(introducer)
	}
	if old := b.friends[other]; old != nil && old.IntroducedBy != "" && f.IntroducedBy == "" {
		f.IntroducedBy, f.IntroducedByName = old.IntroducedBy, old.IntroducedByName
	}
	b.friends[other] = f
	b.names[other] = name
	return f, []Mutation{put(prefixFriends+other.String(), f)}
}

// ---- groups

// Groups returns the user's groups, sorted by name.
func (b *Book) Groups() []*Group {
	out := make([]*Group, 0, len(b.groups))
	for _, g := range b.groups {
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Group returns the group called name, or nil.
func (b *Book) Group(name string) *Group { return b.groups[name] }

// CreateGroup makes an empty group.
func (b *Book) CreateGroup(name string) ([]Mutation, error) {
	name = strings.TrimSpace(name)
	if err := identity.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%w: group name: %v", ErrBadArgument, err)
	}
	if b.groups[name] != nil {
		return nil, fmt.Errorf("%w: a group called %q exists", ErrBadArgument, name)
	}
	g := &Group{Name: name, Members: []peer.ID{}}
	b.groups[name] = g
	return []Mutation{put(groupKey(name), g)}, nil
}

// RenameGroup renames a group.
func (b *Book) RenameGroup(old, name string) ([]Mutation, error) {
	g := b.groups[old]
	if g == nil {
		return nil, fmt.Errorf("%w: no group called %q", ErrNotFound, old)
	}
	name = strings.TrimSpace(name)
	if err := identity.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%w: group name: %v", ErrBadArgument, err)
	}
	if b.groups[name] != nil {
		return nil, fmt.Errorf("%w: a group called %q exists", ErrBadArgument, name)
	}
	delete(b.groups, old)
	g.Name = name
	b.groups[name] = g
	return []Mutation{del(groupKey(old)), put(groupKey(name), g)}, nil
}

// DeleteGroup deletes a group (its members stay friends).
func (b *Book) DeleteGroup(name string) ([]Mutation, error) {
	if b.groups[name] == nil {
		return nil, fmt.Errorf("%w: no group called %q", ErrNotFound, name)
	}
	delete(b.groups, name)
	return []Mutation{del(groupKey(name))}, nil
}

// AddToGroup adds friends to a group.
func (b *Book) AddToGroup(name string, members []peer.ID) ([]Mutation, error) {
	g := b.groups[name]
	if g == nil {
		return nil, fmt.Errorf("%w: no group called %q (create it with: kith group create %q)", ErrNotFound, name, name)
	}
	for _, m := range members {
		if b.friends[m] == nil {
			return nil, fmt.Errorf("%w: %s is not your friend, so cannot be in a group", ErrNotFriend, b.Name(m))
		}
	}
	for _, m := range members {
		if !containsPeer(g.Members, m) {
			g.Members = append(g.Members, m)
		}
	}
	return []Mutation{put(groupKey(name), g)}, nil
}

// RemoveFromGroup removes members from a group.
func (b *Book) RemoveFromGroup(name string, members []peer.ID) ([]Mutation, error) {
	g := b.groups[name]
	if g == nil {
		return nil, fmt.Errorf("%w: no group called %q", ErrNotFound, name)
	}
	kept := g.Members[:0]
	for _, m := range g.Members {
		if !containsPeer(members, m) {
			kept = append(kept, m)
		}
	}
	g.Members = kept
	return []Mutation{put(groupKey(name), g)}, nil
}

// GroupsOf returns the names of the groups p is in.
func (b *Book) GroupsOf(p peer.ID) []string {
	var out []string
	for _, g := range b.Groups() {
		if containsPeer(g.Members, p) {
			out = append(out, g.Name)
		}
	}
	return out
}

func containsPeer(list []peer.ID, p peer.ID) bool {
	for _, x := range list {
		if x == p {
			return true
		}
	}
	return false
}

// ---- invites

// Invite returns a current invite of the user, making one when none is
// valid for at least another day.
func (b *Book) Invite(relays []string, now time.Time) (*identity.Invite, []Mutation, error) {
	var best *Invite
	for _, in := range b.invites {
		if in.ExpiresAt.Sub(now) > 24*time.Hour && (best == nil || in.ExpiresAt.After(best.ExpiresAt)) {
			best = in
		}
	}
	if best != nil {
		v, err := b.verifier.Invite(best.Raw, now)
		if err == nil {
			return v, nil, nil
		}
	}
	var addrs = ParseAddrs(relays)
	raw, err := identity.NewInvite(b.key, b.Settings.Name, addrs, now, identity.DefaultInviteValidity)
	if err != nil {
		return nil, nil, err
	}
	v, err := b.verifier.Invite(raw, now)
	if err != nil {
		return nil, nil, err
	}
	in := &Invite{Raw: raw, ExpiresAt: v.ExpiresAt}
	b.invites[v.TokenString()] = in
	return v, []Mutation{put(prefixInvites+v.TokenString(), in)}, nil
}

// ---- shares sent

// ShareRequest is what the user asks to share (patent A1, A2): friends
// and whole groups, to one or more targets.
type ShareRequest struct {
	To      []peer.ID
	Friends []peer.ID
	Groups  []string
	Partial bool
	Note    string
}

// BuildShare expands groups to their members at share time and seals the
// share with the attestations the relay will check. A target or friend the
// user has no friendship with cannot be proven, so it is refused here, with
// the same reason the relay would give.
func (b *Book) BuildShare(req ShareRequest, now time.Time) (*protocols.UnverifiedShare, []protocols.Failure, error) {
	if len(req.To) == 0 {
		return nil, nil, fmt.Errorf("%w: no target: say whom to share with (--to)", ErrBadArgument)
	}
	items := append([]peer.ID(nil), req.Friends...)
	groupOf := map[peer.ID]string{}
	for _, name := range req.Groups {
		g := b.groups[name]
		if g == nil {
			return nil, nil, fmt.Errorf("%w: no group called %q", ErrNotFound, name)
		}
		for _, m := range g.Members {
			if !containsPeer(items, m) {
				items = append(items, m)
			}
			if groupOf[m] == "" {
				groupOf[m] = name
			}
		}
	}
	// A target is never shared with themselves.
	kept := items[:0]
	for _, it := range items {
		if !containsPeer(req.To, it) && it != b.me {
			kept = append(kept, it)
		}
	}
	items = kept
	if len(items) == 0 {
		return nil, nil, fmt.Errorf("%w: nothing to share: pick friends (--friend) or groups with members (--group)", ErrBadArgument)
	}
	var missing []protocols.Failure
	spec := protocols.ShareSpec{SharerName: b.Settings.Name, CreatedAt: now, Note: req.Note}
	if req.Partial {
		spec.Mode = pb.ShareMode_PARTIAL
	}
	for _, t := range req.To {
		f := b.friends[t]
		if f == nil {
			missing = append(missing, protocols.Failure{Peer: t, Role: pb.Role_TARGET, Reason: pb.Reason_MISSING,
				Detail: fmt.Sprintf("%s is not your friend (no valid attestation)", b.Name(t))})
			continue
		}
		spec.Targets = append(spec.Targets, protocols.ShareTarget{Peer: t, Attestation: f.Attestation})
	}
	for _, it := range items {
		f := b.friends[it]
		if f == nil {
			missing = append(missing, protocols.Failure{Peer: it, Role: pb.Role_ITEM, Reason: pb.Reason_MISSING,
				Detail: fmt.Sprintf("%s is not your friend (no valid attestation)", b.Name(it))})
			continue
		}
		spec.Items = append(spec.Items, protocols.ShareItem{Peer: it, Name: f.Name, Group: groupOf[it], Attestation: f.Attestation, Profile: f.Profile})
	}
	if len(missing) > 0 && (!req.Partial || len(spec.Targets) == 0 || len(spec.Items) == 0) {
		return nil, missing, nil
	}
	s, err := protocols.BuildShare(b.key, spec)
	if err != nil {
		return nil, nil, err
	}
	return s, missing, nil
}

// RecordSent keeps a share the user sent, until the relay answers.
func (b *Book) RecordSent(s *protocols.UnverifiedShare, now time.Time) []Mutation {
	ss := &SentShare{ID: s.ID, Raw: s.Raw, SentAt: now}
	for _, t := range s.Targets {
		ss.Targets = append(ss.Targets, t.Peer)
	}
	b.sent[s.ID] = ss
	return []Mutation{put(prefixSent+s.ID.String(), ss)}
}

// RecordShareAnswer stores the relay's answer to a sent share.
func (b *Book) RecordShareAnswer(id identity.ShareID, res *ShareResult) []Mutation {
	ss := b.sent[id]
	if ss == nil {
		return nil
	}
	ss.Answer = res
	return []Mutation{put(prefixSent+id.String(), ss)}
}

// UnansweredShares returns sent shares the relay has not answered.
func (b *Book) UnansweredShares() []*SentShare {
	var out []*SentShare
	for _, s := range b.sent {
		if s.Answer == nil {
			out = append(out, s)
		}
	}
	if len(out) > 1 {
		sort.Slice(out, func(i, j int) bool { return out[i].SentAt.Before(out[j].SentAt) })
	}
	return out
}

// ---- shares received (patent D1-D3)

// ItemState is what a shared friend is to the user.
type ItemState string

// Item states.
const (
	ItemNew       ItemState = "new"       // can be picked
	ItemFriend    ItemState = "friend"    // already a friend
	ItemPending   ItemState = "pending"   // a request is pending, either way
	ItemBlocked   ItemState = "blocked"   // the user blocked them
	ItemRefused   ItemState = "refused"   // failed verification
	ItemWithdrawn ItemState = "withdrawn" // the share was withdrawn
)

// ReceiveShare verifies a downlink share end to end and keeps it in the
// inbox. A share seen before is returned again without change; one from a
// blocked peer, or not addressed to the user, is refused.
func (b *Book) ReceiveShare(raw []byte, relayRefused []*pb.Failure, now time.Time) (*ReceivedShare, []Mutation, error) {
	u, err := protocols.DecodeShare(raw, protocols.Limits{})
	if err != nil {
		return nil, nil, err
	}
	if old := b.shares[u.ID]; old != nil {
		return old, nil, nil
	}
	if !u.HasTarget(b.me) {
		return nil, nil, fmt.Errorf("share %s is not addressed to you", u.ID)
	}
	if b.blocked[u.Sharer] {
		return nil, nil, fmt.Errorf("share %s is from %s, whom you blocked", u.ID, b.Name(u.Sharer))
	}
	verdict, err := protocols.VerifyShare(b.verifier, u, now, nil)
	if err != nil {
		return nil, nil, err
	}
	mine := false
	for _, t := range verdict.Targets {
		mine = mine || t.Peer == b.me
	}
	if !mine {
		return nil, nil, fmt.Errorf("share %s: your friendship with %s does not verify", u.ID, b.Name(u.Sharer))
	}
	s := &ReceivedShare{ID: u.ID, From: u.Sharer, FromName: u.SharerName, Raw: raw, ReceivedAt: now,
		Refused: map[string]string{}, Note: u.Note, Items: u.Items}
	if f := b.friends[u.Sharer]; f != nil {
		s.FromName = f.Name
	}
	for _, f := range verdict.Failures {
		if f.Role == pb.Role_ITEM {
			s.Refused[f.Peer.String()] = protocols.ReasonText(f.Reason)
		}
	}
	for _, f := range relayRefused {
		if p, err := peer.IDFromBytes(f.Peer); err == nil {
			s.Refused[p.String()] = protocols.ReasonText(f.Reason)
		}
	}
	b.learnNames(u.Items)
	b.shares[u.ID] = s
	return s, []Mutation{put(prefixShares+u.ID.String(), s)}, nil
}

// learnNames keeps the names a share gives its items, for peers the book
// has no name for: a friend's or a requester's own name comes first,
// whichever is loaded first.
func (b *Book) learnNames(items []protocols.ShareItem) {
	for _, it := range items {
		if it.Name != "" && b.names[it.Peer] == "" {
			b.names[it.Peer] = it.Name
		}
	}
}

// Shares returns the inbox of received shares, newest first.
func (b *Book) Shares() []*ReceivedShare {
	out := make([]*ReceivedShare, 0, len(b.shares))
	for _, s := range b.shares {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ReceivedAt.After(out[j].ReceivedAt) })
	return out
}

// Share returns a received share by id.
func (b *Book) Share(id identity.ShareID) *ReceivedShare { return b.shares[id] }

// FindShare resolves what the user typed (a full id, or a unique prefix of
// at least 4 hex digits) to a received share.
func (b *Book) FindShare(s string) (*ReceivedShare, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 4 {
		return nil, fmt.Errorf("%w: share id %q is too short", ErrBadArgument, s)
	}
	var found []*ReceivedShare
	for id, sh := range b.shares {
		if strings.HasPrefix(id.String(), s) {
			found = append(found, sh)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: no share %q in your inbox (see: kith shares)", ErrNotFound, s)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%w: %d shares start with %q", ErrAmbiguous, len(found), s)
}

// ItemState returns the state of a shared friend p in share s.
func (b *Book) ItemState(s *ReceivedShare, p peer.ID) ItemState {
	switch {
	case s.Withdrawn:
		return ItemWithdrawn
	case len(s.Refused) > 0 && s.Refused[p.String()] != "":
		return ItemRefused
	case b.blocked[p]:
		return ItemBlocked
	case b.friends[p] != nil:
		return ItemFriend
	}
	for _, r := range b.requests {
		if r.Peer == p && r.State == Pending {
			return ItemPending
		}
	}
	return ItemNew
}

// requestID derives the id of the request the user makes to p from share
// s: the same pick always yields the same id.
func (b *Book) requestID(s identity.ShareID, p peer.ID) protocols.RequestID {
	h := sha256.New()
	h.Write([]byte("kith/request-id/v1"))
	h.Write(s[:])
	h.Write([]byte(b.me))
	h.Write([]byte(p))
	var id protocols.RequestID
	copy(id[:], h.Sum(nil))
	return id
}

// PickResult says what picking one shared friend did.
type PickResult struct {
	Peer    peer.ID
	Name    string
	Request *Request // the new request, or nil if skipped
	Reason  string   // why it was skipped
}

// Pick plans the add requests for the shared friends the user ticked
// (patent D3 and claims 5, 6): one request per new friend, each with the
// user's half of the attestation and the sharer's introduction; friends,
// pending, blocked, refused and withdrawn items are skipped with the
// reason. Picking again never makes a second request.
func (b *Book) Pick(s *ReceivedShare, picks []peer.ID, all bool, message string, now time.Time) ([]PickResult, []Mutation, error) {
	u, err := protocols.DecodeShare(s.Raw, protocols.Limits{})
	if err != nil {
		return nil, nil, err
	}
	if all {
		picks = nil
		for _, it := range u.Items {
			picks = append(picks, it.Peer)
		}
	}
	if len(picks) == 0 {
		return nil, nil, fmt.Errorf("%w: pick at least one friend, or --all", ErrBadArgument)
	}
	if len(message) > protocols.MaxMessageText {
		return nil, nil, fmt.Errorf("%w: the message is %d bytes, limit %d", ErrBadArgument, len(message), protocols.MaxMessageText)
	}
	var out []PickResult
	var muts []Mutation
	for _, p := range picks {
		it, ok := u.Item(p)
		res := PickResult{Peer: p, Name: it.Name}
		if !ok {
			res.Name = b.Name(p)
			res.Reason = fmt.Sprintf("%s is not in this share", b.Name(p))
			out = append(out, res)
			continue
		}
		id := b.requestID(s.ID, p)
		if r := b.requests[id]; r != nil {
			res.Reason = "already asked (" + string(r.State) + ")"
			out = append(out, res)
			continue
		}
		switch st := b.ItemState(s, p); st {
		case ItemNew:
		case ItemFriend:
			res.Reason = "already your friend"
		case ItemPending:
			res.Reason = "a request is already pending"
		case ItemBlocked:
			res.Reason = "you blocked them"
		case ItemRefused:
			res.Reason = "refused: " + s.Refused[p.String()]
		case ItemWithdrawn:
			res.Reason = "the share was withdrawn"
		}
		if res.Reason != "" {
			out = append(out, res)
			continue
		}
		intro, err := u.Introduction(b.me, p)
		if err != nil {
			res.Reason = err.Error()
			out = append(out, res)
			continue
		}
		if message == "" {
			message = fmt.Sprintf("%s shared you with %s; %s would like to be your friend.", s.FromName, b.Settings.Name, b.Settings.Name)
		}
		r, _, err := b.newRequest(id, p, it.Name, intro, nil, message, now)
		if err != nil {
			res.Reason = err.Error()
			out = append(out, res)
			continue
		}
		r.Introducer, r.IntroducerName, r.IntroducerVerified, r.ShareID = s.From, s.FromName, true, s.ID
		r.PeerProfile = it.Profile
		muts = append(muts, put(prefixRequests+r.ID.String(), r))
		res.Request = r
		out = append(out, res)
	}
	return out, muts, nil
}

func (b *Book) newRequest(id protocols.RequestID, to peer.ID, name string, intro, invite []byte, message string, now time.Time) (*Request, []Mutation, error) {
	offer, err := identity.MakeOffer(b.key, to, now, 0)
	if err != nil {
		return nil, nil, err
	}
	o, err := b.verifier.Offer(offer, to, now)
	if err != nil {
		return nil, nil, err
	}
	wire, err := protocols.BuildAddRequest(b.key, protocols.AddRequestSpec{
		ID: id, To: to, Offer: offer, Introduction: intro, Invite: invite,
		Message: message, FromName: b.Settings.Name, FromProfile: b.myProfile, CreatedAt: now,
	})
	if err != nil {
		return nil, nil, err
	}
	raw, _ := proto.Marshal(wire)
	r := &Request{ID: id, Direction: Outgoing, Peer: to, Name: name, State: Pending, Message: message,
		CreatedAt: now, Wire: raw, OfferID: o.ID, Sent: Queued}
	b.requests[id] = r
	if name != "" {
		b.names[to] = name
	}
	return r, []Mutation{put(prefixRequests+id.String(), r)}, nil
}

// AddByInvite makes a friend request to the inviter of an invite link.
func (b *Book) AddByInvite(link, message string, now time.Time) (*Request, *identity.Invite, []Mutation, error) {
	raw, err := identity.ParseInviteLink(link)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrBadArgument, err)
	}
	in, err := b.verifier.Invite(raw, now)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("the invite does not verify: %w", err)
	}
	if in.Inviter == b.me {
		return nil, nil, nil, fmt.Errorf("%w: that is your own invite", ErrBadArgument)
	}
	if b.friends[in.Inviter] != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s is already your friend", ErrBadArgument, in.Name)
	}
	h := sha256.Sum256(append([]byte("kith/invite-request/v1"), append(in.Token[:], []byte(b.me)...)...))
	var id protocols.RequestID
	copy(id[:], h[:])
	if r := b.requests[id]; r != nil {
		return r, in, nil, nil
	}
	if message == "" {
		message = fmt.Sprintf("%s would like to be your friend.", b.Settings.Name)
	}
	r, _, err := b.newRequest(id, in.Inviter, in.Name, nil, raw, message, now)
	if err != nil {
		return nil, nil, nil, err
	}
	r.ViaInvite = true
	for _, a := range in.Relays {
		r.PeerRelays = append(r.PeerRelays, a.String())
	}
	return r, in, []Mutation{put(prefixRequests+r.ID.String(), r)}, nil
}

// MarkSent records how an outgoing request left.
func (b *Book) MarkSent(id protocols.RequestID, how Delivery) []Mutation {
	r := b.requests[id]
	if r == nil || r.Sent == how {
		return nil
	}
	r.Sent = how
	return []Mutation{put(prefixRequests+id.String(), r)}
}

// MarkAnswerSent records how an acceptance left.
func (b *Book) MarkAnswerSent(id protocols.RequestID, how Delivery) []Mutation {
	r := b.requests[id]
	if r == nil || r.AnswerSent == how {
		return nil
	}
	r.AnswerSent = how
	return []Mutation{put(prefixRequests+id.String(), r)}
}

// Requests returns requests in and out, newest first.
func (b *Book) Requests() []*Request {
	out := make([]*Request, 0, len(b.requests))
	for _, r := range b.requests {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// Request returns a request by id.
func (b *Book) Request(id protocols.RequestID) *Request { return b.requests[id] }

// FindRequest resolves a full id or a unique prefix (4+ hex digits).
func (b *Book) FindRequest(s string) (*Request, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 4 {
		return nil, fmt.Errorf("%w: request id %q is too short", ErrBadArgument, s)
	}
	var found []*Request
	for id, r := range b.requests {
		if strings.HasPrefix(id.String(), s) {
			found = append(found, r)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w: no request %q (see: kith requests)", ErrNotFound, s)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%w: %d requests start with %q", ErrAmbiguous, len(found), s)
}

// Unsent returns outgoing requests and acceptances still to deliver.
func (b *Book) Unsent() (requests, answers []*Request) {
	for _, r := range b.requests {
		if r.Direction == Outgoing && r.State == Pending && r.Sent == Queued {
			requests = append(requests, r)
		}
		if r.Direction == Incoming && r.State == Accepted && (r.AnswerSent == "" || r.AnswerSent == Queued) {
			answers = append(answers, r)
		}
	}
	return requests, answers
}

// ---- requests received (step 107)

// ErrDropped is returned for a request the node drops silently: from a
// blocked peer, without a valid introduction by a friend or an invite of
// the user's, or a duplicate. The sender is never told which.
var ErrDropped = errors.New("request dropped")

// ReceiveRequest verifies an incoming friend request and keeps it pending
// for the user to answer. It needs either an introduction by one of the
// user's friends ("your friend A shared you with B", verified with A's key
// and with A's both-signed friendships with B and with the user) or an
// invite the user issued. A request that fails verification is dropped
// with an error that carries the *identity.VerifyError (its reason).
func (b *Book) ReceiveRequest(wire *pb.AddRequest, now time.Time) (*Request, []Mutation, error) {
	u, err := protocols.DecodeAddRequest(wire)
	if err != nil {
		return nil, nil, err
	}
	if u.To != b.me {
		return nil, nil, fmt.Errorf("%w: addressed to %s", ErrDropped, u.To)
	}
	if b.blocked[u.From] {
		return nil, nil, fmt.Errorf("%w: %s is blocked", ErrDropped, u.From)
	}
	if old := b.requests[u.ID]; old != nil {
		return old, nil, nil // a retry
	}
	req, err := protocols.VerifyAddRequest(b.verifier, u, now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrDropped, err)
	}
	r := &Request{ID: u.ID, Direction: Incoming, Peer: u.From, Name: u.FromName, State: Pending,
		Message: u.Message, CreatedAt: now, OfferID: req.Offer.ID, PeerProfile: u.FromProfile}
	r.Wire, _ = proto.Marshal(wire)
	if req.Introduction != nil {
		introducer := req.Introduction.Sharer
		if b.friends[introducer] == nil {
			return nil, nil, fmt.Errorf("%w: introduced by %s, who is not your friend", ErrDropped, introducer)
		}
		r.Introducer, r.IntroducerName, r.IntroducerVerified = introducer, b.Name(introducer), true
		r.ShareID = req.Introduction.ShareID
	} else {
		in, err := b.verifier.Invite(u.Invite, now)
		if err != nil || in.Inviter != b.me || b.invites[in.TokenString()] == nil {
			return nil, nil, fmt.Errorf("%w: no introduction and not an invite of yours", ErrDropped)
		}
		r.ViaInvite = true
	}
	if f := b.friends[u.From]; f != nil {
		return nil, nil, fmt.Errorf("%w: %s is already your friend", ErrDropped, f.Name)
	}
	for _, other := range b.requests {
		if other.Peer == u.From && other.State == Pending && other.Direction == Incoming {
			return other, nil, nil // one pending request per person is enough
		}
	}
	b.requests[u.ID] = r
	if r.Name != "" {
		b.names[u.From] = r.Name
	}
	return r, []Mutation{put(prefixRequests+r.ID.String(), r)}, nil
}

// Accept answers an incoming request yes: the user countersigns the
// requester's offer, making the friendship; the answer to send back is the
// countersigned attestation.
func (b *Book) Accept(id protocols.RequestID, now time.Time) (*Friend, *pb.AddAnswer, []Mutation, error) {
	r := b.requests[id]
	if r == nil || r.Direction != Incoming {
		return nil, nil, nil, fmt.Errorf("%w: no incoming request %s", ErrNotFound, id)
	}
	if r.State != Pending {
		if r.State == Accepted && r.Answer != nil {
			return b.friends[r.Peer], &pb.AddAnswer{RequestId: id[:], Attestation: r.Answer, Profile: b.myProfile}, nil, nil
		}
		return nil, nil, nil, fmt.Errorf("%w: the request from %s is %s", ErrAlreadyFinal, b.Name(r.Peer), r.State)
	}
	var wire pb.AddRequest
	if err := proto.Unmarshal(r.Wire, &wire); err != nil {
		return nil, nil, nil, err
	}
	u, err := protocols.DecodeAddRequest(&wire)
	if err != nil {
		return nil, nil, nil, err
	}
	att, err := b.verifier.Countersign(b.key, u.Offer, now)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("cannot accept: %w", err)
	}
	f, muts := b.addFriend(att, r.Name, r.Introducer, r.PeerProfile, r.PeerRelays, now)
	r.State, r.Answer, r.AnswerSent = Accepted, att.Raw, Queued
	muts = append(muts, put(prefixRequests+id.String(), r))
	return f, &pb.AddAnswer{RequestId: id[:], Attestation: att.Raw, Profile: b.myProfile}, muts, nil
}

// Decline answers an incoming request no. Nothing is sent: the requester
// is never told.
func (b *Book) Decline(id protocols.RequestID) ([]Mutation, error) {
	r := b.requests[id]
	if r == nil || r.Direction != Incoming {
		return nil, fmt.Errorf("%w: no incoming request %s", ErrNotFound, id)
	}
	if r.State != Pending {
		return nil, fmt.Errorf("%w: the request from %s is %s", ErrAlreadyFinal, b.Name(r.Peer), r.State)
	}
	r.State = Declined
	return []Mutation{put(prefixRequests+id.String(), r)}, nil
}

// ReceiveAnswer takes an acceptance of one of the user's requests: the
// attestation, countersigned by the friend, of exactly the offer made.
func (b *Book) ReceiveAnswer(ans *pb.AddAnswer, now time.Time) (*Friend, []Mutation, error) {
	var id protocols.RequestID
	copy(id[:], ans.RequestId)
	r := b.requests[id]
	if r == nil || r.Direction != Outgoing {
		return nil, nil, fmt.Errorf("%w: an answer to no request of yours", ErrDropped)
	}
	att, err := b.verifier.Friendship(ans.Attestation, b.me, r.Peer, now)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrDropped, err)
	}
	if att.ID != r.OfferID {
		return nil, nil, fmt.Errorf("%w: the attestation is not the one offered", ErrDropped)
	}
	if r.State == Accepted {
		return b.friends[r.Peer], nil, nil
	}
	profile := r.PeerProfile
	if len(ans.Profile) > 0 {
		if p, err := b.verifier.Profile(ans.Profile, now); err == nil && p.Owner == r.Peer {
			profile = ans.Profile
		}
	}
	f, muts := b.addFriend(att, r.Name, r.Introducer, profile, r.PeerRelays, now)
	r.State = Accepted
	muts = append(muts, put(prefixRequests+id.String(), r))
	return f, muts, nil
}

// ---- unfriend, block, revocations

// Unfriend ends a friendship: a revocation signed by the user, to send to
// the relays; the friend leaves every group.
func (b *Book) Unfriend(p peer.ID, now time.Time) ([]byte, []Mutation, error) {
	f := b.friends[p]
	if f == nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotFriend, b.Name(p))
	}
	att, err := identity.NewVerifier().Attestation(f.Attestation, now)
	if err != nil {
		// Expired or malformed: still end it locally.
		delete(b.friends, p)
		return nil, append(b.leaveGroups(p), del(prefixFriends+p.String())), nil
	}
	raw, err := identity.Revoke(b.key, att, now)
	if err != nil {
		return nil, nil, err
	}
	muts, err := b.ApplyRevocation(raw)
	if err != nil {
		return nil, nil, err
	}
	return raw, muts, nil
}

func (b *Book) leaveGroups(p peer.ID) []Mutation {
	var muts []Mutation
	for _, g := range b.groups {
		if containsPeer(g.Members, p) {
			m, _ := b.RemoveFromGroup(g.Name, []peer.ID{p})
			muts = append(muts, m...)
		}
	}
	return muts
}

// ApplyRevocation takes a verified revocation (the user's own, a friend's,
// or one relayed in a withdrawal): the friendship it ends is gone, and
// shares resting on it are marked withdrawn.
func (b *Book) ApplyRevocation(raw []byte) ([]Mutation, error) {
	rev, err := b.verifier.Revocation(raw)
	if err != nil {
		return nil, err
	}
	if !b.revoked.Add(rev) {
		return nil, nil
	}
	muts := []Mutation{{Key: ds.RawKey(prefixRevoked + rev.AttestationID.String()), Value: raw}}
	for p, f := range b.friends {
		if f.AttestationID == rev.AttestationID {
			delete(b.friends, p)
			muts = append(muts, del(prefixFriends+p.String()))
			muts = append(muts, b.leaveGroups(p)...)
		}
	}
	return muts, nil
}

// Withdraw marks a received share, or an incoming request, withdrawn.
func (b *Book) Withdraw(w *pb.Withdrawal) ([]Mutation, error) {
	muts, err := b.ApplyRevocation(w.Revocation)
	if err != nil {
		return nil, err
	}
	switch w.ItemKind {
	case pb.ItemKind_SHARE:
		id, err := identity.ShareIDFromBytes(w.ItemId)
		if err == nil {
			if s := b.shares[id]; s != nil && !s.Withdrawn {
				s.Withdrawn = true
				muts = append(muts, put(prefixShares+id.String(), s))
			}
		}
	case pb.ItemKind_ADD_REQUEST:
		var id protocols.RequestID
		copy(id[:], w.ItemId)
		if r := b.requests[id]; r != nil && r.State == Pending {
			r.State = Withdrawn
			muts = append(muts, put(prefixRequests+id.String(), r))
		}
	}
	return muts, nil
}

// Block drops everything from p from now on.
func (b *Book) Block(p peer.ID) []Mutation {
	if b.blocked[p] {
		return nil
	}
	b.blocked[p] = true
	muts := []Mutation{{Key: ds.RawKey(prefixBlocked + p.String()), Value: []byte("{}")}}
	for _, r := range b.requests {
		if r.Peer == p && r.Direction == Incoming && r.State == Pending {
			r.State = Declined
			muts = append(muts, put(prefixRequests+r.ID.String(), r))
		}
	}
	return muts
}

// Blocked returns the blocked peers.
func (b *Book) Blocked() []peer.ID {
	var out []peer.ID
	for p := range b.blocked {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Rename changes the user's display name (a new profile sequence).
func (b *Book) Rename(name string) ([]Mutation, error) {
	if err := identity.ValidateName(name); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadArgument, err)
	}
	b.Settings.Name = name
	b.Settings.Seq++
	return []Mutation{put(keySettings, b.Settings)}, nil
}

// SetHomeRelays records the relays the user's profile names. A change
// takes a new profile sequence, so that the newest profile is the one that
// wins wherever profiles meet (the relays' DHT keeps the highest). A relay
// that is no longer named becomes a left relay (LeftRelays), to be
// drained; one named again is no longer left.
func (b *Book) SetHomeRelays(addrs []string, now time.Time) []Mutation {
	if slices.Equal(addrs, b.Settings.Relays) {
		return nil
	}
	home := relayPeers(addrs)
	b.Settings.Left = slices.DeleteFunc(b.Settings.Left, func(l LeftRelay) bool {
		_, again := home[l.Peer]
		return again
	})
	old := relayPeers(b.Settings.Relays)
	for _, a := range b.Settings.Relays {
		id, ok := relayPeer(a)
		if !ok || home[id] != nil || slices.ContainsFunc(b.Settings.Left, func(l LeftRelay) bool { return l.Peer == id }) {
			continue
		}
		b.Settings.Left = append(b.Settings.Left, LeftRelay{Peer: id, Addrs: old[id], Since: now})
	}
	b.Settings.Relays = slices.Clone(addrs)
	b.Settings.Seq++
	return []Mutation{put(keySettings, b.Settings)}
}

// LeftRelays returns the relays the user left that may still hold items
// for them.
func (b *Book) LeftRelays() []LeftRelay { return slices.Clone(b.Settings.Left) }

// RelayDrained forgets a left relay: it holds nothing more for the user,
// or has held it past any mailbox's life.
func (b *Book) RelayDrained(id peer.ID) []Mutation {
	n := len(b.Settings.Left)
	b.Settings.Left = slices.DeleteFunc(b.Settings.Left, func(l LeftRelay) bool { return l.Peer == id })
	if len(b.Settings.Left) == n {
		return nil
	}
	return []Mutation{put(keySettings, b.Settings)}
}

// relayPeer returns the peer a relay address ends in.
func relayPeer(addr string) (peer.ID, bool) {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return "", false
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return "", false
	}
	return ai.ID, true
}

// relayPeers groups relay addresses by the peer they end in.
func relayPeers(addrs []string) map[peer.ID][]string {
	out := map[peer.ID][]string{}
	for _, a := range addrs {
		if id, ok := relayPeer(a); ok {
			out[id] = append(out[id], a)
		}
	}
	return out
}

// LearnProfile keeps a signed profile of a friend or of a peer in a
// request, if it verifies and is newer than the one held: the profile
// names their home relays. Anything else is ignored.
func (b *Book) LearnProfile(raw []byte, now time.Time) []Mutation {
	prof, err := b.verifier.Profile(raw, now.Add(identity.DefaultClockSkew))
	if err != nil {
		return nil
	}
	newer := func(old []byte) bool {
		if len(old) == 0 {
			return true
		}
		o, err := b.verifier.Profile(old, now.Add(identity.DefaultClockSkew))
		return err != nil || o.Owner != prof.Owner || prof.Seq > o.Seq
	}
	var muts []Mutation
	if f := b.friends[prof.Owner]; f != nil && newer(f.Profile) {
		f.Profile = prof.Raw
		muts = append(muts, put(prefixFriends+f.ID.String(), f))
	}
	for _, r := range b.requests {
		if r.Peer == prof.Owner && newer(r.PeerProfile) {
			r.PeerProfile = prof.Raw
			muts = append(muts, put(prefixRequests+r.ID.String(), r))
		}
	}
	return muts
}

// ProfileAsks returns presence asks for the peers among ps the user may
// ask about, each with its proof: the friendship, else the introduction
// of a request between them.
func (b *Book) ProfileAsks(ps []peer.ID) []*pb.PresenceAsk {
	var out []*pb.PresenceAsk
	for _, p := range ps {
		if f := b.friends[p]; f != nil {
			out = append(out, &pb.PresenceAsk{Peer: []byte(p), Attestation: f.Attestation})
			continue
		}
		for _, r := range b.requests {
			if r.Peer != p {
				continue
			}
			var w pb.AddRequest
			if proto.Unmarshal(r.Wire, &w) != nil {
				continue
			}
			if u, err := protocols.DecodeAddRequest(&w); err == nil && len(u.Introduction) > 0 {
				out = append(out, &pb.PresenceAsk{Peer: []byte(p), Introduction: u.Introduction})
				break
			}
		}
	}
	return out
}

// SaveSettings returns the mutation storing the settings.
func (b *Book) SaveSettings() []Mutation { return []Mutation{put(keySettings, b.Settings)} }

// ---- revocations to hand to relays

const prefixRevokeQueue = "/kith/node/revoke-queue/"

// QueueRevocation keeps a revocation until a relay has taken it.
func (b *Book) QueueRevocation(raw []byte) []Mutation {
	rev, err := b.verifier.Revocation(raw)
	if err != nil {
		return nil
	}
	b.revokeQueue[rev.AttestationID] = raw
	return []Mutation{{Key: ds.RawKey(prefixRevokeQueue + rev.AttestationID.String()), Value: raw}}
}

// QueuedRevocations returns the revocations no relay has taken yet.
func (b *Book) QueuedRevocations() [][]byte {
	out := make([][]byte, 0, len(b.revokeQueue))
	for _, raw := range b.revokeQueue {
		out = append(out, raw)
	}
	return out
}

// RevocationsSent drops revocations a relay has taken from the queue.
func (b *Book) RevocationsSent(raws [][]byte) []Mutation {
	var muts []Mutation
	for _, raw := range raws {
		rev, err := b.verifier.Revocation(raw)
		if err != nil {
			continue
		}
		delete(b.revokeQueue, rev.AttestationID)
		muts = append(muts, del(prefixRevokeQueue+rev.AttestationID.String()))
	}
	return muts
}
