package book

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// ItemState is what a shared friend is to the user.
type ItemState string

// Item states.
const (
	ItemNew       ItemState = "new"       // can be picked
	ItemFormer    ItemState = "former"    // was a friend: --all skips them, a pick by name asks again
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
	s := &ReceivedShare{ID: u.ID, From: u.Sharer, Raw: raw, ReceivedAt: now, Refused: map[string]string{}, decoded: u}
	if sec, err := u.Secret(b.keys, b.me); err != nil {
		s.Unopened = err.Error() // the share holds; its words and names stay unknown
	} else {
		u.Reveal(sec)
		s.Secret = sec
	}
	s.FromName, s.Note, s.Items = u.SharerName, u.Note, u.Items
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
	sort.Slice(out, func(i, j int) bool {
		if !out[i].ReceivedAt.Equal(out[j].ReceivedAt) {
			return out[i].ReceivedAt.After(out[j].ReceivedAt)
		}
		return out[i].ID.String() < out[j].ID.String() // the same order every time
	})
	return out
}

// Share returns a received share by id.
func (b *Book) Share(id identity.ShareID) *ReceivedShare { return b.shares[id] }

// FindShare resolves what the user typed (a full id, or a unique prefix of
// at least 4 hex digits) to a received share.
func (b *Book) FindShare(s string) (*ReceivedShare, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if len(s) < 4 {
		return nil, Kindf(ErrBadArgument, "share id %q is too short", s)
	}
	var found []*ReceivedShare
	for id, sh := range b.shares {
		if strings.HasPrefix(id.String(), s) {
			found = append(found, sh)
		}
	}
	switch len(found) {
	case 0:
		return nil, Kindf(ErrNotFound, "no share %q in your inbox (see: kith shares)", s)
	case 1:
		return found[0], nil
	}
	return nil, Kindf(ErrAmbiguous, "%d shares start with %q", len(found), s)
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
	if _, ok := b.former[p]; ok {
		return ItemFormer
	}
	return ItemNew
}

// DismissShare puts a received share away, or back (dismissed false).
func (b *Book) DismissShare(id identity.ShareID, dismissed bool) []Mutation {
	s := b.shares[id]
	if s == nil || s.Dismissed == dismissed {
		return nil
	}
	s.Dismissed = dismissed
	return []Mutation{put(prefixShares+id.String(), s)}
}
