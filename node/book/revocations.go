package book

import (
	"fmt"
	"slices"
	"sort"
	"time"

	ds "github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// Unfriend ends a friendship: a revocation signed by the user, to send to
// the relays; the friend leaves every group.
func (b *Book) Unfriend(p peer.ID, now time.Time) ([]byte, []Mutation, error) {
	f := b.friends[p]
	if f == nil {
		return nil, nil, Kindf(ErrNotFriend, "%s", b.Name(p))
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
			// Shares from before no longer offer them as someone new.
			b.former[p] = rev.RevokedAt
			muts = append(muts, Mutation{Key: ds.RawKey(prefixFormer + p.String()), Value: []byte(rev.RevokedAt.UTC().Format(time.RFC3339))})
		}
	}
	// Pending requests resting on it end: a request whose offer it
	// revokes (its sender cancelled it), or whose introducer's friendship
	// with either side it ends.
	for id, r := range b.requests {
		if r.State != Pending {
			continue
		}
		if (r.Direction == Incoming && r.OfferID == rev.AttestationID) || slices.Contains(r.RestsOn, rev.AttestationID) {
			r.State = Withdrawn
			muts = append(muts, put(prefixRequests+id.String(), r))
		}
	}
	return muts, nil
}

// HasPendingOffer reports whether p has a pending request to the user
// whose offer is the attestation id.
func (b *Book) HasPendingOffer(p peer.ID, id identity.AttestationID) bool {
	for _, r := range b.requests {
		if r.Direction == Incoming && r.Peer == p && r.OfferID == id && r.State == Pending {
			return true
		}
	}
	return false
}

// CancelRequest takes back a request the user sent: the user revokes the
// offer in it, which the relays withdraw it by (from the mailbox, or from
// the recipient's node if it was delivered) and the recipient's node, if
// it was sent there directly, is told. The revocation is returned to send.
func (b *Book) CancelRequest(id protocols.RequestID, now time.Time) ([]byte, []Mutation, error) {
	r := b.requests[id]
	if r == nil || r.Direction != Outgoing {
		return nil, nil, Kindf(ErrNotFound, "no request of yours %s", id)
	}
	if st := r.StateAt(now); st != Pending {
		return nil, nil, Kindf(ErrAlreadyFinal, "the request to %s is %s", b.Name(r.Peer), st)
	}
	var wire pb.AddRequest
	if err := proto.Unmarshal(r.Wire, &wire); err != nil {
		return nil, nil, err
	}
	u, err := protocols.DecodeAddRequest(&wire)
	if err != nil {
		return nil, nil, err
	}
	offer, err := b.verifier.Offer(u.Offer, r.Peer, now)
	if err != nil {
		return nil, nil, fmt.Errorf("the request's offer: %w", err)
	}
	raw, err := identity.Revoke(b.key, offer, now)
	if err != nil {
		return nil, nil, err
	}
	muts, err := b.ApplyRevocation(raw)
	if err != nil {
		return nil, nil, err
	}
	r.State = Cancelled
	return raw, append(muts, put(prefixRequests+id.String(), r)), nil
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

// Unblock lets p reach the user again: their requests and shares are
// received from now on (what was dropped while they were blocked is gone).
func (b *Book) Unblock(p peer.ID) ([]Mutation, error) {
	if !b.blocked[p] {
		return nil, Kindf(ErrNotFound, "%s is not blocked", b.Name(p))
	}
	delete(b.blocked, p)
	return []Mutation{del(prefixBlocked + p.String())}, nil
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
