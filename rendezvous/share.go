package rendezvous

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
	storepb "github.com/kithnet/kith/rendezvous/pb"
)

// The share's decisions, apart from the stream and the store: what a
// verified share is stored as (planShare), and what its sender is told
// (refusedShare, answerShare). Pure functions of the share, its verdict,
// the store's outcomes and the time.

// sharePlan is what a verified share becomes: its record (for replays and
// revocations) and one item per valid target.
type sharePlan struct {
	rec   *storepb.ShareRecord
	items []newItem
}

// planShare makes the record and the items of a share whose verdict lets
// it through. Each stored copy rests on the sharer's friendship with its
// target and with every item forwarded, so revoking any of them withdraws
// it; the items the relay refused travel with it, so the target hears why.
// The record lives while the seal does, but no longer than the mailbox
// keeps items (ttl): a sharer's choice of a decades-long seal must not make
// the relay keep its record that long.
func planShare(u *protocols.UnverifiedShare, v *protocols.ShareVerdict, now time.Time, ttl time.Duration) sharePlan {
	var itemDeps []identity.AttestationID
	var refused []*pb.Failure
	for _, it := range v.Items {
		itemDeps = append(itemDeps, v.Attestations[it.Peer])
	}
	for _, f := range v.Failures {
		if f.Role == pb.Role_ITEM {
			refused = append(refused, f.ToWire())
		}
	}
	recExpires := min(v.Seal.ExpiresAt.Unix(), now.Add(ttl).Unix())
	// The verified seal commits to the body (its Merkle root covers the
	// body's digest): hashing its few hundred bytes names the share's
	// content as well as hashing the whole share, which a share's sealed
	// parts and profiles make tens of kilobytes.
	sealHash := sha256.Sum256(u.Seal)
	rec := &storepb.ShareRecord{Sharer: []byte(u.Sharer), SealHash: sealHash[:], ExpiresAt: recExpires}
	for p, a := range v.Attestations {
		rec.Atts = append(rec.Atts, &storepb.PeerAttestation{Peer: []byte(p), AttestationId: a[:]})
	}
	items := make([]newItem, 0, len(v.Targets))
	for _, t := range v.Targets {
		rec.Targets = append(rec.Targets, []byte(t.Peer))
		deps := append([]identity.AttestationID{v.Attestations[t.Peer]}, itemDeps...)
		items = append(items, newItem{
			recipient: t.Peer, id: string(u.ID[:]), kind: pb.ItemKind_SHARE,
			payload: u.Raw, from: u.Sharer, deps: deps, refused: refused,
		})
	}
	return sharePlan{rec: rec, items: items}
}

// refusedShare answers a share its verdict refuses whole: every failing
// id with its reason, every target not sent.
func refusedShare(u *protocols.UnverifiedShare, v *protocols.ShareVerdict) *pb.ShareResponse {
	resp := &pb.ShareResponse{ShareId: u.ID[:], Status: pb.Status_REFUSED,
		Text: fmt.Sprintf("the share was not sent: %d of the ids failed the friendship check", len(v.Failures))}
	for _, f := range v.Failures {
		resp.Failures = append(resp.Failures, f.ToWire())
	}
	for _, t := range u.Targets {
		resp.Targets = append(resp.Targets, &pb.TargetResult{Peer: []byte(t.Peer), Delivery: pb.Delivery_NOT_SENT})
	}
	return resp
}

// answerShare tells the sender what became of a share the verdict let
// through: per valid target what the store did (results) and whether it
// was delivered or stored (deliveries), per failing id its reason. It is
// OK if any target was reached, QUOTA_EXCEEDED if every valid target's
// mailbox was full, else REFUSED.
func answerShare(u *protocols.UnverifiedShare, v *protocols.ShareVerdict, results []putResult, deliveries []pb.Delivery) *pb.ShareResponse {
	resp := &pb.ShareResponse{ShareId: u.ID[:]}
	for _, f := range v.Failures {
		resp.Failures = append(resp.Failures, f.ToWire())
	}
	reached, full := 0, 0
	for i, t := range v.Targets {
		d := deliveries[i]
		resp.Targets = append(resp.Targets, &pb.TargetResult{Peer: []byte(t.Peer), Delivery: d})
		switch results[i].outcome {
		case putOverQuota:
			full++
			f := &pb.Failure{Peer: []byte(t.Peer), Role: pb.Role_TARGET, Reason: pb.Reason_MAILBOX_FULL}
			if results[i].storeFull {
				f.Detail = fullDetail(results[i])
			}
			resp.Failures = append(resp.Failures, f)
		case putWithdrawn:
			resp.Failures = append(resp.Failures, &pb.Failure{Peer: []byte(t.Peer), Role: pb.Role_TARGET, Reason: pb.Reason_REVOKED,
				Detail: "a friendship this share rests on was revoked"})
		}
		if d == pb.Delivery_DELIVERED || d == pb.Delivery_STORED {
			reached++
		}
	}
	for _, f := range v.Failures {
		if f.Role == pb.Role_TARGET {
			resp.Targets = append(resp.Targets, &pb.TargetResult{Peer: []byte(f.Peer), Delivery: pb.Delivery_NOT_SENT})
		}
	}
	switch {
	case reached > 0:
		resp.Status = pb.Status_OK
	case full > 0 && full == len(v.Targets):
		resp.Status, resp.Text = pb.Status_QUOTA_EXCEEDED, "every target's mailbox is full"
	default:
		resp.Status, resp.Text = pb.Status_REFUSED, "no target could receive the share"
	}
	return resp
}
