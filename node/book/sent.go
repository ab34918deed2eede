package book

import (
	"fmt"
	"sort"
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
func (b *Book) RecordSent(s *protocols.UnverifiedShare, now time.Time) (*SentShare, []Mutation) {
	ss := &SentShare{ID: s.ID, Raw: s.Raw, SentAt: now}
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
}

// AnswerShare decides what a relay's answer to sent share id means, and
// records a final one.
func (b *Book) AnswerShare(id identity.ShareID, resp *pb.ShareResponse) (ShareAnswer, []Mutation) {
	res := &ShareResult{Share: id.String(), Targets: []TargetStatus{}}
	for _, t := range resp.Targets {
		p := peer.ID(t.Peer)
		status := map[pb.Delivery]string{pb.Delivery_DELIVERED: "delivered", pb.Delivery_STORED: "stored"}[t.Delivery]
		if status == "" {
			status = "not sent"
		}
		res.Targets = append(res.Targets, TargetStatus{Peer: p.String(), Name: b.Name(p), Status: status, Share: id.String()})
	}
	for _, f := range resp.Failures {
		res.Failed = append(res.Failed, b.Failure(protocols.FailureFromWire(f)))
	}
	if resp.Status == pb.Status_RATE_LIMITED || resp.Status == pb.Status_UNAVAILABLE {
		return ShareAnswer{Result: res}, nil
	}
	return ShareAnswer{Result: res, Final: true, Refused: resp.Status != pb.Status_OK}, b.RecordShareAnswer(id, res)
}

// Failure says in the user's words why f's id failed.
func (b *Book) Failure(f protocols.Failure) FailedID {
	reason := protocols.ReasonText(f.Reason)
	if f.Reason == pb.Reason_MISSING {
		reason = fmt.Sprintf("%s is not your friend (no valid attestation), so the share was not sent", b.Name(f.Peer))
	}
	if f.Detail != "" && f.Reason != pb.Reason_MISSING {
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
