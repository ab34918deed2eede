package rendezvous

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
)

// putProfile keeps p if it is newer than the profile held for its owner.
func (s *store) putProfile(ctx context.Context, p *identity.Profile) error {
	return s.doLazy(ctx, func(tx *txn) error {
		if old := s.profiles[p.Owner]; old != nil && old.Seq > p.Seq {
			return nil
		}
		s.profiles[p.Owner] = p
		tx.add(mutation{key: profileKey(p.Owner), value: p.Raw})
		return nil
	})
}

// users returns how many users' profiles the relay holds: those who
// logged in here (and whose profile it keeps).
func (s *store) users() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.profiles)
}

// allProfiles returns every profile held.
func (s *store) allProfiles() []*identity.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*identity.Profile, 0, len(s.profiles))
	for _, p := range s.profiles {
		out = append(out, p)
	}
	return out
}

// profile returns the newest profile held for p, or nil.
func (s *store) profile(p peer.ID) *identity.Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.profiles[p]
}
