package book

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// ShareRequest is what the user asks to share (patent A1, A2): friends
// and whole groups, to one or more targets.
type ShareRequest struct {
	To      []peer.ID
	Friends []peer.ID
	Groups  []string
	Partial bool
	Note    string
	// Skip are friends left out of this share: they ask to be asked
	// first, and are being asked (AskFirst). The targets learn how many.
	Skip []peer.ID
	// Consents are the consents of friends who ask first, by friend: with
	// one, they are in the share (to its one target).
	Consents map[peer.ID][]byte
	// Pack is the welcome pack's label the share keeps the promise of.
	Pack string
}

// ItemsLeft counts the friends req would share, its targets, the user
// and those it skips left out.
func (b *Book) ItemsLeft(req ShareRequest) int {
	items, _ := b.expand(req)
	n := 0
	for _, it := range items {
		if !containsPeer(req.To, it) && it != b.me && !containsPeer(req.Skip, it) {
			n++
		}
	}
	return n
}

// expand returns the friends req shares, groups expanded at share time,
// and the group each was picked through.
func (b *Book) expand(req ShareRequest) ([]peer.ID, map[peer.ID]string) {
	items := append([]peer.ID(nil), req.Friends...)
	groupOf := map[peer.ID]string{}
	for _, name := range req.Groups {
		g := b.groups[name]
		if g == nil {
			continue
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
	return items, groupOf
}

// BuildShare expands groups to their members at share time and seals the
// share with the attestations the relay will check. A target or friend the
// user has no friendship with cannot be proven, so it is refused here, with
// the same reason the relay would give.
func (b *Book) BuildShare(req ShareRequest, now time.Time) (*protocols.UnverifiedShare, []protocols.Failure, error) {
	if len(req.To) == 0 {
		return nil, nil, Kindf(ErrBadArgument, "no target: say whom to share with (--to)")
	}
	for _, name := range req.Groups {
		if b.groups[name] == nil {
			return nil, nil, Kindf(ErrNotFound, "no group called %q", name)
		}
	}
	items, groupOf := b.expand(req)
	// A target is never shared with themselves; those being asked first
	// wait for their answer.
	kept := items[:0]
	for _, it := range items {
		if !containsPeer(req.To, it) && it != b.me && !containsPeer(req.Skip, it) {
			kept = append(kept, it)
		}
	}
	items = kept
	if len(items) == 0 {
		return nil, nil, Kindf(ErrBadArgument, "nothing to share: pick friends, or groups that have members")
	}
	var missing []protocols.Failure
	spec := protocols.ShareSpec{SharerName: b.Settings.Name, CreatedAt: now, Note: req.Note, Awaiting: len(req.Skip), Pack: req.Pack}
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
		key, err := b.encKeyOf(t, nil, now)
		if err != nil {
			missing = append(missing, protocols.Failure{Peer: t, Role: pb.Role_TARGET, Reason: pb.Reason_MISSING,
				Detail: "the share cannot be sealed for them: " + err.Error()})
			continue
		}
		spec.Targets = append(spec.Targets, protocols.ShareTarget{Peer: t, Attestation: f.Attestation, Key: key})
	}
	for _, it := range items {
		f := b.friends[it]
		if f == nil {
			missing = append(missing, protocols.Failure{Peer: it, Role: pb.Role_ITEM, Reason: pb.Reason_MISSING,
				Detail: fmt.Sprintf("%s is not your friend (no valid attestation)", b.Name(it))})
			continue
		}
		// A friend whose newest profile the node holds says who may share
		// them: "nobody" is refused here, before anything is sent, as the
		// relay and the target would refuse it.
		if len(f.Profile) > 0 {
			if prof, err := b.verifier.Profile(f.Profile, now.Add(identity.DefaultClockSkew)); err == nil && prof.Policy != identity.ShareAskFirst {
				if err := prof.Shareable(it); err != nil {
					missing = append(missing, protocols.NewFailure(it, pb.Role_ITEM, err))
					continue
				}
			}
		}
		if b.asksFirst(it, now) && req.Consents[it] == nil {
			missing = append(missing, protocols.Failure{Peer: it, Role: pb.Role_ITEM, Reason: pb.Reason_OPTED_OUT,
				Detail: "asks to be asked first"})
			continue
		}
		spec.Items = append(spec.Items, protocols.ShareItem{Peer: it, Name: f.Name, Group: groupOf[it], Attestation: f.Attestation, Profile: f.Profile,
			Consent: req.Consents[it]})
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
func (b *Book) RecordSent(s *protocols.UnverifiedShare, now time.Time) (*SentShare, []Mutation) {
	ss := &SentShare{ID: s.ID, Raw: s.Raw, SentAt: now, Secret: s.Revealed()}
	for _, t := range s.Targets {
		ss.Targets = append(ss.Targets, t.Peer)
	}
	b.sent[s.ID] = ss
	return ss, []Mutation{put(prefixSent+s.ID.String(), ss)}
}

// ShareAnswer is what a relay's answer to a sent share means.
type ShareAnswer struct {
	Result *ShareResult // per target and per failing id, in the user's words
	// Final says the relay has answered for good (delivered, stored,
	// refused, a replay): retrying cannot change it, so it is recorded.
	// Otherwise (rate limited, unavailable) the share stays queued.
	Final bool
	// Refused says the relay sent it to nobody.
	Refused bool
	// Moved are the targets whose home relays are elsewhere now: their
	// newer profiles are learnt, and Reshare makes the share for them.
	Moved []peer.ID
}

// AnswerShare decides what a relay's answer to sent share id means, and
// records a final one. Targets the relay says moved (MOVED, with their
// newer profile) are not failures: their profiles are learnt and they are
// listed in Moved, for Reshare.
func (b *Book) AnswerShare(id identity.ShareID, resp *pb.ShareResponse, now time.Time) (ShareAnswer, []Mutation) {
	res := &ShareResult{Share: id.String(), Targets: []TargetStatus{}}
	for _, t := range resp.Targets {
		p := peer.ID(t.Peer)
		status := map[pb.Delivery]string{pb.Delivery_DELIVERED: "delivered", pb.Delivery_STORED: "stored"}[t.Delivery]
		if status == "" {
			status = "not sent"
		}
		res.Targets = append(res.Targets, TargetStatus{Peer: p.String(), Name: b.Name(p), Status: status, Share: id.String()})
	}
	var moved []peer.ID
	var muts []Mutation
	for _, f := range resp.Failures {
		if f.Reason == pb.Reason_MOVED && f.Role == pb.Role_TARGET {
			if m := b.LearnProfile(f.Profile, now); m != nil || b.HomeRelays(peer.ID(f.Peer), now) != nil {
				muts = append(muts, m...)
				moved = append(moved, peer.ID(f.Peer))
				continue // sent again, to where they are
			}
		}
		res.Failed = append(res.Failed, b.Failure(protocols.FailureFromWire(f)))
	}
	if resp.Status == pb.Status_RATE_LIMITED || resp.Status == pb.Status_UNAVAILABLE {
		return ShareAnswer{Result: res}, nil
	}
	res.Targets = slices.DeleteFunc(res.Targets, func(t TargetStatus) bool {
		return slices.ContainsFunc(moved, func(p peer.ID) bool { return p.String() == t.Peer })
	})
	ans := ShareAnswer{Result: res, Final: true, Refused: resp.Status != pb.Status_OK && len(moved) == 0, Moved: moved}
	return ans, append(muts, b.RecordShareAnswer(id, res)...)
}

// DeliveredDirectly records that sent share id reached every one of its
// targets directly (none of their home relays could be reached), and
// returns the answer the user sees.
func (b *Book) DeliveredDirectly(id identity.ShareID) (*ShareResult, []Mutation) {
	ss := b.sent[id]
	if ss == nil {
		return nil, nil
	}
	res := &ShareResult{Share: id.String(), Targets: []TargetStatus{}}
	for _, t := range ss.Targets {
		res.Targets = append(res.Targets, TargetStatus{Peer: t.String(), Name: b.Name(t), Status: "delivered directly", Share: id.String()})
	}
	return res, b.RecordShareAnswer(id, res)
}

// Reshare makes a new share of sent share id's friends for targets (some
// of its targets, who moved), with its note and mode, sealed anew, and
// records it as sent.
func (b *Book) Reshare(id identity.ShareID, targets []peer.ID, now time.Time) (*protocols.UnverifiedShare, *SentShare, []Mutation, error) {
	ss := b.sent[id]
	if ss == nil {
		return nil, nil, nil, Kindf(ErrNotFound, "no sent share %s", id)
	}
	u, err := protocols.DecodeShare(ss.Raw, protocols.Limits{})
	if err != nil {
		return nil, nil, nil, err
	}
	u.Reveal(ss.Secret)
	spec := protocols.ShareSpec{SharerName: u.SharerName, Mode: u.Mode, Note: u.Note, CreatedAt: now}
	for _, t := range u.Targets {
		if slices.Contains(targets, t.Peer) {
			if t.Key, err = b.encKeyOf(t.Peer, nil, now); err != nil {
				return nil, nil, nil, err
			}
			spec.Targets = append(spec.Targets, t)
		}
	}
	if len(spec.Targets) == 0 {
		return nil, nil, nil, Kindf(ErrNotFound, "share %s has none of those targets", id)
	}
	for _, it := range u.Items {
		it.Salt = identity.Salt{} // fresh salts for the new seal
		spec.Items = append(spec.Items, it)
	}
	s, err := protocols.BuildShare(b.key, spec)
	if err != nil {
		return nil, nil, nil, err
	}
	sent, muts := b.RecordSent(s, now)
	return s, sent, muts, nil
}

// Failure says in the user's words why f's id failed.
func (b *Book) Failure(f protocols.Failure) FailedID {
	reason := protocols.ReasonText(f.Reason)
	switch f.Reason {
	case pb.Reason_MISSING:
		reason = fmt.Sprintf("%s is not your friend (no valid attestation), so the share was not sent", b.Name(f.Peer))
	case pb.Reason_OPTED_OUT:
		reason = fmt.Sprintf("%s does not allow being shared (their settings say nobody may share them)", b.Name(f.Peer))
		if strings.Contains(f.Detail, "asks to be asked first") {
			reason = fmt.Sprintf("%s asks to be asked first, and has not agreed to this share", b.Name(f.Peer))
		}
	}
	if f.Detail != "" && f.Reason != pb.Reason_MISSING && f.Reason != pb.Reason_OPTED_OUT {
		reason += ": " + f.Detail
	}
	return FailedID{Peer: f.Peer.String(), Name: b.Name(f.Peer), Reason: reason}
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
