package book

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

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
	return b.ReceiveDecoded(u, now)
}

// ReceiveDecoded is ReceiveRequest for a request already decoded.
func (b *Book) ReceiveDecoded(u *protocols.UnverifiedAddRequest, now time.Time) (*Request, []Mutation, error) {
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
	r := &Request{ID: u.ID, Direction: Incoming, Peer: u.From, State: Pending,
		CreatedAt: now, OfferID: req.Offer.ID, PeerProfile: u.FromProfile, ExpiresAt: expiryOf(u, now)}
	if !now.Before(r.ExpiresAt) {
		return nil, nil, fmt.Errorf("%w: the request expired at %s", ErrDropped, r.ExpiresAt.Format(time.RFC3339))
	}
	if sec, err := u.Secret(b.keys); err != nil {
		r.Unopened = err.Error() // the request holds; its words stay unknown
	} else {
		r.Name, r.Message = sec.FromName, sec.Message
		if sec.ProfileKey != nil && b.opensProfile(u.From, u.FromProfile, *sec.ProfileKey, now) {
			r.PeerProfileKey = sec.ProfileKey[:]
			if name := b.nameFrom(u.From, u.FromProfile, r.PeerProfileKey, now); name != "" {
				r.Name = name
			}
		}
	}
	r.Wire, _ = proto.Marshal(u.Wire)
	var inviteToken string
	if req.Introduction != nil {
		// Each introducer counts only if they are the user's friend.
		for _, in := range req.Introductions() {
			if b.friends[in.Sharer] == nil {
				continue
			}
			r.Introducers = append(r.Introducers, Introducer{Peer: in.Sharer, Name: b.Name(in.Sharer), ShareID: in.ShareID})
			r.RestsOn = append(r.RestsOn, in.RecipientAttestation, in.SubjectAttestation)
		}
		if len(r.Introducers) == 0 {
			return nil, nil, fmt.Errorf("%w: introduced by %s, who is not your friend", ErrDropped, req.Introduction.Sharer)
		}
		first := r.Introducers[0]
		r.Introducer, r.IntroducerName, r.IntroducerVerified, r.ShareID = first.Peer, first.Name, true, first.ShareID
	} else {
		in, err := b.verifier.Invite(u.Invite, now)
		if err != nil || in.Inviter != b.me || b.invites[in.TokenString()] == nil {
			return nil, nil, fmt.Errorf("%w: no introduction and not an invite of yours", ErrDropped)
		}
		r.ViaInvite = true
		inviteToken = in.TokenString()
		r.Invite = inviteToken
	}
	if f := b.friends[u.From]; f != nil {
		return nil, nil, fmt.Errorf("%w: %s is already your friend", ErrDropped, f.Name)
	}
	var muts []Mutation
	for _, other := range b.requests {
		if other.Peer == u.From && other.StateAt(now) == Pending && other.Direction == Incoming {
			// One pending request per person is enough; but one that
			// carries introductions the pending one lacks replaces it
			// (several friends shared the requester).
			if !moreIntroducers(r, other) {
				return other, nil, nil
			}
			other.State = Merged
			muts = append(muts, put(prefixRequests+other.ID.String(), other))
		}
	}
	if inviteToken != "" {
		m, err := b.useInvite(inviteToken, b.invites[inviteToken], u.From, now)
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrDropped, err)
		}
		muts = m
	}
	b.requests[u.ID] = r
	if r.Name != "" {
		b.names[u.From] = r.Name
	}
	return r, append(muts, put(prefixRequests+r.ID.String(), r)), nil
}

// introducedByAll names every introducer of r as who introduced friend
// f, when there were several.
func (b *Book) introducedByAll(f *Friend, r *Request) []Mutation {
	ins := r.IntroducerList()
	if f == nil || len(ins) < 2 {
		return nil
	}
	ns := make([]string, len(ins))
	for i, in := range ins {
		ns[i] = b.Name(in.Peer)
	}
	f.IntroducedByName = JoinNames(ns)
	return []Mutation{put(prefixFriends+f.ID.String(), f)}
}

// JoinNames joins names as a person would: "Alice", "Alice and Dave",
// "Alice, Dave and Erin".
func JoinNames(ns []string) string {
	switch len(ns) {
	case 0:
		return ""
	case 1:
		return ns[0]
	}
	return strings.Join(ns[:len(ns)-1], ", ") + " and " + ns[len(ns)-1]
}

// moreIntroducers reports whether r names an introducer that other does
// not.
func moreIntroducers(r, other *Request) bool {
	have := map[peer.ID]bool{}
	for _, in := range other.IntroducerList() {
		have[in.Peer] = true
	}
	for _, in := range r.Introducers {
		if !have[in.Peer] {
			return true
		}
	}
	return false
}

// expiryOf is when an incoming request expires: RequestLifetime after it
// was made (as its sender signed), and never later than that from now (a
// sender's clock far behind).
func expiryOf(u *protocols.UnverifiedAddRequest, now time.Time) time.Time {
	at := u.CreatedAt.Add(RequestLifetime)
	if at.After(now.Add(RequestLifetime)) {
		at = now.Add(RequestLifetime)
	}
	return at
}

// Accept answers an incoming request yes: the user countersigns the
// requester's offer, making the friendship; the answer to send back is the
// countersigned attestation.
func (b *Book) Accept(id protocols.RequestID, now time.Time) (*Friend, *pb.AddAnswer, []Mutation, error) {
	r := b.requests[id]
	if r == nil || r.Direction != Incoming {
		return nil, nil, nil, Kindf(ErrNotFound, "no incoming request %s", id)
	}
	// A declined request can still be accepted while it is valid (the
	// user changed their mind: its sender was never told).
	if st := r.StateAt(now); st != Pending && st != Declined {
		if r.State == Accepted && r.Answer != nil {
			return b.friends[r.Peer], b.Answer(r, now), nil, nil
		}
		return nil, nil, nil, Kindf(ErrAlreadyFinal, "the request from %s is %s", b.Name(r.Peer), st)
	}
	if r.State == Declined && !now.Before(r.Expiry()) {
		return nil, nil, nil, Kindf(ErrAlreadyFinal, "the request from %s expired", b.Name(r.Peer))
	}
	if b.blocked[r.Peer] {
		return nil, nil, nil, Kindf(ErrBadArgument, "you blocked %s: unblock them first", b.Name(r.Peer))
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
	f, muts := b.addFriend(att, r.Name, r.Introducer, r.PeerProfile, r.PeerProfileKey, r.PeerRelays, now)
	muts = append(muts, b.introducedByAll(f, r)...)
	r.State, r.Answer, r.AnswerSent = Accepted, att.Raw, Queued
	muts = append(muts, put(prefixRequests+id.String(), r))
	return f, b.Answer(r, now), muts, nil
}

// Answer returns the acceptance of incoming request r to send: the
// countersigned attestation, the user's profile, and the user's profile
// key sealed to the requester (left out when their profile publishes no
// encryption key: they keep the name they knew).
func (b *Book) Answer(r *Request, now time.Time) *pb.AddAnswer {
	ans := &pb.AddAnswer{RequestId: r.ID[:], Attestation: r.Answer, Profile: b.myProfile}
	if b.profileKey == nil {
		return ans
	}
	if key, err := b.encKeyOf(r.Peer, r.PeerProfile, now); err == nil {
		ans.Sealed, _ = protocols.SealAnswer(key, r.ID, *b.profileKey)
	}
	return ans
}

// Decline answers an incoming request no. Nothing is sent: the requester
// is never told.
func (b *Book) Decline(id protocols.RequestID, now time.Time) ([]Mutation, error) {
	r := b.requests[id]
	if r == nil || r.Direction != Incoming {
		return nil, Kindf(ErrNotFound, "no incoming request %s", id)
	}
	if st := r.StateAt(now); st != Pending {
		return nil, Kindf(ErrAlreadyFinal, "the request from %s is %s", b.Name(r.Peer), st)
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
	var profileKey []byte
	name := r.Name
	if len(ans.Sealed) > 0 && len(profile) > 0 {
		// The answer is not signed as a whole: the key counts only if it
		// opens the name in their signed profile.
		if k, err := protocols.OpenAnswer(b.keys, ans); err == nil {
			if opened := b.nameFrom(r.Peer, profile, k[:], now); opened != "" {
				profileKey, name = k[:], opened
			}
		}
	}
	f, muts := b.addFriend(att, name, r.Introducer, profile, profileKey, r.PeerRelays, now)
	muts = append(muts, b.introducedByAll(f, r)...)
	// Requests merged into one another share its offer: all are answered.
	for oid, o := range b.requests {
		if o.Direction == Outgoing && o.OfferID == r.OfferID && o.State != Accepted {
			o.State = Accepted
			muts = append(muts, put(prefixRequests+oid.String(), o))
		}
	}
	return f, muts, nil
}
