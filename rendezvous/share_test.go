package rendezvous

import (
	"testing"
	"time"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// TestShareDecisions drives the share's pure decisions: what a verified
// share is stored as, and what its sender hears for each combination of
// store outcomes, with no network and no store.
func TestShareDecisions(t *testing.T) {
	c := newCast(t)
	now := time.Now()
	s := c.buildShare(t, []*tuser{c.bob, c.erin}, []*tuser{c.carol, c.dave})
	// Mallory is no friend of Alice's: a partial share refuses her alone.
	spec := c.shareSpec([]*tuser{c.bob, c.erin}, []*tuser{c.carol, c.dave})
	spec.Items = append(spec.Items, protocols.ShareItem{Peer: c.mallory.id, Name: "Mallory"})
	spec.Mode = pb.ShareMode_PARTIAL
	partial, err := protocols.BuildShare(c.alice.key, spec)
	if err != nil {
		t.Fatal(err)
	}
	verify := func(u *protocols.UnverifiedShare) *protocols.ShareVerdict {
		v, err := protocols.VerifyShare(identity.NewVerifier(), u, now, nil)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}

	v := verify(s)
	plan := planShare(s, v, now, time.Hour)
	if len(plan.items) != 2 || plan.rec.ExpiresAt != now.Add(time.Hour).Unix() {
		t.Fatalf("plan: %d items, record expires %d (the seal lives 30 days, the mailbox 1h)", len(plan.items), plan.rec.ExpiresAt)
	}
	for _, it := range plan.items {
		if len(it.deps) != 3 || it.deps[0] != v.Attestations[it.recipient] {
			t.Fatalf("an item rests on %d friendships, its target's first: %v", len(it.deps), it.deps)
		}
	}
	pv := verify(partial)
	if pp := planShare(partial, pv, now, time.Hour); len(pp.items[0].refused) != 1 || len(pp.items[0].deps) != 3 {
		t.Fatalf("a partial share's items carry the refusal: %+v", pp.items[0])
	}
	if resp := refusedShare(partial, pv); resp.Status != pb.Status_REFUSED || len(resp.Failures) != 1 || len(resp.Targets) != 2 {
		t.Fatalf("refused whole: %v", resp)
	}

	stored, full, withdrawn := putResult{outcome: putStored}, putResult{outcome: putOverQuota}, putResult{outcome: putWithdrawn}
	storeFull := putResult{outcome: putOverQuota, storeFull: true}
	tests := []struct {
		name       string
		results    []putResult
		deliveries []pb.Delivery
		status     pb.Status
		failures   []pb.Reason
	}{
		{"both stored", []putResult{stored, stored}, []pb.Delivery{pb.Delivery_STORED, pb.Delivery_DELIVERED}, pb.Status_OK, nil},
		{"one full", []putResult{stored, full}, []pb.Delivery{pb.Delivery_STORED, pb.Delivery_NOT_SENT}, pb.Status_OK, []pb.Reason{pb.Reason_MAILBOX_FULL}},
		{"every mailbox full", []putResult{full, storeFull}, []pb.Delivery{pb.Delivery_NOT_SENT, pb.Delivery_NOT_SENT}, pb.Status_QUOTA_EXCEEDED,
			[]pb.Reason{pb.Reason_MAILBOX_FULL, pb.Reason_MAILBOX_FULL}},
		{"withdrawn and full", []putResult{withdrawn, full}, []pb.Delivery{pb.Delivery_NOT_SENT, pb.Delivery_NOT_SENT}, pb.Status_REFUSED,
			[]pb.Reason{pb.Reason_REVOKED, pb.Reason_MAILBOX_FULL}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := answerShare(s, v, tt.results, tt.deliveries)
			if resp.Status != tt.status || len(resp.Failures) != len(tt.failures) || len(resp.Targets) != 2 {
				t.Fatalf("answer %v", resp)
			}
			for i, f := range resp.Failures {
				if f.Reason != tt.failures[i] || f.Role != pb.Role_TARGET {
					t.Fatalf("failure %d: %v", i, f)
				}
			}
			if tt.results[1].storeFull && resp.Failures[1].Detail == "" {
				t.Fatal("a full store said nothing of itself")
			}
		})
	}
	// A partial share's refused item is named in the answer too.
	if resp := answerShare(partial, pv, []putResult{stored, stored}, []pb.Delivery{pb.Delivery_STORED, pb.Delivery_STORED}); resp.Status != pb.Status_OK ||
		len(resp.Failures) != 1 || resp.Failures[0].Role != pb.Role_ITEM {
		t.Fatalf("partial answer %v", resp)
	}
}
