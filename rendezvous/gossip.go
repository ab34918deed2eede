package rendezvous

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pubsubpb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/kithnet/kith/identity"
	"github.com/kithnet/kith/protocols"
)

// gossip spreads revocations between relays on protocols.RevocationTopic.
// Gossipsub's own signature names the forwarding relay, not the author, so
// the payload is the revoker's own signed revocation; a validator rejects
// anything that does not verify, which stops it at the first honest hop,
// and message ids are content hashes so copies from several relays count
// once.
type gossip struct {
	gossipDeps
	ctx    context.Context // the relay's: publishing stops with it
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

// gossipDeps is what gossip needs of the relay.
type gossipDeps struct {
	self   peer.ID
	verify func(raw []byte) (*identity.Revocation, error)
	// apply stores a verified revocation and withdraws what rests on it.
	apply func(ctx context.Context, rev *identity.Revocation, source string) error
	log   *slog.Logger
	trace tracer
	// admitted says whether p may take part in the gossip (Config.Admit).
	admitted func(p peer.ID) bool
}

// GossipProtocol is the relays' gossipsub router protocol, their own so
// that the mesh is not libp2p's public /meshsub.
const GossipProtocol protocol.ID = "/kith/meshsub/1.1.0"

// gossipOptions are the gossipsub options of the relays' mesh: content
// ids, their own protocol, no peer exchange (the mesh is the admitted
// relays, not whom they know), a peer filter that lets only admitted
// relays in, and peer scores that push a relay sending invalid
// revocations out of the mesh.
func gossipOptions(admitted func(peer.ID) bool) []pubsub.Option {
	topic := &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  10,
		FirstMessageDeliveriesWeight:   1,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(time.Hour),
		FirstMessageDeliveriesCap:      100,
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
		MeshMessageDeliveriesDecay:     pubsub.ScoreParameterDecay(time.Hour),
		MeshFailurePenaltyDecay:        pubsub.ScoreParameterDecay(time.Hour),
	}
	params := &pubsub.PeerScoreParams{
		Topics:                    map[string]*pubsub.TopicScoreParams{protocols.RevocationTopic: topic},
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		AppSpecificWeight:         1,
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyDecay:     pubsub.ScoreParameterDecay(time.Hour),
		BehaviourPenaltyThreshold: 1,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               time.Hour,
	}
	thresholds := &pubsub.PeerScoreThresholds{GossipThreshold: -10, PublishThreshold: -50, GraylistThreshold: -80}
	return []pubsub.Option{
		pubsub.WithMessageIdFn(MessageID),
		pubsub.WithGossipSubProtocols([]protocol.ID{GossipProtocol}, func(feat pubsub.GossipSubFeature, p protocol.ID) bool {
			return p == GossipProtocol && feat == pubsub.GossipSubFeatureMesh
		}),
		pubsub.WithPeerFilter(func(p peer.ID, _ string) bool { return admitted(p) }),
		pubsub.WithPeerScore(params, thresholds),
	}
}

// startGossip joins the revocation topic on ps (a gossipsub router of its
// own on h when ps is nil), until ctx ends or close.
func startGossip(ctx context.Context, h host.Host, ps *pubsub.PubSub, deps gossipDeps) (*gossip, error) {
	if ps == nil {
		var err error
		ps, err = pubsub.NewGossipSub(ctx, h, gossipOptions(deps.admitted)...)
		if err != nil {
			return nil, fmt.Errorf("rendezvous: gossipsub: %w", err)
		}
	}
	err := ps.RegisterTopicValidator(protocols.RevocationTopic, func(_ context.Context, _ peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if _, err := deps.verify(m.Data); err != nil {
			deps.trace.revocation("gossip", "invalid")
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
	runCtx, cancel := context.WithCancel(ctx)
	g := &gossip{gossipDeps: deps, ctx: ctx, topic: topic, sub: sub, cancel: cancel, done: make(chan struct{})}
	go g.run(runCtx)
	return g, nil
}

func (g *gossip) run(ctx context.Context) {
	defer close(g.done)
	for {
		m, err := g.sub.Next(ctx)
		if err != nil {
			return
		}
		if m.ReceivedFrom == g.self {
			continue
		}
		rev, err := g.verify(m.Data)
		if err != nil {
			continue // the validator already rejected it
		}
		if err := g.apply(ctx, rev, "gossip"); err != nil && ctx.Err() == nil {
			g.log.Warn("cannot apply gossiped revocation", "err", err)
		}
	}
}

func (g *gossip) publish(raw []byte) {
	if err := g.topic.Publish(g.ctx, raw); err != nil && g.ctx.Err() == nil {
		g.log.Warn("cannot gossip revocation", "err", err)
	}
}

func (g *gossip) close() {
	g.cancel()
	g.sub.Cancel()
	<-g.done
	g.topic.Close()
}
