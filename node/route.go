package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/protocols"
	"github.com/kithnet/kith/protocols/client"
	"github.com/kithnet/kith/protocols/pb"

	"github.com/kithnet/kith/node/book"
)

// Reaching a peer (DESIGN section 6): each user's profile names their home
// relays; a node delivers to the recipient's home relay, which is where the
// recipient logs in. A peer whose home relays are not known is reached
// through the user's own relays.

// ownRelays returns the user's relays, those logged in first.
func (n *Node) ownRelays() []peer.ID {
	in := n.loggedInRelays()
	out := append([]peer.ID(nil), in...)
	for _, ai := range n.opts.rendezvous {
		if !slices.Contains(out, ai.ID) {
			out = append(out, ai.ID)
		}
	}
	return out
}

// resolveHomes asks the user's relay for the newest signed profiles of the
// peers among ps (presence with want_profiles, with the friendship or
// introduction that presence requires) and keeps those that are newer
// than what the book holds. A relay answers from its own users or from
// the relays' DHT, so a friend whose home relay the user never learnt, or
// who moved to another relay, is reached where they log in. A peer whose
// profile was found is asked about again after the profile refresh period (WithProfileRefresh); one not
// found, the next time. Without an answer peers are reached as before.
func (n *Node) resolveHomes(ctx context.Context, ps []peer.ID) {
	now := n.clock()
	var due []peer.ID
	n.mu.Lock()
	if n.resolved == nil {
		n.resolved = map[peer.ID]time.Time{}
	}
	for _, p := range ps {
		if at, ok := n.resolved[p]; !ok || now.Sub(at) >= n.opts.refresh {
			due = append(due, p)
		}
	}
	asks := n.book.ProfileAsks(due)
	n.mu.Unlock()
	if len(asks) == 0 {
		return
	}
	for _, relay := range n.ownRelays() {
		answered := false
		for len(asks) > 0 {
			batch := asks[:min(len(asks), profileAsksPerQuery)]
			resp, err := client.Presence(ctx, n.h, relay, &pb.PresenceQuery{Asks: batch, WantProfiles: true})
			if err != nil {
				n.log.Debug("asking a relay for profiles", "relay", relay, "err", err)
				break
			}
			answered = true
			asks = asks[len(batch):]
			for _, e := range resp.Entries {
				if len(e.Profile) == 0 {
					continue // not found: asked again next time
				}
				n.note(func(b *book.Book) []book.Mutation {
					n.resolved[peer.ID(e.Peer)] = now
					return b.LearnProfile(e.Profile, n.clock())
				})
			}
		}
		if answered && len(asks) == 0 {
			return
		}
	}
}

// profileAsksPerQuery keeps a presence answer with profiles (each about
// 1.7 KB with its encryption key) within the relay's 40 KiB profile budget.
const profileAsksPerQuery = 16

// relaysOf returns the relays through which p is reached, in order
// (Book.RelaysOf), with their addresses in the peerstore.
func (n *Node) relaysOf(p peer.ID) []peer.ID {
	own := n.ownRelays()
	n.mu.Lock()
	ais := n.book.RelaysOf(p, own, n.clock())
	n.mu.Unlock()
	out := make([]peer.ID, len(ais))
	for i, ai := range ais {
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		out[i] = ai.ID
	}
	return out
}

// byRelay groups peers by the first relay through which each is reached
// (Book.Route), with the relays' addresses in the peerstore.
func (n *Node) byRelay(peers []peer.ID) ([]peer.ID, map[peer.ID][]peer.ID) {
	own := n.ownRelays()
	n.mu.Lock()
	order, groups, addrs := n.book.Route(peers, own, n.clock())
	n.mu.Unlock()
	for _, ai := range addrs {
		n.h.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
	}
	return order, groups
}

// directAddrs asks a relay whether peers are online, with proofs that the
// user may know them, and returns the addresses of those who are.
func (n *Node) directAddrs(ctx context.Context, relay peer.ID, asks []*pb.PresenceAsk) map[peer.ID][]ma.Multiaddr {
	out := map[peer.ID][]ma.Multiaddr{}
	if len(asks) == 0 {
		return out
	}
	// One query carries at most MaxAsksPerPresence asks: a user with more
	// friends at one relay asks in several.
	for _, part := range chunks(asks, protocols.MaxAsksPerPresence) {
		resp, err := client.Presence(ctx, n.h, relay, &pb.PresenceQuery{Asks: part})
		if err != nil {
			return out
		}
		for _, e := range resp.Entries {
			if !e.Online {
				continue
			}
			p := peer.ID(e.Peer)
			for _, b := range e.Addrs {
				if a, err := ma.NewMultiaddrBytes(b); err == nil {
					out[p] = append(out[p], a)
				}
			}
		}
	}
	return out
}

// redial forgets libp2p's dial backoff for relay: a relay that was down
// and is back is tried at once, not minutes later (the swarm backs off up
// to 5 minutes after failed dials). The node's own retry interval paces
// the attempts.
func (n *Node) redial(relay peer.ID) {
	if sw, ok := n.h.Network().(*swarm.Swarm); ok && n.h.Network().Connectedness(relay) != network.Connected {
		sw.Backoff().Clear(relay)
	}
}

// toRelay sends an add message to a relay.
func (n *Node) toRelay(ctx context.Context, relay peer.ID, m *pb.AddMessage) (*pb.AddResponse, error) {
	n.redial(relay)
	resp, err := client.Add(ctx, n.h, relay, m)
	if resp == nil {
		return nil, fmt.Errorf("%w: %v", ErrNoRelay, err)
	}
	return resp, err
}

// sendDirect sends m to p's node, over whatever address works. A
// connection opened just for this is closed afterwards: an add exchange is
// one message each way, often minutes apart, and an idle connection costs
// keepalives on both sides until libp2p's connection manager trims it
// (measured in simnet: keeping them made a 300-node run 40% slower).
func (n *Node) sendDirect(ctx context.Context, p peer.ID, addrs []ma.Multiaddr, m *pb.AddMessage) (book.Delivery, error) {
	ctx, cancel := context.WithTimeout(ctx, n.opts.directWait)
	defer cancel()
	had := n.h.Network().Connectedness(p) == network.Connected
	if err := n.h.Connect(network.WithAllowLimitedConn(ctx, "kith"), peer.AddrInfo{ID: p, Addrs: addrs}); err != nil {
		return "", err
	}
	// A stream takes a direct connection over a relayed one: if there is
	// one now, or after the exchange (hole punching), the add went or
	// goes direct. (Looking only after the exchange would miss a direct
	// connection the other side closed once it answered.)
	wasDirect := hasDirect(n.h.Network().ConnsToPeer(p))
	if _, err := client.Add(ctx, n.h, p, m); err != nil {
		if !had {
			n.h.Network().ClosePeer(p)
		}
		return "", err
	}
	how := book.SentCircuit // through a relayed connection, unless a direct one carries it
	if wasDirect || hasDirect(n.h.Network().ConnsToPeer(p)) {
		how = book.SentDirect
	}
	if !had && how == book.SentDirect {
		n.h.Network().ClosePeer(p)
	}
	// A relayed connection stays a while: hole punching (DCUtR) may turn
	// it direct, and the answer may come back on it.
	return how, nil
}
