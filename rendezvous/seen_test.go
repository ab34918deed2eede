package rendezvous

import (
	"testing"

	"github.com/kithnet/kith/identity"
)

func TestSeenShares(t *testing.T) {
	s := newSeenShares(16)
	var ids []identity.ShareID
	for range 5000 { // past the initial capacity: the filter grows
		id := identity.NewShareID()
		s.add(id)
		ids = append(ids, id)
	}
	for _, id := range ids {
		if !s.mayHave(id) {
			t.Fatal("a recorded id is reported unseen (a Bloom filter has no false negatives)")
		}
	}
	fp := 0
	for range 10000 {
		if s.mayHave(identity.NewShareID()) {
			fp++
		}
	}
	if fp > 300 { // ~1% expected; 3% is a broken filter
		t.Fatalf("%d false positives in 10000", fp)
	}
	s.forget(map[identity.ShareID]bool{ids[0]: true})
	for _, id := range ids[1:] {
		if !s.mayHave(id) {
			t.Fatal("forgetting one id lost another")
		}
	}
}
