package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/host/observedaddrs"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/kithnet/kith/node/book"
	"github.com/kithnet/kith/protocols"
)

// Reachability says how a node expects to be reached.
type Reachability string

// The reachabilities.
const (
	// BehindNAT (the default): the node takes a circuit relay reservation
	// at its rendezvous nodes at once and advertises the circuit addresses
	// (a node at home is behind a NAT); connections that come through
	// them are upgraded to direct ones by hole punching where the NATs
	// allow it.
	BehindNAT Reachability = "nat"
	// Public: the node's own addresses are dialable; it takes no
	// reservation.
	Public Reachability = "public"
	// Auto: AutoNAT decides, with the rendezvous nodes' help.
	Auto Reachability = "auto"
)

// ParseReachability checks a reachability ("" is BehindNAT).
func ParseReachability(s string) (Reachability, error) {
	switch r := Reachability(s); r {
	case "":
		return BehindNAT, nil
	case BehindNAT, Public, Auto:
		return r, nil
	}
	return "", book.Kindf(book.ErrBadArgument, "reachability %q: say nat (at home, behind a router: the default), public or auto", s)
}

// HostOptions are the libp2p options of a personal node: its key and
// listen addresses, the relay transport, hole punching (DCUtR) to upgrade
// relayed connections to direct ones, UPnP/NAT-PMP port mapping, and
// AutoRelay with the user's rendezvous nodes as static relays, as
// reach says.
func HostOptions(key crypto.PrivKey, listen []ma.Multiaddr, relays []peer.AddrInfo, reach Reachability) []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.Identity(key),
		libp2p.UserAgent(protocols.AgentVersion("kith")), // what identify tells peers
		libp2p.ListenAddrs(listen...),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
		libp2p.NATPortMap(),
		Muxer(),
	}
	if len(relays) == 0 {
		return opts
	}
	// A reservation refused (the relay reserves for its logged-in users,
	// and the login may still be on its way) is asked again 10 s later.
	relayOpts := []autorelay.Option{autorelay.WithBackoff(10 * time.Second)}
	if reach != Public {
		// A node at home talks to its one or two rendezvous nodes and
		// to friends over circuits: libp2p's default of 4 observers
		// before it believes an observed address of its own means it
		// never learns its public address, and hole punching has none
		// to offer. Its own rendezvous node's word is enough. (A
		// package variable of go-libp2p: it holds for every host of the
		// process, and a kith process runs one; set once, before any
		// host of the process reads it.)
		trustOneObserver.Do(func() { observedaddrs.ActivationThresh = 1 })
	}
	switch reach {
	case Public:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case Auto:
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays, relayOpts...), libp2p.EnableAutoNATv2())
	default:
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(relays, relayOpts...), libp2p.ForceReachabilityPrivate())
	}
	return opts
}

var trustOneObserver sync.Once

// StreamWindow is the yamux receive window a node grants each stream from
// its first frame. Yamux starts at 256 KiB and grows the window only as
// round trips show the reader keeping up; a node that logs in is sent its
// whole mailbox in one burst (1,000 stored shares are about 2 MB), and at
// 256 KiB the relay waited on window updates every few hundred items
// (measured, pushing 1,000: 32-47 ms at 256 KiB, 29-33 ms at 1 MiB, no
// better at 4 MiB). The window is a credit, not an allocation: memory is
// used only by data the node has not read yet. It is kept at 1 MiB
// because yamux reserves only the first 256 KiB of it with the resource
// manager: a peer that fills streams the node does not read can hold up
// to this much per stream.
const StreamWindow = 1 << 20

// Muxer is the stream multiplexer of a node's host (and of the load
// generator's simulated users): libp2p's yamux with StreamWindow.
func Muxer() libp2p.Option {
	t := *yamux.DefaultTransport
	t.InitialStreamWindowSize = StreamWindow
	return libp2p.Muxer(yamux.ID, &t)
}

// ParseRendezvous parses rendezvous addresses (multiaddrs ending in
// /p2p/<id>), merging addresses of the same relay.
func ParseRendezvous(addrs []string) ([]peer.AddrInfo, error) { return book.ParseRendezvous(addrs) }
