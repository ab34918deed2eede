package node

import (
	"fmt"
	"testing"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/pb"
)

// TestPresenceChunks: a user with more friends at one relay than one
// presence query carries asks in several, each friend once, in order, so
// that none past the 256th shows offline for want of being asked.
func TestPresenceChunks(t *testing.T) {
	const max = protocols.MaxAsksPerPresence
	for _, n := range []int{0, 1, max - 1, max, max + 1, 2*max + 7} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			asks := make([]*pb.PresenceAsk, n)
			for i := range asks {
				asks[i] = &pb.PresenceAsk{Peer: []byte(fmt.Sprint(i))}
			}
			parts := chunks(asks, max)
			if want := (n + max - 1) / max; len(parts) != want {
				t.Fatalf("%d queries, want %d", len(parts), want)
			}
			i := 0
			for _, p := range parts {
				if len(p) == 0 || len(p) > max {
					t.Fatalf("a query of %d asks", len(p))
				}
				for _, a := range p {
					if a != asks[i] {
						t.Fatalf("ask %d out of order", i)
					}
					i++
				}
			}
			if i != n {
				t.Fatalf("%d of %d asked", i, n)
			}
		})
	}
}
