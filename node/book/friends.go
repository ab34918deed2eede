package book

import (
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

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
		return "", Kindf(ErrNotFound, "%q is neither a peer id nor the name of a friend", s)
	case 1:
		return found[0], nil
	}
	return "", Kindf(ErrAmbiguous, "%d are named %q; use the peer id", len(found), s)
}

// IsBlocked reports whether the user blocked p.
func (b *Book) IsBlocked(p peer.ID) bool { return b.blocked[p] }

// addFriend records a countersigned attestation as a friendship.
func (b *Book) addFriend(att *identity.Attestation, name string, introducer peer.ID, profile, profileKey []byte, relays []string, now time.Time) (*Friend, []Mutation) {
	other := att.Other(b.me)
	if name == "" {
		name = b.Name(other)
	}
	f := &Friend{ID: other, Name: name, Attestation: att.Raw, AttestationID: att.ID, Since: now, Profile: profile, ProfileKey: profileKey, Relays: relays}
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
