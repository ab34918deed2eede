package book

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// SetHomeRelays records the relays the user's profile names. A change
// takes a new profile sequence, so that the newest profile is the one that
// wins wherever profiles meet (the relays' DHT keeps the highest). A relay
// that is no longer named becomes a left relay (LeftRelays), to be
// drained; one named again is no longer left.
func (b *Book) SetHomeRelays(addrs []string, now time.Time) []Mutation {
	if slices.Equal(addrs, b.Settings.Relays) {
		return nil
	}
	home := relayPeers(addrs)
	b.Settings.Left = slices.DeleteFunc(b.Settings.Left, func(l LeftRelay) bool {
		_, again := home[l.Peer]
		return again
	})
	old := relayPeers(b.Settings.Relays)
	for _, a := range b.Settings.Relays {
		id, ok := relayPeer(a)
		if !ok || home[id] != nil || slices.ContainsFunc(b.Settings.Left, func(l LeftRelay) bool { return l.Peer == id }) {
			continue
		}
		b.Settings.Left = append(b.Settings.Left, LeftRelay{Peer: id, Addrs: old[id], Since: now})
	}
	b.Settings.Relays = slices.Clone(addrs)
	b.Settings.Seq++
	return []Mutation{put(keySettings, b.Settings)}
}

// LeftRelays returns the relays the user left that may still hold items
// for them.
func (b *Book) LeftRelays() []LeftRelay { return slices.Clone(b.Settings.Left) }

// RelayDrained forgets a left relay: it holds nothing more for the user,
// or has held it past any mailbox's life.
func (b *Book) RelayDrained(id peer.ID) []Mutation {
	n := len(b.Settings.Left)
	b.Settings.Left = slices.DeleteFunc(b.Settings.Left, func(l LeftRelay) bool { return l.Peer == id })
	if len(b.Settings.Left) == n {
		return nil
	}
	return []Mutation{put(keySettings, b.Settings)}
}

// relayPeer returns the peer a relay address ends in.
func relayPeer(addr string) (peer.ID, bool) {
	a, err := ma.NewMultiaddr(addr)
	if err != nil {
		return "", false
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return "", false
	}
	return ai.ID, true
}

// relayPeers groups relay addresses by the peer they end in.
func relayPeers(addrs []string) map[peer.ID][]string {
	out := map[peer.ID][]string{}
	for _, a := range addrs {
		if id, ok := relayPeer(a); ok {
			out[id] = append(out[id], a)
		}
	}
	return out
}

// ParseRendezvous parses rendezvous addresses (multiaddrs ending in
// /p2p/<id>), merging addresses of the same relay.
func ParseRendezvous(addrs []string) ([]peer.AddrInfo, error) {
	var mas []ma.Multiaddr
	for _, s := range addrs {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, Kindf(ErrBadArgument, "rendezvous address %q: %v", s, err)
		}
		mas = append(mas, a)
	}
	ais, err := peer.AddrInfosFromP2pAddrs(mas...)
	if err != nil {
		return nil, Kindf(ErrBadArgument, "rendezvous addresses must end in /p2p/<peer id>: %v", err)
	}
	return ais, nil
}

// RelaysOf returns the relays through which p is reached, in order: the
// home relays p's profile or invite names, with their addresses, or else
// own (the user's relays, which find anyone through the relays' DHT),
// without addresses.
func (b *Book) RelaysOf(p peer.ID, own []peer.ID, now time.Time) []peer.AddrInfo {
	ais, err := ParseRendezvous(b.HomeRelays(p, now))
	if err == nil && len(ais) > 0 {
		return ais
	}
	out := make([]peer.AddrInfo, len(own))
	for i, r := range own {
		out[i] = peer.AddrInfo{ID: r}
	}
	return out
}

// Route groups peers by the first relay through which each is reached
// (RelaysOf), in the order relays first appear: one share, or one
// combined request, per relay. It returns the home relays' addresses too,
// for the node to dial.
func (b *Book) Route(peers, own []peer.ID, now time.Time) (order []peer.ID, groups map[peer.ID][]peer.ID, addrs []peer.AddrInfo) {
	groups = map[peer.ID][]peer.ID{}
	for _, p := range peers {
		rs := b.RelaysOf(p, own, now)
		if len(rs) == 0 {
			continue
		}
		r := rs[0].ID
		if _, ok := groups[r]; !ok {
			order = append(order, r)
		}
		groups[r] = append(groups[r], p)
		for _, ai := range rs {
			if len(ai.Addrs) > 0 {
				addrs = append(addrs, ai)
			}
		}
	}
	return order, groups, addrs
}
