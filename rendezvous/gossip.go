package rendezvous

import (
	"context"
	"crypto/sha256"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/kithnet/kith/protocols"
)

// gossip spreads revocations between relays on protocols.RevocationTopic.
// Gossipsub's own signature names the forwarding relay, not the author, so
// the payload is the revoker's own signed revocation; a validator rejects
// anything that does not verify, which stops it at the first honest hop,
// and message ids are content hashes so copies from several relays count
// once.
type gossip struct {
	r      *Relay
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
	done   chan struct{}
}

// MessageID is the gossipsub message id function relays use: the SHA-256
// of the payload.
func MessageID(m *pubsubpb.Message) string {
	h := sha256.Sum256(m.Data)
	return string(h[:])
}

func startGossip(r *Relay, ps *pubsub.PubSub) (*gossip, error) {
	if ps == nil {
		var err error
		ps, err = pubsub.NewGossipSub(r.ctx, r.h, pubsub.WithMessageIdFn(MessageID))
		if err != nil {
			return nil, fmt.Errorf("rendezvous: gossipsub: %w", err)
		}
	}
	err := ps.RegisterTopicValidator(protocols.RevocationTopic, func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if _, err := r.verifier.Revocation(m.Data); err != nil {
			r.trace.revocation("gossip", "invalid")
			return pubsub.ValidationReject
		}
		return pubsub.ValidationAccept
	})
	if err != nil {
		return nil, fmt.Errorf("rendezvous: revocation validator: %w", err)
	}
	topic, err := ps.Join(protocols.RevocationTopic)
	if err != nil {
		return nil, fmt.Errorf("rendezvous: join %s: %w", protocols.RevocationTopic, err)
	}
	sub, err := topic.Subscribe()
	if err != nil {
		return nil, fmt.Errorf("rendezvous: subscribe %s: %w", protocols.RevocationTopic, err)
	}
	ctx, cancel := context.WithCancel(r.ctx)
	g := &gossip{r: r, topic: topic, sub: sub, cancel: cancel, done: make(chan struct{})}
	go g.run(ctx)
	return g, nil
}

func (g *gossip) run(ctx context.Context) {
	defer close(g.done)
	for {
		m, err := g.sub.Next(ctx)
		if err != nil {
			return
		}
		if m.ReceivedFrom == g.r.h.ID() {
			continue
		}
		rev, err := g.r.verifier.Revocation(m.Data)
		if err != nil {
			continue // the validator already rejected it
		}
		if err := g.r.applyRevocation(ctx, rev, "gossip"); err != nil && ctx.Err() == nil {
			g.r.log.Warn("cannot apply gossiped revocation", "err", err)
		}
	}
}

func (g *gossip) publish(raw []byte) {
	if err := g.topic.Publish(g.r.ctx, raw); err != nil && g.r.ctx.Err() == nil {
		g.r.log.Warn("cannot gossip revocation", "err", err)
	}
}

func (g *gossip) close() {
	g.cancel()
	g.sub.Cancel()
	<-g.done
	g.topic.Close()
}
