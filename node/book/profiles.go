package book

import (
	"bytes"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

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
		if name := b.nameFrom(f.ID, prof.Raw, f.ProfileKey, now); name != "" {
			f.Name, b.names[f.ID] = name, name // they renamed themselves
		}
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
		// Of several requests with p (one merged into another, an old one
		// declined), the newest with an introduction proves the most
		// lately; the same one every time.
		var intro []byte
		var at time.Time
		var id protocols.RequestID
		for _, r := range b.requests {
			if r.Peer != p || (intro != nil && (r.CreatedAt.Before(at) || (r.CreatedAt.Equal(at) && bytes.Compare(r.ID[:], id[:]) < 0))) {
				continue
			}
			var w pb.AddRequest
			if proto.Unmarshal(r.Wire, &w) != nil {
				continue
			}
			if u, err := protocols.DecodeAddRequest(&w); err == nil && len(u.Introduction) > 0 {
				intro, at, id = u.Introduction, r.CreatedAt, r.ID
			}
		}
		if intro != nil {
			out = append(out, &pb.PresenceAsk{Peer: []byte(p), Introduction: intro})
		}
	}
	return out
}
