package rendezvous

import (
	"time"

	"github.com/kithnet/kith/protocols/pb"
)

// tracer is what the relay reports as it works, as go-libp2p's relay
// reports through its MetricsTracer: the handlers and the store call it
// beside their decisions and never read anything back. metrics is the
// Prometheus implementation.
type tracer interface {
	shareAnswered(status pb.Status, failures []*pb.Failure)
	shareVerified(d time.Duration)
	itemStored(kind string)             // share, add_request, add_answer
	mailboxFull(room string)            // friends, strangers, store, store_strangers
	held(outcome string)                // acknowledged, stored
	addOutcome(outcome string)          // per request: accepted, refused, duplicate, throttled, ...
	presenceAsk(outcome string)         // per asked peer: online, offline, refused
	revocation(source, outcome string)  // node or gossip; new, known, invalid
	login(outcome string)               // ok, or the status of the refusal
	pushed(n int)                       // items pushed to online recipients
	delivered(n int)                    // items acknowledged and deleted
	expired(n int)                      // items dropped undelivered at their TTL
	committed(d time.Duration, ops int) // a datastore batch written
	dhtProfile(outcome string)          // put, put_failed, put_deferred, found, not_found
	dhtRelayPeers(n int)                // relays kept connected, at the last look
}

var _ tracer = (*metrics)(nil)
